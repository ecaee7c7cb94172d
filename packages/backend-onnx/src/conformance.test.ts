import { createJsBackend } from '@gen/backend-js';
import { ensureModelDir } from '@gen/model-kit';
import { runBackendConformanceTests } from '@gen/testkit';
import { createOnnxBackend } from './index.js';

// model-kit writes onnx/model.onnx next to model.safetensors, so the oracle (backend-js) and the backend under test
// read the same weights: the fused graph (GroupQueryAttention with a shared KV buffer) and the standard Optimum
// layout. The directories are cached under .gen-cache/models.
runBackendConformanceTests({
  name: 'onnx',
  createBackend: ({ modelDir }) => {
    if (modelDir === undefined) throw new Error('backend-onnx needs a model directory');
    return createOnnxBackend({ modelDir, maxBatchSize: 8, intraOpThreads: 1 });
  },
  modelDirs: [
    { name: 'tiny (fused)', dir: () => ensureModelDir('tiny', { seed: 1, onnxGraphStyle: 'fused' }) },
    { name: 'tiny-qwen2 (fused)', dir: () => ensureModelDir('tiny-qwen2', { seed: 2, onnxGraphStyle: 'fused' }) },
    { name: 'tiny (standard)', dir: () => ensureModelDir('tiny', { seed: 1, onnxGraphStyle: 'standard' }) },
    { name: 'tiny-qwen2 (standard)', dir: () => ensureModelDir('tiny-qwen2', { seed: 2, onnxGraphStyle: 'standard' }) },
  ],
  oracle: ({ modelDir }) => createJsBackend({ modelDir }),
  tolerance: 1e-4,
});

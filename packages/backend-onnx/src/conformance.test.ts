import { createJsBackend } from '@gen/backend-js';
import { ensureModelDir, type PresetName } from '@gen/model-kit';
import { runBackendConformanceTests } from '@gen/testkit';
import { createOnnxBackend } from './index.js';

/** The presets run in both graph styles, with their seeds. */
const presets: ReadonlyArray<[PresetName, number]> = [
  ['tiny', 1],
  ['tiny-qwen2', 2],
  ['tiny-qwen3', 3],
  ['tiny-gemma2', 4],
  ['tiny-gemma3', 5],
  ['tiny-phi3', 6],
];

// model-kit writes onnx/model.onnx next to model.safetensors, so the oracle (backend-js) and the backend under test
// read the same weights: the fused graph (GroupQueryAttention with a shared KV buffer) and the standard Optimum
// layout. The directories are cached under .gen-cache/models.
runBackendConformanceTests({
  name: 'onnx',
  createBackend: ({ modelDir }) => {
    if (modelDir === undefined) throw new Error('backend-onnx needs a model directory');
    return createOnnxBackend({ modelDir, maxBatchSize: 8, intraOpThreads: 1 });
  },
  modelDirs: (['fused', 'standard'] as const).flatMap((onnxGraphStyle) =>
    presets.map(([preset, seed]) => ({
      name: `${preset} (${onnxGraphStyle})`,
      dir: () => ensureModelDir(preset, { seed, onnxGraphStyle }),
    })),
  ),
  oracle: ({ modelDir }) => createJsBackend({ modelDir }),
  tolerance: 1e-4,
});

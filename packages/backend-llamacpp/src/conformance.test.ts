import { join } from 'node:path';
import { createJsBackend } from '@gen/backend-js';
import { ensureGgufModel } from '@gen/model-kit';
import { runBackendConformanceTests } from '@gen/testkit';
import { it } from 'vitest';
import { createLlamaCppBackend } from './index.js';
import { llamaCppUnavailable } from './testing/availability.js';

const unavailable = llamaCppUnavailable();

// The model directory (safetensors, read by the backend-js oracle) and `model-f32.gguf` inside it (read by
// llama.cpp) hold the same float32 weights: ensureGgufModel writes the GGUF into ensureModelDir's cached
// directory. The KV cache is float32 and flash attention off, so logits agree with the oracle to ~5e-6.
if (unavailable === undefined) {
  runBackendConformanceTests({
    name: 'llamacpp',
    createBackend: ({ modelDir }) => {
      if (modelDir === undefined) throw new Error('backend-llamacpp needs a model directory');
      return createLlamaCppBackend({
        modelPath: join(modelDir, 'model-f32.gguf'),
        maxBatchSize: 8,
        threads: 1,
        kvCacheType: 'f32',
      });
    },
    modelDirs: [
      { name: 'tiny', dir: async () => (await ensureGgufModel('tiny', { seed: 1 })).modelDir },
      { name: 'tiny-qwen2', dir: async () => (await ensureGgufModel('tiny-qwen2', { seed: 2 })).modelDir },
    ],
    oracle: ({ modelDir }) => createJsBackend({ modelDir }),
    tolerance: 1e-4,
    // Each round creates and releases sequences in llama.cpp; 200 show the stats return to baseline as well as
    // 1,000 and keep the suite fast on a loaded CI machine.
    releaseRounds: 200,
  });
} else {
  it.skip(`llamacpp conformance: llama.cpp is unavailable (${unavailable})`, () => {});
}

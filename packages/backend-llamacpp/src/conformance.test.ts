import { join } from 'node:path';
import { createJsBackend } from '@gen/backend-js';
import { ensureGgufModel, type ModelConfig, type PresetName } from '@gen/model-kit';
import { runBackendConformanceTests, type ModelDirSource } from '@gen/testkit';
import { it } from 'vitest';
import { createLlamaCppBackend } from './index.js';
import { llamaCppUnavailable } from './testing/availability.js';

const unavailable = llamaCppUnavailable();

/** A preset's cached model directory with `model-f32.gguf` inside it (see `ensureGgufModel`). */
function modelDir(preset: PresetName, seed: number, config?: Partial<ModelConfig>): ModelDirSource {
  return {
    name: preset,
    dir: async () => (await ensureGgufModel(preset, { seed, ...(config === undefined ? {} : { config }) })).modelDir,
  };
}

// Phi-3 with longrope factors that agree, so llama.cpp's choice of long or short factors by context size (see
// families.test.ts) does not matter here; the factor tensors and rope.scaling.attn_factor are still exercised.
const phi3Factors = [1.0, 1.0625, 1.125, 1.25, 1.375, 1.5];
const phi3 = { ropeScaling: { type: 'longrope', long_factor: phi3Factors, short_factor: phi3Factors } };

const common = {
  createBackend: ({ modelDir }: { modelDir: string | undefined }) => {
    if (modelDir === undefined) throw new Error('backend-llamacpp needs a model directory');
    return createLlamaCppBackend({
      modelPath: join(modelDir, 'model-f32.gguf'),
      maxBatchSize: 8,
      threads: 1,
      kvCacheType: 'f32',
    });
  },
  oracle: ({ modelDir }: { modelDir: string }) => createJsBackend({ modelDir }),
  // Each round creates and releases sequences in llama.cpp; 200 show the stats return to baseline as well as
  // 1,000 and keep the suite fast on a loaded CI machine.
  releaseRounds: 200,
};

// The model directory (safetensors, read by the backend-js oracle) and `model-f32.gguf` inside it (read by
// llama.cpp) hold the same float32 weights: ensureGgufModel writes the GGUF into the cached directory. The KV cache
// is float32 and flash attention off, so logits agree with the oracle to ~5e-6.
if (unavailable === undefined) {
  runBackendConformanceTests({
    ...common,
    name: 'llamacpp',
    modelDirs: [
      modelDir('tiny', 1),
      modelDir('tiny-qwen2', 2),
      modelDir('tiny-qwen3', 3),
      modelDir('tiny-phi3', 4, phi3),
    ],
    tolerance: 1e-4,
  });
  // Gemma's GeGLU: ggml's CPU GELU rounds its input to F16 and reads an F16 table (ggml/src/ggml-cpu/vec.h,
  // GGML_GELU_FP16, ggml_vec_geglu_f32), so logits differ from the float32 oracle by ~1.5e-3, and a 1-ulp change of
  // a GELU input (another batch split, another kernel path) can move its output by an F16 step: batched vs alone
  // and fork vs re-prefill agree to ~3e-4 only. query_pre_attn_scalar = head_dim: llama.cpp scales Gemma's queries
  // by 1/sqrt(head_dim).
  runBackendConformanceTests({
    ...common,
    name: 'llamacpp (Gemma, F16 GELU table)',
    modelDirs: [modelDir('tiny-gemma2', 5, { queryPreAttnScalar: 16 }), modelDir('tiny-gemma3', 6)],
    tolerance: 5e-3,
    consistencyTolerance: 2e-3,
  });
} else {
  it.skip(`llamacpp conformance: llama.cpp is unavailable (${unavailable})`, () => {});
}

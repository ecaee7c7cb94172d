import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeModelDir, type WriteModelDirOptions } from '@gen/model-kit';
import { runBackendConformanceTests } from '@gen/testkit';
import { afterAll } from 'vitest';
import { createJsBackend } from './index.js';

// backend-js is the oracle itself, so there is no `oracle` here: its numbers are checked against an independent
// float64 decoder in oracle.test.ts.
const root = await mkdtemp(path.join(tmpdir(), 'gen-backend-js-conformance-'));
afterAll(() => rm(root, { recursive: true, force: true }));

/** A model directory written by @gen/model-kit (safetensors only; the ONNX export is not needed here). */
const modelKit = (name: string, options: Omit<WriteModelDirOptions, 'outDir' | 'formats'>) => ({
  name,
  dir: async () => (await writeModelDir({ ...options, outDir: path.join(root, name), formats: ['safetensors'] })).dir,
});

runBackendConformanceTests({
  name: 'js',
  createBackend: ({ modelDir }) => {
    if (modelDir === undefined) throw new Error('backend-js needs a model directory');
    return createJsBackend({ modelDir, maxBatchSize: 8 });
  },
  modelDirs: [
    modelKit('tiny', { preset: 'tiny', seed: 1 }),
    modelKit('tiny-qwen2 bf16 sharded', { preset: 'tiny-qwen2', seed: 2, dtype: 'bfloat16', maxShardSize: 64 * 1024 }),
    modelKit('tiny mistral window 8 f16', {
      preset: 'tiny',
      seed: 3,
      dtype: 'float16',
      config: { architecture: 'mistral', slidingWindow: 8, maxPositionEmbeddings: 64 },
    }),
    modelKit('tiny-qwen3', { preset: 'tiny-qwen3', seed: 4 }),
    modelKit('tiny-gemma2', { preset: 'tiny-gemma2', seed: 5 }),
    modelKit('tiny-gemma3 bf16', { preset: 'tiny-gemma3', seed: 6, dtype: 'bfloat16' }),
    modelKit('tiny-phi3', { preset: 'tiny-phi3', seed: 7 }),
  ],
});

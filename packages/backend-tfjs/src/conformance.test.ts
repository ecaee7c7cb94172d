import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createJsBackend } from '@gen/backend-js';
import { writeModelDir, type WriteModelDirOptions } from '@gen/model-kit';
import { runBackendConformanceTests } from '@gen/testkit';
import { afterAll } from 'vitest';
import { createTfjsBackend } from './index.js';
import type { TfjsBackendKind } from './select-backend.js';

const root = await mkdtemp(path.join(tmpdir(), 'gen-backend-tfjs-conformance-'));
afterAll(() => rm(root, { recursive: true, force: true }));

/** A model directory written by @gen/model-kit (safetensors only). */
const modelKit = (name: string, options: Omit<WriteModelDirOptions, 'outDir' | 'formats'>) => ({
  name,
  dir: async () => (await writeModelDir({ ...options, outDir: path.join(root, name), formats: ['safetensors'] })).dir,
});

const modelDirs = [
  modelKit('tiny', { preset: 'tiny', seed: 1 }),
  modelKit('tiny-qwen2 bf16 sharded', { preset: 'tiny-qwen2', seed: 2, dtype: 'bfloat16', maxShardSize: 64 * 1024 }),
  modelKit('tiny mistral window 8 f16', {
    preset: 'tiny',
    seed: 3,
    dtype: 'float16',
    config: { architecture: 'mistral', slidingWindow: 8, maxPositionEmbeddings: 64 },
  }),
];

// The other families, at 64 positions so the suite's full-length prefills stay short (phi3 still crosses its
// original 32 positions there, switching to the long rope factors).
const familyModelDirs = [
  modelKit('tiny-qwen3', { preset: 'tiny-qwen3', seed: 4, config: { maxPositionEmbeddings: 64 } }),
  modelKit('tiny-gemma2', { preset: 'tiny-gemma2', seed: 5, config: { maxPositionEmbeddings: 64 } }),
  modelKit('tiny-gemma3 bf16', {
    preset: 'tiny-gemma3',
    seed: 6,
    dtype: 'bfloat16',
    config: { maxPositionEmbeddings: 64 },
  }),
  modelKit('tiny-phi3', { preset: 'tiny-phi3', seed: 7, config: { maxPositionEmbeddings: 64 } }),
];

// The two tfjs backends every machine has (CI has no GPU and no tfjs-node). Logits agree with the float64-
// accumulating oracle within 1e-4 (float32 products; measured worst cases are printed by the suite).
// The release test's leak check runs its full 1,000 rounds on the first three; the family models, whose caches
// are the same tensors, take 100 to keep the run short.
for (const tfjsBackend of ['wasm', 'cpu'] satisfies TfjsBackendKind[]) {
  const options = {
    name: `tfjs ${tfjsBackend}`,
    createBackend: ({ modelDir }: { modelDir: string | undefined }) => {
      if (modelDir === undefined) throw new Error('backend-tfjs needs a model directory');
      return createTfjsBackend({ modelDir, tfjsBackend, maxBatchSize: 8 });
    },
    oracle: ({ modelDir }: { modelDir: string }) => createJsBackend({ modelDir }),
    tolerance: 1e-4,
  };
  runBackendConformanceTests({ ...options, modelDirs });
  runBackendConformanceTests({ ...options, modelDirs: familyModelDirs, releaseRounds: 100 });
}

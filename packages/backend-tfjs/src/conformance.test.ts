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

// The two tfjs backends every machine has (CI has no GPU and no tfjs-node). Logits agree with the float64-
// accumulating oracle within 1e-4 (float32 products; measured worst cases are printed by the suite).
for (const tfjsBackend of ['wasm', 'cpu'] satisfies TfjsBackendKind[]) {
  runBackendConformanceTests({
    name: `tfjs ${tfjsBackend}`,
    createBackend: ({ modelDir }) => {
      if (modelDir === undefined) throw new Error('backend-tfjs needs a model directory');
      return createTfjsBackend({ modelDir, tfjsBackend, maxBatchSize: 8 });
    },
    oracle: ({ modelDir }) => createJsBackend({ modelDir }),
    tolerance: 1e-4,
    modelDirs,
  });
}

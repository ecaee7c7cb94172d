import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runBackendConformanceTests } from '@gen/testkit';
import { afterAll } from 'vitest';
import { createJsBackend } from './index.js';
import { writeTinyModelDir, type TinyModelOptions } from './testing/tiny-model-dir.js';

// backend-js is the oracle itself, so there is no `oracle` here: its numbers are checked against an independent
// float64 decoder in oracle.test.ts.
const root = await mkdtemp(path.join(tmpdir(), 'gen-backend-js-conformance-'));
afterAll(() => rm(root, { recursive: true, force: true }));

const tiny = (name: string, options: TinyModelOptions) => ({
  name,
  dir: async () => (await writeTinyModelDir(path.join(root, name), options)).dir,
});

runBackendConformanceTests({
  name: 'js',
  createBackend: ({ modelDir }) => {
    if (modelDir === undefined) throw new Error('backend-js needs a model directory');
    return createJsBackend({ modelDir, maxBatchSize: 8 });
  },
  modelDirs: [
    tiny('tiny-llama', {
      hiddenSize: 64,
      numLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      vocabSize: 256,
      intermediateSize: 128,
      seed: 1,
    }),
    tiny('tiny-qwen2', {
      modelType: 'qwen2',
      hiddenSize: 64,
      numLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      vocabSize: 256,
      intermediateSize: 128,
      seed: 2,
      dtype: 'BF16',
    }),
    tiny('tiny-mistral-window', { modelType: 'mistral', slidingWindow: 8, vocabSize: 128, seed: 3, sharded: true }),
  ],
});

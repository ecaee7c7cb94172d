import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BackendV1 } from '@gen/backend';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJsBackend } from './index.js';
import { matVec, referenceHead, referenceHiddenStates } from './testing/reference-decoder.js';
import { writeTinyModelDir, type TinyModel, type TinyModelOptions } from './testing/tiny-model-dir.js';

// doEmbed against the independent float64 decoder of testing/reference-decoder.ts: the final hidden states
// (after model.norm) pooled by mean or last position, computed without a KV cache and without @gen/backend's loader.

let root: string;
let counter = 0;
let worstError = 0;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'gen-backend-js-embed-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  console.info(`backend-js doEmbed vs float64 reference: max abs error ${worstError.toExponential(2)}`);
});

async function tinyModel(options: TinyModelOptions): Promise<TinyModel> {
  return writeTinyModelDir(path.join(root, `m${counter++}`), options);
}

function seededTokens(n: number, vocab: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729 + ((i * i) % 13)) % vocab);
}

function meanOf(rows: readonly number[][]): number[] {
  return rows[0]!.map((_, d) => rows.reduce((sum, row) => sum + row[d]!, 0) / rows.length);
}

function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  return worst;
}

async function withBackend(model: TinyModel, fn: (backend: BackendV1) => Promise<void>): Promise<void> {
  const backend = await createJsBackend({ modelDir: model.dir, maxBatchSize: 8 });
  try {
    await fn(backend);
  } finally {
    await backend.doDispose();
  }
}

const cases: { name: string; options: TinyModelOptions }[] = [
  { name: 'llama, GQA 4:2, untied', options: { seed: 21 } },
  { name: 'qwen2: biases, tied embeddings', options: { modelType: 'qwen2', seed: 22, numKeyValueHeads: 1 } },
  { name: 'mistral with sliding window 5', options: { modelType: 'mistral', slidingWindow: 5, seed: 23 } },
];

describe('backend-js doEmbed', () => {
  for (const { name, options } of cases) {
    it(`${name}: mean and last pooling equal the float64 reference within 1e-5`, async () => {
      const model = await tinyModel(options);
      await withBackend(model, async (backend) => {
        expect(backend.capabilities.embeddings).toBe(true);
        const vocab = backend.model.vocabSize;
        const inputs = [seededTokens(13, vocab, 1), seededTokens(1, vocab, 2), seededTokens(20, vocab, 3)];
        const mean = await backend.doEmbed!({ tokens: inputs, pooling: 'mean' });
        const last = await backend.doEmbed!({ tokens: inputs, pooling: 'last' });
        expect(mean).toHaveLength(3);
        for (let i = 0; i < inputs.length; i++) {
          const states = referenceHiddenStates(model, inputs[i]!);
          expect(mean[i]).toBeInstanceOf(Float32Array);
          expect(mean[i]!.length).toBe(backend.model.hiddenSize);
          const error = Math.max(maxAbsDiff(mean[i]!, meanOf(states)), maxAbsDiff(last[i]!, states.at(-1)!));
          worstError = Math.max(worstError, error);
          expect(error).toBeLessThan(1e-5);
        }
        // Not vacuous: mean and last differ for a multi-token input, and hidden states are of order 1.
        expect(maxAbsDiff(mean[0]!, last[0]!)).toBeGreaterThan(1e-2);
        expect(Math.max(...mean[0]!.map(Math.abs))).toBeGreaterThan(0.1);
        expect([...mean[1]!]).toEqual([...last[1]!]);
      });
    });
  }

  it('last pooling is the state lm_head turns into the logits doForward returns', async () => {
    const model = await tinyModel({ seed: 24 });
    await withBackend(model, async (backend) => {
      const tokens = seededTokens(9, backend.model.vocabSize, 5);
      const [embedding] = await backend.doEmbed!({ tokens: [tokens], pooling: 'last' });
      const forward = await backend.doForward({ sequences: [{ id: 'a', tokens }] });
      const logits = matVec(referenceHead(model), [...embedding!]);
      expect(maxAbsDiff(forward.sequences[0]!.logits, logits)).toBeLessThan(1e-5);
    });
  });

  it('is stateless: creates no sequence, leaves live ones as they were, and does not depend on the batch', async () => {
    const model = await tinyModel({ seed: 25 });
    await withBackend(model, async (backend) => {
      const vocab = backend.model.vocabSize;
      const prompt = seededTokens(6, vocab, 6);
      await backend.doForward({ sequences: [{ id: 'live', tokens: prompt }] });
      const before = backend.stats();
      const alone = await backend.doEmbed!({ tokens: [seededTokens(7, vocab, 7)], pooling: 'mean' });
      const batched = await backend.doEmbed!({
        tokens: [seededTokens(3, vocab, 8), seededTokens(7, vocab, 7), prompt],
        pooling: 'mean',
      });
      expect(backend.stats()).toEqual(before);
      expect(maxAbsDiff(batched[1]!, alone[0]!)).toBe(0);
      const next = await backend.doForward({ sequences: [{ id: 'live', tokens: [4], startPosition: 6 }] });
      const fresh = await backend.doForward({ sequences: [{ id: 'fresh', tokens: [...prompt, 4] }] });
      expect([...next.sequences[0]!.logits]).toEqual([...fresh.sequences[0]!.logits]);
    });
  });
});

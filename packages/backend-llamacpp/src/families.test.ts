import { createJsBackend } from '@gen/backend-js';
import { ensureGgufModel } from '@gen/model-kit';
import { describe, expect, it } from 'vitest';
import { createLlamaCppBackend } from './index.js';
import { llamaCppUnavailable } from './testing/availability.js';

const unavailable = llamaCppUnavailable();
const test = unavailable === undefined ? it : it.skip;
const reason = unavailable === undefined ? '' : ` (skipped: ${unavailable})`;

function maxDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

async function promptLogits(backend: Awaited<ReturnType<typeof createJsBackend>>, tokens: number[], id = 'p') {
  const result = await backend.doForward({ sequences: [{ id, tokens, wantPromptLogits: true }] });
  return result.sequences[0]!.promptLogits!;
}

/**
 * Phi-3 longrope in llama.cpp: `llama_model::get_rope_factors` (src/llama-model.cpp) takes `rope_factors_long` when
 * the context's `n_ctx_seq` (n_ctx padded to 256; the whole context with a unified KV cache) exceeds
 * `rope.scaling.original_context_length`, else `rope_factors_short`, for every position of every sequence;
 * transformers (and backend-js) switch per forward on the sequence's own length. An original context of 256 (the
 * smallest llama.cpp context) shows both sides of the rule.
 */
describe('phi3 longrope: llama.cpp picks the factors by context size', () => {
  const config = {
    maxPositionEmbeddings: 1024,
    originalMaxPositionEmbeddings: 256,
    ropeScaling: {
      long_factor: [2.0, 2.75, 3.5, 4.625, 6.25, 8.0],
      short_factor: [1.0, 1.0625, 1.125, 1.25, 1.375, 1.5],
      type: 'longrope',
    },
  };
  const short = Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 600);
  const long = Array.from({ length: 300 }, (_, i) => (i * 53 + 11) % 600);

  test(`a context within the original length: short factors, as the oracle for short sequences${reason}`, async () => {
    const { modelDir, file } = await ensureGgufModel('tiny-phi3', { seed: 7, config });
    const llama = await createLlamaCppBackend({
      modelPath: file,
      maxBatchSize: 1,
      contextSize: 256,
      threads: 1,
      kvCacheType: 'f32',
    });
    const oracle = await createJsBackend({ modelDir });
    try {
      expect(maxDifference(await promptLogits(llama, short), await promptLogits(oracle, short))).toBeLessThan(1e-4);
    } finally {
      await llama.doDispose();
      await oracle.doDispose();
    }
  });

  test(`a larger context: long factors for every sequence, as the oracle only past the original length${reason}`, async () => {
    const { modelDir, file } = await ensureGgufModel('tiny-phi3', { seed: 7, config });
    const llama = await createLlamaCppBackend({
      modelPath: file,
      maxBatchSize: 1,
      contextSize: 512,
      threads: 1,
      kvCacheType: 'f32',
    });
    const oracle = await createJsBackend({ modelDir });
    try {
      // 300 tokens in one forward: transformers uses the long factors for all of them, like llama.cpp.
      expect(maxDifference(await promptLogits(llama, long), await promptLogits(oracle, long))).toBeLessThan(1e-4);
      // 24 tokens: transformers uses the short factors, llama.cpp still the long ones.
      const [fromLlama, fromOracle] = [await promptLogits(llama, short, 'q'), await promptLogits(oracle, short, 'q')];
      expect(maxDifference(fromLlama, fromOracle)).toBeGreaterThan(1e-2);
    } finally {
      await llama.doDispose();
      await oracle.doDispose();
    }
  });
});

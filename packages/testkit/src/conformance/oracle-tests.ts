import type { BackendV1 } from '@gen/backend';
import { afterAll, expect, it } from 'vitest';
import { describeTargets, maxAbsDifference, rowOf, sampleTokens, withBackend } from './helpers.js';
import type { BackendConformanceOptions } from './options.js';

/** Logits a backend produces for a fixed script: a batched prefill with prompt logits, then decode steps. */
async function script(backend: BackendV1, usePromptLogits: boolean): Promise<Float32Array[]> {
  const vocab = backend.model.vocabSize;
  const lengths = [7, 3, 11].map((n) => Math.min(n, backend.model.maxPositions - 4));
  const batch = Math.min(lengths.length, backend.capabilities.maxBatchSize);
  const outputs: Float32Array[] = [];
  for (let start = 0; start < lengths.length; start += batch) {
    const ids = lengths.slice(start, start + batch).map((_, i) => `oracle-${start + i}`);
    const prefill = await backend.doForward({
      sequences: ids.map((id, i) => ({
        id,
        tokens: sampleTokens(lengths[start + i]!, vocab, 111 + start + i),
        wantPromptLogits: usePromptLogits,
      })),
    });
    for (const s of prefill.sequences) outputs.push(Float32Array.from(s.promptLogits ?? s.logits));
    for (let step = 0; step < 3; step++) {
      const decode = await backend.doForward({
        sequences: ids.map((id, i) => ({ id, tokens: [sampleTokens(1, vocab, 200 + 10 * step + start + i)[0]!] })),
      });
      for (const s of decode.sequences) outputs.push(Float32Array.from(s.logits));
    }
  }
  return outputs;
}

/** Embeddings a backend produces for a fixed script: a batch of inputs of several lengths, mean and last pooling. */
async function embeddingScript(backend: BackendV1): Promise<Float32Array[]> {
  const vocab = backend.model.vocabSize;
  const inputs = [1, 6, 13].map((n, i) => sampleTokens(Math.min(n, backend.model.maxPositions), vocab, 121 + i));
  const batch = backend.capabilities.maxBatchSize;
  const outputs: Float32Array[] = [];
  for (const pooling of ['mean', 'last'] as const) {
    for (let start = 0; start < inputs.length; start += batch) {
      outputs.push(...(await backend.doEmbed!({ tokens: inputs.slice(start, start + batch), pooling })));
    }
  }
  return outputs;
}

/**
 * Numerical agreement with a reference backend (`options.oracle`, normally `@gen/backend-js`) on each model
 * directory: the same model description, and logits within `options.tolerance` (default 1e-4) for batched
 * prefill with prompt logits and several decode steps; when both have `capabilities.embeddings`, the same
 * `hiddenSize` and `doEmbed` vectors (mean and last pooling) within the same tolerance. Skipped without `oracle`
 * or `modelDirs`.
 */
export function oracleTests(options: BackendConformanceOptions): void {
  const oracle = options.oracle;
  if (oracle === undefined || options.modelDirs === undefined || options.modelDirs.length === 0) return;
  const tolerance = options.tolerance ?? 1e-4;
  describeTargets(options, 'oracle', (target) => {
    let worst = 0;
    let worstEmbedding: number | undefined;
    afterAll(() => {
      console.info(
        `${options.name} vs oracle [${target.modelDir()}]: max abs logit difference ${worst.toExponential(2)}` +
          (worstEmbedding === undefined ? '' : `, embedding difference ${worstEmbedding.toExponential(2)}`),
      );
    });

    it(`matches the oracle backend within ${tolerance}`, async () => {
      const modelDir = target.modelDir()!;
      const reference = await oracle({ modelDir });
      try {
        await withBackend(target, async (backend) => {
          expect(backend.model.vocabSize).toBe(reference.model.vocabSize);
          expect([...backend.model.eosTokenIds]).toEqual([...reference.model.eosTokenIds]);
          expect(backend.model.bosTokenId).toBe(reference.model.bosTokenId);
          expect(backend.model.modelType).toBe(reference.model.modelType);
          const usePromptLogits = backend.capabilities.promptLogits && reference.capabilities.promptLogits;
          const actual = await script(backend, usePromptLogits);
          const expected = await script(reference, usePromptLogits);
          expect(actual.length).toBe(expected.length);
          const vocab = backend.model.vocabSize;
          for (let i = 0; i < actual.length; i++) {
            const difference = maxAbsDifference(actual[i]!, expected[i]!);
            worst = Math.max(worst, difference);
            if (!(difference <= tolerance)) {
              const rows = actual[i]!.length / vocab;
              let row = 0;
              for (let r = 0; r < rows; r++) {
                if (maxAbsDifference(rowOf(actual[i]!, r, vocab), rowOf(expected[i]!, r, vocab)) > tolerance) {
                  row = r;
                  break;
                }
              }
              expect.fail(`output ${i} (row ${row}): max abs difference ${difference} exceeds ${tolerance}`);
            }
          }
        });
      } finally {
        await reference.doDispose();
      }
    });

    it(`embeddings match the oracle's within ${tolerance}`, async (context) => {
      const modelDir = target.modelDir()!;
      const reference = await oracle({ modelDir });
      try {
        await withBackend(target, async (backend) => {
          if (backend.capabilities.embeddings !== true) context.skip('capabilities.embeddings is not true');
          if (reference.capabilities.embeddings !== true) context.skip('the oracle has no embeddings');
          expect(backend.model.hiddenSize).toBe(reference.model.hiddenSize);
          const actual = await embeddingScript(backend);
          const expected = await embeddingScript(reference);
          expect(actual.length).toBe(expected.length);
          for (let i = 0; i < actual.length; i++) {
            const difference = maxAbsDifference(actual[i]!, expected[i]!);
            worstEmbedding = Math.max(worstEmbedding ?? 0, difference);
            expect(
              difference,
              `embedding ${i}: max abs difference ${difference} exceeds ${tolerance}`,
            ).toBeLessThanOrEqual(tolerance);
          }
        });
      } finally {
        await reference.doDispose();
      }
    });
  });
}

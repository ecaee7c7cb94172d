import { expect, it } from 'vitest';
import { describeTargets, expectClose, rowOf, sampleTokens, withBackend } from './helpers.js';
import type { BackendConformanceOptions } from './options.js';

/**
 * Prefill and decode are the same computation: one full prefill, chunked prefills and token-by-token decoding of
 * the same tokens give the same logits at every position; and logits depend only on a sequence's own history.
 */
export function prefillConsistencyTests(options: BackendConformanceOptions): void {
  const tolerance = options.consistencyTolerance ?? 1e-4;
  describeTargets(options, 'prefill consistency', (target) => {
    it('one full prefill equals token-by-token decode at every position', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const length = Math.min(12, backend.model.maxPositions);
        const tokens = sampleTokens(length, vocab, 21);
        const full = await backend.doForward({
          sequences: [{ id: 'full', tokens, wantPromptLogits: backend.capabilities.promptLogits }],
        });
        const fullLogits = Float32Array.from(full.sequences[0]!.logits);
        const promptLogits = full.sequences[0]!.promptLogits;
        let last = new Float32Array(0);
        for (let i = 0; i < length; i++) {
          const step = await backend.doForward({
            sequences: [{ id: 'stepwise', tokens: [tokens[i]!], startPosition: i }],
          });
          last = Float32Array.from(step.sequences[0]!.logits);
          expect(step.sequences[0]!.length).toBe(i + 1);
          if (promptLogits !== undefined) {
            expectClose(last, rowOf(promptLogits, i, vocab), tolerance, `position ${i}: decode vs prompt logits`);
          }
        }
        expectClose(last, fullLogits, tolerance, 'final position: decode vs full prefill');
      });
    });

    it('chunked prefill equals one full prefill', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const length = Math.min(13, backend.model.maxPositions);
        const tokens = sampleTokens(length, vocab, 22);
        const wantPromptLogits = backend.capabilities.promptLogits;
        const full = await backend.doForward({ sequences: [{ id: 'full', tokens, wantPromptLogits }] });
        const chunks = [3, 1, 4, 1, 5, 9];
        let offset = 0;
        let last = new Float32Array(0);
        for (const size of chunks) {
          if (offset >= length) break;
          const chunk = tokens.slice(offset, offset + size);
          const result = await backend.doForward({
            sequences: [{ id: 'chunked', tokens: chunk, startPosition: offset, wantPromptLogits }],
          });
          const sequence = result.sequences[0]!;
          if (wantPromptLogits) {
            for (let j = 0; j < chunk.length; j++) {
              expectClose(
                rowOf(sequence.promptLogits!, j, vocab),
                rowOf(full.sequences[0]!.promptLogits!, offset + j, vocab),
                tolerance,
                `position ${offset + j}: chunk of ${size} vs full prefill`,
              );
            }
          }
          last = Float32Array.from(sequence.logits);
          offset += chunk.length;
        }
        expectClose(last, full.sequences[0]!.logits, tolerance, 'final position: chunked vs full prefill');
      });
    });

    it('logits depend only on the sequence history, not on its id or on other live sequences', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const tokens = sampleTokens(6, vocab, 23);
        const alone = await backend.doForward({ sequences: [{ id: 'first', tokens }] });
        const expected = Float32Array.from(alone.sequences[0]!.logits);
        await backend.doForward({ sequences: [{ id: 'noise', tokens: sampleTokens(9, vocab, 24) }] });
        await backend.doRelease(['first']);
        const again = await backend.doForward({ sequences: [{ id: 'second', tokens }] });
        expectClose(again.sequences[0]!.logits, expected, tolerance, 'same tokens, different id and neighbours');
        const reused = await backend.doForward({ sequences: [{ id: 'first', tokens, startPosition: 0 }] });
        expectClose(reused.sequences[0]!.logits, expected, tolerance, 'released id reused as a new sequence');
      });
    });
  });
}

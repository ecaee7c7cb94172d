import { BatchLimitError, InvalidInputError, PositionLimitError, SequenceError } from '@gen/backend';
import { expect, it } from 'vitest';
import { describeTargets, expectClose, expectErrorClass, rejectionOf, sampleTokens, withBackend } from './helpers.js';
import type { BackendConformanceOptions } from './options.js';

/** Largest `maxPositions` the suite fills up to check the position limit (bigger models skip that test). */
const positionTestLimit = 4096;

/**
 * Clear, typed errors that change nothing: positions past the maximum (`PositionLimitError`), unknown ids and
 * `startPosition` mismatches (`SequenceError`), duplicate ids, oversized batches (`BatchLimitError`), empty
 * inputs and out-of-range tokens (`InvalidInputError`); a batch with one bad sequence appends nothing at all.
 */
export function errorTests(options: BackendConformanceOptions): void {
  const tolerance = options.consistencyTolerance ?? 1e-4;
  describeTargets(options, 'errors', (target) => {
    it('rejects positions past model.maxPositions, in prefill and in decode, appending nothing', async (context) => {
      await withBackend(target, async (backend) => {
        const { vocabSize: vocab, maxPositions } = backend.model;
        if (maxPositions > positionTestLimit) context.skip(`maxPositions ${maxPositions} > ${positionTestLimit}`);
        const tooLong = await rejectionOf(
          backend.doForward({ sequences: [{ id: 'long', tokens: sampleTokens(maxPositions + 1, vocab, 91) }] }),
        );
        expectErrorClass(tooLong, PositionLimitError.isInstance, 'PositionLimitError');
        expect(tooLong).toMatchObject({ sequenceId: 'long', requestedPositions: maxPositions + 1, maxPositions });
        expect(backend.stats().sequences).toBe(0);

        const tokens = sampleTokens(maxPositions, vocab, 92);
        const chunk = Math.max(1, Math.ceil(maxPositions / 4));
        for (let offset = 0; offset < maxPositions; offset += chunk) {
          await backend.doForward({
            sequences: [{ id: 'full', tokens: tokens.slice(offset, offset + chunk), startPosition: offset }],
          });
        }
        const pastEnd = await rejectionOf(
          backend.doForward({ sequences: [{ id: 'full', tokens: [1 % vocab], startPosition: maxPositions }] }),
        );
        expectErrorClass(pastEnd, PositionLimitError.isInstance, 'PositionLimitError');
        expect(pastEnd).toMatchObject({ sequenceId: 'full', requestedPositions: maxPositions + 1 });
        expect(backend.stats()).toMatchObject({ sequences: 1, cachedTokens: maxPositions });
      });
    });

    it('rejects continuing an unknown id and a startPosition that does not match', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const unknown = await rejectionOf(
          backend.doForward({ sequences: [{ id: 'ghost', tokens: [1 % vocab], startPosition: 3 }] }),
        );
        expectErrorClass(unknown, SequenceError.isInstance, 'SequenceError');
        expect(unknown).toMatchObject({ sequenceId: 'ghost', reason: 'unknown' });
        expect(backend.stats().sequences).toBe(0);

        await backend.doForward({ sequences: [{ id: 's', tokens: sampleTokens(4, vocab, 93) }] });
        for (const startPosition of [0, 3, 5]) {
          const mismatch = await rejectionOf(
            backend.doForward({ sequences: [{ id: 's', tokens: [1 % vocab], startPosition }] }),
          );
          expectErrorClass(mismatch, SequenceError.isInstance, 'SequenceError');
          expect(mismatch).toMatchObject({ sequenceId: 's', reason: 'position-mismatch' });
        }
        const ok = await backend.doForward({ sequences: [{ id: 's', tokens: [1 % vocab], startPosition: 4 }] });
        expect(ok.sequences[0]!.length).toBe(5);
      });
    });

    it('rejects a duplicate id in one batch and a batch over maxBatchSize', async (context) => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        if (backend.capabilities.maxBatchSize >= 2) {
          const duplicate = await rejectionOf(
            backend.doForward({
              sequences: [
                { id: 'd', tokens: [1 % vocab] },
                { id: 'd', tokens: [2 % vocab] },
              ],
            }),
          );
          expectErrorClass(duplicate, SequenceError.isInstance, 'SequenceError');
          expect(duplicate).toMatchObject({ sequenceId: 'd', reason: 'duplicate' });
          expect(backend.stats().sequences).toBe(0);
        }
        const max = backend.capabilities.maxBatchSize;
        if (max > 4096) context.skip(`maxBatchSize ${max} too large to exceed in a test`);
        const over = await rejectionOf(
          backend.doForward({
            sequences: Array.from({ length: max + 1 }, (_, i) => ({ id: `o${i}`, tokens: [i % vocab] })),
          }),
        );
        expectErrorClass(over, BatchLimitError.isInstance, 'BatchLimitError');
        expect(over).toMatchObject({ batchSize: max + 1, maxBatchSize: max });
        expect(backend.stats().sequences).toBe(0);
      });
    });

    it('rejects empty batches, empty token lists and token ids outside [0, vocabSize)', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        expectErrorClass(
          await rejectionOf(backend.doForward({ sequences: [] })),
          InvalidInputError.isInstance,
          'InvalidInputError',
        );
        for (const tokens of [[], [vocab], [-1], [1.5], [Number.NaN]]) {
          const error = await rejectionOf(backend.doForward({ sequences: [{ id: 'bad', tokens }] }));
          expectErrorClass(
            error,
            InvalidInputError.isInstance,
            `InvalidInputError for tokens ${JSON.stringify(tokens)}`,
          );
          expect((error as InvalidInputError).sequenceId).toBe('bad');
        }
        expect(backend.stats().sequences).toBe(0);
      });
    });

    it('a batch with one bad sequence appends nothing to the good ones', async (context) => {
      await withBackend(target, async (backend) => {
        if (backend.capabilities.maxBatchSize < 3) context.skip('maxBatchSize < 3');
        const vocab = backend.model.vocabSize;
        const prompt = sampleTokens(3, vocab, 94);
        await backend.doForward({ sequences: [{ id: 'good', tokens: prompt }] });
        const error = await rejectionOf(
          backend.doForward({
            sequences: [
              { id: 'good', tokens: [5 % vocab] },
              { id: 'new', tokens: [1 % vocab] },
              { id: 'bad', tokens: [vocab] },
            ],
          }),
        );
        expectErrorClass(error, InvalidInputError.isInstance, 'InvalidInputError');
        expect(backend.stats()).toMatchObject({ sequences: 1, cachedTokens: prompt.length });
        const next = await backend.doForward({ sequences: [{ id: 'good', tokens: [5 % vocab], startPosition: 3 }] });
        const fresh = await backend.doForward({ sequences: [{ id: 'fresh', tokens: [...prompt, 5 % vocab] }] });
        expectClose(next.sequences[0]!.logits, fresh.sequences[0]!.logits, tolerance, 'after a rejected batch');
      });
    });
  });
}

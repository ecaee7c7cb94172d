import type { BackendSequenceInputV1, BackendV1 } from '@gen/backend';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { forwardBatchArbitrary } from '../arbitraries.js';
import { describeTargets, expectClose, rowOf, sampleTokens, withBackend } from './helpers.js';
import type { BackendConformanceOptions } from './options.js';

async function alone(backend: BackendV1, id: string, tokens: readonly number[]): Promise<Float32Array> {
  const result = await backend.doForward({ sequences: [{ id, tokens }] });
  return Float32Array.from(result.sequences[0]!.logits);
}

/**
 * Batching is invisible: a batch of sequences of different lengths (mixing prefill and decode) gives each
 * sequence the logits it gets alone; order within a batch does not matter; overlapping calls behave as if run
 * one after another.
 */
export function batchingTests(options: BackendConformanceOptions): void {
  const tolerance = options.consistencyTolerance ?? 1e-4;
  describeTargets(options, 'batching', (target) => {
    it('a batch of sequences of different lengths equals each sequence run alone, through decode steps', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const lengths = [1, 5, 9, 3].slice(0, backend.capabilities.maxBatchSize);
        const prompts = lengths.map((n, i) => sampleTokens(Math.min(n, backend.model.maxPositions - 3), vocab, 31 + i));
        const steps = [0, 1, 2].map((s) => prompts.map((_, i) => sampleTokens(1, vocab, 40 + 7 * s + i)[0]!));

        const batched: Float32Array[][] = [];
        let result = await backend.doForward({ sequences: prompts.map((tokens, i) => ({ id: `b${i}`, tokens })) });
        batched.push(result.sequences.map((s) => Float32Array.from(s.logits)));
        for (const step of steps) {
          result = await backend.doForward({ sequences: step.map((token, i) => ({ id: `b${i}`, tokens: [token] })) });
          batched.push(result.sequences.map((s) => Float32Array.from(s.logits)));
        }

        for (let i = 0; i < prompts.length; i++) {
          let history = [...prompts[i]!];
          expectClose(batched[0]![i]!, await alone(backend, `a${i}-0`, history), tolerance, `sequence ${i} prefill`);
          for (let s = 0; s < steps.length; s++) {
            history = [...history, steps[s]![i]!];
            expectClose(
              batched[s + 1]![i]!,
              await alone(backend, `a${i}-${s + 1}`, history),
              tolerance,
              `sequence ${i} decode step ${s}`,
            );
          }
        }
      });
    });

    it('a batch may mix a new prefill (with prompt logits) and decode steps; order does not matter', async (context) => {
      await withBackend(target, async (backend) => {
        if (backend.capabilities.maxBatchSize < 3) context.skip('maxBatchSize < 3');
        const vocab = backend.model.vocabSize;
        const p0 = sampleTokens(4, vocab, 51);
        const p1 = sampleTokens(7, vocab, 52);
        const p2 = sampleTokens(5, vocab, 53);
        await backend.doForward({
          sequences: [
            { id: 'x0', tokens: p0 },
            { id: 'x1', tokens: p1 },
          ],
        });
        await backend.doForward({
          sequences: [
            { id: 'y0', tokens: p0 },
            { id: 'y1', tokens: p1 },
          ],
        });
        const wantPromptLogits = backend.capabilities.promptLogits;
        const forward = await backend.doForward({
          sequences: [
            { id: 'x0', tokens: [9 % vocab] },
            { id: 'x2', tokens: p2, wantPromptLogits },
            { id: 'x1', tokens: [3 % vocab] },
          ],
        });
        const reversed = await backend.doForward({
          sequences: [
            { id: 'y1', tokens: [3 % vocab] },
            { id: 'y2', tokens: p2, wantPromptLogits },
            { id: 'y0', tokens: [9 % vocab] },
          ],
        });
        expectClose(forward.sequences[0]!.logits, reversed.sequences[2]!.logits, tolerance, 'decode of sequence 0');
        expectClose(forward.sequences[2]!.logits, reversed.sequences[0]!.logits, tolerance, 'decode of sequence 1');
        expectClose(forward.sequences[1]!.logits, reversed.sequences[1]!.logits, tolerance, 'prefill in a batch');
        expectClose(forward.sequences[1]!.logits, await alone(backend, 'z2', p2), tolerance, 'prefill alone');
        expectClose(
          forward.sequences[0]!.logits,
          await alone(backend, 'z0', [...p0, 9 % vocab]),
          tolerance,
          'decode vs fresh prefill',
        );
        if (wantPromptLogits) {
          const single = await backend.doForward({ sequences: [{ id: 'w2', tokens: p2, wantPromptLogits }] });
          for (let j = 0; j < p2.length; j++) {
            expectClose(
              rowOf(forward.sequences[1]!.promptLogits!, j, vocab),
              rowOf(single.sequences[0]!.promptLogits!, j, vocab),
              tolerance,
              `prompt logits row ${j} in a mixed batch`,
            );
          }
        }
      });
    });

    it('property: any batch of fresh sequences equals each sequence alone', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        let run = 0;
        await fc.assert(
          fc.asyncProperty(
            forwardBatchArbitrary({
              vocabSize: vocab,
              maxBatchSize: Math.min(6, backend.capabilities.maxBatchSize),
              maxLength: Math.min(10, backend.model.maxPositions),
            }),
            async (batch: BackendSequenceInputV1[]) => {
              const prefix = `p${run++}-`;
              const result = await backend.doForward({
                sequences: batch.map((s) => ({ ...s, id: prefix + s.id, wantPromptLogits: false })),
              });
              for (let i = 0; i < batch.length; i++) {
                const expected = await alone(backend, `${prefix}alone-${i}`, Array.from(batch[i]!.tokens));
                expectClose(result.sequences[i]!.logits, expected, tolerance, `batch member ${i}`);
              }
              await backend.doRelease([
                ...batch.map((s) => prefix + s.id),
                ...batch.map((_, i) => `${prefix}alone-${i}`),
              ]);
            },
          ),
          { numRuns: options.propertyRuns ?? 8, seed: 4242 },
        );
        expect(backend.stats().sequences).toBe(0);
      });
    });

    it('overlapping calls behave as if run one after another', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const p = sampleTokens(6, vocab, 61);
        const q = sampleTokens(4, vocab, 62);
        const [first, second, third] = await Promise.all([
          backend.doForward({ sequences: [{ id: 'o', tokens: p }] }),
          backend.doForward({ sequences: [{ id: 'o', tokens: q, startPosition: p.length }] }),
          backend.doForward({ sequences: [{ id: 'other', tokens: q }] }),
        ]);
        expect(second.sequences[0]!.length).toBe(p.length + q.length);
        expectClose(first.sequences[0]!.logits, await alone(backend, 'p', p), tolerance, 'first call');
        expectClose(second.sequences[0]!.logits, await alone(backend, 'pq', [...p, ...q]), tolerance, 'second call');
        expectClose(third.sequences[0]!.logits, await alone(backend, 'q', q), tolerance, 'third call');
      });
    });
  });
}

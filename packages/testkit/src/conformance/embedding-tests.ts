import {
  AbortError,
  BackendDisposedError,
  BatchLimitError,
  InvalidInputError,
  PositionLimitError,
  type BackendEmbedOptionsV1,
  type BackendV1,
} from '@gen/backend';
import { expect, it } from 'vitest';
import {
  describeTargets,
  expectClose,
  expectErrorClass,
  maxAbsDifference,
  prefill,
  rejectionOf,
  sampleTokens,
  withBackend,
} from './helpers.js';
import type { BackendConformanceOptions } from './options.js';

/** Largest `maxPositions` the suite embeds a too-long input for (bigger models skip that check). */
const positionTestLimit = 4096;

type Embedder = BackendV1 & { doEmbed(options: BackendEmbedOptionsV1): Promise<Float32Array[]> };

/**
 * `doEmbed` (when `capabilities.embeddings`): one finite `[hiddenSize]` vector per input in input order, fresh
 * arrays; `mean` of a single token equals `last`; `mean` is the average of the `last` vectors of every prefix (the
 * model is causal); vectors do not depend on the other inputs of the call; the call is stateless (live sequences
 * and `stats()` unchanged); errors are the contract's (`InvalidInputError`, `BatchLimitError`,
 * `PositionLimitError`, `AbortError`, `BackendDisposedError`) and change nothing. Skipped for backends without it.
 */
export function embeddingTests(options: BackendConformanceOptions): void {
  const tolerance = options.consistencyTolerance ?? 1e-4;
  describeTargets(options, 'embeddings', (target) => {
    const embedder = async (context: { skip: (note?: string) => never }, fn: (backend: Embedder) => Promise<void>) =>
      withBackend(target, async (backend) => {
        if (backend.capabilities.embeddings !== true || backend.doEmbed === undefined) {
          context.skip('capabilities.embeddings is not true');
        }
        await fn(backend as Embedder);
      });

    it('returns one finite [hiddenSize] vector per input, in input order, in fresh arrays', async (context) => {
      await embedder(context, async (backend) => {
        const { vocabSize: vocab, hiddenSize } = backend.model;
        expect(Number.isInteger(hiddenSize) && hiddenSize! > 0, 'model.hiddenSize is set').toBe(true);
        const count = Math.min(3, backend.capabilities.maxBatchSize);
        const inputs = Array.from({ length: count }, (_, i) => sampleTokens(2 + 3 * i, vocab, 300 + i));
        for (const pooling of ['mean', 'last'] as const) {
          const vectors = await backend.doEmbed({ tokens: inputs, pooling });
          expect(Array.isArray(vectors)).toBe(true);
          expect(vectors).toHaveLength(count);
          for (const vector of vectors) {
            expect(vector).toBeInstanceOf(Float32Array);
            expect(vector.length).toBe(hiddenSize);
            expect(vector.every(Number.isFinite), 'finite values').toBe(true);
          }
          expect(new Set(vectors.map((v) => v.buffer)).size, 'one buffer per vector').toBe(count);
          if (count > 1) expect(Array.from(vectors[0]!)).not.toEqual(Array.from(vectors[count - 1]!));
          for (let i = 0; i < count; i++) {
            const [alone] = await backend.doEmbed({ tokens: [inputs[i]!], pooling });
            expectClose(vectors[i]!, alone!, tolerance, `${pooling} input ${i}: in the batch vs alone`);
          }
        }
      });
    });

    it('mean of a single token equals last; mean is the average of the last vectors of every prefix', async (context) => {
      await embedder(context, async (backend) => {
        const vocab = backend.model.vocabSize;
        const single = [sampleTokens(1, vocab, 310)];
        const [mean] = await backend.doEmbed({ tokens: single, pooling: 'mean' });
        const [last] = await backend.doEmbed({ tokens: single, pooling: 'last' });
        expectClose(mean!, last!, tolerance, 'single token: mean vs last');

        const tokens = sampleTokens(Math.min(5, backend.model.maxPositions), vocab, 311);
        const prefixes = tokens.map((_, i) => tokens.slice(0, i + 1));
        const lasts: Float32Array[] = [];
        const size = backend.capabilities.maxBatchSize;
        for (let i = 0; i < prefixes.length; i += size) {
          lasts.push(...(await backend.doEmbed({ tokens: prefixes.slice(i, i + size), pooling: 'last' })));
        }
        const average = new Float32Array(lasts[0]!.length);
        for (let d = 0; d < average.length; d++) {
          let sum = 0;
          for (const vector of lasts) sum += vector[d]!;
          average[d] = sum / lasts.length;
        }
        const [whole] = await backend.doEmbed({ tokens: [tokens], pooling: 'mean' });
        expectClose(whole!, average, tolerance, 'mean vs average of prefix lasts');
        if (tokens.length > 1) {
          expect(maxAbsDifference(whole!, lasts.at(-1)!), 'mean differs from last').toBeGreaterThan(tolerance);
        }
      });
    });

    it('is stateless: no sequence is created, live ones and stats() stay as they were', async (context) => {
      await embedder(context, async (backend) => {
        const vocab = backend.model.vocabSize;
        const prompt = sampleTokens(4, vocab, 320);
        const more = 5 % vocab;
        // Live ids that an implementation might reuse for its own scratch sequences.
        await backend.doForward({ sequences: [{ id: '0', tokens: prompt }] });
        await backend.doForward({ sequences: [{ id: 'embed-0', tokens: prompt.slice(0, 2) }] });
        const before = backend.stats();
        const inputs = [sampleTokens(6, vocab, 321), sampleTokens(3, vocab, 322)].slice(
          0,
          backend.capabilities.maxBatchSize,
        );
        await backend.doEmbed({ tokens: inputs, pooling: 'mean' });
        await backend.doEmbed({ tokens: inputs, pooling: 'last' });
        expect(backend.stats()).toEqual(before);
        const next = await backend.doForward({
          sequences: [{ id: '0', tokens: [more], startPosition: prompt.length }],
        });
        expectClose(next.sequences[0]!.logits, await prefill(backend, 'fresh', [...prompt, more]), tolerance, 'live');
        await backend.doRelease(['0', 'embed-0', 'fresh']);
        expect(backend.stats()).toMatchObject({ sequences: 0, cachedTokens: 0 });
      });
    });

    it('rejects no inputs, empty inputs and token ids outside [0, vocabSize), changing nothing', async (context) => {
      await embedder(context, async (backend) => {
        const vocab = backend.model.vocabSize;
        expectErrorClass(
          await rejectionOf(backend.doEmbed({ tokens: [], pooling: 'mean' })),
          InvalidInputError.isInstance,
          'InvalidInputError for no inputs',
        );
        const good = sampleTokens(2, vocab, 330);
        for (const tokens of [[], [vocab], [-1], [1.5], [Number.NaN]]) {
          const inputs = [good, tokens].slice(-Math.min(2, backend.capabilities.maxBatchSize));
          const error = await rejectionOf(backend.doEmbed({ tokens: inputs, pooling: 'last' }));
          expectErrorClass(error, InvalidInputError.isInstance, `InvalidInputError for ${JSON.stringify(tokens)}`);
          expect((error as InvalidInputError).sequenceId, 'the index of the bad input').toBe(String(inputs.length - 1));
        }
        expectErrorClass(
          await rejectionOf(backend.doEmbed({ tokens: [good], pooling: 'max' as never })),
          InvalidInputError.isInstance,
          'InvalidInputError for pooling "max"',
        );
        expect(backend.stats()).toMatchObject({ sequences: 0, cachedTokens: 0 });
        expect(await backend.doEmbed({ tokens: [good], pooling: 'mean' })).toHaveLength(1);
      });
    });

    it('rejects more inputs than maxBatchSize and inputs longer than maxPositions', async (context) => {
      await embedder(context, async (backend) => {
        const { vocabSize: vocab, maxPositions } = backend.model;
        const max = backend.capabilities.maxBatchSize;
        if (max <= 4096) {
          const over = await rejectionOf(
            backend.doEmbed({ tokens: Array.from({ length: max + 1 }, (_, i) => [i % vocab]), pooling: 'mean' }),
          );
          expectErrorClass(over, BatchLimitError.isInstance, 'BatchLimitError');
          expect(over).toMatchObject({ batchSize: max + 1, maxBatchSize: max });
        }
        if (maxPositions > positionTestLimit) context.skip(`maxPositions ${maxPositions} > ${positionTestLimit}`);
        const long = await rejectionOf(
          backend.doEmbed({ tokens: [sampleTokens(maxPositions + 1, vocab, 340)], pooling: 'mean' }),
        );
        expectErrorClass(long, PositionLimitError.isInstance, 'PositionLimitError');
        expect(long).toMatchObject({ sequenceId: '0', requestedPositions: maxPositions + 1, maxPositions });
        expect(backend.stats()).toMatchObject({ sequences: 0, cachedTokens: 0 });
        const [full] = await backend.doEmbed({ tokens: [sampleTokens(maxPositions, vocab, 341)], pooling: 'last' });
        expect(full!.length).toBe(backend.model.hiddenSize);
      });
    });

    it('an aborted signal rejects with AbortError; after doDispose it rejects with BackendDisposedError', async (context) => {
      await embedder(context, async (backend) => {
        const tokens = [sampleTokens(3, backend.model.vocabSize, 350)];
        const controller = new AbortController();
        const reason = new Error('client disconnected');
        controller.abort(reason);
        const aborted = await rejectionOf(backend.doEmbed({ tokens, pooling: 'mean', signal: controller.signal }));
        expectErrorClass(aborted, AbortError.isInstance, 'AbortError');
        expect((aborted as AbortError).cause).toBe(reason);
        expect(await backend.doEmbed({ tokens, pooling: 'mean' })).toHaveLength(1);
        await backend.doDispose();
        expectErrorClass(
          await rejectionOf(backend.doEmbed({ tokens, pooling: 'mean' })),
          BackendDisposedError.isInstance,
          'BackendDisposedError',
        );
      });
    });
  });
}

import { AbortError } from '@gen/backend';
import { expect, it } from 'vitest';
import {
  describeTargets,
  expectClose,
  expectErrorClass,
  prefill,
  rejectionOf,
  sampleTokens,
  withBackend,
} from './helpers.js';
import type { BackendConformanceOptions } from './options.js';

/**
 * Abort: an already aborted signal rejects with `AbortError` (cause = the signal's reason) and creates nothing;
 * aborting during a call either rejects with `AbortError` and changes nothing, or lets the call complete; in
 * every case the backend stays usable and later logits are unaffected.
 */
export function abortTests(options: BackendConformanceOptions): void {
  const tolerance = options.consistencyTolerance ?? 1e-4;
  describeTargets(options, 'abort', (target) => {
    it('an aborted signal rejects with AbortError and leaves the backend usable', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const tokens = sampleTokens(5, vocab, 101);
        const controller = new AbortController();
        const reason = new Error('client disconnected');
        controller.abort(reason);
        const error = await rejectionOf(
          backend.doForward({ sequences: [{ id: 'a', tokens }], signal: controller.signal }),
        );
        expectErrorClass(error, AbortError.isInstance, 'AbortError');
        expect((error as AbortError).name).toBe('AbortError');
        expect((error as AbortError).cause).toBe(reason);
        expect(backend.stats()).toMatchObject({ sequences: 0, cachedTokens: 0 });
        const after = await backend.doForward({ sequences: [{ id: 'a', tokens, startPosition: 0 }] });
        expect(after.sequences[0]!.length).toBe(tokens.length);
      });
    });

    it('aborting during a call either rejects cleanly or completes; state stays consistent', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const prompt = sampleTokens(Math.min(6, backend.model.maxPositions - 1), vocab, 102);
        const long = sampleTokens(Math.min(48, backend.model.maxPositions), vocab, 103);
        await backend.doForward({ sequences: [{ id: 'existing', tokens: prompt }] });
        const controller = new AbortController();
        const call = backend.doForward({
          sequences: [
            { id: 'existing', tokens: [7 % vocab] },
            { id: 'new', tokens: long },
          ].slice(0, backend.capabilities.maxBatchSize),
          signal: controller.signal,
        });
        setImmediate(() => controller.abort(new Error('stop')));
        let aborted = false;
        try {
          await call;
        } catch (error) {
          expectErrorClass(error, AbortError.isInstance, 'AbortError');
          aborted = true;
        }
        const stats = backend.stats();
        if (aborted) {
          expect(stats.cachedTokens, 'an aborted call appends nothing').toBe(prompt.length);
          expect(stats.sequences).toBe(1);
        } else {
          expect(stats.cachedTokens).toBeGreaterThan(prompt.length);
        }
        // Whatever happened, the existing sequence continues from its committed length with correct logits.
        const length = aborted ? prompt.length : prompt.length + 1;
        const history = aborted ? [...prompt, 9 % vocab] : [...prompt, 7 % vocab, 9 % vocab];
        const next = await backend.doForward({
          sequences: [{ id: 'existing', tokens: [9 % vocab], startPosition: length }],
        });
        expectClose(next.sequences[0]!.logits, await prefill(backend, 'reference', history), tolerance, 'after abort');
      });
    });

    it('an abort after the call resolved has no effect', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const controller = new AbortController();
        const result = await backend.doForward({
          sequences: [{ id: 'done', tokens: sampleTokens(3, vocab, 104) }],
          signal: controller.signal,
        });
        controller.abort();
        expect(result.sequences[0]!.length).toBe(3);
        const next = await backend.doForward({ sequences: [{ id: 'done', tokens: [1 % vocab], startPosition: 3 }] });
        expect(next.sequences[0]!.length).toBe(4);
      });
    });
  });
}

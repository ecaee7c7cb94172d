import { SequenceError } from '@gen/backend';
import { expect, it } from 'vitest';
import { describeTargets, expectErrorClass, rejectionOf, sampleTokens, withBackend } from './helpers.js';
import type { BackendConformanceOptions } from './options.js';

/**
 * `doRelease` frees sequences: over many create / release rounds `stats()` (live sequences, cached tokens,
 * KV-cache bytes when reported) returns to its baseline, released ids are errors where a live id is required,
 * and known ids in a rejected release are still released.
 */
export function releaseTests(options: BackendConformanceOptions): void {
  describeTargets(options, 'release', (target) => {
    it(`frees the cache: stats return to baseline over ${options.releaseRounds ?? 1000} sequences`, async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const rounds = options.releaseRounds ?? 1000;
        const batchSize = Math.min(16, backend.capabilities.maxBatchSize);
        const baseline = backend.stats();
        const gc = (globalThis as { gc?: () => void }).gc;
        gc?.();
        const memoryBefore = process.memoryUsage().arrayBuffers;
        let peakSequences = 0;
        for (let done = 0; done < rounds; done += batchSize) {
          const count = Math.min(batchSize, rounds - done);
          const ids = Array.from({ length: count }, (_, i) => `r${done + i}`);
          await backend.doForward({
            sequences: ids.map((id, i) => ({ id, tokens: sampleTokens(1 + ((done + i) % 4), vocab, done + i) })),
          });
          // Decode one more token on half of them, so released caches are not only fresh ones.
          await backend.doForward({
            sequences: ids.filter((_, i) => i % 2 === 0).map((id) => ({ id, tokens: [1 % vocab] })),
          });
          const during = backend.stats();
          peakSequences = Math.max(peakSequences, during.sequences);
          expect(during.sequences).toBe(baseline.sequences + count);
          if (baseline.kvCacheBytes !== undefined) expect(during.kvCacheBytes).toBeGreaterThan(baseline.kvCacheBytes);
          await backend.doRelease(ids);
        }
        const after = backend.stats();
        expect(peakSequences).toBeGreaterThan(0);
        expect(after.sequences).toBe(baseline.sequences);
        expect(after.cachedTokens).toBe(baseline.cachedTokens);
        if (baseline.kvCacheBytes !== undefined) expect(after.kvCacheBytes).toBe(baseline.kvCacheBytes);
        if (gc !== undefined) {
          gc();
          const grown = process.memoryUsage().arrayBuffers - memoryBefore;
          expect(grown, `array buffers grew by ${grown} bytes`).toBeLessThan(64 * 1024 * 1024);
        }
      });
    });

    it('rejects releasing an unknown id, an already released id, and an id listed twice', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const unknown = await rejectionOf(backend.doRelease(['never']));
        expectErrorClass(unknown, SequenceError.isInstance, 'SequenceError');
        expect((unknown as SequenceError).reason).toBe('unknown');
        expect((unknown as SequenceError).sequenceId).toBe('never');
        await backend.doForward({ sequences: [{ id: 'a', tokens: sampleTokens(2, vocab, 81) }] });
        await backend.doRelease(['a']);
        const twice = await rejectionOf(backend.doRelease(['a']));
        expectErrorClass(twice, SequenceError.isInstance, 'SequenceError');
        expect((twice as SequenceError).reason).toBe('unknown');
        await backend.doForward({ sequences: [{ id: 'b', tokens: sampleTokens(2, vocab, 82) }] });
        const duplicate = await rejectionOf(backend.doRelease(['b', 'b']));
        expectErrorClass(duplicate, SequenceError.isInstance, 'SequenceError');
        expect((duplicate as SequenceError).reason).toBe('duplicate');
        expect(backend.stats().sequences).toBe(0);
      });
    });

    it('still releases the known ids of a rejected release', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        await backend.doForward({ sequences: [{ id: 'keep', tokens: sampleTokens(2, vocab, 83) }] });
        await backend.doForward({ sequences: [{ id: 'drop', tokens: sampleTokens(3, vocab, 84) }] });
        expectErrorClass(
          await rejectionOf(backend.doRelease(['drop', 'ghost'])),
          SequenceError.isInstance,
          'SequenceError',
        );
        expect(backend.stats()).toMatchObject({ sequences: 1, cachedTokens: 2 });
      });
    });

    it('a released id cannot be continued (startPosition > 0) and starts afresh at startPosition 0', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const tokens = sampleTokens(4, vocab, 85);
        await backend.doForward({ sequences: [{ id: 's', tokens }] });
        await backend.doRelease(['s']);
        const error = await rejectionOf(
          backend.doForward({ sequences: [{ id: 's', tokens: [tokens[0]!], startPosition: tokens.length }] }),
        );
        expectErrorClass(error, SequenceError.isInstance, 'SequenceError');
        expect((error as SequenceError).reason).toBe('unknown');
        expect(backend.stats().sequences).toBe(0);
        const fresh = await backend.doForward({ sequences: [{ id: 's', tokens: [tokens[0]!], startPosition: 0 }] });
        expect(fresh.sequences[0]!.length).toBe(1);
      });
    });
  });
}

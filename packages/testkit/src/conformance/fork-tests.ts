import { SequenceError, type BackendV1 } from '@gen/backend';
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

type Forkable = BackendV1 & { doFork(fromId: string, toId: string, options?: { length?: number }): Promise<void> };

/**
 * `doFork` (when `capabilities.fork`) copies a sequence: forked branches give the logits of re-prefilling their
 * whole history, evolve independently of the source, and fork errors are `SequenceError`s. With
 * `capabilities.forkPrefix`, a fork of the first `length` tokens continues exactly like a fresh sequence of them.
 */
export function forkTests(options: BackendConformanceOptions): void {
  const tolerance = options.consistencyTolerance ?? 1e-4;
  describeTargets(options, 'fork', (target) => {
    const forkable = async (context: { skip: (note?: string) => never }, fn: (backend: Forkable) => Promise<void>) =>
      withBackend(target, async (backend) => {
        if (!backend.capabilities.fork || backend.doFork === undefined) context.skip('capabilities.fork is false');
        await fn(backend as Forkable);
      });

    it('forked branches equal re-prefilling their full history', async (context) => {
      await forkable(context, async (backend) => {
        const vocab = backend.model.vocabSize;
        const prompt = sampleTokens(7, vocab, 71);
        const [x, y, z] = sampleTokens(3, vocab, 72) as [number, number, number];
        await backend.doForward({ sequences: [{ id: 'source', tokens: prompt }] });
        await backend.doFork('source', 'branch-a');
        await backend.doFork('source', 'branch-b');
        expect(backend.stats()).toMatchObject({ sequences: 3, cachedTokens: 3 * prompt.length });
        const size = Math.min(3, backend.capabilities.maxBatchSize);
        const appends: [string, number][] = [
          ['branch-a', x],
          ['branch-b', y],
          ['source', z],
        ];
        const results = new Map<string, Float32Array>();
        for (let i = 0; i < appends.length; i += size) {
          const part = appends.slice(i, i + size);
          const r = await backend.doForward({
            sequences: part.map(([id, token]) => ({ id, tokens: [token], startPosition: prompt.length })),
          });
          r.sequences.forEach((s) => results.set(s.id, Float32Array.from(s.logits)));
        }
        for (const [id, token] of appends) {
          expectClose(results.get(id)!, await prefill(backend, `fresh-${id}`, [...prompt, token]), tolerance, id);
        }
      });
    });

    it('a fork is independent of its source: releasing or extending one leaves the other intact', async (context) => {
      await forkable(context, async (backend) => {
        const vocab = backend.model.vocabSize;
        const prompt = sampleTokens(5, vocab, 73);
        const more = sampleTokens(4, vocab, 74);
        await backend.doForward({ sequences: [{ id: 'source', tokens: prompt }] });
        await backend.doFork('source', 'copy');
        await backend.doForward({ sequences: [{ id: 'source', tokens: more }] });
        await backend.doRelease(['source']);
        const r = await backend.doForward({ sequences: [{ id: 'copy', tokens: more, startPosition: prompt.length }] });
        expectClose(r.sequences[0]!.logits, await prefill(backend, 'fresh', [...prompt, ...more]), tolerance, 'copy');
      });
    });

    it('rejects forking an unknown or released sequence, and forking onto a live id', async (context) => {
      await forkable(context, async (backend) => {
        const vocab = backend.model.vocabSize;
        await backend.doForward({ sequences: [{ id: 'a', tokens: sampleTokens(3, vocab, 75) }] });
        await backend.doForward({ sequences: [{ id: 'b', tokens: sampleTokens(2, vocab, 76) }] });
        const unknown = await rejectionOf(backend.doFork('nope', 'c'));
        expectErrorClass(unknown, SequenceError.isInstance, 'SequenceError');
        expect((unknown as SequenceError).reason).toBe('unknown');
        expect((unknown as SequenceError).sequenceId).toBe('nope');
        const exists = await rejectionOf(backend.doFork('a', 'b'));
        expectErrorClass(exists, SequenceError.isInstance, 'SequenceError');
        expect((exists as SequenceError).reason).toBe('exists');
        await backend.doRelease(['a']);
        const released = await rejectionOf(backend.doFork('a', 'c'));
        expectErrorClass(released, SequenceError.isInstance, 'SequenceError');
        expect((released as SequenceError).reason).toBe('unknown');
        expect(backend.stats()).toMatchObject({ sequences: 1, cachedTokens: 2 });
      });
    });

    const prefixable = async (context: { skip: (note?: string) => never }, fn: (backend: Forkable) => Promise<void>) =>
      forkable(context, async (backend) => {
        if (backend.capabilities.forkPrefix !== true) context.skip('capabilities.forkPrefix is not true');
        await fn(backend);
      });

    it('forkPrefix: a fork of the first length tokens continues like a fresh sequence of them', async (context) => {
      await prefixable(context, async (backend) => {
        const vocab = backend.model.vocabSize;
        const history = sampleTokens(12, vocab, 77);
        const tail = sampleTokens(3, vocab, 78);
        await backend.doForward({ sequences: [{ id: 'source', tokens: history }] });
        for (const length of [1, 5, 12]) {
          await backend.doFork('source', `prefix-${length}`, { length });
          const r = await backend.doForward({
            sequences: [{ id: `prefix-${length}`, tokens: tail, startPosition: length, wantPromptLogits: true }],
          });
          const fresh = await backend.doForward({
            sequences: [
              { id: `fresh-${length}`, tokens: [...history.slice(0, length), ...tail], wantPromptLogits: true },
            ],
          });
          const width = vocab * tail.length;
          const freshTail = fresh.sequences[0]!.promptLogits!.subarray(
            fresh.sequences[0]!.promptLogits!.length - width,
          );
          if (backend.capabilities.promptLogits) {
            expectClose(r.sequences[0]!.promptLogits!, freshTail, tolerance, `prefix ${length}`);
          }
          expectClose(r.sequences[0]!.logits, fresh.sequences[0]!.logits, tolerance, `prefix ${length} last`);
          await backend.doRelease([`prefix-${length}`, `fresh-${length}`]);
        }
        // The source is untouched.
        const more = await backend.doForward({
          sequences: [{ id: 'source', tokens: tail, startPosition: history.length }],
        });
        expectClose(
          more.sequences[0]!.logits,
          await prefill(backend, 'whole', [...history, ...tail]),
          tolerance,
          'source',
        );
        expect(backend.stats()).toMatchObject({ sequences: 2 });
      });
    });

    it('forkPrefix: a length outside 1..the source length is a SequenceError and changes nothing', async (context) => {
      await prefixable(context, async (backend) => {
        const vocab = backend.model.vocabSize;
        await backend.doForward({ sequences: [{ id: 'a', tokens: sampleTokens(4, vocab, 79) }] });
        for (const length of [0, 5, 1.5, -1]) {
          const error = await rejectionOf(backend.doFork('a', 'b', { length }));
          expectErrorClass(error, SequenceError.isInstance, 'SequenceError');
          expect((error as SequenceError).reason).toBe('position-mismatch');
        }
        expect(backend.stats()).toMatchObject({ sequences: 1, cachedTokens: 4 });
      });
    });
  });
}

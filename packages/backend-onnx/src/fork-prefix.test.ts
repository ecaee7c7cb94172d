/**
 * Prefix forks (`doFork(from, to, { length })`, used by the engine's prefix cache) from sequences whose caches lie
 * in shared, padded batch caches (standard graphs: left padding and gaps of mixed batches) or in slab rows (fused
 * graphs): the fork continues exactly like a fresh sequence prefilled with the prefix, and the source is untouched.
 */
import type { BackendV1 } from '@gen/backend';
import { ensureModelDir } from '@gen/model-kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnnxBackend } from './index.js';

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const tokens = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i * 37 + seed * 11) % 500);

describe.each(['standard', 'fused'] as const)('prefix forks on a %s graph', (style) => {
  let backend: BackendV1;
  beforeAll(async () => {
    backend = await createOnnxBackend({
      modelDir: await ensureModelDir('tiny', { seed: 1, onnxGraphStyle: style }),
      intraOpThreads: 1,
      maxBatchSize: 8,
    });
  });
  afterAll(() => backend?.doDispose());

  it('advertises forkPrefix', () => {
    expect(backend.capabilities.forkPrefix).toBe(true);
  });

  it('a prefix of a sequence batched with others continues like a fresh prefill of the prefix', async () => {
    const a = tokens(19, 1);
    const b = tokens(7, 2);
    // a and b run together (b left-padded in the batch cache), then a gets a mixed batch with a new sequence c.
    await backend.doForward({
      sequences: [
        { id: 'a', tokens: a.slice(0, 12) },
        { id: 'b', tokens: b },
      ],
    });
    await backend.doForward({
      sequences: [
        { id: 'a', tokens: a.slice(12) },
        { id: 'b', tokens: [5] },
        { id: 'c', tokens: tokens(3, 3) },
      ],
    });
    for (const length of [1, 5, 12, 15, 19]) {
      const fork = `a-${length}`;
      await backend.doFork!('a', fork, { length });
      const fresh = `fresh-${length}`;
      await backend.doForward({ sequences: [{ id: fresh, tokens: a.slice(0, length) }] });
      const next = [42, 7, 300];
      const forked = await backend.doForward({ sequences: [{ id: fork, tokens: next }] });
      const reference = await backend.doForward({ sequences: [{ id: fresh, tokens: next }] });
      expect(forked.sequences[0]!.length).toBe(length + 3);
      expect(maxDiff(forked.logits, reference.logits), `length ${length}`).toBeLessThan(1e-5);
      await backend.doRelease([fork, fresh]);
    }
    // b is left-padded in both batch caches, with a gap after its first 7 tokens in the mixed one.
    const bHistory = [...b, 5];
    for (const length of [3, 7, 8]) {
      await backend.doFork!('b', 'b-fork', { length });
      await backend.doForward({ sequences: [{ id: 'b-fresh', tokens: bHistory.slice(0, length) }] });
      const forked = await backend.doForward({ sequences: [{ id: 'b-fork', tokens: [11] }] });
      const reference = await backend.doForward({ sequences: [{ id: 'b-fresh', tokens: [11] }] });
      expect(maxDiff(forked.logits, reference.logits), `b length ${length}`).toBeLessThan(1e-5);
      await backend.doRelease(['b-fork', 'b-fresh']);
    }
    // The source still continues like its full history.
    const continued = await backend.doForward({ sequences: [{ id: 'a', tokens: [9] }] });
    await backend.doForward({ sequences: [{ id: 'a-full', tokens: [...a, 9] }] });
    const replay = await backend.doForward({ sequences: [{ id: 'a-full', tokens: [1] }] });
    const again = await backend.doForward({ sequences: [{ id: 'a', tokens: [1] }] });
    expect(continued.sequences[0]!.length).toBe(20);
    expect(maxDiff(again.logits, replay.logits)).toBeLessThan(1e-5);
    await backend.doRelease(['a', 'b', 'c', 'a-full']);
    expect(backend.stats().sequences).toBe(0);
  });
});

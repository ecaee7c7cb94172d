/**
 * Fused graphs (GroupQueryAttention with a shared KV buffer) through the backend: the same calls as on the standard
 * graph of the same weights give the same logits while sequences join, leave, fork, grow past the buffers'
 * capacity steps and ride along in each other's runs; and the buffer accounting.
 */
import type { BackendV1 } from '@gen/backend';
import { ensureModelDir, writeModelDir } from '@gen/model-kit';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnnxBackend } from './index.js';

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

/** A small deterministic generator (mulberry32). */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('a fused graph', () => {
  let fused: BackendV1;
  let standard: BackendV1;
  beforeAll(async () => {
    fused = await createOnnxBackend({
      modelDir: await ensureModelDir('tiny', { seed: 1, onnxGraphStyle: 'fused' }),
      intraOpThreads: 1,
      maxBatchSize: 8,
    });
    standard = await createOnnxBackend({
      modelDir: await ensureModelDir('tiny', { seed: 1, onnxGraphStyle: 'standard' }),
      intraOpThreads: 1,
      maxBatchSize: 8,
    });
  });
  afterAll(async () => {
    await fused.doDispose();
    await standard.doDispose();
  });

  it('reports its style and runs batches of any mix (no one-at-a-time warning)', () => {
    expect(fused.capabilities.details).toMatchObject({ graphStyle: 'fused', kvCapacity: 'grow' });
    expect(standard.capabilities.details).toMatchObject({ graphStyle: 'standard' });
    expect(fused.warnings).toEqual([]);
  });

  it('gives the standard graph logits over a serving session: joins, releases, forks, chunks, growth', async () => {
    const next = random(7);
    const int = (n: number) => Math.floor(next() * n);
    const live = new Set<string>();
    let created = 0;
    let worst = 0;
    for (let step = 0; step < 70; step++) {
      const sequences: { id: string; tokens: number[]; wantPromptLogits?: boolean }[] = [];
      for (const id of live) {
        // Most live sequences decode; some sit the step out (they ride along in the fused runs); some append a
        // chunk of several tokens.
        const roll = next();
        if (roll < 0.7) sequences.push({ id, tokens: [int(512)] });
        else if (roll < 0.8) sequences.push({ id, tokens: Array.from({ length: 2 + int(5) }, () => int(512)) });
      }
      while (sequences.length < 8 && live.size < 8 && next() < 0.3) {
        const id = `s${created++}`;
        sequences.push({
          id,
          tokens: Array.from({ length: 1 + int(12) }, () => int(512)),
          wantPromptLogits: next() < 0.3,
        });
        live.add(id);
      }
      if (sequences.length === 0) continue;
      const [a, b] = await Promise.all([fused.doForward({ sequences }), standard.doForward({ sequences })]);
      worst = Math.max(worst, maxDiff(a.logits, b.logits));
      a.sequences.forEach((s, i) => {
        expect(s.length).toBe(b.sequences[i]!.length);
        if (s.promptLogits !== undefined)
          worst = Math.max(worst, maxDiff(s.promptLogits, b.sequences[i]!.promptLogits!));
      });
      if (next() < 0.15 && live.size > 0 && live.size < 8) {
        const from = [...live][int(live.size)]!;
        const id = `s${created++}`;
        await Promise.all([fused.doFork!(from, id), standard.doFork!(from, id)]);
        live.add(id);
      }
      for (const id of [...live]) {
        if (next() < 0.06) {
          await Promise.all([fused.doRelease([id]), standard.doRelease([id])]);
          live.delete(id);
        }
      }
      expect(fused.stats().cachedTokens).toBe(standard.stats().cachedTokens);
    }
    expect(created).toBeGreaterThan(10);
    expect(worst).toBeLessThan(1e-4);
    await Promise.all([fused.doRelease([...live]), standard.doRelease([...live])]);
    expect(fused.stats()).toEqual({ sequences: 0, cachedTokens: 0, kvCacheBytes: 0 });
  });

  it('keeps buffers close to the longest sequence: bytes grow in steps of 128 slots (32 on onnxruntime-node)', async () => {
    // tiny: 2 layers x 2 KV heads x 16 dims x 4 bytes, key and value: 512 bytes per slot and row.
    const slot = 2 * 2 * 2 * 16 * 4;
    const step = fused.capabilities.details?.['binding'] === 'direct' ? 128 : 32;
    await fused.doForward({ sequences: [{ id: 'g', tokens: Array.from({ length: step - 12 }, (_, i) => i + 1) }] });
    expect(fused.stats().kvCacheBytes).toBe(4 * step * slot); // 4 rows x one step of slots
    for (let i = 0; i < 12; i++) await fused.doForward({ sequences: [{ id: 'g', tokens: [7] }] });
    expect(fused.stats().kvCacheBytes).toBe(4 * 2 * step * slot); // a full step + a spare slot: two steps
    await fused.doRelease(['g']);
    expect(fused.stats().kvCacheBytes).toBe(0);
  });
});

describe('a fused graph with a short position table', () => {
  it('runs decode rows around a sequence whose cache fills its buffer row', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'onnx-fused-'));
    const write = async (style: 'fused' | 'standard') =>
      (
        await writeModelDir({
          preset: 'tiny',
          seed: 8,
          outDir: path.join(root, style),
          config: { maxPositionEmbeddings: 32 },
          onnxGraphStyle: style,
        })
      ).dir;
    const fused = await createOnnxBackend({ modelDir: await write('fused'), intraOpThreads: 1 });
    const standard = await createOnnxBackend({ modelDir: await write('standard'), intraOpThreads: 1 });
    try {
      const call = async (sequences: { id: string; tokens: number[] }[]) => {
        const [a, b] = await Promise.all([fused.doForward({ sequences }), standard.doForward({ sequences })]);
        expect(maxDiff(a.logits, b.logits)).toBeLessThan(1e-4);
      };
      // x, full and y share a buffer of 32 slots (rows 0, 1, 2); full fills its row; x and y then decode around it.
      await call([
        { id: 'x', tokens: [1] },
        { id: 'full', tokens: [2] },
        { id: 'y', tokens: [3] },
      ]);
      await call([{ id: 'full', tokens: Array.from({ length: 31 }, (_, i) => (i * 7) % 512) }]);
      expect(fused.stats().cachedTokens).toBe(34);
      for (let k = 0; k < 3; k++) {
        await call([
          { id: 'x', tokens: [10 + k] },
          { id: 'y', tokens: [20 + k] },
        ]);
      }
    } finally {
      await fused.doDispose();
      await standard.doDispose();
    }
  });

  it('kvCapacity allocates the asked slots up front', async () => {
    const backend = await createOnnxBackend({
      modelDir: await ensureModelDir('tiny', { seed: 1, onnxGraphStyle: 'fused' }),
      intraOpThreads: 1,
      kvCapacity: 256,
    });
    try {
      await backend.doForward({ sequences: [{ id: 'a', tokens: [1, 2, 3] }] });
      expect(backend.stats().kvCacheBytes).toBe(4 * 256 * 512);
      expect(backend.capabilities.details).toMatchObject({ kvCapacity: 256 });
    } finally {
      await backend.doDispose();
    }
    await expect(
      createOnnxBackend({
        modelDir: await ensureModelDir('tiny', { seed: 1, onnxGraphStyle: 'fused' }),
        kvCapacity: 0,
      }),
    ).rejects.toThrow(RangeError);
  });
});

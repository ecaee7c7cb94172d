import { ensureModelDir } from '@gen/model-kit';
import { describe, expect, it } from 'vitest';
import { createOnnxBackend } from './index.js';

describe('decode steps of a stable batch', () => {
  it('hand over fresh logits arrays that later steps never touch', async () => {
    const backend = await createOnnxBackend({ modelDir: await ensureModelDir('tiny', { seed: 1 }) });
    try {
      const ids = ['a', 'b', 'c'];
      await backend.doForward({ sequences: ids.map((id, i) => ({ id, tokens: [1 + i, 2, 3] })) });
      const first = await backend.doForward({ sequences: ids.map((id) => ({ id, tokens: [4] })) });
      const snapshot = Float32Array.from(first.logits);
      first.logits.fill(-1); // sampling processors modify logits in place
      const second = await backend.doForward({ sequences: ids.map((id) => ({ id, tokens: [5] })) });
      expect(second.logits.buffer).not.toBe(first.logits.buffer);
      expect(first.logits.every((v) => v === -1)).toBe(true);
      expect(second.logits.length).toBe(3 * 512);
      expect(second.sequences.map((s) => s.logits.byteOffset)).toEqual([0, 512 * 4, 2 * 512 * 4]);
      // The same history alone gives the same logits as that batched step did before it was overwritten.
      const alone = await backend.doForward({ sequences: [{ id: 'b2', tokens: [2, 2, 3, 4] }] });
      const row = snapshot.subarray(512, 1024);
      let worst = 0;
      for (let v = 0; v < 512; v++) worst = Math.max(worst, Math.abs(alone.logits[v]! - row[v]!));
      expect(worst).toBeLessThan(1e-4);
    } finally {
      await backend.doDispose();
    }
  });

  it('split a long prompt from decode steps into separate runs, with the same logits as alone', async () => {
    const backend = await createOnnxBackend({ modelDir: await ensureModelDir('tiny', { seed: 1 }) });
    try {
      const long = Array.from({ length: 60 }, (_, i) => (i * 13 + 7) % 512);
      await backend.doForward({ sequences: [{ id: 'd', tokens: [9, 8, 7] }] });
      const mixed = await backend.doForward({
        sequences: [
          { id: 'd', tokens: [6] },
          { id: 'p', tokens: long, wantPromptLogits: true },
        ],
      });
      const aloneDecode = await backend.doForward({ sequences: [{ id: 'd2', tokens: [9, 8, 7, 6] }] });
      const alonePrompt = await backend.doForward({ sequences: [{ id: 'p2', tokens: long }] });
      const diff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
      expect(diff(mixed.sequences[0]!.logits, aloneDecode.logits)).toBeLessThan(1e-4);
      expect(diff(mixed.sequences[1]!.logits, alonePrompt.logits)).toBeLessThan(1e-4);
      expect(mixed.sequences[1]!.promptLogits!.length).toBe(60 * 512);
      expect(backend.stats()).toMatchObject({ sequences: 4, cachedTokens: 4 + 60 + 4 + 60 });
    } finally {
      await backend.doDispose();
    }
  });
});

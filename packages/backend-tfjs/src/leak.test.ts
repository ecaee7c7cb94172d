import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AbortError, type BackendV1 } from '@gen/backend';
import { createJsBackend } from '@gen/backend-js';
import { writeModelDir } from '@gen/model-kit';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTfjsBackend } from './index.js';
import type { TfjsBackendKind } from './select-backend.js';

let root: string;
let modelDir: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'gen-backend-tfjs-leak-'));
  modelDir = (
    await writeModelDir({ preset: 'tiny', seed: 5, outDir: path.join(root, 'tiny'), formats: ['safetensors'] })
  ).dir;
});
afterAll(() => rm(root, { recursive: true, force: true }));

function tokens(length: number, seed: number, vocab: number): number[] {
  let state = seed >>> 0;
  return Array.from({ length }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % vocab;
  });
}

/** What `tf.memory()` reports, read from the engine's state (so it works before any backend is initialised). */
function memory(): { numTensors: number; numBytes: number } {
  const { numTensors, numBytes } = tf.engine().state;
  return { numTensors, numBytes };
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

for (const tfjsBackend of ['wasm', 'cpu'] satisfies TfjsBackendKind[]) {
  describe(`tfjs ${tfjsBackend}: no tensor leaks`, () => {
    it('tensors and bytes return to their level after every step, release and abort, and to zero after dispose', async () => {
      const before = memory();
      const backend = await createTfjsBackend({ modelDir, tfjsBackend, maxBatchSize: 16 });
      const vocab = backend.model.vocabSize;
      const loaded = memory();
      expect(loaded.numTensors).toBeGreaterThan(before.numTensors);
      // Per live sequence: one keys and one values tensor per layer.
      const perSequence = 2 * backend.model.numLayers!;
      const expectLive = (sequences: number, when: string) => {
        const now = memory();
        expect(now.numTensors, when).toBe(loaded.numTensors + perSequence * sequences);
        expect(backend.stats().sequences, when).toBe(sequences);
        const cacheBytes = backend.stats().kvCacheBytes ?? 0;
        expect(now.numBytes, when).toBe(loaded.numBytes + cacheBytes);
      };

      let steps = 0;
      for (let round = 0; round < 6; round++) {
        const ids = Array.from({ length: 12 }, (_, i) => `r${round}-${i}`);
        // Prefills of 1..40 tokens (both attention paths), with and without prompt logits.
        await backend.doForward({
          sequences: ids.map((id, i) => ({
            id,
            tokens: tokens(1 + ((7 * i + round) % 40), 17 * round + i, vocab),
            wantPromptLogits: i % 3 === 0,
          })),
        });
        steps++;
        expectLive(ids.length, `after prefill of round ${round}`);
        for (let step = 0; step < 8; step++) {
          await backend.doForward({ sequences: ids.map((id, i) => ({ id, tokens: [(step * 31 + i) % vocab] })) });
          steps++;
          expectLive(ids.length, `round ${round} step ${step}`);
        }
        await backend.doFork!(ids[0]!, `${ids[0]}-fork`);
        expectLive(ids.length + 1, `after fork in round ${round}`);
        // An aborted call leaves nothing behind, neither for new sequences nor for live ones.
        const controller = new AbortController();
        controller.abort(new Error('stop'));
        await expect(
          backend.doForward({
            sequences: [
              { id: 'new', tokens: [1, 2, 3] },
              { id: ids[1]!, tokens: [4] },
            ],
            signal: controller.signal,
          }),
        ).rejects.toSatisfy(AbortError.isInstance);
        const late = new AbortController();
        const call = backend.doForward({
          sequences: [
            { id: 'late', tokens: tokens(30, round, vocab) },
            { id: ids[2]!, tokens: [5] },
          ],
          signal: late.signal,
        });
        setImmediate(() => late.abort(new Error('stop')));
        await call.catch((error: unknown) => expect(AbortError.isInstance(error)).toBe(true));
        if (backend.stats().sequences > ids.length + 1) await backend.doRelease(['late']);
        expectLive(ids.length + 1, `after aborts in round ${round}`);
        await backend.doRelease([...ids, `${ids[0]}-fork`]);
        expectLive(0, `after release of round ${round}`);
      }
      expect(steps).toBe(54);
      expect(backend.stats().kvCacheBytes).toBe(0);
      await backend.doDispose();
      const after = memory();
      expect(after.numTensors).toBe(before.numTensors);
      expect(after.numBytes).toBe(before.numBytes);
    });

    it('doEmbed leaves no tensor behind (done, rejected or aborted) and matches the oracle on long inputs', async () => {
      const backend = await createTfjsBackend({ modelDir, tfjsBackend, maxBatchSize: 8 });
      const oracle = await createJsBackend({ modelDir });
      try {
        const vocab = backend.model.vocabSize;
        await backend.doForward({ sequences: [{ id: 'live', tokens: tokens(9, 1, vocab) }] });
        const baseline = memory();
        const stats = backend.stats();
        // 100 and 70 tokens take the per-head attention path on wasm, 3 the batched one.
        const inputs = [tokens(100, 11, vocab), tokens(3, 12, vocab), tokens(70, 13, vocab)];
        let worst = 0;
        for (const pooling of ['mean', 'last'] as const) {
          const actual = await backend.doEmbed!({ tokens: inputs, pooling });
          const expected = await oracle.doEmbed!({ tokens: inputs, pooling });
          for (let i = 0; i < inputs.length; i++) {
            worst = Math.max(worst, maxAbsDifference(actual[i]!, expected[i]!));
          }
          expect(memory(), `after ${pooling}`).toEqual(baseline);
        }
        await expect(backend.doEmbed!({ tokens: [[1], [vocab]], pooling: 'mean' })).rejects.toThrow('not an integer');
        const late = new AbortController();
        const call = backend.doEmbed!({ tokens: inputs, pooling: 'mean', signal: late.signal });
        setImmediate(() => late.abort(new Error('stop')));
        await call.catch((error: unknown) => expect(AbortError.isInstance(error)).toBe(true));
        expect(memory(), 'after a rejected and an aborted call').toEqual(baseline);
        expect(backend.stats()).toEqual(stats);
        console.info(`tfjs ${tfjsBackend} doEmbed vs oracle: max abs difference ${worst.toExponential(2)}`);
        expect(worst).toBeLessThanOrEqual(1e-4);
      } finally {
        await backend.doDispose();
        await oracle.doDispose();
      }
    });

    it('long prompts (per-head attention path) and their decode steps match the oracle', async () => {
      const backend = await createTfjsBackend({ modelDir, tfjsBackend });
      const oracle = await createJsBackend({ modelDir });
      try {
        const vocab = backend.model.vocabSize;
        let worst = 0;
        const compare = async (run: (b: BackendV1) => Promise<Float32Array[]>) => {
          const [actual, expected] = [await run(backend), await run(oracle)];
          for (let i = 0; i < actual.length; i++) worst = Math.max(worst, maxAbsDifference(actual[i]!, expected[i]!));
        };
        await compare(async (b) => {
          const out: Float32Array[] = [];
          const prefill = await b.doForward({
            sequences: [
              { id: 'long', tokens: tokens(100, 1, vocab), wantPromptLogits: true },
              { id: 'short', tokens: tokens(3, 2, vocab) },
              { id: 'mid', tokens: tokens(70, 3, vocab) },
            ],
          });
          out.push(prefill.sequences[0]!.promptLogits!, prefill.logits);
          // A second long chunk appended to a live sequence (chunked prefill over the per-head path).
          const chunk = await b.doForward({
            sequences: [{ id: 'long', tokens: tokens(40, 4, vocab), wantPromptLogits: true }],
          });
          out.push(chunk.sequences[0]!.promptLogits!);
          for (let step = 0; step < 4; step++) {
            const decode = await b.doForward({
              sequences: ['long', 'short', 'mid'].map((id, i) => ({ id, tokens: [(step * 13 + i) % vocab] })),
            });
            out.push(Float32Array.from(decode.logits));
          }
          return out;
        });
        console.info(`tfjs ${tfjsBackend} long prompts vs oracle: max abs logit difference ${worst.toExponential(2)}`);
        expect(worst).toBeLessThanOrEqual(1e-4);
      } finally {
        await backend.doDispose();
        await oracle.doDispose();
      }
    });
  });
}

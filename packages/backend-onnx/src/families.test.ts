/**
 * Rotary frequencies that depend on each sequence's length (Phi-3's longrope past its original context of 32)
 * through the backend, in both graph styles, against the backend-js oracle: a batch mixing a short and a long
 * prompt, then decode steps that cross the threshold while another sequence stays below it.
 */
import type { BackendV1 } from '@gen/backend';
import { createJsBackend } from '@gen/backend-js';
import { ensureModelDir, writeModelDir } from '@gen/model-kit';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnnxBackend } from './index.js';

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const tokens = (count: number, salt: number) =>
  Array.from({ length: count }, (_, i) => (i * 131 + salt * 977 + 7) % 640);

describe.each(['fused', 'standard'] as const)('tiny-phi3 (%s) across its original context', (onnxGraphStyle) => {
  let onnx: BackendV1;
  let oracle: BackendV1;
  beforeAll(async () => {
    const modelDir = await ensureModelDir('tiny-phi3', { seed: 6, onnxGraphStyle });
    onnx = await createOnnxBackend({ modelDir, intraOpThreads: 1, maxBatchSize: 4 });
    oracle = await createJsBackend({ modelDir });
  });
  afterAll(async () => {
    await onnx.doDispose();
    await oracle.doDispose();
  });

  it('matches the oracle for a short and a long prompt in one batch, then decode steps past 32', async () => {
    const prompts = { short: tokens(5, 1), long: tokens(29, 2) };
    const forward = async (backend: BackendV1, step: number) => {
      const sequences = Object.entries(prompts).map(([id, prompt]) => ({
        id,
        tokens: step === 0 ? prompt : [tokens(12, 3 + id.length)[step - 1]!],
      }));
      return (await backend.doForward({ sequences })).sequences.map((s) => s.logits);
    };
    let worst = 0;
    // The long sequence reaches 29 + 8 = 37 positions; the short one stays at 13.
    for (let step = 0; step <= 8; step++) {
      const [actual, expected] = await Promise.all([forward(onnx, step), forward(oracle, step)]);
      for (const [i, logits] of actual.entries()) worst = Math.max(worst, maxDiff(logits, expected[i]!));
    }
    expect(worst).toBeLessThan(1e-4);
  });
});

// yarn and dynamic NTK extend the served context past max_position_embeddings (32 here: yarn over 16 trained
// positions x 4 = 64, dynamic 32 x 2 = 64), as vLLM derives it; the graphs' rotary tables cover the extension.
describe.each([
  ['yarn', { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 16 }],
  ['dynamic', { rope_type: 'dynamic', factor: 2 }],
] as const)('tiny llama with %s scaling past max_position_embeddings', (_name, ropeScaling) => {
  for (const onnxGraphStyle of ['fused', 'standard'] as const) {
    it(`${onnxGraphStyle}: serves 64 positions and matches the oracle at positions 32..63`, async () => {
      const { dir: modelDir } = await writeModelDir({
        preset: 'tiny',
        seed: 8,
        onnxGraphStyle,
        outDir: await mkdtemp(path.join(tmpdir(), 'gen-onnx-extended-')),
        config: { maxPositionEmbeddings: 32, ropeScaling },
      });
      const onnx = await createOnnxBackend({ modelDir, intraOpThreads: 1 });
      const oracle = await createJsBackend({ modelDir });
      try {
        expect(onnx.model.maxPositions).toBe(64);
        expect(oracle.model.maxPositions).toBe(64);
        const prompt = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % 500);
        let worst = 0;
        for (let step = 0; step < 24; step++) {
          const input = step === 0 ? prompt : [(step * 53) % 500];
          const [a, b] = await Promise.all(
            [onnx, oracle].map((backend) => backend.doForward({ sequences: [{ id: 's', tokens: input }] })),
          );
          worst = Math.max(worst, maxDiff(a!.logits, b!.logits));
        }
        expect(worst).toBeLessThan(1e-4);
      } finally {
        await onnx.doDispose();
        await oracle.doDispose();
        await rm(modelDir, { recursive: true, force: true });
      }
    });
  }
});

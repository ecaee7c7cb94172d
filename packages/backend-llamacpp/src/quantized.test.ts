import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createJsBackend } from '@gen/backend-js';
import {
  ensureGgufModel,
  ggufWeightSource,
  writeGgufModel,
  writeModelDir,
  type GgufWeightType,
  type PresetName,
} from '@gen/model-kit';
import { describe, expect, it } from 'vitest';
import { createLlamaCppBackend } from './index.js';
import { llamaCppUnavailable } from './testing/availability.js';

const unavailable = llamaCppUnavailable();
const test = unavailable === undefined ? it : it.skip;
const reason = unavailable === undefined ? '' : ` (skipped: ${unavailable})`;

function maxDifference(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/**
 * Prompt logits (12 tokens) and 3 decode steps of `backend`, concatenated.
 */
async function script(backend: Awaited<ReturnType<typeof createJsBackend>>): Promise<Float32Array> {
  const tokens = [1, 5, 77, 200, 31, 9, 100, 3, 44, 12, 5, 6];
  const parts: Float32Array[] = [];
  const prefill = await backend.doForward({ sequences: [{ id: 'q', tokens, wantPromptLogits: true }] });
  parts.push(prefill.sequences[0]!.promptLogits!);
  for (const token of [7, 70, 300]) {
    parts.push((await backend.doForward({ sequences: [{ id: 'q', tokens: [token] }] })).logits);
  }
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Quantized files against `@gen/backend-js` on the weights dequantized from the same file (and un-permuted):
 * what is left is llama.cpp's own rounding of the activations. ggml's CPU matmul converts the activations to the
 * weight type's `vec_dot_type` before the dot products (Q8_0 blocks for Q8_0 and Q4_0 weights, F16 for F16), so
 * the logits (standard deviation ~4 on these models) cannot agree to 1e-4: the tolerances below (2e-2 for
 * f16, 0.35 for the 8-bit activations) are measured bounds with margin (f16 ~7e-3, q8_0 / q4_0 ~0.1-0.2). For
 * Q4_0 the comparison must also be far closer than the float32 weights are (~2-3), showing llama.cpp computes with
 * the file's 4-bit weights.
 */
describe('quantized GGUF files', () => {
  const cases: Array<[PresetName, GgufWeightType, number]> = [
    ['tiny', 'f16', 2e-2],
    ['tiny', 'q8_0', 0.35],
    ['tiny', 'q4_0', 0.35],
    ['tiny-qwen2', 'f16', 2e-2],
    ['tiny-qwen2', 'q8_0', 0.35],
    ['tiny-qwen2', 'q4_0', 0.35],
  ];
  for (const [preset, type, tolerance] of cases) {
    test(`${preset} ${type}: logits within ${tolerance} of backend-js on the dequantized weights${reason}`, async () => {
      const { file, modelDir: float32Dir } = await ensureGgufModel(preset, { seed: 1, type });
      const outDir = mkdtempSync(join(tmpdir(), `gen-llamacpp-${preset}-${type}-`));
      await writeModelDir({ preset, seed: 1, formats: ['safetensors'], outDir, weights: await ggufWeightSource(file) });
      const backend = await createLlamaCppBackend({ modelPath: file, maxBatchSize: 2, kvCacheType: 'f32', threads: 1 });
      const dequantized = await createJsBackend({ modelDir: outDir });
      const float32 = await createJsBackend({ modelDir: float32Dir });
      try {
        expect(backend.model.dtype).toBe(type === 'f16' ? 'float16' : type);
        const actual = await script(backend);
        const expected = await script(dequantized);
        const difference = maxDifference(actual, expected);
        expect(difference).toBeLessThanOrEqual(tolerance);
        if (type === 'q4_0') {
          const quantizationError = maxDifference(expected, await script(float32));
          expect(difference).toBeLessThan(quantizationError / 4);
        }
        console.info(`llamacpp ${preset} ${type} vs backend-js on dequantized weights: ${difference.toExponential(2)}`);
      } finally {
        await backend.doDispose();
        await dequantized.doDispose();
        await float32.doDispose();
      }
    });
  }
});

describe('a Q4_K_M file (Q4_K and Q6_K, the mix llama-quantize writes)', () => {
  test(`logits within 0.35 of backend-js on the dequantized weights, far closer than the float32 weights${reason}`, async () => {
    const config = { hiddenSize: 256, intermediateSize: 512, numHiddenLayers: 8, headDim: 64 };
    const root = mkdtempSync(join(tmpdir(), 'gen-llamacpp-q4_k_m-'));
    const { file } = await writeGgufModel({
      preset: 'tiny',
      config,
      seed: 1,
      outFile: join(root, 'k.gguf'),
      type: 'q4_k_m',
    });
    const dequantizedDir = join(root, 'dequantized');
    await writeModelDir({
      preset: 'tiny',
      config,
      seed: 1,
      formats: ['safetensors'],
      outDir: dequantizedDir,
      weights: await ggufWeightSource(file),
    });
    const float32Dir = join(root, 'float32');
    await writeModelDir({ preset: 'tiny', config, seed: 1, formats: ['safetensors'], outDir: float32Dir });
    const backend = await createLlamaCppBackend({ modelPath: file, maxBatchSize: 2, kvCacheType: 'f32', threads: 1 });
    const dequantized = await createJsBackend({ modelDir: dequantizedDir });
    const float32 = await createJsBackend({ modelDir: float32Dir });
    try {
      const expected = await script(dequantized);
      const difference = maxDifference(await script(backend), expected);
      expect(difference).toBeLessThanOrEqual(0.35);
      expect(difference).toBeLessThan(maxDifference(expected, await script(float32)) / 4);
      console.info(`llamacpp q4_k_m vs backend-js on dequantized weights: ${difference.toExponential(2)}`);
    } finally {
      await backend.doDispose();
      await dequantized.doDispose();
      await float32.doDispose();
    }
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BackendV1 } from '@gen/backend';
import { createJsBackend } from '@gen/backend-js';
import { ensureModelDir, writeModelDir } from '@gen/model-kit';
import { runBackendConformanceTests } from '@gen/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { createOnnxBackend, type OnnxModelDtype } from './index.js';

// One cached directory per graph style with every variant model-kit writes (onnx-community names), read by dtype.
const styles = ['fused', 'standard'] as const;
const variantsDir = (style: (typeof styles)[number] = 'fused') =>
  ensureModelDir('tiny', { seed: 1, onnxVariants: ['fp32', 'fp16', 'int8', 'q4'], onnxGraphStyle: style });
const root = await mkdtemp(path.join(tmpdir(), 'gen-backend-onnx-variants-'));
afterAll(() => rm(root, { recursive: true, force: true }));

// float16 weights (standard graphs: also float16 caches and logits, so two ways of computing the same logits can
// land one float16 step apart, 2^-8 for logits between 4 and 8; fused graphs compute in float32).
runBackendConformanceTests({
  name: 'onnx fp16',
  createBackend: ({ modelDir }) => createOnnxBackend({ modelDir: modelDir!, dtype: 'fp16', maxBatchSize: 8 }),
  modelDirs: styles.map((style) => ({ name: `tiny (${style})`, dir: () => variantsDir(style) })),
  oracle: ({ modelDir }) => createJsBackend({ modelDir }),
  tolerance: 0.05,
  consistencyTolerance: 8e-3,
  releaseRounds: 200,
});

// Quantized variants: no oracle (they are meant to differ from float32; see the accuracy tests below). One-row and
// many-row products use different onnxruntime kernels, with activations quantized per row and block.
for (const dtype of ['int8', 'q4'] as const) {
  runBackendConformanceTests({
    name: `onnx ${dtype}`,
    createBackend: ({ modelDir }) => createOnnxBackend({ modelDir: modelDir!, dtype, maxBatchSize: 8 }),
    modelDirs: styles.map((style) => ({ name: `tiny (${style})`, dir: () => variantsDir(style) })),
    consistencyTolerance: 3e-2,
    releaseRounds: 200,
  });
}

// A graph without position_ids (positions counted from attention_mask): same numbers as the oracle.
runBackendConformanceTests({
  name: 'onnx without position_ids',
  createBackend: ({ modelDir }) => createOnnxBackend({ modelDir: modelDir!, maxBatchSize: 8 }),
  modelDirs: [
    {
      name: 'tiny-qwen2',
      dir: async () =>
        (
          await writeModelDir({
            preset: 'tiny-qwen2',
            seed: 4,
            outDir: path.join(root, 'np'),
            onnxPositionIds: false,
            onnxGraphStyle: 'standard',
          })
        ).dir,
    },
  ],
  oracle: ({ modelDir }) => createJsBackend({ modelDir }),
  releaseRounds: 200,
});

function argmax(row: Float32Array): number {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
  return best;
}

/** Greedy continuation of `prompt` for `steps` tokens; also the logits after each position, for teacher forcing. */
async function greedy(backend: BackendV1, id: string, prompt: number[], steps: number): Promise<number[]> {
  let result = await backend.doForward({ sequences: [{ id, tokens: prompt }] });
  const out: number[] = [];
  for (let s = 0; s < steps; s++) {
    out.push(argmax(result.sequences[0]!.logits));
    result = await backend.doForward({ sequences: [{ id, tokens: [out[s]!] }] });
  }
  await backend.doRelease([id]);
  return out;
}

/** For each position of `tokens` after the prompt, the token `backend` ranks first given the true history. */
async function teacherForced(backend: BackendV1, prompt: number[], tokens: number[]): Promise<number[]> {
  const result = await backend.doForward({
    sequences: [{ id: 'tf', tokens: [...prompt, ...tokens], wantPromptLogits: true }],
  });
  await backend.doRelease(['tf']);
  const vocab = backend.model.vocabSize;
  const all = result.sequences[0]!.promptLogits!;
  return tokens.map((_, i) => argmax(all.subarray((prompt.length - 1 + i) * vocab, (prompt.length + i) * vocab)));
}

describe('variants against fp32 on the tiny preset', () => {
  const prompts = [0, 1, 2, 3].map((p) => Array.from({ length: 8 }, (_, i) => (i * 97 + p * 31 + 5) % 500));
  const steps = 24;
  /**
   * Documented bounds (docs/backends/onnx.md): relative RMS logit error, greedy-token agreement under teacher
   * forcing, and the mean length of the identical greedy prefix. Random weights are a hard case for 4 bits.
   */
  const bounds: Record<Exclude<OnnxModelDtype, 'fp32' | 'q4f16'>, { rms: number; agreement: number }> = {
    fp16: { rms: 0.003, agreement: 0.94 },
    int8: { rms: 0.03, agreement: 0.9 },
    q4: { rms: 0.25, agreement: 0.6 },
  };

  it.each(styles.flatMap((style) => (['fp16', 'int8', 'q4'] as const).map((dtype) => [dtype, style] as const)))(
    '%s (%s): logits close to fp32, greedy tokens mostly agree',
    async (dtype, style) => {
      const modelDir = await variantsDir(style);
      const reference = await createOnnxBackend({ modelDir });
      const backend = await createOnnxBackend({ modelDir, dtype });
      try {
        let squaredError = 0;
        let squared = 0;
        let agree = 0;
        let total = 0;
        let prefix = 0;
        for (const [p, prompt] of prompts.entries()) {
          const expected = await greedy(reference, `r${p}`, prompt, steps);
          const actual = await greedy(backend, `a${p}`, prompt, steps);
          const forced = await teacherForced(backend, prompt, expected);
          agree += forced.filter((token, i) => token === expected[i]).length;
          total += steps;
          const firstDifference = actual.findIndex((token, i) => token !== expected[i]);
          prefix += firstDifference < 0 ? steps : firstDifference;
          const [x, y] = await Promise.all(
            [reference, backend].map((b) =>
              b.doForward({ sequences: [{ id: `l${p}`, tokens: [...prompt, ...expected], wantPromptLogits: true }] }),
            ),
          );
          const ref = x!.sequences[0]!.promptLogits!;
          const got = y!.sequences[0]!.promptLogits!;
          for (let i = 0; i < ref.length; i++) {
            squaredError += (got[i]! - ref[i]!) ** 2;
            squared += ref[i]! ** 2;
          }
        }
        const rms = Math.sqrt(squaredError / squared);
        const agreement = agree / total;
        console.info(
          `tiny ${dtype} (${style}) vs fp32: relative RMS logit error ${rms.toFixed(4)}, greedy agreement (teacher-forced) ` +
            `${(100 * agreement).toFixed(1)}%, identical greedy prefix ${(prefix / prompts.length).toFixed(1)} of ${steps} tokens`,
        );
        expect(rms).toBeGreaterThan(0);
        expect(rms).toBeLessThan(bounds[dtype].rms);
        expect(agreement).toBeGreaterThanOrEqual(bounds[dtype].agreement);
      } finally {
        await reference.doDispose();
        await backend.doDispose();
      }
    },
  );
});

describe('settings and cache accounting', () => {
  it('reports file, dtype, provider, device and threads', async () => {
    const modelDir = await variantsDir();
    const backend = await createOnnxBackend({ modelDir, dtype: 'q4', intraOpThreads: 1 });
    try {
      expect(backend.backendId).toBe('onnx');
      expect(backend.capabilities).toMatchObject({ device: 'cpu', promptLogits: true, fork: true, maxBatchSize: 32 });
      expect(backend.capabilities.details).toMatchObject({
        file: path.join('onnx', 'model_q4.onnx'),
        dtype: 'q4',
        kvCacheDtype: 'float32',
        logitsDtype: 'float32',
        executionProvider: 'cpu',
        intraOpThreads: 1,
        graphOptimizationLevel: 'all',
        graphStyle: 'fused',
        kvCapacity: 'grow',
      });
      expect(backend.model.dtype).toBe('q4');
      expect(backend.model.details).toMatchObject({ file: path.join('onnx', 'model_q4.onnx'), dtype: 'q4' });
      expect(backend.warnings).toEqual([]);
    } finally {
      await backend.doDispose();
    }
  });

  it.each([
    ['fp32', 4],
    ['fp16', 2],
  ] as const)(
    '%s: kvCacheBytes = 2 x layers x kv heads x head dim x %i bytes x tokens, 0 after release',
    async (dtype, bytes) => {
      const backend = await createOnnxBackend({ modelDir: await variantsDir('standard'), dtype });
      try {
        expect(backend.capabilities.details?.['kvCacheDtype']).toBe(dtype === 'fp16' ? 'float16' : 'float32');
        const perToken = 2 * 2 * 2 * 16 * bytes; // tiny: 2 layers, 2 KV heads, head_dim 16
        await backend.doForward({ sequences: [{ id: 'a', tokens: [1, 2, 3, 4, 5] }] });
        expect(backend.stats()).toEqual({ sequences: 1, cachedTokens: 5, kvCacheBytes: 5 * perToken });
        await backend.doForward({ sequences: [{ id: 'a', tokens: [6] }] });
        await backend.doForward({ sequences: [{ id: 'b', tokens: [7, 8] }] });
        expect(backend.stats()).toEqual({ sequences: 2, cachedTokens: 8, kvCacheBytes: 8 * perToken });
        // A fork shares the cache until one of them runs again.
        await backend.doFork!('a', 'c');
        expect(backend.stats()).toEqual({ sequences: 3, cachedTokens: 14, kvCacheBytes: 8 * perToken });
        await backend.doForward({ sequences: [{ id: 'c', tokens: [9] }] });
        expect(backend.stats()).toEqual({ sequences: 3, cachedTokens: 15, kvCacheBytes: 15 * perToken });
        await backend.doRelease(['a', 'b', 'c']);
        expect(backend.stats()).toEqual({ sequences: 0, cachedTokens: 0, kvCacheBytes: 0 });
      } finally {
        await backend.doDispose();
      }
    },
  );
});

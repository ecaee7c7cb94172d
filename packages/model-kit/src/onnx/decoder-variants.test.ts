/**
 * The published file variants (fp16, int8, q4) and the graph without `position_ids`, run by onnxruntime-node and
 * compared with the float32 graph of the same weights.
 */
import { mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { float16BitsToFloat32 } from '../dtype.js';
import { writeModelDir } from '../write-model-dir.js';
import { onnxVariantFiles, type OnnxVariant } from './decoder-graph.js';

interface Row {
  ids: number[];
  /** Attention mask over past + new slots. */
  mask: number[];
  positions: number[];
}

/** Runs one step of a decoder file; returns logits `[batch, seq, vocab]` as float32 and the present tensors. */
async function step(
  session: ort.InferenceSession,
  rows: Row[],
  cache?: ort.Tensor[],
): Promise<{ logits: Float32Array; cache: ort.Tensor[]; seq: number; vocab: number }> {
  const kvMeta = session.inputMetadata.find((m) => m.name === 'past_key_values.0.key')!;
  const kvType = (kvMeta as { type: 'float32' | 'float16' }).type;
  const [, heads, , dim] = (kvMeta as { shape: readonly (number | string)[] }).shape as [
    string,
    number,
    string,
    number,
  ];
  const layers = session.inputNames.filter((n) => n.startsWith('past_key_values.')).length / 2;
  const int64 = (values: number[][]) =>
    new ort.Tensor('int64', BigInt64Array.from(values.flat().map(BigInt)), [values.length, values[0]!.length]);
  const feeds: Record<string, ort.Tensor> = {
    input_ids: int64(rows.map((r) => r.ids)),
    attention_mask: int64(rows.map((r) => r.mask)),
  };
  if (session.inputNames.includes('position_ids')) feeds['position_ids'] = int64(rows.map((r) => r.positions));
  for (let i = 0; i < layers; i++) {
    for (const [j, kind] of ['key', 'value'].entries()) {
      const empty = kvType === 'float16' ? new Uint16Array(0) : new Float32Array(0);
      feeds[`past_key_values.${i}.${kind}`] =
        cache?.[2 * i + j] ?? new ort.Tensor(kvType, empty, [rows.length, heads, 0, dim]);
    }
  }
  const out = await session.run(feeds);
  const logits = out['logits']!;
  const data =
    logits.type === 'float16'
      ? Float32Array.from(logits.data as Uint16Array, float16BitsToFloat32)
      : (logits.data as Float32Array);
  const next: ort.Tensor[] = [];
  for (let i = 0; i < layers; i++) next.push(out[`present.${i}.key`]!, out[`present.${i}.value`]!);
  return { logits: data, cache: next, seq: logits.dims[1]!, vocab: logits.dims[2]! };
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);
const tokens = (n: number, salt: number) => range(n).map((i) => (i * 131 + salt * 977 + 7) % 500);
const prefillRow = (ids: number[]): Row => ({ ids, mask: ids.map(() => 1), positions: range(ids.length) });

/** Root-mean-square difference divided by the reference's root-mean-square. */
function relativeRms(actual: Float32Array, expected: Float32Array): number {
  let error = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    error += (actual[i]! - expected[i]!) ** 2;
    scale += expected[i]! ** 2;
  }
  return Math.sqrt(error / scale);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

function argmaxRows(logits: Float32Array, vocab: number): number[] {
  return range(logits.length / vocab).map((r) => {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    let best = 0;
    for (let v = 1; v < vocab; v++) if (row[v]! > row[best]!) best = v;
    return best;
  });
}

/**
 * Documented accuracy of each variant against float32 on the tiny presets (random uniform weights, logits of
 * standard deviation ~4): relative RMS logit error, and how many of 32 positions keep the same top token.
 * Measured: fp16 0.05%, int8 1.0-1.6%, q4 8.7-14%; top-1 agreement 32, 31 and 21-24 of 32.
 */
const accuracy: Record<Exclude<OnnxVariant, 'fp32'>, { relativeRms: number; top1: number }> = {
  fp16: { relativeRms: 0.003, top1: 31 },
  int8: { relativeRms: 0.03, top1: 28 },
  q4: { relativeRms: 0.25, top1: 16 },
};

describe.each(['tiny', 'tiny-qwen2', 'tiny-qwen3', 'tiny-gemma2', 'tiny-gemma3', 'tiny-phi3'] as const)(
  'ONNX variants of %s',
  (preset) => {
    let dir: string;
    const sessions = new Map<OnnxVariant, ort.InferenceSession>();
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), `mk-variants-${preset}-`));
      const info = await writeModelDir({
        preset,
        seed: 5,
        outDir: dir,
        onnxVariants: ['fp32', 'fp16', 'int8', 'q4'],
        onnxGraphStyle: 'standard',
      });
      expect(info.files).toEqual(expect.arrayContaining(Object.values(onnxVariantFiles).map((f) => `onnx/${f}`)));
      for (const [variant, file] of Object.entries(onnxVariantFiles) as [OnnxVariant, string][]) {
        sessions.set(variant, await ort.InferenceSession.create(join(dir, 'onnx', file)));
      }
    });

    it('stores fewer bytes: fp16 half of fp32, int8 and q4 less than half', async () => {
      const size = async (variant: OnnxVariant) => (await stat(join(dir, 'onnx', onnxVariantFiles[variant]))).size;
      const fp32 = await size('fp32');
      expect((await size('fp16')) / fp32).toBeCloseTo(0.5, 1);
      expect(await size('int8')).toBeLessThan(fp32 / 2);
      expect(await size('q4')).toBeLessThan(fp32 / 2);
    });

    it.each(['fp16', 'int8', 'q4'] as const)(
      '%s logits stay within the documented distance of fp32',
      async (variant) => {
        const ids = tokens(32, 1);
        const reference = await step(sessions.get('fp32')!, [prefillRow(ids)]);
        const actual = await step(sessions.get(variant)!, [prefillRow(ids)]);
        const error = relativeRms(actual.logits, reference.logits);
        // fp16 logits are rounded to float16: where fp32's top logits are closer than one float16 step (gemma2's final
        // softcapping at 3 packs many near 3), the fp16 top token is any of them.
        const slack = variant === 'fp16' ? 4e-3 : 0;
        const best = argmaxRows(reference.logits, reference.vocab);
        const agree = argmaxRows(actual.logits, actual.vocab).filter((token, i) => {
          const row = reference.logits.subarray(i * reference.vocab, (i + 1) * reference.vocab);
          return token === best[i] || row[token]! >= row[best[i]!]! - slack;
        }).length;
        console.info(`${preset} ${variant}: relative RMS logit error ${error.toFixed(4)}, top-1 agreement ${agree}/32`);
        expect(error).toBeGreaterThan(0);
        expect(error).toBeLessThan(accuracy[variant].relativeRms);
        expect(agree).toBeGreaterThanOrEqual(accuracy[variant].top1);
      },
    );

    it.each(['fp16', 'int8', 'q4'] as const)(
      '%s: prefill equals prefill + decode through its own cache',
      async (variant) => {
        const session = sessions.get(variant)!;
        const ids = tokens(10, 2);
        const full = await step(session, [prefillRow(ids)]);
        let result = await step(session, [prefillRow(ids.slice(0, 6))]);
        for (let k = 6; k < 10; k++) {
          result = await step(
            session,
            [{ ids: [ids[k]!], mask: range(k + 1).map(() => 1), positions: [k] }],
            result.cache,
          );
          const expected = full.logits.subarray(k * full.vocab, (k + 1) * full.vocab);
          // fp16 logits are rounded to float16 (a step of 2^-8 for logits between 4 and 8), so both ways may land one
          // step apart; quantized variants compute a one-row product with another kernel than a many-row one.
          expect(maxAbsDiff(result.logits, expected)).toBeLessThan(variant === 'fp16' ? 4e-3 : 2e-2);
        }
        if (variant === 'fp16') expect(result.cache[0]!.type).toBe('float16');
      },
    );
  },
);

describe('a graph without position_ids', () => {
  it('counts positions from attention_mask: equal to the graph with position_ids, left padding included', async () => {
    const withPositions = await mkdtemp(join(tmpdir(), 'mk-positions-'));
    const without = await mkdtemp(join(tmpdir(), 'mk-no-positions-'));
    await writeModelDir({
      preset: 'tiny',
      seed: 6,
      outDir: withPositions,
      formats: ['onnx'],
      onnxGraphStyle: 'standard',
    });
    await writeModelDir({
      preset: 'tiny',
      seed: 6,
      outDir: without,
      formats: ['onnx'],
      onnxPositionIds: false,
      onnxGraphStyle: 'standard',
    });
    const a = await ort.InferenceSession.create(join(withPositions, 'onnx', 'model.onnx'));
    const b = await ort.InferenceSession.create(join(without, 'onnx', 'model.onnx'));
    expect(a.inputNames).toContain('position_ids');
    expect(b.inputNames).not.toContain('position_ids');
    const rows: Row[] = [
      prefillRow(tokens(6, 3)),
      { ids: [0, 0, 0, ...tokens(3, 4)], mask: [0, 0, 0, 1, 1, 1], positions: [0, 0, 0, 0, 1, 2] },
    ];
    const x = await step(a, rows);
    const y = await step(b, rows);
    expect(maxAbsDiff(x.logits, y.logits)).toBeLessThan(1e-5);
    const next = (r: number): Row => ({ ids: [5 + r], mask: [...rows[r]!.mask, 1], positions: [[6, 3][r]!] });
    const x2 = await step(a, [next(0), next(1)], x.cache);
    const y2 = await step(b, [next(0), next(1)], y.cache);
    expect(maxAbsDiff(x2.logits, y2.logits)).toBeLessThan(1e-5);
  });
});

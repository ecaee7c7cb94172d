import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';

import { compileKernelsWat, kernelsBytesModule } from '../../scripts/wasm-compile.js';
import { KERNELS_WASM_BASE64 } from './kernels-bytes.js';
import {
  EXP_PASS_BUCKETS,
  EXP_PASS_SKIP_BELOW,
  EXP_PASS_WEIGHTED,
  MASS_BUCKETS,
  setWasmKernelsEnabled,
  wasmKernels,
  wasmKernelsEnabled,
  type WasmKernels,
} from './kernels.js';

const TOP_BUCKET = MASS_BUCKETS - 1;

/** mulberry32 uniforms in [0, 1). */
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

/**
 * Rows that exercise the edge cases: lengths around multiples of 4 and 16, ties (values on a 1/8 grid), -Infinity
 * and NaN sprinkled in, all-equal rows, rows of only -Infinity, tiny and huge magnitudes.
 */
function testRows(): { name: string; row: Float32Array }[] {
  const rows: { name: string; row: Float32Array }[] = [];
  const lengths = [1, 2, 3, 4, 5, 15, 16, 17, 31, 33, 64, 100, 255, 1000, 4099, 32000];
  for (const [index, length] of lengths.entries()) {
    const next = random(1000 + index);
    const ties = Float32Array.from({ length }, () => Math.round((next() * 2 - 1) * 64) / 8);
    rows.push({ name: `ties V=${length}`, row: ties });
    const spread = Float32Array.from({ length }, () => (next() + next() + next() - 1.5) * 8);
    for (let i = 0; i < length; i++) {
      const r = next();
      if (r < 0.08) spread[i] = -Infinity;
      else if (r < 0.12) spread[i] = Number.NaN;
    }
    if (length > 1) spread[Math.floor(next() * length)] = 25;
    rows.push({ name: `-inf, NaN V=${length}`, row: spread });
    rows.push({ name: `all equal V=${length}`, row: new Float32Array(length).fill(-1.25) });
  }
  const next = random(7);
  rows.push({ name: 'all -inf', row: new Float32Array(37).fill(-Infinity) });
  rows.push({ name: 'all NaN but one', row: Float32Array.from({ length: 40 }, (_, i) => (i === 39 ? 3 : Number.NaN)) });
  rows.push({ name: 'tiny', row: Float32Array.from({ length: 333 }, () => (next() - 0.5) * 1e-30) });
  rows.push({ name: 'huge', row: Float32Array.from({ length: 333 }, () => (next() - 0.5) * 6e38) });
  rows.push({ name: 'wide', row: Float32Array.from({ length: 2049 }, () => (next() - 0.5) * 400) });
  return rows;
}

const ROWS = testRows();
const SCALES = [1, 1 / 0.7, 1 / 3];

/** The row loaded into the kernels' row region; returns the padded length. */
function load(kernels: WasmKernels, row: Float32Array, topN = 64): number {
  kernels.ensure(row.length, topN);
  return kernels.load(row, kernels.row);
}

function referenceMax(row: Float32Array): number {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  return max;
}

function referenceArgmax(row: Float32Array): number {
  let max = -Infinity;
  let best = -1;
  for (let i = 0; i < row.length; i++) {
    if (row[i]! > max) {
      max = row[i]!;
      best = i;
    }
  }
  return best;
}

/** x = (s - max) * scale as the kernels compute it (float32). */
function x32(s: number, max: number, scale: number): number {
  return Math.fround(Math.fround(s - max) * Math.fround(scale));
}

/** Rounding to nearest, ties to even (what adding 1.5 * 2^23 in float32 does). */
function roundHalfEven(y: number): number {
  const r = Math.round(y);
  return Math.abs(y % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function close(actual: number, expected: number, relative: number): boolean {
  return Math.abs(actual - expected) <= relative * Math.abs(expected);
}

describe('build', () => {
  it('the committed bytes are what kernels.wat compiles to (no drift)', async () => {
    const wat = readFileSync(new URL('./kernels.wat', import.meta.url), 'utf8');
    const bytes = await compileKernelsWat(wat);
    expect(Buffer.from(bytes).toString('base64')).toBe(KERNELS_WASM_BASE64);
    const committed = readFileSync(new URL('./kernels-bytes.ts', import.meta.url), 'utf8');
    expect(committed).toBe(kernelsBytesModule(bytes));
  });

  it('validates as WebAssembly with SIMD and is on by default here; can be switched off', () => {
    const api = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly;
    expect(api.validate(Buffer.from(KERNELS_WASM_BASE64, 'base64'))).toBe(true);
    if (process.env.GEN_SAMPLING_WASM === undefined) expect(wasmKernelsEnabled()).toBe(true);
    expect(setWasmKernelsEnabled(false)).toBe(false);
    expect(wasmKernels()).toBeUndefined();
    expect(setWasmKernelsEnabled(true)).toBe(true);
    expect(wasmKernels()).toBeDefined();
  });
});

describe('kernels against JS references', () => {
  const kernels = (() => {
    setWasmKernelsEnabled(true);
    return wasmKernels()!;
  })();
  afterAll(() => setWasmKernelsEnabled(process.env.GEN_SAMPLING_WASM === undefined));

  it('max ignores NaN; argmax is the first maximum', () => {
    for (const { name, row } of ROWS) {
      const n = load(kernels, row);
      expect(kernels.k.max(kernels.row, n), name).toBe(referenceMax(row));
      expect(kernels.k.argmax(kernels.row, n), name).toBe(referenceArgmax(row));
    }
  });

  it('grows its memory for larger vocabularies and keeps working', () => {
    const row = Float32Array.from({ length: 300_000 }, (_, i) => Math.sin(i));
    row[299_999] = 2;
    const n = load(kernels, row);
    expect(kernels.f32.length * 4).toBeGreaterThanOrEqual(18 * 300_000);
    expect(kernels.k.argmax(kernels.row, n)).toBe(299_999);
  });

  it('sumExp matches float64 sums to 1e-6 relative, and logprobs to 1e-5', () => {
    let worstSum = 0;
    let worstLogprob = 0;
    for (const { name, row } of ROWS) {
      const max = referenceMax(row);
      if (!Number.isFinite(max)) continue;
      const n = load(kernels, row);
      for (const scale of SCALES) {
        let expected = 0;
        for (const s of row) if (s === s && s !== -Infinity) expected += Math.exp((s - max) * scale);
        const sum = kernels.k.sumExp(kernels.row, n, max, scale);
        expect(close(sum, expected, 1e-6), `${name} scale ${scale}: ${sum} vs ${expected}`).toBe(true);
        worstSum = Math.max(worstSum, Math.abs(sum - expected) / expected);
        for (const s of row) {
          if (!(s > -Infinity)) continue;
          const logprob = (s - max) * scale - Math.log(sum);
          const reference = (s - max) * scale - Math.log(expected);
          worstLogprob = Math.max(worstLogprob, Math.abs(logprob - reference));
        }
      }
    }
    expect(worstLogprob).toBeLessThanOrEqual(1e-5);
    console.log(`sumExp: worst relative error ${worstSum.toExponential(2)}, logprob ${worstLogprob.toExponential(2)}`);
  });

  it('expPass stores exps (0 where they underflow), buckets, the weighted sum, and skips blocks below lo', () => {
    let worstExp = 0;
    const failures: string[] = [];
    const fail = (message: string) => {
      if (failures.length < 10) failures.push(message);
    };
    for (const { name, row } of ROWS) {
      const max = referenceMax(row);
      if (!Number.isFinite(max)) continue;
      const n = load(kernels, row);
      const exps = kernels.exps >> 2;
      const buckets = kernels.buckets >> 1;
      for (const scale of SCALES) {
        for (const mode of [0, EXP_PASS_BUCKETS, EXP_PASS_WEIGHTED, EXP_PASS_SKIP_BELOW]) {
          const lo = mode === EXP_PASS_SKIP_BELOW ? max - 2 : -Infinity;
          const total = kernels.k.expPass(kernels.row, kernels.exps, kernels.buckets, n, max, scale, lo, mode);
          let expectedTotal = 0;
          let expectedWeighted = 0;
          for (let i = 0; i < n; i++) {
            const s = i < row.length ? row[i]! : -Infinity;
            const x = x32(s, max, scale);
            const e = kernels.f32[exps + i]!;
            const label = `${name} scale ${scale} mode ${mode} token ${i}`;
            if (!(x >= -87 && s >= lo)) {
              if (e !== 0) fail(`${label}: exp ${e}, expected 0`);
              if (mode === EXP_PASS_BUCKETS && kernels.u16[buckets + i] !== TOP_BUCKET) fail(`${label}: bucket`);
              continue;
            }
            const expected = Math.exp(x);
            worstExp = Math.max(worstExp, Math.abs(e - expected) / expected);
            if (!close(e, expected, 3e-7)) fail(`${label}: exp(${x}) = ${e}, expected ${expected}`);
            expectedTotal += expected;
            expectedWeighted += expected * x;
            if (mode === EXP_PASS_BUCKETS) {
              const bucket = Math.min(roundHalfEven(Math.fround(x * -32)), TOP_BUCKET);
              if (kernels.u16[buckets + i] !== bucket)
                fail(`${label}: bucket ${kernels.u16[buckets + i]} vs ${bucket}`);
            }
          }
          if (!close(total, expectedTotal, 1e-6)) fail(`${name}: total ${total} vs ${expectedTotal}`);
          if (mode === EXP_PASS_WEIGHTED) {
            const weighted = kernels.k.weighted.value;
            const tolerance = 1e-6 * (1 + expectedTotal * 87);
            if (Math.abs(weighted - expectedWeighted) > tolerance) fail(`${name}: weighted ${weighted}`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
    console.log(`expPass: worst relative error of a stored exp ${worstExp.toExponential(2)}`);
  });

  it('scatter adds the exps per bucket; distBuckets buckets |x - mean| in float64 like the JS path', () => {
    for (const { name, row } of ROWS) {
      const max = referenceMax(row);
      if (!Number.isFinite(max)) continue;
      const n = load(kernels, row);
      const scale = 1 / 0.7;
      const total = kernels.k.expPass(kernels.row, kernels.exps, kernels.buckets, n, max, scale, -Infinity, 2);
      const mean = kernels.k.weighted.value / total;
      kernels.k.distBuckets(kernels.row, kernels.exps, kernels.buckets, n, max, scale, mean);
      const massStart = kernels.mass >> 3;
      kernels.f64.fill(0, massStart, massStart + MASS_BUCKETS);
      kernels.k.scatter(kernels.buckets, kernels.exps, kernels.mass, n, MASS_BUCKETS);
      const expectedMass = new Float64Array(MASS_BUCKETS);
      for (let i = 0; i < n; i++) {
        const e = kernels.f32[(kernels.exps >> 2) + i]!;
        let bucket = TOP_BUCKET;
        if (e !== 0) {
          const d = Math.abs((row[i]! - max) * scale - mean);
          bucket = Math.min((d * 32) | 0, TOP_BUCKET);
        }
        expect(kernels.u16[(kernels.buckets >> 1) + i], `${name} token ${i}`).toBe(bucket);
        expectedMass[bucket] = expectedMass[bucket]! + e;
      }
      expect(Array.from(kernels.f64.subarray(massStart, massStart + MASS_BUCKETS))).toEqual(Array.from(expectedMass));
      // partial: only blocks holding a bucket < 64; the masses below 64 are still complete
      kernels.f64.fill(0, massStart, massStart + MASS_BUCKETS);
      kernels.k.scatter(kernels.buckets, kernels.exps, kernels.mass, n, 64);
      expect(Array.from(kernels.f64.subarray(massStart, massStart + 64))).toEqual(
        Array.from(expectedMass.subarray(0, 64)),
      );
      for (const bucket of [0, 5, 31, 64, TOP_BUCKET]) {
        const count = kernels.k.collect(kernels.buckets, n, bucket, kernels.ids);
        const ids = Array.from(kernels.i32.subarray(kernels.ids >> 2, (kernels.ids >> 2) + count));
        const expected: number[] = [];
        for (let i = 0; i < n; i++) if (kernels.u16[(kernels.buckets >> 1) + i] === bucket) expected.push(i);
        expect(ids, `${name} bucket ${bucket}`).toEqual(expected);
      }
    }
  });

  /** Cuts to test draw, keep and topN with: everything, a threshold, an interval, a tie rule at lo. */
  function cuts(row: Float32Array): { lo: number; hi: number; loId: number }[] {
    const finite = Array.from(row).filter((v) => Number.isFinite(v));
    const sorted = finite.sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    return [
      { lo: -Infinity, hi: Infinity, loId: 0 },
      { lo: at(0.9), hi: Infinity, loId: 0 },
      { lo: at(0.3), hi: at(0.7), loId: 0 },
      { lo: at(0.5), hi: Infinity, loId: Math.floor(row.length / 2) },
    ];
  }

  function keptIds(row: Float32Array, exps: (i: number) => number, cut: { lo: number; hi: number; loId: number }) {
    const ids: number[] = [];
    for (let i = 0; i < row.length; i++) {
      const s = row[i]!;
      if (s >= cut.lo && s <= cut.hi && (s > cut.lo || i >= cut.loId) && exps(i) !== 0) ids.push(i);
    }
    return ids;
  }

  it('draw walks the kept tokens in id order; keep lists them', () => {
    const next = random(99);
    for (const { name, row } of ROWS) {
      const max = referenceMax(row);
      if (!Number.isFinite(max)) continue;
      const n = load(kernels, row);
      kernels.k.expPass(kernels.row, kernels.exps, kernels.buckets, n, max, 1, -Infinity, 0);
      const exps = (i: number) => kernels.f32[(kernels.exps >> 2) + i]!;
      for (const cut of cuts(row)) {
        const kept = keptIds(row, exps, cut);
        const count = kernels.k.keep(kernels.row, kernels.exps, n, cut.lo, cut.hi, cut.loId, kernels.ids);
        expect(Array.from(kernels.i32.subarray(kernels.ids >> 2, (kernels.ids >> 2) + count)), name).toEqual(kept);
        let mass = 0;
        for (const id of kept) mass += exps(id);
        for (const u of [0, next(), next(), next(), 0.999999, 1, 2]) {
          const target = u * mass;
          let expected = -1;
          let cumulative = 0;
          for (const id of kept) {
            expected = id;
            cumulative += exps(id);
            if (cumulative > target) break;
          }
          const chosen = kernels.k.draw(kernels.row, kernels.exps, n, cut.lo, cut.hi, cut.loId, target);
          expect(chosen, `${name} ${JSON.stringify(cut)} u=${u}`).toBe(expected);
        }
      }
    }
  });

  it('topN: the n best kept values, descending, lower ids first, ties with the n-th listed apart', () => {
    for (const { name, row } of ROWS) {
      const n = load(kernels, row, 64);
      for (const cut of cuts(row)) {
        for (const k of [1, 2, 5, 50]) {
          const candidates: number[] = [];
          for (let i = 0; i < row.length; i++) {
            const s = row[i]!;
            if (s > -Infinity && s >= cut.lo && s <= cut.hi && (s > cut.lo || i >= cut.loId)) candidates.push(i);
          }
          candidates.sort((a, b) => row[b]! - row[a]! || a - b);
          const best = candidates.slice(0, k);
          const nth = best.length === k ? row[best[k - 1]!]! : Number.NaN;
          const ties = candidates.slice(k).filter((id) => row[id] === nth);
          const size = kernels.k.topN(
            kernels.row,
            n,
            k,
            cut.lo,
            cut.hi,
            cut.loId,
            kernels.bestValues,
            kernels.bestIds,
            kernels.ids,
          );
          const ids = Array.from(kernels.i32.subarray(kernels.bestIds >> 2, (kernels.bestIds >> 2) + size));
          const values = Array.from(kernels.f32.subarray(kernels.bestValues >> 2, (kernels.bestValues >> 2) + size));
          const tieCount = kernels.k.tieCount.value;
          const tieIds = Array.from(kernels.i32.subarray(kernels.ids >> 2, (kernels.ids >> 2) + tieCount));
          const label = `${name} ${JSON.stringify(cut)} k=${k}`;
          expect(ids, label).toEqual(best);
          expect(values, label).toEqual(best.map((id) => row[id]));
          expect(
            tieIds.sort((a, b) => a - b),
            label,
          ).toEqual(ties);
        }
      }
    }
  });
});

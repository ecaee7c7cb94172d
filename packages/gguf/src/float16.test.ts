import { afterEach, describe, expect, it } from 'vitest';
import {
  bf16BitsToF32,
  bf16FromF32Bits,
  f16BitsToF32,
  f16FromF32Bits,
  f32Bits,
  f32BitsFromF16Bits,
  f32ToBf16Bits,
  f32ToF16Bits,
} from './float16.js';

/** Mismatches of the current test: big loops record them and make one assertion at the end. */
const failures: unknown[] = [];
function same(actual: unknown, expected: unknown): void {
  if (!Object.is(actual, expected) && failures.length < 20) failures.push({ actual, expected });
}
afterEach(() => {
  expect(failures.splice(0)).toEqual([]);
});

const isHalfNaN = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
const isBf16NaN = (h: number) => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;

/** Value of a half by its definition: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m for subnormals. */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Independent float32 → half: exact rational arithmetic in doubles, round half to even, by the definition. */
function referenceF32ToF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a === 0) return sign;
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, -14) - 10);
  const q = a / ulp; // exact: a has 24 significant bits, ulp is a power of two
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  const v = r * ulp;
  if (v >= 65536) return sign | 0x7c00;
  if (v < 2 ** -14) return sign | (v / 2 ** -24);
  let ve = Math.floor(Math.log2(v));
  while (2 ** ve > v) ve--;
  while (2 ** (ve + 1) <= v) ve++;
  return sign | ((ve + 15) << 10) | ((v / 2 ** ve - 1) * 1024);
}

/** ggml's `ggml_compute_fp16_to_fp32` written out (Maratyszcza's branch-free decode), for comparison. */
function ggmlDecode(h: number): number {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const w = (h << 16) >>> 0;
  const sign = (w & 0x80000000) >>> 0;
  const twoW = (w * 2) % 2 ** 32;
  u[0] = ((twoW >>> 4) + (0xe0 << 23)) >>> 0;
  const normalized = Math.fround(f[0]! * 2 ** -112);
  u[0] = ((twoW >>> 17) | (126 << 23)) >>> 0;
  const denormalized = Math.fround(f[0]! - 0.5);
  const bits = twoW < 2 ** 27 ? f32Bits(denormalized) : f32Bits(normalized);
  return (sign | bits) >>> 0;
}

describe('fp16', () => {
  it('decodes all 65,536 half patterns to their exact values and as ggml does', () => {
    for (let h = 0; h < 65536; h++) {
      const v = f16BitsToF32(h);
      if (isHalfNaN(h)) {
        same(Number.isNaN(v), true);
        // ggml keeps sign and payload and sets the quiet bit
        same(f32BitsFromF16Bits(h), (((h & 0x8000) << 16) | 0x7fc00000 | ((h & 0x3ff) << 13)) >>> 0);
        continue;
      }
      same(Object.is(v, halfValue(h)), true);
      same(f32BitsFromF16Bits(h), ggmlDecode(h));
    }
  });

  it('round-trips every non-NaN half exactly (f16 -> f32 -> f16), NaNs become sign | 0x7e00', () => {
    for (let h = 0; h < 65536; h++) {
      const back = f32ToF16Bits(f16BitsToF32(h));
      if (isHalfNaN(h)) same(back, (h & 0x8000) | 0x7e00);
      else same(back, h);
    }
  });

  it('rounds ties to even, between every pair of neighbouring halves', () => {
    for (let h = 0; h < 0x7bff; h++) {
      const lo = halfValue(h);
      const hi = halfValue(h + 1);
      const mid = (lo + hi) / 2; // representable in float32 (12 significant bits)
      same(Math.fround(mid), mid);
      const even = h % 2 === 0 ? h : h + 1;
      same(f32ToF16Bits(mid), even);
      same(f32ToF16Bits(-mid), even | 0x8000);
      // one float32 ulp either side of the midpoint goes to the nearer half
      const below = Math.fround(mid - mid * 2 ** -23);
      const above = Math.fround(mid + mid * 2 ** -23);
      if (below > lo) same(f32ToF16Bits(below), h);
      if (above < hi) same(f32ToF16Bits(above), h + 1);
    }
  });

  it('handles the special cases: subnormals, overflow to infinity, zeros, NaN', () => {
    same(f32ToF16Bits(1), 0x3c00);
    same(f32ToF16Bits(-2), 0xc000);
    same(f32ToF16Bits(65504), 0x7bff);
    same(f32ToF16Bits(65519), 0x7bff);
    same(f32ToF16Bits(65520), 0x7c00); // the tie above the largest half rounds to infinity
    same(f32ToF16Bits(1e6), 0x7c00);
    same(f32ToF16Bits(-1e30), 0xfc00);
    same(f32ToF16Bits(Infinity), 0x7c00);
    same(f32ToF16Bits(-Infinity), 0xfc00);
    same(f32ToF16Bits(2 ** -24), 0x0001); // smallest subnormal
    same(f32ToF16Bits(2 ** -25), 0x0000); // tie between 0 and 2^-24 -> even (0)
    same(f32ToF16Bits(3 * 2 ** -25), 0x0002); // tie between 1 and 2 ulps -> 2
    same(f32ToF16Bits(2 ** -14 - 2 ** -24), 0x03ff); // largest subnormal
    same(f32ToF16Bits(2 ** -14), 0x0400); // smallest normal
    same(f32ToF16Bits(1e-10), 0x0000);
    same(f32ToF16Bits(-1e-10), 0x8000);
    same(f32ToF16Bits(-0), 0x8000);
    same(f32ToF16Bits(1 + 2 ** -11), 0x3c00);
    same(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
    same(f32ToF16Bits(NaN), 0x7e00);
    same(f16FromF32Bits(0xffc00001), 0xfe00); // a negative NaN keeps its sign
    same(f16FromF32Bits(0x7f800001), 0x7e00); // a signalling NaN too becomes the quiet 0x7e00
  });

  it('agrees with an independent round-to-nearest-even on 300,000 float32 bit patterns', () => {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    let state = 0x9e3779b9;
    for (let i = 0; i < 300_000; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      // focus on the interesting exponent range (around the half range) half of the time
      u[0] = i % 2 === 0 ? state : ((state & 0x80ffffff) | ((0x60 + ((state >>> 24) % 0x28)) << 23)) >>> 0;
      const expected = referenceF32ToF16(f[0]!);
      same(f16FromF32Bits(u[0]!), Number.isNaN(f[0]!) ? ((u[0]! >>> 16) & 0x8000) | 0x7e00 : expected);
    }
  });
});

describe('bf16', () => {
  it('round-trips all 65,536 bf16 patterns (NaNs get the quiet bit)', () => {
    for (let h = 0; h < 65536; h++) {
      const v = bf16BitsToF32(h);
      const back = f32ToBf16Bits(v);
      if (isBf16NaN(h)) {
        same(Number.isNaN(v), true);
        same(bf16FromF32Bits((h << 16) >>> 0), h | 0x40);
      } else {
        same(back, h);
      }
    }
  });

  it('rounds to nearest even, keeps subnormals, overflows to infinity', () => {
    same(f32ToBf16Bits(1), 0x3f80);
    same(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie -> even
    same(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie -> even (up)
    same(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81); // just above the tie
    same(bf16FromF32Bits(0x00008000), 0x0000); // subnormal tie, even
    same(bf16FromF32Bits(0x00018000), 0x0002); // subnormal tie, odd -> up
    same(bf16FromF32Bits(0x00010001), 0x0001);
    same(bf16FromF32Bits(0x7f7fffff), 0x7f80); // largest float -> infinity
    same(bf16FromF32Bits(0xff7fffff), 0xff80);
    same(f32ToBf16Bits(-0), 0x8000);
    same(bf16FromF32Bits(0x7f800001), 0x7fc0); // signalling NaN forced quiet
    same(bf16FromF32Bits(0xffc12345), 0xffc1);
  });

  it('agrees with a bitwise round-to-nearest-even on 300,000 float32 bit patterns', () => {
    let state = 12345;
    for (let i = 0; i < 300_000; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const w = state;
      let expected: number;
      if ((w & 0x7fffffff) > 0x7f800000) {
        expected = (w >>> 16) | 0x40;
      } else {
        const upper = w >>> 16;
        const lower = w & 0xffff;
        expected = lower > 0x8000 || (lower === 0x8000 && (upper & 1) === 1) ? upper + 1 : upper;
      }
      same(bf16FromF32Bits(w), expected & 0xffff);
    }
  });
});

import { describe, expect, it } from 'vitest';
import { convertBfloat16ToFloat32, convertFloat16ToFloat32, float16BitsToNumber } from './float16.js';

/**
 * Independent reference: builds the float32 bit pattern of a half by bit manipulation (renormalizing subnormals),
 * the way hardware converters do, instead of the arithmetic formula of the implementation.
 */
function halfToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  let exponent = (h >> 10) & 0x1f;
  let mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent === 0) {
    if (mantissa === 0) return sign >>> 0;
    exponent = 1;
    while ((mantissa & 0x400) === 0) {
      mantissa <<= 1;
      exponent--;
    }
    mantissa &= 0x3ff;
  }
  return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
}

function floatFromBits(bits: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, bits);
  return view.getFloat32(0);
}

describe('float16 conversion', () => {
  it('matches a bit-level reference on all 65,536 patterns (subnormals, ±0, ±inf, NaN included)', () => {
    const source = new Uint16Array(65536).map((_, i) => i);
    const target = new Float32Array(65536);
    convertFloat16ToFloat32(source, target, 0);
    const targetBits = new Uint32Array(target.buffer);
    for (let h = 0; h < 65536; h++) {
      const expected = halfToFloatBits(h);
      const isNaN = ((h >> 10) & 0x1f) === 0x1f && (h & 0x3ff) !== 0;
      if (isNaN) expect(Number.isNaN(target[h]), `0x${h.toString(16)}`).toBe(true);
      else if (targetBits[h] !== expected) expect(targetBits[h], `0x${h.toString(16)}`).toBe(expected);
      if (!isNaN) expect(Object.is(float16BitsToNumber(h), floatFromBits(expected))).toBe(true);
    }
  });

  it('decodes landmark values', () => {
    expect(float16BitsToNumber(0x3c00)).toBe(1);
    expect(float16BitsToNumber(0xc000)).toBe(-2);
    expect(float16BitsToNumber(0x7bff)).toBe(65504);
    expect(float16BitsToNumber(0x0001)).toBe(2 ** -24);
    expect(float16BitsToNumber(0x03ff)).toBe(1023 * 2 ** -24);
    expect(float16BitsToNumber(0x0400)).toBe(2 ** -14);
    expect(float16BitsToNumber(0x3555)).toBeCloseTo(0.33325195, 8);
    expect(float16BitsToNumber(0x7c00)).toBe(Infinity);
    expect(float16BitsToNumber(0xfc00)).toBe(-Infinity);
    expect(float16BitsToNumber(0x7e00)).toBeNaN();
    expect(Object.is(float16BitsToNumber(0x8000), -0)).toBe(true);
  });

  it('writes at the target offset', () => {
    const target = new Float32Array(4);
    convertFloat16ToFloat32(Uint16Array.of(0x3c00, 0x4000), target, 2);
    expect([...target]).toEqual([0, 0, 1, 2]);
  });
});

describe('bfloat16 conversion', () => {
  it('is the upper half of the float32 bits', () => {
    const values = [1, -2.5, 3.140625, 1e-40, -Infinity, 65536, 0];
    const source = Uint16Array.from(values, (v) => {
      const view = new DataView(new ArrayBuffer(4));
      view.setFloat32(0, v);
      return view.getUint32(0) >>> 16;
    });
    const target = new Float32Array(values.length + 1);
    convertBfloat16ToFloat32(source, new Uint32Array(target.buffer), 1);
    expect(target[0]).toBe(0);
    expect(target[1]).toBe(1);
    expect(target[2]).toBe(-2.5);
    expect(target[3]).toBe(3.140625);
    expect(target[4]).toBeGreaterThan(0);
    expect(target[4]).toBeLessThan(1.2e-40);
    expect(target[5]).toBe(-Infinity);
    expect(target[6]).toBe(65536);
    const nan = new Float32Array(1);
    convertBfloat16ToFloat32(Uint16Array.of(0x7fc0), new Uint32Array(nan.buffer), 0);
    expect(nan[0]).toBeNaN();
  });
});

import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  bfloat16BitsToFloat32,
  encodeAsDtype,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  roundToDtype,
} from './dtype.js';

describe('float16', () => {
  it('round-trips every bit pattern (NaNs stay NaN)', () => {
    const wrong: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = float16BitsToFloat32(bits);
      const back = float32ToFloat16Bits(value);
      if (Number.isNaN(value) ? !Number.isNaN(float16BitsToFloat32(back)) : back !== bits) wrong.push(bits);
    }
    expect(wrong).toEqual([]);
  });

  it('knows the landmarks', () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // rounds up to infinity
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // halfway, ties to even (zero)
    expect(float32ToFloat16Bits(1.5 * 2 ** -25)).toBe(0x0001);
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // halfway between 1 and next: even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // halfway, odd below: up
  });

  test.prop([fc.float({ noNaN: true, min: -60000, max: 60000 })])('rounds to the nearest float16', (x) => {
    const rounded = float16BitsToFloat32(float32ToFloat16Bits(x));
    const bits = float32ToFloat16Bits(x);
    // No other float16 neighbour is closer.
    for (const neighbour of [bits - 1, bits + 1]) {
      if ((neighbour & 0x7fff) >= 0x7c00 || neighbour < 0 || neighbour > 0xffff) continue;
      if ((neighbour ^ bits) & 0x8000) continue;
      expect(Math.abs(float16BitsToFloat32(neighbour) - x)).toBeGreaterThanOrEqual(Math.abs(rounded - x));
    }
  });
});

describe('bfloat16', () => {
  it('round-trips every bit pattern', () => {
    const wrong: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = bfloat16BitsToFloat32(bits);
      if (!Number.isNaN(value) && float32ToBfloat16Bits(value) !== bits) wrong.push(bits);
    }
    expect(wrong).toEqual([]);
  });

  it('rounds to nearest, ties to even', () => {
    expect(float32ToBfloat16Bits(1)).toBe(0x3f80);
    expect(float32ToBfloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // halfway: even
    expect(float32ToBfloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // halfway: odd below -> up
    expect(float32ToBfloat16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(float32ToBfloat16Bits(NaN)).toBe(0x7fc0);
  });
});

describe('roundToDtype / encodeAsDtype', () => {
  test.prop([fc.float32Array({ noNaN: true, noDefaultInfinity: true, maxLength: 64 })])(
    'rounded float32 values encode losslessly',
    (values) => {
      for (const dtype of ['float16', 'bfloat16'] as const) {
        const rounded = roundToDtype(Float32Array.from(values), dtype);
        const bits = new Uint16Array(encodeAsDtype(rounded, dtype).slice().buffer);
        const decode = dtype === 'float16' ? float16BitsToFloat32 : bfloat16BitsToFloat32;
        expect(Array.from(bits, decode)).toEqual(Array.from(rounded));
      }
    },
  );

  it('float32 encoding is the raw little-endian bytes', () => {
    expect(Array.from(encodeAsDtype(Float32Array.of(1), 'float32'))).toEqual([0, 0, 0x80, 0x3f]);
  });
});

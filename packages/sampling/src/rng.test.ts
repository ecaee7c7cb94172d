import { describe, expect, it } from 'vitest';
import { test, fc } from '@fast-check/vitest';
import { MAX_SEED, philox4x32, randomSeed, uniform } from './rng.js';

const hex = (words: Uint32Array) => Array.from(words, (w) => w.toString(16).padStart(8, '0')).join(' ');

describe('philox4x32-10', () => {
  it('matches the Random123 known-answer vectors', () => {
    const out = new Uint32Array(4);
    expect(hex(philox4x32(0, 0, 0, 0, 0, 0, out))).toBe('6627e8d5 e169c58d bc57ac4c 9b00dbd8');
    const f = 0xffffffff;
    expect(hex(philox4x32(f, f, f, f, f, f, out))).toBe('408f276d 41c83b0e a20bc7c6 6d5451fd');
    expect(hex(philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out))).toBe(
      'd16cfe09 94fdcceb 5001e420 24126ea1',
    );
  });
});

describe('uniform', () => {
  test.prop([fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.nat(64), fc.nat(100_000)])(
    'is in [0, 1) and a pure function of (seed, choice, step)',
    (seed, choice, step) => {
      const value = uniform(seed, choice, step);
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(1);
      expect(uniform(seed, choice, step)).toBe(value);
    },
  );

  it('differs across seeds, choices, steps and streams', () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 10; seed++)
      for (let choice = 0; choice < 4; choice++)
        for (let step = 0; step < 25; step++)
          for (let stream = 0; stream < 2; stream++) seen.add(uniform(seed, choice, step, stream));
    expect(seen.size).toBe(10 * 4 * 25 * 2);
  });

  it('accepts the whole u64 seed range', () => {
    const value = uniform(MAX_SEED, 0, 0);
    expect(value).toBeGreaterThanOrEqual(0);
    expect(value).toBeLessThan(1);
    expect(uniform(2 ** 60, 0, 0)).not.toBe(uniform(2 ** 60 + 2 ** 40, 0, 0));
  });

  it('is uniform (mean and variance over 100,000 steps)', () => {
    let sum = 0;
    let sumSquares = 0;
    const n = 100_000;
    for (let step = 0; step < n; step++) {
      const u = uniform(42, 0, step);
      sum += u;
      sumSquares += u * u;
    }
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.005);
    expect(Math.abs(sumSquares / n - (sum * sum) / n / n - 1 / 12)).toBeLessThan(0.002);
  });
});

describe('randomSeed', () => {
  it('returns distinct safe integers', () => {
    const a = randomSeed();
    const b = randomSeed();
    expect(Number.isSafeInteger(a)).toBe(true);
    expect(a).not.toBe(b);
  });
});

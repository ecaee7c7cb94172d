import { describe, expect, it } from 'vitest';
import { createRandomStream, fillUniform } from './prng.js';

describe('createRandomStream', () => {
  it('is a pure function of (seed, stream)', () => {
    const take = (seed: number, stream: string) => {
      const next = createRandomStream(seed, stream);
      return Array.from({ length: 8 }, () => next());
    };
    expect(take(7, 'a')).toEqual(take(7, 'a'));
    expect(take(7, 'a')).not.toEqual(take(8, 'a'));
    expect(take(7, 'a')).not.toEqual(take(7, 'b'));
    // Seeds above 2^32 still matter.
    expect(take(2 ** 32 + 7, 'a')).not.toEqual(take(7, 'a'));
  });

  it('pins its output (a change here changes every generated model)', () => {
    const next = createRandomStream(0, 'model.embed_tokens.weight');
    expect(Array.from({ length: 4 }, () => next())).toMatchInlineSnapshot(`
      [
        1799704948,
        1798991719,
        1789823225,
        1612247816,
      ]
    `);
  });

  it('produces uniform 32-bit words', () => {
    const next = createRandomStream(1, 'uniformity');
    const buckets = new Array<number>(16).fill(0);
    const n = 160_000;
    for (let i = 0; i < n; i++) buckets[next() >>> 28]!++;
    // Chi-square with 15 degrees of freedom; 37.7 is the 0.999 quantile.
    const expected = n / 16;
    const chiSquare = buckets.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
    expect(chiSquare).toBeLessThan(37.7);
  });
});

describe('fillUniform', () => {
  it('stays in [center - bound, center + bound) with the uniform standard deviation', () => {
    const values = fillUniform(new Float32Array(100_000), createRandomStream(3, 'x'), 0.5, 1);
    let sum = 0;
    let squares = 0;
    for (const v of values) {
      sum += v;
      squares += v * v;
    }
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0.5);
    expect(Math.max(...values)).toBeLessThan(1.5);
    const mean = sum / values.length;
    const std = Math.sqrt(squares / values.length - mean * mean);
    expect(mean).toBeCloseTo(1, 2);
    expect(std).toBeCloseTo(0.5 / Math.sqrt(3), 2);
  });
});

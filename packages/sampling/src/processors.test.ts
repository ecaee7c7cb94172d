import { describe, expect } from 'vitest';
import { test, fc } from '@fast-check/vitest';
import {
  applyFrequencyPresencePenalty,
  applyLogitBias,
  applyMinP,
  applyNoRepeatNgram,
  applyRepetitionPenalty,
  applyTemperature,
  applyTopK,
  applyTopP,
  applyTypicalP,
  logSoftmax,
} from './processors.js';

const row = (minLength = 1, maxLength = 120) =>
  fc
    .array(fc.float({ min: -30, max: 30, noNaN: true, noDefaultInfinity: true }), { minLength, maxLength })
    .map((values) => Float32Array.from(values));

const kept = (values: Float32Array) => Array.from(values.keys()).filter((i) => values[i] !== -Infinity);
const probabilities = (values: Float32Array) => Array.from(logSoftmax(values), Math.exp);
const noNaN = (values: Float32Array) => values.every((v) => !Number.isNaN(v));

describe('processor properties', () => {
  test.prop([row(2), fc.double({ min: 0.01, max: 10, noNaN: true })])(
    'temperature keeps the order of tokens',
    (values, temperature) => {
      const scaled = Float32Array.from(values);
      applyTemperature(scaled, temperature);
      for (let i = 0; i < values.length; i++)
        for (let j = 0; j < values.length; j++)
          if (values[i]! < values[j]!) expect(scaled[i]!).toBeLessThanOrEqual(scaled[j]!);
      expect(noNaN(scaled)).toBe(true);
    },
  );

  test.prop([row(1), fc.integer({ min: 1, max: 130 }), fc.integer({ min: 1, max: 130 })])(
    'top_k keeps exactly the tokens >= the k-th value, and is monotone in k',
    (values, a, b) => {
      const [small, large] = a < b ? [a, b] : [b, a];
      const sorted = Array.from(values).sort((x, y) => y - x);
      const smallRow = Float32Array.from(values);
      applyTopK(smallRow, small);
      const largeRow = Float32Array.from(values);
      applyTopK(largeRow, large);
      const kth = sorted[Math.min(small, values.length) - 1]!;
      expect(kept(smallRow)).toEqual(Array.from(values.keys()).filter((i) => values[i]! >= kth));
      expect(kept(smallRow).length).toBeGreaterThanOrEqual(Math.min(small, values.length));
      for (const i of kept(smallRow)) expect(largeRow[i]).toBe(values[i]);
    },
  );

  test.prop([
    row(1),
    fc.double({ min: 0.001, max: 0.999, noNaN: true }),
    fc.double({ min: 0.001, max: 0.999, noNaN: true }),
  ])('top_p keeps the smallest most-likely set with mass >= p, never empty, monotone in p', (values, a, b) => {
    const [small, large] = a < b ? [a, b] : [b, a];
    const p = probabilities(values);
    const smallRow = Float32Array.from(values);
    applyTopP(smallRow, small);
    const largeRow = Float32Array.from(values);
    applyTopP(largeRow, large);
    const keptSmall = kept(smallRow);
    expect(keptSmall.length).toBeGreaterThan(0);
    const mass = keptSmall.reduce((sum, i) => sum + p[i]!, 0);
    expect(mass).toBeGreaterThanOrEqual(small - 1e-5);
    // Smallest: without its least likely member, the set's mass falls below p.
    const least = Math.min(...keptSmall.map((i) => p[i]!));
    expect(mass - least).toBeLessThan(small + 1e-5);
    // High-probability: no removed token is more likely than a kept one.
    for (let i = 0; i < values.length; i++)
      if (smallRow[i] === -Infinity) expect(p[i]!).toBeLessThanOrEqual(least + 1e-7);
    for (const i of keptSmall) expect(largeRow[i]).toBe(values[i]);
  });

  test.prop([row(1), fc.double({ min: 0, max: 1, noNaN: true })])(
    'min_p never empties the row and keeps the top token',
    (values, minP) => {
      const out = Float32Array.from(values);
      applyMinP(out, minP);
      const max = Math.max(...values);
      expect(kept(out).length).toBeGreaterThan(0);
      expect(kept(out).some((i) => values[i] === max)).toBe(true);
      expect(noNaN(out)).toBe(true);
    },
  );

  test.prop([row(1), fc.double({ min: 0.001, max: 0.999, noNaN: true })])(
    'typical_p never empties the row',
    (values, mass) => {
      const out = Float32Array.from(values);
      applyTypicalP(out, mass);
      expect(kept(out).length).toBeGreaterThan(0);
      expect(noNaN(out)).toBe(true);
    },
  );

  test.prop([
    row(1, 60),
    fc.array(fc.nat(59), { maxLength: 30 }),
    fc.double({ min: 0.1, max: 3, noNaN: true }),
    fc.double({ min: -2, max: 2, noNaN: true }),
    fc.double({ min: -2, max: 2, noNaN: true }),
  ])(
    'penalties leave untouched tokens bit-identical and make no NaN',
    (values, tokens, repetition, frequency, presence) => {
      const history = tokens.filter((t) => t < values.length);
      const touched = new Set([...history, 0]); // the logit bias adds 0 to token 0: -0 becomes +0
      const out = Float32Array.from(values);
      applyRepetitionPenalty(out, history, repetition);
      applyFrequencyPresencePenalty(out, history, frequency, presence);
      applyLogitBias(out, new Map([[0, 0]]));
      for (let i = 0; i < values.length; i++) {
        if (!touched.has(i)) expect(Object.is(out[i], values[i])).toBe(true);
      }
      expect(noNaN(out)).toBe(true);
    },
  );

  test.prop([row(1, 20), fc.array(fc.nat(19), { maxLength: 40 }), fc.integer({ min: 1, max: 5 })])(
    'no_repeat_ngram bans exactly the continuations of the last (n-1)-gram',
    (values, tokens, n) => {
      const history = tokens.filter((t) => t < values.length);
      const out = Float32Array.from(values);
      applyNoRepeatNgram(out, history, n);
      const banned = new Set<number>();
      if (history.length + 1 >= n) {
        const prefix = history.slice(history.length - (n - 1)).join(',');
        for (let start = 0; start + n <= history.length; start++) {
          if (history.slice(start, start + n - 1).join(',') === prefix) banned.add(history[start + n - 1]!);
        }
      }
      for (let i = 0; i < values.length; i++)
        expect(out[i] === -Infinity).toBe(banned.has(i) || values[i] === -Infinity);
    },
  );
});

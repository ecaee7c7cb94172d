import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { test, fc } from '@fast-check/vitest';
import { InvalidParameterError } from './errors.js';
import {
  GreenlistCache,
  applyWatermark,
  detectWatermark,
  erfc,
  normalSurvival,
  watermarkGreenlist,
} from './watermark.js';

interface GoldenGreenlist {
  vocab_size: number;
  gamma: number;
  prev_token: number;
  greenlist: number[];
}

const golden = JSON.parse(readFileSync(new URL('../fixtures/sampling-golden.json', import.meta.url), 'utf8')) as {
  watermark_greenlists: GoldenGreenlist[];
};

/** Small seeded PRNG for the tests (mulberry32): uniform doubles in [0, 1). */
function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draw by Box-Muller. */
function gaussian(random: () => number): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Softmax + multinomial draw from `logits`. */
function sample(logits: Float32Array, random: () => number): number {
  let max = -Infinity;
  for (const value of logits) max = Math.max(max, value);
  let total = 0;
  for (const value of logits) total += Math.exp(value - max);
  let threshold = random() * total;
  for (let id = 0; id < logits.length; id++) {
    threshold -= Math.exp(logits[id]! - max);
    if (threshold < 0) return id;
  }
  return logits.length - 1;
}

/** Generates `length` tokens from a random-logit model (std 2, new logits each step), optionally watermarked. */
function generate(options: {
  seed: number;
  vocabSize: number;
  length: number;
  prefixToken: number;
  cache: GreenlistCache | null;
}): number[] {
  const random = createRandom(options.seed);
  const logits = new Float32Array(options.vocabSize);
  const tokens: number[] = [];
  let previous = options.prefixToken;
  for (let step = 0; step < options.length; step++) {
    for (let id = 0; id < logits.length; id++) logits[id] = 2 * gaussian(random);
    if (options.cache !== null) applyWatermark(logits, previous, options.cache);
    previous = sample(logits, random);
    tokens.push(previous);
  }
  return tokens;
}

describe('watermarkGreenlist', () => {
  it('reproduces every TGI greenlist of the golden file exactly', () => {
    expect(golden.watermark_greenlists.length).toBeGreaterThan(0);
    for (const entry of golden.watermark_greenlists) {
      const greenlist = watermarkGreenlist(entry.vocab_size, entry.prev_token, { gamma: entry.gamma });
      expect(greenlist.length).toBe(Math.floor(entry.vocab_size * entry.gamma));
      expect(Array.from(greenlist)).toEqual(entry.greenlist);
    }
  });

  it('depends on the seed only modulo 2^32 (hashKey * prevToken beyond 2^32)', () => {
    // 15485863 * 277 = 4289584051 < 2^32 and 15485863 * 278 = 4305069914 > 2^32.
    const a = watermarkGreenlist(1000, 278);
    const b = watermarkGreenlist(1000, 1, { hashKey: (15485863 * 278) % 2 ** 32 });
    expect(a).toEqual(b);
  });

  it('validates its arguments', () => {
    const parameterOf = (run: () => unknown): string | undefined => {
      try {
        run();
      } catch (error) {
        if (InvalidParameterError.isInstance(error)) return error.parameter;
        throw error;
      }
      return undefined;
    };
    expect(parameterOf(() => watermarkGreenlist(0, 0))).toBe('vocab_size');
    expect(parameterOf(() => watermarkGreenlist(10.5, 0))).toBe('vocab_size');
    expect(parameterOf(() => watermarkGreenlist(10, 10))).toBe('prev_token');
    expect(parameterOf(() => watermarkGreenlist(10, -1))).toBe('prev_token');
    expect(parameterOf(() => watermarkGreenlist(10, 1.5))).toBe('prev_token');
    expect(parameterOf(() => watermarkGreenlist(10, 1, { gamma: 0 }))).toBe('gamma');
    expect(parameterOf(() => watermarkGreenlist(10, 1, { gamma: 1 }))).toBe('gamma');
    expect(parameterOf(() => watermarkGreenlist(10, 1, { gamma: Number.NaN }))).toBe('gamma');
    expect(parameterOf(() => watermarkGreenlist(10, 1, { hashKey: -1 }))).toBe('hash_key');
    expect(parameterOf(() => new GreenlistCache({ vocabSize: 10, maxEntries: 0 }))).toBe('max_entries');
    const cache = new GreenlistCache({ vocabSize: 10 });
    expect(parameterOf(() => applyWatermark(new Float32Array(10), 1, cache, Infinity))).toBe('delta');
    expect(parameterOf(() => applyWatermark(new Float32Array(11), 1, cache))).toBe('logits');
    expect(parameterOf(() => cache.isGreen(1, 10))).toBe('token');
  });
});

describe('GreenlistCache', () => {
  it('returns the same greenlists as the uncached function, across LRU evictions', () => {
    const vocabSize = 32000;
    const cache = new GreenlistCache({ vocabSize, maxEntries: 3 });
    const previousTokens = [5, 7, 5, 9, 11, 13, 5, 7, 31999, 0];
    for (const previous of previousTokens) {
      const expected = watermarkGreenlist(vocabSize, previous);
      expect(cache.greenlist(previous)).toEqual(expected);
      const mask = cache.greenMask(previous);
      const green = new Set(expected);
      for (let token = 0; token < vocabSize; token += 97) {
        expect(cache.isGreen(previous, token)).toBe(green.has(token));
        expect(mask[token] === 1).toBe(green.has(token));
      }
      expect(cache.size).toBeLessThanOrEqual(3);
    }
  });

  it('keeps the most recently used entries', () => {
    const cache = new GreenlistCache({ vocabSize: 100, maxEntries: 2 });
    const first = cache.greenlist(1);
    cache.greenlist(2);
    expect(cache.greenlist(1)).toBe(first); // hit: 1 becomes most recent
    cache.greenlist(3); // evicts 2
    expect(cache.greenlist(1)).toBe(first);
    expect(cache.size).toBe(2);
    cache.clear();
    expect(cache.size).toBe(0);
  });
});

describe('applyWatermark', () => {
  it('adds exactly delta (float32) to green ids and leaves the others bit-identical', () => {
    const vocabSize = 151936;
    const cache = new GreenlistCache({ vocabSize });
    const random = createRandom(7);
    const original = new Float32Array(vocabSize);
    for (let id = 0; id < vocabSize; id++) original[id] = 5 * gaussian(random);
    original[3] = -Infinity;
    for (const delta of [2, 0.37, -1.5]) {
      const logits = original.slice();
      applyWatermark(logits, 57667, cache, delta);
      const green = new Uint8Array(vocabSize);
      for (const id of watermarkGreenlist(vocabSize, 57667)) green[id] = 1;
      const originalBits = new Uint32Array(original.buffer);
      const bits = new Uint32Array(logits.buffer);
      let mismatches = 0;
      for (let id = 0; id < vocabSize; id++) {
        if (green[id] === 1) {
          if (logits[id] !== Math.fround(original[id]! + delta)) mismatches++;
        } else if (bits[id] !== originalBits[id]) {
          mismatches++;
        }
      }
      expect(mismatches).toBe(0);
    }
  });

  it('uses the default delta 2.0', () => {
    const cache = new GreenlistCache({ vocabSize: 10 });
    const logits = new Float32Array(10);
    applyWatermark(logits, 4, cache);
    const greenlist = Array.from(cache.greenlist(4));
    expect(greenlist.length).toBe(5);
    expect(Array.from(logits)).toEqual(Array.from({ length: 10 }, (_, id) => (greenlist.includes(id) ? 2 : 0)));
  });
});

describe('erfc and normalSurvival', () => {
  it('match high-precision reference values to ~1e-14 relative', () => {
    const cases: [number, number][] = [
      [0, 1],
      [0.5, 0.4795001221869535],
      [1, 0.157299207050285],
      [2, 0.004677734981047266],
      [5, 1.537459794428035e-12],
      [10, 2.088487583762545e-45],
      [-1, 1.842700792949715],
    ];
    for (const [x, expected] of cases) expect(Math.abs(erfc(x) - expected) / expected).toBeLessThan(1e-14);
    const survival: [number, number][] = [
      [0, 0.5],
      [2, 0.022750131948179195],
      [4, 3.167124183311992e-5],
      [8, 6.220960574271784e-16],
      [20, 2.7536241186062337e-89],
      [-2, 0.9772498680518208],
    ];
    for (const [z, expected] of survival) {
      expect(Math.abs(normalSurvival(z) - expected) / expected).toBeLessThan(1e-14);
    }
  });

  it('handles the edges', () => {
    expect(erfc(Infinity)).toBe(0);
    expect(erfc(-Infinity)).toBe(2);
    expect(erfc(30)).toBe(0);
    expect(erfc(Number.NaN)).toBeNaN();
    expect(normalSurvival(Infinity)).toBe(0);
    expect(normalSurvival(-Infinity)).toBe(1);
    expect(normalSurvival(Number.NaN)).toBeNaN();
  });
});

describe('detectWatermark', () => {
  const vocabSize = 1000;

  it('scores each bigram against the greenlist of its previous token', () => {
    const random = createRandom(3);
    const tokens = Array.from({ length: 300 }, () => Math.floor(random() * vocabSize));
    for (const ignoreRepeatedBigrams of [true, false]) {
      for (const prefixToken of [undefined, 17]) {
        const seen = new Set<string>();
        let green = 0;
        let scored = 0;
        const all = prefixToken === undefined ? tokens : [prefixToken, ...tokens];
        for (let i = 1; i < all.length; i++) {
          const key = `${all[i - 1]},${all[i]}`;
          if (ignoreRepeatedBigrams && seen.has(key)) continue;
          seen.add(key);
          scored++;
          if (watermarkGreenlist(vocabSize, all[i - 1]!).includes(all[i]!)) green++;
        }
        const options = { vocabSize, ignoreRepeatedBigrams, prefixToken };
        const result = detectWatermark(tokens, options);
        const z = (green - 0.5 * scored) / Math.sqrt(scored * 0.25);
        expect(result.greenCount).toBe(green);
        expect(result.scoredCount).toBe(scored);
        expect(result.greenFraction).toBe(green / scored);
        expect(result.zScore).toBeCloseTo(z, 12);
        expect(result.pValue).toBe(normalSurvival(result.zScore));
        expect(result.prediction).toBe(z > 4);
        const cached = detectWatermark(tokens, { ...options, cache: new GreenlistCache({ vocabSize, maxEntries: 4 }) });
        expect(cached).toEqual(result);
      }
    }
  });

  it('counts repeated bigrams once by default', () => {
    const tokens = [1, 2, 1, 2, 1, 2, 1, 2];
    expect(detectWatermark(tokens, { vocabSize }).scoredCount).toBe(2);
    expect(detectWatermark(tokens, { vocabSize, ignoreRepeatedBigrams: false }).scoredCount).toBe(7);
  });

  it('uses zThreshold and the exact normal tail', () => {
    const green = watermarkGreenlist(vocabSize, 5)[0]!;
    const allGreen = detectWatermark([green], { vocabSize, prefixToken: 5, zThreshold: 0.5 });
    expect(allGreen.greenCount).toBe(1);
    expect(allGreen.zScore).toBe(1);
    expect(allGreen.pValue).toBeCloseTo(0.15865525393145707, 15);
    expect(allGreen.prediction).toBe(true);
  });

  it('throws a clear InvalidParameterError when there is nothing to score', () => {
    expect(() => detectWatermark([], { vocabSize })).toThrow(/no token to score/);
    expect(() => detectWatermark([3], { vocabSize })).toThrow(InvalidParameterError);
    expect(() => detectWatermark([], { vocabSize, prefixToken: 3 })).toThrow(InvalidParameterError);
    expect(() => detectWatermark([1, 1000], { vocabSize })).toThrow(/tokens/);
    expect(() => detectWatermark([1, 2], { vocabSize, cache: new GreenlistCache({ vocabSize: 999 }) })).toThrow(
      /cache/,
    );
  });

  test.prop([fc.integer({ min: 0, max: 2 ** 31 - 1 })], { seed: 20230126, numRuns: 12 })(
    'detects 200 watermarked tokens from random-logit models (z > 4) and not unwatermarked ones (z < 4)',
    (seed) => {
      const cache = new GreenlistCache({ vocabSize, maxEntries: Infinity });
      const prefixToken = seed % vocabSize;
      const marked = generate({ seed, vocabSize, length: 200, prefixToken, cache });
      const plain = generate({ seed, vocabSize, length: 200, prefixToken, cache: null });
      const markedResult = detectWatermark(marked, { vocabSize, prefixToken, cache });
      const plainResult = detectWatermark(plain, { vocabSize, prefixToken, cache });
      expect(markedResult.zScore).toBeGreaterThan(4);
      expect(markedResult.prediction).toBe(true);
      expect(markedResult.pValue).toBeLessThan(3.2e-5);
      expect(plainResult.zScore).toBeLessThan(4);
      expect(plainResult.prediction).toBe(false);
    },
  );
});

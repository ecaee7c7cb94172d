import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { test, fc } from '@fast-check/vitest';
import {
  applyMinP,
  applyTemperature,
  applyTopK,
  applyTopP,
  applyTypicalP,
  applyRepetitionPenalty,
  applyFrequencyPresencePenalty,
  applyLogitBias,
  logSoftmax,
} from './processors.js';
import { createSampler, sampleBatch, type SampleResult } from './sampler.js';
import type { SamplingParameters, WarperStage } from './parameters.js';
import { SamplingError } from './errors.js';
import { setWasmKernelsEnabled } from './wasm/kernels.js';

interface GoldenCase {
  processor: string;
  params: Record<string, number>;
  input_ids: number[];
  logits: number[];
  expected: (number | null)[];
}
const golden = JSON.parse(readFileSync(new URL('../fixtures/sampling-golden.json', import.meta.url), 'utf8')) as {
  cases: GoldenCase[];
};

/** The processed distribution of a sampler, read back through the public API (top tokens = whole vocabulary). */
function processedDistribution(parameters: SamplingParameters, row: Float32Array, history: number[] = []) {
  const vocabSize = row.length;
  const sampler = createSampler(
    { ...parameters, topNTokens: vocabSize, seed: 1 },
    { vocabSize, maxTopNTokens: vocabSize },
  );
  const sequence = sampler.createSequence(history);
  const result = sampler.sample(Float32Array.from(row), sequence);
  const logprobs = new Float64Array(vocabSize).fill(-Infinity);
  for (const top of result.topTokens) logprobs[top.id] = top.logprob;
  return { logprobs, result };
}

function expectSameDistribution(actual: Float64Array, expectedRow: Float32Array, message: string) {
  const expected = logSoftmax(expectedRow);
  for (let i = 0; i < actual.length; i++) {
    if (expected[i] === -Infinity) expect(actual[i], `${message}: token ${i} should be removed`).toBe(-Infinity);
    else {
      expect(actual[i], `${message}: token ${i} should be kept`).toBeGreaterThan(-Infinity);
      expect(Math.abs(actual[i]! - expected[i]!), `${message}: token ${i} logprob`).toBeLessThan(1e-5);
    }
  }
}

const goldenParameters: Record<string, (p: Record<string, number>) => SamplingParameters> = {
  temperature: (p) => ({ temperature: p.temperature! }),
  top_k: (p) => ({ topK: p.top_k! }),
  top_p: (p) => ({ topP: p.top_p! }),
  min_p: (p) => ({ minP: p.min_p! }),
  typical_p: (p) => ({ typicalP: p.typical_p! }),
  repetition_penalty: (p) => ({ repetitionPenalty: p.repetition_penalty! }),
  no_repeat_ngram: (p) => ({ noRepeatNgramSize: p.no_repeat_ngram_size! }),
};

/** Rows with ties and a spread of a few units, as float32. */
const rowArbitrary = (minLength = 2, maxLength = 200) =>
  fc
    .array(fc.integer({ min: -64, max: 64 }), { minLength, maxLength })
    .map((values) => Float32Array.from(values, (v) => v / 8));

const stageArbitrary = fc.record({
  temperature: fc.option(fc.double({ min: 0.05, max: 4, noNaN: true }), { nil: undefined }),
  topK: fc.option(fc.integer({ min: 1, max: 60 }), { nil: undefined }),
  topP: fc.option(fc.double({ min: 0.01, max: 0.99, noNaN: true }), { nil: undefined }),
  minP: fc.option(fc.double({ min: 0.001, max: 0.9, noNaN: true }), { nil: undefined }),
  typicalP: fc.option(fc.double({ min: 0.01, max: 0.99, noNaN: true }), { nil: undefined }),
});

function applyDense(row: Float32Array, p: SamplingParameters, order: readonly WarperStage[]): Float32Array {
  const out = Float32Array.from(row);
  for (const stage of order) {
    if (stage === 'temperature' && p.temperature !== undefined) applyTemperature(out, p.temperature);
    if (stage === 'top_k' && p.topK !== undefined) applyTopK(out, p.topK);
    if (stage === 'top_p' && p.topP !== undefined) applyTopP(out, p.topP);
    if (stage === 'min_p' && p.minP !== undefined) applyMinP(out, p.minP);
    if (stage === 'typical_p' && p.typicalP !== undefined) applyTypicalP(out, p.typicalP);
  }
  return out;
}

/** True when some boundary decision of the dense chain is within float rounding of its threshold. */
function nearBoundary(row: Float32Array, p: SamplingParameters, order: readonly WarperStage[]): boolean {
  const current = Float32Array.from(row);
  for (const stage of order) {
    const probabilities = Array.from(logSoftmax(current), Math.exp);
    const ranked = Array.from(probabilities.keys()).sort((a, b) => probabilities[b]! - probabilities[a]! || b - a);
    if (stage === 'top_p' && p.topP !== undefined) {
      let above = 0;
      for (const id of ranked) {
        if (Math.abs(above - p.topP) < 1e-5) return true;
        above += probabilities[id]!;
      }
    }
    if (stage === 'min_p' && p.minP !== undefined) {
      const max = Math.max(...probabilities);
      if (probabilities.some((q) => q > 0 && Math.abs(q - p.minP! * max) < 1e-6 * max)) return true;
    }
    if (stage === 'typical_p' && p.typicalP !== undefined) {
      const entropy = -probabilities.reduce((sum, q) => (q > 0 ? sum + q * Math.log(q) : sum), 0);
      const distance = probabilities.map((q) => (q > 0 ? Math.abs(-Math.log(q) - entropy) : Infinity));
      const byDistance = Array.from(distance.keys()).sort((a, b) => distance[a]! - distance[b]! || a - b);
      let cumulative = 0;
      for (const id of byDistance) {
        cumulative += probabilities[id]!;
        if (Math.abs(cumulative - p.typicalP) < 1e-5) return true;
      }
      for (let i = 0; i < distance.length; i++)
        for (let j = i + 1; j < distance.length; j++)
          if (distance[i] !== distance[j] && Math.abs(distance[i]! - distance[j]!) < 1e-6) return true;
    }
    applyDense(current, p, [stage]).forEach((v, i) => (current[i] = v));
  }
  return false;
}

/** Every sampler test runs twice: on the WebAssembly SIMD kernels and on the JS paths. */
describe.each([
  ['WebAssembly SIMD kernels', true],
  ['JS paths', false],
] as const)('%s', (_path, wasm) => {
  beforeAll(() => {
    expect(setWasmKernelsEnabled(wasm)).toBe(wasm);
  });
  afterAll(() => {
    setWasmKernelsEnabled(process.env.GEN_SAMPLING_WASM === undefined);
  });

  describe('fused sampler on the transformers golden vectors', () => {
    for (const [index, testCase] of golden.cases.entries()) {
      it(`${testCase.processor} ${JSON.stringify(testCase.params)} V=${testCase.logits.length} #${index}`, () => {
        const parameters = goldenParameters[testCase.processor]!(testCase.params);
        const { logprobs } = processedDistribution(parameters, Float32Array.from(testCase.logits), testCase.input_ids);
        const expectedRow = Float32Array.from(testCase.expected, (v) => (v === null ? -Infinity : v));
        expectSameDistribution(logprobs, expectedRow, `case ${index}`);
      });
    }
  });

  describe('fused sampler equals the dense processor chain', () => {
    test.prop([rowArbitrary(), stageArbitrary], { numRuns: 400, seed: 7 })('default (TGI) order', (row, stages) => {
      const order: WarperStage[] = ['temperature', 'top_k', 'top_p', 'min_p', 'typical_p'];
      fc.pre(!nearBoundary(row, stages, order));
      const parameters = Object.fromEntries(Object.entries(stages).filter(([, v]) => v !== undefined));
      const { logprobs } = processedDistribution({ ...parameters, doSample: true }, row);
      expectSameDistribution(logprobs, applyDense(row, stages, order), JSON.stringify(stages));
    });

    test.prop(
      [
        rowArbitrary(),
        stageArbitrary,
        fc.shuffledSubarray(['temperature', 'top_k', 'top_p', 'min_p', 'typical_p'] as WarperStage[], {
          minLength: 5,
          maxLength: 5,
        }),
      ],
      { numRuns: 300, seed: 11 },
    )('any explicit order', (row, stages, order) => {
      fc.pre(!nearBoundary(row, stages, order));
      const parameters = Object.fromEntries(Object.entries(stages).filter(([, v]) => v !== undefined));
      const { logprobs } = processedDistribution({ ...parameters, doSample: true, order }, row);
      expectSameDistribution(logprobs, applyDense(row, stages, order), `${order.join(',')} ${JSON.stringify(stages)}`);
    });

    test.prop(
      [
        rowArbitrary(4, 120),
        fc.array(fc.nat(119), { maxLength: 40 }),
        fc.array(fc.nat(119), { maxLength: 20 }),
        fc.double({ min: 0.5, max: 2, noNaN: true }),
        fc.double({ min: -2, max: 2, noNaN: true }),
        fc.double({ min: -2, max: 2, noNaN: true }),
        fc.dictionary(fc.nat(3).map(String), fc.integer({ min: -100, max: 100 })),
      ],
      { numRuns: 200, seed: 3 },
    )(
      'penalties and bias (greedy processed distribution)',
      (row, prompt, generated, repetition, frequency, presence, bias) => {
        const vocabSize = row.length;
        const promptIds = prompt.filter((t) => t < vocabSize);
        const generatedIds = generated.filter((t) => t < vocabSize);
        const sampler = createSampler(
          {
            repetitionPenalty: repetition,
            frequencyPenalty: frequency,
            presencePenalty: presence,
            logitBias: bias,
            topNTokens: vocabSize,
          },
          { vocabSize, maxTopNTokens: vocabSize },
        );
        const sequence = sampler.createSequence(promptIds);
        for (const t of generatedIds) sequence.accept(t);
        const result = sampler.sample(Float32Array.from(row), sequence);
        const expected = Float32Array.from(row);
        applyRepetitionPenalty(expected, [...promptIds, ...generatedIds], repetition);
        applyFrequencyPresencePenalty(expected, generatedIds, frequency, presence);
        applyLogitBias(expected, new Map(Object.entries(bias).map(([k, v]) => [Number(k), v])));
        const logprobs = new Float64Array(vocabSize).fill(-Infinity);
        for (const top of result.topTokens) logprobs[top.id] = top.logprob;
        expectSameDistribution(logprobs, expected, 'penalties');
        let argmax = 0;
        for (let i = 1; i < vocabSize; i++) if (expected[i]! > expected[argmax]!) argmax = i;
        expect(result.tokenId).toBe(argmax);
      },
    );
  });

  describe('selection', () => {
    it('greedy picks the lowest id among equal maxima', () => {
      const sampler = createSampler({}, { vocabSize: 5 });
      const result = sampler.sample(Float32Array.from([1, 3, 0, 3, 3]), sampler.createSequence());
      expect(result.tokenId).toBe(1);
      expect(result.logprob).toBeCloseTo(Math.log(Math.exp(3) / (Math.exp(1) + 3 * Math.exp(3) + 1)), 6);
    });

    it('is greedy unless do_sample or a warper is set (TGI rule)', () => {
      expect(createSampler({}, { vocabSize: 4 }).doSample).toBe(false);
      expect(createSampler({ temperature: 1 }, { vocabSize: 4 }).doSample).toBe(false);
      expect(createSampler({ temperature: 0.7 }, { vocabSize: 4 }).doSample).toBe(true);
      expect(createSampler({ topP: 0.9, doSample: false }, { vocabSize: 4 }).doSample).toBe(true);
      expect(createSampler({ doSample: true }, { vocabSize: 4 }).doSample).toBe(true);
    });

    it('draws match the processed probabilities (chi-square, fixed seeds)', () => {
      const row = Float32Array.from([2, 1.5, 1, 0.5, 0, -0.5, -1, -3, -8, 0.2]);
      const parameters: SamplingParameters = { temperature: 0.9, topK: 8, topP: 0.97 };
      const { logprobs } = processedDistribution(parameters, row);
      const probabilities = Array.from(logprobs, Math.exp);
      const draws = 40_000;
      const counts = new Array<number>(row.length).fill(0);
      for (let seed = 0; seed < draws; seed++) {
        const sampler = createSampler({ ...parameters, seed }, { vocabSize: row.length });
        counts[sampler.sample(Float32Array.from(row), sampler.createSequence()).tokenId]!++;
      }
      let chiSquare = 0;
      let cells = 0;
      for (let i = 0; i < row.length; i++) {
        if (probabilities[i] === 0) {
          expect(counts[i], `token ${i} was filtered and must never be drawn`).toBe(0);
          continue;
        }
        const expected = probabilities[i]! * draws;
        chiSquare += (counts[i]! - expected) ** 2 / expected;
        cells++;
      }
      // 99.9% quantile of chi-square with (cells - 1) <= 7 degrees of freedom is 24.3.
      expect(cells).toBeGreaterThanOrEqual(5);
      expect(chiSquare).toBeLessThan(24.3);
    });

    it('draws over the whole vocabulary (no truncation) match softmax(s / T)', () => {
      const row = Float32Array.from([0.3, -1, 2, 0, 1.1, -0.4]);
      const draws = 30_000;
      const counts = new Array<number>(row.length).fill(0);
      for (let seed = 0; seed < draws; seed++) {
        const sampler = createSampler({ temperature: 1.7, seed }, { vocabSize: row.length });
        counts[sampler.sample(Float32Array.from(row), sampler.createSequence()).tokenId]!++;
      }
      const scaled = Float32Array.from(row, (v) => v / 1.7);
      const probabilities = Array.from(logSoftmax(scaled), Math.exp);
      let chiSquare = 0;
      for (let i = 0; i < row.length; i++)
        chiSquare += (counts[i]! - probabilities[i]! * draws) ** 2 / (probabilities[i]! * draws);
      expect(chiSquare).toBeLessThan(20.5); // 99.9% quantile, 5 degrees of freedom
    });

    test.prop(
      [
        fc.array(fc.integer({ min: 0, max: 2 ** 40 }), { minLength: 2, maxLength: 16 }),
        fc.integer({ min: 0, max: 2 ** 32 }),
      ],
      {
        numRuns: 50,
        seed: 5,
      },
    )('a seeded draw is reproducible and independent of the other rows and their order', (seeds, permutationSeed) => {
      const vocabSize = 300;
      const base = new Float32Array(vocabSize);
      let state = 12345;
      for (let i = 0; i < vocabSize; i++) {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0;
        base[i] = (state / 2 ** 32) * 6 - 3;
      }
      const make = () =>
        seeds.map((seed, index) => {
          const sampler = createSampler(
            { seed, temperature: 0.8, topP: 0.95, topK: index % 2 === 0 ? 40 : 0 },
            { vocabSize },
          );
          return { sampler, sequence: sampler.createSequence([1, 2, 3]) };
        });
      const alone = make().map((row) => row.sampler.sample(Float32Array.from(base), row.sequence).tokenId);
      const rows = make();
      const order = rows.map((_, i) => i);
      let s = permutationSeed;
      for (let i = order.length - 1; i > 0; i--) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        const j = s % (i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const batch = new Float32Array(rows.length * vocabSize);
      for (let r = 0; r < rows.length; r++) batch.set(base, r * vocabSize);
      const results: SampleResult[] = sampleBatch(
        batch,
        vocabSize,
        order.map((i) => rows[i]!),
      );
      order.forEach((rowIndex, position) => expect(results[position]!.tokenId).toBe(alone[rowIndex]));
    });

    it('reports its random seed, and the same seed reproduces a whole generation', () => {
      const vocabSize = 50;
      const run = (seed?: number) => {
        const sampler = createSampler({ temperature: 1.2, ...(seed === undefined ? {} : { seed }) }, { vocabSize });
        const sequence = sampler.createSequence([3]);
        const tokens: number[] = [];
        for (let step = 0; step < 30; step++) {
          const row = Float32Array.from({ length: vocabSize }, (_, i) => Math.sin(i * 1.3 + step));
          const token = sampler.sample(row, sequence).tokenId;
          sequence.accept(token);
          tokens.push(token);
        }
        return { seed: sampler.seed, tokens };
      };
      const first = run();
      expect(Number.isSafeInteger(first.seed)).toBe(true);
      expect(run(first.seed).tokens).toEqual(first.tokens);
      expect(run(first.seed + 1).tokens).not.toEqual(first.tokens);
    });

    it('computes raw logprobs and raw top tokens when asked', () => {
      const row = Float32Array.from([1, 2, 3, 4]);
      const sampler = createSampler(
        { topK: 2, temperature: 0.5, topNTokens: 2 },
        { vocabSize: 4, rawLogprobs: true, topTokensFrom: 'raw' },
      );
      const result = sampler.sample(Float32Array.from(row), sampler.createSequence());
      const raw = logSoftmax(row);
      expect(result.rawLogprob).toBeCloseTo(raw[result.tokenId]!, 6);
      expect(result.topTokens.map((t) => t.id)).toEqual([3, 2]);
      expect(result.topTokens[0]!.logprob).toBeCloseTo(raw[3]!, 6);
    });

    it('top tokens include ties with the n-th and exclude -Infinity', () => {
      const sampler = createSampler({ topNTokens: 2 }, { vocabSize: 6 });
      const result = sampler.sample(Float32Array.from([0, 5, 3, 3, -Infinity, 3]), sampler.createSequence());
      expect(result.topTokens.map((t) => t.id).sort()).toEqual([1, 2, 3, 5]);
      const few = createSampler({ topNTokens: 5 }, { vocabSize: 3 });
      expect(few.sample(Float32Array.from([0, -Infinity, -Infinity]), few.createSequence()).topTokens).toHaveLength(1);
    });

    it('min_new_tokens suppresses EOS, then lets it through', () => {
      const sampler = createSampler({ minNewTokens: 2 }, { vocabSize: 3, eosTokenIds: [2] });
      const sequence = sampler.createSequence([0]);
      const row = () => Float32Array.from([0, 1, 5]);
      expect(sampler.sample(row(), sequence).tokenId).toBe(1);
      sequence.accept(1);
      expect(sampler.sample(row(), sequence).tokenId).toBe(1);
      sequence.accept(1);
      expect(sampler.sample(row(), sequence).tokenId).toBe(2);
    });

    it('suppress and allowed lists', () => {
      const suppress = createSampler({ suppressTokens: [2] }, { vocabSize: 3 });
      expect(suppress.sample(Float32Array.from([0, 1, 5]), suppress.createSequence()).tokenId).toBe(1);
      const allowed = createSampler({ allowedTokens: [0] }, { vocabSize: 3 });
      expect(allowed.sample(Float32Array.from([0, 1, 5]), allowed.createSequence()).tokenId).toBe(0);
    });

    it('no_repeat_ngram bans the continuation of a repeated n-gram', () => {
      const sampler = createSampler({ noRepeatNgramSize: 2 }, { vocabSize: 4 });
      const sequence = sampler.createSequence([1, 3, 2, 1]);
      expect(sampler.sample(Float32Array.from([0, 0, 0, 9]), sequence).tokenId).not.toBe(3);
    });

    it('fails clearly when no token can be chosen, and on a wrong row length', () => {
      const sampler = createSampler({ temperature: 0.5 }, { vocabSize: 3 });
      expect(() =>
        sampler.sample(Float32Array.from([-Infinity, Number.NaN, -Infinity]), sampler.createSequence()),
      ).toThrow(SamplingError);
      expect(() => sampler.sample(new Float32Array(4), sampler.createSequence())).toThrow(/expected a row of 3 logits/);
    });

    test.prop([rowArbitrary(1, 100), stageArbitrary], { numRuns: 200, seed: 9 })(
      'never returns NaN or an empty choice',
      (row, stages) => {
        const parameters = Object.fromEntries(Object.entries(stages).filter(([, v]) => v !== undefined));
        const sampler = createSampler(
          { ...parameters, doSample: true, topNTokens: 3 },
          { vocabSize: row.length, rawLogprobs: true },
        );
        const result = sampler.sample(Float32Array.from(row), sampler.createSequence());
        expect(result.tokenId).toBeGreaterThanOrEqual(0);
        expect(result.tokenId).toBeLessThan(row.length);
        expect(Number.isNaN(result.logprob)).toBe(false);
        expect(result.logprob).toBeLessThanOrEqual(1e-9);
        expect(Number.isNaN(result.rawLogprob)).toBe(false);
        for (const top of result.topTokens) expect(Number.isNaN(top.logprob)).toBe(false);
      },
    );
  });
});

describe('logprobs: false', () => {
  for (const wasm of [true, false]) {
    test.prop([fc.array(fc.float({ min: -20, max: 20, noNaN: true }), { minLength: 2, maxLength: 300 })])(
      `greedy picks the same token and skips the logprob (${wasm ? 'SIMD kernels' : 'plain JavaScript'})`,
      (values) => {
        setWasmKernelsEnabled(wasm);
        try {
          const vocabSize = values.length;
          const full = createSampler({}, { vocabSize });
          const lean = createSampler({}, { vocabSize, logprobs: false });
          const a = full.sample(Float32Array.from(values), full.createSequence([0]));
          const b = lean.sample(Float32Array.from(values), lean.createSequence([0]));
          expect(b.tokenId).toBe(a.tokenId);
          expect(Number.isFinite(a.logprob)).toBe(true);
          expect(b.logprob).toBeNaN();
          // Asking for top tokens still computes the logprob.
          const top = createSampler({ topNTokens: 2 }, { vocabSize, logprobs: false });
          expect(top.sample(Float32Array.from(values), top.createSequence([0])).logprob).toBe(a.logprob);
        } finally {
          setWasmKernelsEnabled(process.env.GEN_SAMPLING_WASM === undefined);
        }
      },
    );
  }
});

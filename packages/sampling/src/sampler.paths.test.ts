import { afterAll, describe, expect, it } from 'vitest';

import { highestFloat32, lowestFloat32 } from './float32.js';
import type { SamplingParameters } from './parameters.js';
import { createSampler, type SampleResult, type SamplerOptions } from './sampler.js';
import { setWasmKernelsEnabled } from './wasm/kernels.js';

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

/** A model-like row: noise, a heavy upper tail, a few peaks (confident or diffuse), some ties and -Infinity. */
function modelRow(vocabSize: number, seed: number): Float32Array {
  const next = random(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  const sigma = 2 + (seed % 3) * 0.5;
  const row = Float32Array.from({ length: vocabSize }, () => normal() * sigma);
  for (let j = 0; j < vocabSize / 200; j++) row[Math.floor(next() * vocabSize)]! += Math.abs(normal()) * sigma + sigma;
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  const top = max + (seed % 4 === 3 ? next() * 2 : 4 + next() * 6);
  for (let p = 0; p < 3; p++) row[Math.floor(next() * vocabSize)] = p === 0 ? top : top - next() * 3;
  for (let j = 0; j < 20; j++) row[Math.floor(next() * vocabSize)] = -Infinity;
  for (let j = 0; j < 20; j++) row[Math.floor(next() * vocabSize)] = row[Math.floor(next() * vocabSize)]!;
  return row;
}

function sampleWith(wasm: boolean, parameters: SamplingParameters, options: SamplerOptions, row: Float32Array) {
  setWasmKernelsEnabled(wasm);
  const sampler = createSampler(parameters, options);
  const results: SampleResult[] = [];
  const sequence = sampler.createSequence([1, 2, 3]);
  for (let step = 0; step < 8; step++) {
    results.push(sampler.sample(Float32Array.from(row), sequence));
    sequence.accept(results.at(-1)!.tokenId);
  }
  return results;
}

const SCENARIOS: { name: string; parameters: SamplingParameters; options?: Partial<SamplerOptions> }[] = [
  { name: 'greedy + top-5', parameters: { topNTokens: 5 } },
  { name: 'greedy, raw logprobs and raw top-3', parameters: { topNTokens: 3 }, options: { topTokensFrom: 'raw' } },
  { name: 'temperature only', parameters: { temperature: 0.7, topNTokens: 4 } },
  { name: 'top_p 0.9', parameters: { topP: 0.9, topNTokens: 5 } },
  {
    name: 'top_p 0.95, T 0.8, raw logprobs',
    parameters: { topP: 0.95, temperature: 0.8 },
    options: { rawLogprobs: true },
  },
  { name: 'typical_p 0.9', parameters: { typicalP: 0.9, topNTokens: 5 } },
  { name: 'typical_p 0.5, T 1.3', parameters: { typicalP: 0.5, temperature: 1.3, topNTokens: 2 } },
  { name: 'min_p 0.05', parameters: { minP: 0.05, topNTokens: 5 } },
  { name: 'top_p 0.9 then min_p 0.1', parameters: { topP: 0.9, minP: 0.1, topNTokens: 3 } },
  { name: 'typical 0.8 then min_p 0.01', parameters: { typicalP: 0.8, minP: 0.01, order: ['typical_p', 'min_p'] } },
  { name: 'min_p then top_p', parameters: { minP: 0.02, topP: 0.8, order: ['min_p', 'top_p'], topNTokens: 2 } },
  { name: 'TGI-style', parameters: { repetitionPenalty: 1.1, temperature: 0.8, topK: 50, topP: 0.9, topNTokens: 2 } },
];

describe('the SIMD kernels and the JS paths agree', () => {
  afterAll(() => setWasmKernelsEnabled(process.env.GEN_SAMPLING_WASM === undefined));

  for (const vocabSize of [32000, 151936]) {
    for (const scenario of SCENARIOS) {
      it(`${scenario.name}, V = ${vocabSize}`, () => {
        for (let r = 0; r < 4; r++) {
          const row = modelRow(vocabSize, vocabSize + r);
          const options = { vocabSize, ...scenario.options };
          const parameters = { seed: 100 + r, ...scenario.parameters };
          const simd = sampleWith(true, parameters, options, row);
          const js = sampleWith(false, parameters, options, row);
          for (let step = 0; step < simd.length; step++) {
            const a = simd[step]!;
            const b = js[step]!;
            const label = `row ${r} step ${step}`;
            expect(a.tokenId, label).toBe(b.tokenId);
            expect(Math.abs(a.logprob - b.logprob), label).toBeLessThanOrEqual(1e-5);
            if (Number.isNaN(b.rawLogprob)) expect(a.rawLogprob).toBeNaN();
            else expect(Math.abs(a.rawLogprob - b.rawLogprob), label).toBeLessThanOrEqual(1e-5);
            expect(
              a.topTokens.map((t) => t.id),
              label,
            ).toEqual(b.topTokens.map((t) => t.id));
            a.topTokens.forEach((t, j) => expect(Math.abs(t.logprob - b.topTokens[j]!.logprob)).toBeLessThan(1e-5));
          }
        }
      });
    }
  }
});

describe('float32 bounds of a predicate', () => {
  it('finds the exact float32 threshold of a float64 test', () => {
    const next = random(3);
    for (let trial = 0; trial < 200; trial++) {
      const max = Math.fround((next() - 0.5) * 40);
      const scale = 1 / (0.1 + next() * 3);
      const logMinP = Math.log(next());
      const keep = (s: number) => (s - max) * scale >= logMinP;
      const lo = lowestFloat32(keep, max);
      expect(keep(lo)).toBe(true);
      const below = new Float32Array([lo]);
      const bits = new Int32Array(below.buffer);
      bits[0] = lo > 0 ? bits[0]! - 1 : bits[0]! + 1; // the next float32 down
      expect(keep(below[0]!)).toBe(false);
    }
  });

  it('handles infinite ends and intervals', () => {
    expect(lowestFloat32(() => true, 0)).toBe(-Infinity);
    expect(highestFloat32(() => true, 0)).toBe(Infinity);
    const inside = (s: number) => Math.abs(s - 1.5) <= 0.25;
    expect(lowestFloat32(inside, 1.5)).toBe(1.25);
    expect(highestFloat32(inside, 1.5)).toBe(1.75);
    expect(lowestFloat32((s) => s >= 0, 3)).toBe(-0);
  });
});

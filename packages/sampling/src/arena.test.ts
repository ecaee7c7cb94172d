import { afterEach, describe, expect, it, vi } from 'vitest';

import { createLogitsArena } from './arena.js';
import { SamplingError } from './errors.js';
import type { SamplingParameters } from './parameters.js';
import { createSampler, type SampleResult, type SamplerOptions } from './sampler.js';
import { WasmKernels, setWasmKernelsEnabled } from './wasm/kernels.js';

/** A seeded row of model-like logits (normal noise with a few clear peaks and a tie). */
function row(vocabSize: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const values = Float32Array.from({ length: vocabSize }, () => (next() + next() + next() - 1.5) * 4);
  values[Math.floor(next() * vocabSize)] = 9;
  values[Math.floor(next() * vocabSize)] = 8.5;
  values[Math.floor(next() * vocabSize)] = 8.5;
  return values;
}

type Outcome = Pick<SampleResult, 'tokenId' | 'logprob' | 'topTokens'>;

/** Three steps of one sequence, each from its own row: through arena rows, or through plain arrays. */
function steps(parameters: SamplingParameters, options: SamplerOptions, rowsOf: (step: number) => Float32Array) {
  const sampler = createSampler(parameters, options);
  const sequence = sampler.createSequence([1, 2, 3]);
  const outcomes: Outcome[] = [];
  for (let step = 0; step < 3; step++) {
    const result = sampler.sample(rowsOf(step), sequence);
    outcomes.push({ tokenId: result.tokenId, logprob: result.logprob, topTokens: [...result.topTokens] });
    sequence.accept(result.tokenId);
  }
  return outcomes;
}

function compare(vocabSize: number, parameters: SamplingParameters, options: Partial<SamplerOptions> = {}) {
  const arena = createLogitsArena({ vocabSize, maxTopNTokens: 10 });
  const inArena = steps(parameters, { vocabSize, maxTopNTokens: 10, ...options, arena }, (step) => {
    const rows = arena.rows(2)!;
    rows.set(row(vocabSize, 100 + step), vocabSize); // the second row, as a batch's row 1
    return rows.subarray(vocabSize, 2 * vocabSize);
  });
  const plain = steps(parameters, { vocabSize, maxTopNTokens: 10, ...options }, (step) => row(vocabSize, 100 + step));
  expect(inArena).toEqual(plain);
  return inArena;
}

afterEach(() => {
  setWasmKernelsEnabled(true);
  vi.restoreAllMocks();
});

describe('createLogitsArena', () => {
  it('hands out rows in WebAssembly memory, re-viewed when more are asked for', () => {
    const arena = createLogitsArena({ vocabSize: 32000 });
    const one = arena.rows(1)!;
    expect(one).toHaveLength(32000);
    one[5] = 1.5;
    const many = arena.rows(8)!;
    expect(many).toHaveLength(8 * 32000);
    expect(many[5]).toBe(1.5); // growing keeps what was written
    expect(arena.rows(1)).toHaveLength(32000);
  });

  it('greedy steps read arena rows in place and agree with plain rows (logprobs, top tokens, none)', () => {
    const load = vi.spyOn(WasmKernels.prototype, 'load');
    const vocabSize = 32000;
    const arena = createLogitsArena({ vocabSize });
    const sampler = createSampler({}, { vocabSize, arena });
    arena.rows(1)!.set(row(vocabSize, 9));
    sampler.sample(arena.rows(1)!, sampler.createSequence());
    expect(load).not.toHaveBeenCalled(); // no copy into the scratch row
    load.mockRestore();
    compare(32000, {});
    compare(32000, { topNTokens: 5 });
    compare(32000, {}, { logprobs: false });
    const [first] = compare(32000, { repetitionPenalty: 1.3, topNTokens: 3 }, { rawLogprobs: true });
    expect(first!.topTokens).toHaveLength(3);
  });

  it('falls back to copying rows whose length is not a multiple of 16, with the same results', () => {
    const load = vi.spyOn(WasmKernels.prototype, 'load');
    compare(1000, { topNTokens: 2 });
    expect(load).toHaveBeenCalled();
  });

  it('sampled steps from arena rows draw the same tokens as from plain rows', () => {
    compare(32000, { doSample: true, temperature: 0.8, topP: 0.9, seed: 7 });
    compare(32000, { doSample: true, topK: 20, seed: 11, topNTokens: 4 });
  });

  it('keeps a row readable when a sampler grows the memory under it', () => {
    const vocabSize = 32000;
    const arena = createLogitsArena({ vocabSize, maxTopNTokens: 0 });
    const rows = arena.rows(1)!;
    rows.set(row(vocabSize, 3));
    // 20,000 top tokens need 160 KB more scratch than the arena was laid out for: the memory grows mid-sample.
    const parameters = { topNTokens: 20000 };
    const sampler = createSampler(parameters, { vocabSize, maxTopNTokens: 20000, arena });
    const got = sampler.sample(rows, sampler.createSequence());
    expect(rows).toHaveLength(0); // the caller's view was detached by the growth
    const want = createSampler(parameters, { vocabSize, maxTopNTokens: 20000 }).sample(
      row(vocabSize, 3),
      createSampler(parameters, { vocabSize, maxTopNTokens: 20000 }).createSequence(),
    );
    expect(got.tokenId).toBe(want.tokenId);
    expect(got.logprob).toBe(want.logprob);
    expect(got.topTokens.slice(0, 50)).toEqual(want.topTokens.slice(0, 50));
    expect(arena.rows(1)).toHaveLength(vocabSize); // and the arena hands out a fresh view
  });

  it('gives no rows while the kernels are off; its samplers then run the JavaScript paths', () => {
    const arena = createLogitsArena({ vocabSize: 64 });
    setWasmKernelsEnabled(false);
    expect(arena.rows(1)).toBeUndefined();
    const sampler = createSampler({}, { vocabSize: 64, arena });
    const logits = row(64, 1);
    const best = logits.indexOf(Math.max(...logits));
    expect(sampler.sample(logits, sampler.createSequence()).tokenId).toBe(best);
  });

  it('rejects bad sizes, a foreign arena and a vocabulary mismatch', () => {
    expect(() => createLogitsArena({ vocabSize: 0 })).toThrow(SamplingError);
    expect(() => createLogitsArena({ vocabSize: 10, maxTopNTokens: -1 })).toThrow(/maxTopNTokens/);
    expect(() => createLogitsArena({ vocabSize: 10 }).rows(1.5)).toThrow(/count/);
    const arena = createLogitsArena({ vocabSize: 10 });
    expect(() => createSampler({}, { vocabSize: 11, arena })).toThrow(/10 logits, the sampler 11/);
    const foreign = { vocabSize: 10, rows: () => undefined };
    expect(() => createSampler({}, { vocabSize: 10, arena: foreign })).toThrow(/createLogitsArena/);
  });
});

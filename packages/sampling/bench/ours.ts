/**
 * The @gen/sampling side of the benchmark: the scenarios, and the timed loops that run them.
 */
import { performance } from 'node:perf_hooks';

import {
  createSampleResult,
  createSampler,
  sampleBatch,
  type BatchRow,
  type SampleResult,
  type SamplingParameters,
  type SequenceState,
} from '@gen/sampling';

import { maxOf, sumExpShifted } from '../src/fast-math.js';
import { wasmKernels } from '../src/wasm/kernels.js';
import { makeHistory } from './logits.js';
import { measureSync, summarize, type Budget, type Stats } from './measure.js';

/** Length of the token history the penalties see. */
export const HISTORY_LENGTH = 512;
/** Rows in the batch scenario. */
export const BATCH_ROWS = 16;

export type ScenarioId =
  'greedy-top5' | 'tgi' | 'top-p-t1' | 'top-p-t08' | 'typical-p' | 'min-p' | 'watermark' | 'batch16';

export interface Scenario {
  id: ScenarioId;
  label: string;
  parameters: SamplingParameters;
}

const TGI: SamplingParameters = { repetitionPenalty: 1.1, temperature: 0.8, topK: 50, topP: 0.9, seed: 42 };

export const SCENARIOS: readonly Scenario[] = [
  { id: 'greedy-top5', label: 'greedy + chosen logprob + top-5', parameters: { topNTokens: 5 } },
  { id: 'tgi', label: 'TGI-style: rep 1.1 (512 hist), T 0.8, top_k 50, top_p 0.9', parameters: TGI },
  { id: 'top-p-t1', label: 'top_p 0.9, no top_k, T 1', parameters: { topP: 0.9, seed: 42 } },
  { id: 'top-p-t08', label: 'top_p 0.9, no top_k, T 0.8', parameters: { topP: 0.9, temperature: 0.8, seed: 42 } },
  { id: 'typical-p', label: 'typical_p 0.9', parameters: { typicalP: 0.9, seed: 42 } },
  { id: 'min-p', label: 'min_p 0.05', parameters: { minP: 0.05, seed: 42 } },
  { id: 'watermark', label: 'greedy + watermark (greenlist cached)', parameters: { watermark: true } },
  { id: 'batch16', label: `sampleBatch, ${BATCH_ROWS} rows TGI-style (per batch)`, parameters: TGI },
];

/** The TGI-style parameters, for the heap check. */
export const TGI_PARAMETERS = TGI;

/** A fresh working row per iteration: copies pool row `i mod n` into `work` (untimed). */
function rowCopier(pool: readonly Float32Array[], work: Float32Array): (i: number) => void {
  return (i) => work.set(pool[i % pool.length]!);
}

/** Cost of the per-iteration copy alone (reported, never added to the sampling figures). */
export function measureCopy(pool: readonly Float32Array[], budget: Budget): Stats {
  const work = new Float32Array(pool[0]!.length);
  return measureSync(
    () => undefined,
    (i) => work.set(pool[i % pool.length]!),
    budget,
  );
}

/** Times one single-row scenario. `out` is reused, as a server would. */
export function measureScenario(scenario: Scenario, pool: readonly Float32Array[], budget: Budget): Stats {
  const vocabSize = pool[0]!.length;
  const sampler = createSampler(scenario.parameters, { vocabSize });
  const sequence = sampler.createSequence(makeHistory(vocabSize, HISTORY_LENGTH, 1));
  const work = new Float32Array(vocabSize);
  const out = createSampleResult();
  return measureSync(rowCopier(pool, work), () => sampler.sample(work, sequence, out), budget);
}

/** Watermark cost when the greenlist is not cached yet: the very first call, and the median of later misses. */
export interface WatermarkCold {
  /** First sample() ever with the watermark at this vocabulary size (greenlist computed, code not yet optimized). */
  firstCallMicros: number;
  /** Median over `misses` calls, each with a previous token never seen before (after warm-up). */
  missMedianMicros: number;
  misses: number;
}

/**
 * Measures the uncached watermark cost; call before {@link measureScenario} for the watermark so the first call is
 * really the first at this vocabulary size.
 */
export function measureWatermarkCold(pool: readonly Float32Array[], misses: number): WatermarkCold {
  const vocabSize = pool[0]!.length;
  const sampler = createSampler({ watermark: true }, { vocabSize });
  const history = makeHistory(vocabSize, HISTORY_LENGTH, 1);
  const work = new Float32Array(vocabSize);
  const out = createSampleResult();
  const timeOne = (lastToken: number, rowIndex: number): number => {
    const sequence = sampler.createSequence([...history, lastToken]);
    work.set(pool[rowIndex % pool.length]!);
    const start = performance.now();
    sampler.sample(work, sequence, out);
    return (performance.now() - start) * 1000;
  };
  // Previous tokens from the top of the vocabulary: the Zipf-like histories almost never reach them.
  let next = vocabSize - 1;
  const firstCallMicros = timeOne(next--, 0);
  const samples: number[] = [];
  for (let j = 0; j < misses; j++) samples.push(timeOne(next--, j + 1));
  return { firstCallMicros, missMedianMicros: summarize(samples).median, misses };
}

/** The batch scenario: `BATCH_ROWS` requests, each with its own sampler (seed) and history. */
export function measureBatch(scenario: Scenario, pool: readonly Float32Array[], budget: Budget): Stats {
  const vocabSize = pool[0]!.length;
  const rows: BatchRow[] = [];
  for (let r = 0; r < BATCH_ROWS; r++) {
    const sampler = createSampler({ ...scenario.parameters, seed: 1000 + r }, { vocabSize });
    rows.push({ sampler, sequence: sampler.createSequence(makeHistory(vocabSize, HISTORY_LENGTH, 100 + r)) });
  }
  const source = new Float32Array(BATCH_ROWS * vocabSize);
  for (let r = 0; r < BATCH_ROWS; r++) source.set(pool[r % pool.length]!, r * vocabSize);
  const work = new Float32Array(source.length);
  const results: SampleResult[] = [];
  return measureSync(
    () => work.set(source),
    () => sampleBatch(work, vocabSize, rows, results),
    budget,
  );
}

/**
 * Same work as {@link measureBatch} without `sampleBatch`: 16 `sample()` calls on subarrays of the same freshly
 * copied `[16, V]` block. Tells the cost of `sampleBatch` itself apart from the memory effects of a 16-row block.
 */
export function measureBatchManual(scenario: Scenario, pool: readonly Float32Array[], budget: Budget): Stats {
  const vocabSize = pool[0]!.length;
  const samplers = Array.from({ length: BATCH_ROWS }, (_, r) =>
    createSampler({ ...scenario.parameters, seed: 1000 + r }, { vocabSize }),
  );
  const sequences = samplers.map((s, r) => s.createSequence(makeHistory(vocabSize, HISTORY_LENGTH, 100 + r)));
  const source = new Float32Array(BATCH_ROWS * vocabSize);
  for (let r = 0; r < BATCH_ROWS; r++) source.set(pool[r % pool.length]!, r * vocabSize);
  const work = new Float32Array(source.length);
  const outs = samplers.map(() => createSampleResult());
  return measureSync(
    () => work.set(source),
    () => {
      for (let r = 0; r < BATCH_ROWS; r++) {
        samplers[r]!.sample(work.subarray(r * vocabSize, (r + 1) * vocabSize), sequences[r]!, outs[r]);
      }
    },
    budget,
  );
}

/** Cost of single full-vocabulary passes: the floor under the scenarios. */
export interface Passes {
  /** maxOf: one compare per logit (JS). */
  max: Stats;
  /** sumExpShifted: one (table + polynomial) exp per logit, the normalizer of every logprob (JS). */
  expSum: Stats;
  /** The same on the WebAssembly SIMD kernels, when they are in use: copying the row into the module's memory, max, exp-sum. */
  simd?: { copy: Stats; max: Stats; expSum: Stats };
}

export function measurePasses(pool: readonly Float32Array[], budget: Budget): Passes {
  const maxima = pool.map((row) => maxOf(row));
  let sink = 0;
  const max = measureSync(
    () => undefined,
    (i) => (sink += maxOf(pool[i % pool.length]!)),
    budget,
  );
  const expSum = measureSync(
    () => undefined,
    (i) => (sink += sumExpShifted(pool[i % pool.length]!, maxima[i % pool.length]!, 1)),
    budget,
  );
  const kernels = wasmKernels();
  let simd: Passes['simd'];
  if (kernels !== undefined) {
    kernels.ensure(pool[0]!.length, 5);
    let padded = 0;
    const load = (i: number) => {
      padded = kernels.load(pool[i % pool.length]!, kernels.row);
    };
    simd = {
      copy: measureSync(() => undefined, load, budget),
      max: measureSync(load, () => (sink += kernels.k.max(kernels.row, padded)), budget),
      expSum: measureSync(
        load,
        (i) => (sink += kernels.k.sumExp(kernels.row, padded, maxima[i % pool.length]!, 1)),
        budget,
      ),
    };
  }
  if (Number.isNaN(sink)) throw new Error('unreachable');
  return simd === undefined ? { max, expSum } : { max, expSum, simd };
}

/**
 * Runs every scenario briefly before anything is measured at a vocabulary size, so each one is timed in the
 * steady state of a server that mixes all kinds of requests (V8 has seen every path), not in the order they
 * happen to run.
 */
export function warmUpAll(pool: readonly Float32Array[], milliseconds: number): void {
  const budget: Budget = { warmupMs: 0, measureMs: milliseconds, minIterations: 5, maxIterations: 100000 };
  for (const scenario of SCENARIOS) {
    if (scenario.id === 'batch16') measureBatch(scenario, pool, budget);
    else measureScenario(scenario, pool, budget);
  }
}

/** Creates the TGI-style sampler and its sequence, for the heap check. */
export function tgiSetup(vocabSize: number): {
  sample: (logits: Float32Array) => SampleResult;
  sequence: SequenceState;
} {
  const sampler = createSampler(TGI, { vocabSize });
  const sequence = sampler.createSequence(makeHistory(vocabSize, HISTORY_LENGTH, 1));
  const out = createSampleResult();
  return { sample: (logits) => sampler.sample(logits, sequence, out), sequence };
}

/**
 * Deterministic, realistic logits rows and token histories for the benchmark.
 *
 * A row is float32 noise from N(0, sigma^2) (sigma 2, 2.5 or 3), a heavy upper tail (about 0.5% of the vocabulary
 * lifted by |N(0, 1)| * sigma + sigma, the "plausible continuations"), and 1 to 4 strong peaks above everything
 * else. Three rows in four are confident (the top peak 4 to 10 nats above the rest), one in four is diffuse (0 to
 * 2 nats), so the top-p nucleus ranges from one token to thousands, as it does in real decoding.
 */
import { applyTopP } from '@gen/sampling';

/** mulberry32: a small deterministic uint32 generator, returned as uniforms in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draws (Box-Muller) from a uniform source. */
function normalSource(uniform: () => number): () => number {
  let spare = Number.NaN;
  return () => {
    if (!Number.isNaN(spare)) {
      const value = spare;
      spare = Number.NaN;
      return value;
    }
    const u = 1 - uniform();
    const v = uniform();
    const radius = Math.sqrt(-2 * Math.log(u));
    spare = radius * Math.sin(2 * Math.PI * v);
    return radius * Math.cos(2 * Math.PI * v);
  };
}

/** One row of logits; `index` picks the shape (sigma, confident or diffuse) and seeds the values. */
export function makeLogitsRow(vocabSize: number, index: number): Float32Array {
  const uniform = mulberry32(vocabSize * 7919 + index * 104729 + 17);
  const normal = normalSource(uniform);
  const sigma = 2 + (index % 3) * 0.5;
  const row = new Float32Array(vocabSize);
  for (let i = 0; i < vocabSize; i++) row[i] = normal() * sigma;
  const tail = Math.max(8, Math.floor(vocabSize * 0.005));
  for (let j = 0; j < tail; j++) {
    const id = Math.floor(uniform() * vocabSize);
    row[id] = row[id]! + Math.abs(normal()) * sigma + sigma;
  }
  let max = -Infinity;
  for (let i = 0; i < vocabSize; i++) if (row[i]! > max) max = row[i]!;
  const diffuse = index % 4 === 3;
  const top = max + (diffuse ? uniform() * 2 : 4 + uniform() * 6);
  const peaks = 1 + Math.floor(uniform() * 4);
  for (let p = 0; p < peaks; p++) {
    const id = Math.floor(uniform() * vocabSize);
    row[id] = p === 0 ? top : top - (0.5 + uniform() * 3.5);
  }
  return row;
}

/** `count` distinct-shaped rows for one vocabulary size. */
export function makeLogitsPool(vocabSize: number, count: number): Float32Array[] {
  return Array.from({ length: count }, (_, index) => makeLogitsRow(vocabSize, index));
}

/**
 * A token history (prompt + generated) of `length` ids, Zipf-like (frequent low ids repeat, as in real text), so a
 * 512-token history has a few hundred distinct tokens.
 */
export function makeHistory(vocabSize: number, length: number, seed: number): number[] {
  const uniform = mulberry32(seed * 31 + vocabSize);
  const history: number[] = [];
  for (let i = 0; i < length; i++) history.push(Math.min(vocabSize - 1, Math.floor(vocabSize * uniform() ** 4)));
  return history;
}

/** Shape of a pool of rows, to print next to the timings. */
export interface PoolShape {
  rows: number;
  /** Median over rows of the top token's probability (temperature 1). */
  medianTopProbability: number;
  /** Median and largest number of tokens kept by top_p 0.9 at temperature 1. */
  medianNucleus: number;
  maxNucleus: number;
}

/** Describes a pool with the dense reference processors (done once, not timed). */
export function describePool(pool: readonly Float32Array[]): PoolShape {
  const topProbabilities: number[] = [];
  const nuclei: number[] = [];
  for (const source of pool) {
    const row = source.slice();
    let max = -Infinity;
    for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
    let sum = 0;
    for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
    topProbabilities.push(1 / sum);
    applyTopP(row, 0.9);
    let kept = 0;
    for (let i = 0; i < row.length; i++) if (row[i] !== -Infinity) kept++;
    nuclei.push(kept);
  }
  const median = (values: number[]): number => {
    const sorted = values.slice().sort((a, b) => a - b);
    return sorted[Math.floor((sorted.length - 1) / 2)]!;
  };
  return {
    rows: pool.length,
    medianTopProbability: median(topProbabilities),
    medianNucleus: median(nuclei),
    maxNucleus: Math.max(...nuclei),
  };
}

/**
 * Timing loop: warm up, then time every iteration on its own with `performance.now()`. The untimed `prepare` step
 * (copying a fresh row of logits, since sampling mutates it) runs before each timed call and is not counted.
 */
import { performance } from 'node:perf_hooks';

/** Summary of one timed case, in microseconds. */
export interface Stats {
  median: number;
  p90: number;
  mean: number;
  min: number;
  iterations: number;
}

/** How long to warm up and measure. */
export interface Budget {
  warmupMs: number;
  measureMs: number;
  minIterations: number;
  maxIterations: number;
}

export function summarize(samplesMicros: readonly number[]): Stats {
  const sorted = samplesMicros.slice().sort((a, b) => a - b);
  const n = sorted.length;
  const at = (q: number): number => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
  const mid = n >> 1;
  const median = n % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  let total = 0;
  for (const value of sorted) total += value;
  return { median, p90: at(0.9), mean: total / n, min: sorted[0]!, iterations: n };
}

/** Times a synchronous `run(i)`; `prepare(i)` runs untimed before it. */
export function measureSync(prepare: (i: number) => void, run: (i: number) => void, budget: Budget): Stats {
  let i = 0;
  const warmupEnd = performance.now() + budget.warmupMs;
  for (let w = 0; w < 3 || performance.now() < warmupEnd; w++) {
    prepare(i);
    run(i);
    i++;
  }
  const samples: number[] = [];
  const end = performance.now() + budget.measureMs;
  while (samples.length < budget.maxIterations && (samples.length < budget.minIterations || performance.now() < end)) {
    prepare(i);
    const start = performance.now();
    run(i);
    samples.push((performance.now() - start) * 1000);
    i++;
  }
  return summarize(samples);
}

/** Times an asynchronous `run(i)` (awaited inside the timed region); `prepare(i)` runs untimed before it. */
export async function measureAsync(
  prepare: (i: number) => void,
  run: (i: number) => Promise<unknown>,
  budget: Budget,
): Promise<Stats> {
  let i = 0;
  const warmupEnd = performance.now() + budget.warmupMs;
  for (let w = 0; w < 3 || performance.now() < warmupEnd; w++) {
    prepare(i);
    await run(i);
    i++;
  }
  const samples: number[] = [];
  const end = performance.now() + budget.measureMs;
  while (samples.length < budget.maxIterations && (samples.length < budget.minIterations || performance.now() < end)) {
    prepare(i);
    const start = performance.now();
    await run(i);
    samples.push((performance.now() - start) * 1000);
    i++;
  }
  return summarize(samples);
}

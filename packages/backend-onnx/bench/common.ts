/**
 * Helpers shared by the onnx benchmarks (`run.ts`, `fused.ts`): timing of onnxruntime's own runs, deterministic
 * prompts, and the greedy / batched / prefill loops measured the same way for every graph style.
 */
import type { BackendStatsV1, BackendV1 } from '@gen/backend';
import * as ort from 'onnxruntime-node';
import { DirectSession } from '../src/direct/direct-session.js';

// Time inside onnxruntime's session.run (both bindings, and transformers.js): the rest of a step is JavaScript.
let insideRun = 0;
for (const prototype of [
  (ort.InferenceSession as unknown as { prototype: unknown }).prototype,
  DirectSession.prototype,
]) {
  const timed = prototype as { run: (...args: unknown[]) => Promise<unknown> };
  const originalRun = timed.run;
  timed.run = async function (this: unknown, ...args: unknown[]) {
    const start = performance.now();
    try {
      return await originalRun.apply(this, args);
    } finally {
      insideRun += performance.now() - start;
    }
  };
}

/** Milliseconds spent inside `InferenceSession.run` since the process started (take differences). */
export const insideRunMs = (): number => insideRun;

export const log = (message: string): void => void process.stderr.write(`${message}\n`);
export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const gb = (bytesPerSecond: number): string => (bytesPerSecond / 1e9).toFixed(1);

/** Deterministic prompt of ids the bench tokenizer knows (it has 763 tokens). */
export function prompt(length: number, salt: number): number[] {
  return Array.from({ length }, (_, i) => (i * 131 + salt * 977 + 11) % 760);
}

export function argmax(row: Float32Array): number {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
  return best;
}

/**
 * One greedy decode: prefill `tokens`, then `steps` one-token calls. Per token: the whole step, the time inside
 * onnxruntime, the argmax, and the rest (`glueMs`: our JavaScript per step).
 */
export async function greedyDecode(backend: BackendV1, tokens: number[], steps: number, id: string) {
  let start = performance.now();
  let result = await backend.doForward({ sequences: [{ id, tokens }] });
  const prefillMs = performance.now() - start;
  const runBefore = insideRun;
  let sampling = 0;
  const generated: number[] = [];
  start = performance.now();
  for (let s = 0; s < steps; s++) {
    const sampled = performance.now();
    generated.push(argmax(result.sequences[0]!.logits));
    sampling += performance.now() - sampled;
    result = await backend.doForward({ sequences: [{ id, tokens: [generated[s]!] }] });
  }
  const stepMs = (performance.now() - start) / steps;
  const runMs = (insideRun - runBefore) / steps;
  const argmaxMs = sampling / steps;
  await backend.doRelease([id]);
  return {
    prefillMs,
    stepMs,
    runMs,
    argmaxMs,
    betweenMs: stepMs - runMs,
    glueMs: stepMs - runMs - argmaxMs,
    generated,
  };
}

/** Aggregate decode tokens/s of `batch` sequences stepping together for `steps` after a batched prefill. */
export async function batchedDecode(
  backend: BackendV1,
  batch: number,
  context: number,
  steps: number,
): Promise<{ tokensPerSecond: number; glueMs: number; stats: BackendStatsV1 }> {
  const ids = Array.from({ length: batch }, (_, i) => `b${batch}-${i}`);
  let result = await backend.doForward({ sequences: ids.map((id, i) => ({ id, tokens: prompt(context, 100 + i) })) });
  const runBefore = insideRun;
  let sampling = 0;
  const start = performance.now();
  for (let s = 0; s < steps; s++) {
    const sampled = performance.now();
    const next = ids.map((id, i) => ({ id, tokens: [argmax(result.sequences[i]!.logits)] }));
    sampling += performance.now() - sampled;
    result = await backend.doForward({ sequences: next });
  }
  const elapsed = performance.now() - start;
  const glueMs = (elapsed - (insideRun - runBefore) - sampling) / steps;
  const stats = backend.stats();
  await backend.doRelease(ids);
  return { tokensPerSecond: (batch * steps) / (elapsed / 1000), glueMs, stats };
}

/** Prefill tokens/s of one `length`-token prompt. */
export async function prefillTokensPerSecond(backend: BackendV1, length: number, salt: number): Promise<number> {
  const start = performance.now();
  await backend.doForward({ sequences: [{ id: 'long', tokens: prompt(length, salt) }] });
  const seconds = (performance.now() - start) / 1000;
  await backend.doRelease(['long']);
  return length / seconds;
}

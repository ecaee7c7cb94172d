import type { BackendV1 } from '@gen/backend';
import { beforeAll, describe, expect } from 'vitest';
import type { BackendConformanceOptions, ModelDirSource } from './options.js';

/** What one part's tests run against: a backend factory bound to one model directory. */
export interface ConformanceTarget {
  readonly options: BackendConformanceOptions;
  /** The resolved model directory (valid inside tests), or `undefined`. */
  modelDir(): string | undefined;
  /** A fresh backend for the model directory. */
  createBackend(): Promise<BackendV1>;
}

const resolved = new Map<ModelDirSource, Promise<string>>();

function sourceName(source: ModelDirSource): string {
  return typeof source === 'string' ? source : source.name;
}

function resolveSource(source: ModelDirSource): Promise<string> {
  let promise = resolved.get(source);
  if (promise === undefined) {
    if (typeof source === 'string') promise = Promise.resolve(source);
    else promise = typeof source.dir === 'string' ? Promise.resolve(source.dir) : source.dir();
    resolved.set(source, promise);
  }
  return promise;
}

/**
 * Declares `describe(title)` once per model directory (or once without one) and hands `body` a target whose
 * model directory is resolved in a `beforeAll` hook.
 */
export function describeTargets(
  options: BackendConformanceOptions,
  title: string,
  body: (target: ConformanceTarget) => void,
): void {
  const sources = options.modelDirs ?? [];
  const entries: (ModelDirSource | undefined)[] = sources.length === 0 ? [undefined] : [...sources];
  for (const source of entries) {
    const suffix = source === undefined ? '' : ` [${sourceName(source)}]`;
    describe(`${options.name}: ${title}${suffix}`, () => {
      let dir: string | undefined;
      if (source !== undefined) {
        beforeAll(async () => {
          dir = await resolveSource(source);
        });
      }
      body({
        options,
        modelDir: () => dir,
        createBackend: () => options.createBackend({ modelDir: dir }),
      });
    });
  }
}

/** Runs `fn` with a fresh backend and disposes it afterwards, whatever happens. */
export async function withBackend<T>(target: ConformanceTarget, fn: (backend: BackendV1) => Promise<T>): Promise<T> {
  const backend = await target.createBackend();
  try {
    return await fn(backend);
  } finally {
    await backend.doDispose();
  }
}

/** Deterministic pseudo-random token ids in `[0, vocabSize)`. */
export function sampleTokens(length: number, vocabSize: number, seed: number): number[] {
  let state = (seed * 2654435761 + 12345) >>> 0;
  const tokens: number[] = [];
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    tokens.push(state % vocabSize);
  }
  return tokens;
}

/** Largest absolute difference between two equally long arrays (NaN when lengths differ or a value is NaN). */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.NaN;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= worst)) worst = d;
  }
  return worst;
}

/** Asserts two logit arrays agree within `tolerance`, with a message naming `what`. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  what: string,
): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const difference = maxAbsDifference(actual, expected);
  expect(difference, `${what}: max abs difference ${difference} exceeds ${tolerance}`).toBeLessThanOrEqual(tolerance);
}

/** Row `row` of a row-major `[rows, vocabSize]` array. */
export function rowOf(data: Float32Array, row: number, vocabSize: number): Float32Array {
  return data.subarray(row * vocabSize, (row + 1) * vocabSize);
}

/** Awaits a promise that must reject, and returns the rejection reason. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to reject, but it resolved');
}

/** Asserts `error` passes `guard` (an `isInstance`), printing the actual error otherwise. */
export function expectErrorClass(error: unknown, guard: (error: unknown) => boolean, className: string): void {
  const description = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  expect(guard(error), `expected ${className}, got ${description}`).toBe(true);
}

/** Next-token logits of `tokens` on a fresh sequence `id` (prefilled in one call), copied. */
export async function prefill(backend: BackendV1, id: string, tokens: readonly number[]): Promise<Float32Array> {
  const result = await backend.doForward({ sequences: [{ id, tokens }] });
  return Float32Array.from(result.sequences[0]!.logits);
}

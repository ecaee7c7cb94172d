import type { BackendV1 } from '@gen/backend';

/**
 * A model directory to run the suite on: a path, or a named path / lazy factory (called once, in a `beforeAll`
 * hook, so writing a model directory does not slow down test collection).
 */
export type ModelDirSource = string | { readonly name: string; readonly dir: string | (() => Promise<string>) };

/** Options of {@link runBackendConformanceTests} and of each of its parts. */
export interface BackendConformanceOptions {
  /** Name of the backend under test, shown in the test titles. */
  readonly name: string;
  /**
   * Creates a fresh backend. Called once per test; `modelDir` is the resolved entry of `modelDirs`, or
   * `undefined` when none are given (backends that need no model, like the mock).
   */
  readonly createBackend: (options: { modelDir: string | undefined }) => Promise<BackendV1>;
  /** Model directories; every part runs once per entry. Default: one run with `modelDir` undefined. */
  readonly modelDirs?: readonly ModelDirSource[];
  /**
   * Reference backend for {@link oracleTests}, usually `({ modelDir }) => createJsBackend({ modelDir })` from
   * `@gen/backend-js`. Without it (or without `modelDirs`) the oracle part is skipped.
   */
  readonly oracle?: (options: { modelDir: string }) => Promise<BackendV1>;
  /** Largest absolute logit difference accepted against the oracle. Default `1e-4`. */
  readonly tolerance?: number;
  /**
   * Largest absolute logit difference accepted between two ways of computing the same thing on the backend
   * itself (full vs chunked prefill, batched vs alone, fork vs re-prefill). Default `1e-4`.
   */
  readonly consistencyTolerance?: number;
  /** Sequences created and released by the release test. Default 1,000. */
  readonly releaseRounds?: number;
  /** Runs of each fast-check property. Default 8. */
  readonly propertyRuns?: number;
}

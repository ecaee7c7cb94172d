import { abortTests } from './abort-tests.js';
import { batchingTests } from './batching-tests.js';
import { embeddingTests } from './embedding-tests.js';
import { errorTests } from './error-tests.js';
import { forkTests } from './fork-tests.js';
import type { BackendConformanceOptions } from './options.js';
import { oracleTests } from './oracle-tests.js';
import { prefillConsistencyTests } from './prefill-consistency-tests.js';
import { releaseTests } from './release-tests.js';
import { specificationTests } from './specification-tests.js';

/**
 * Declares the whole `BackendV1` conformance suite (vitest `describe` / `it`) for one backend. Call it at the top
 * level of a test file, for example `src/conformance.test.ts`:
 *
 * ```ts
 * runBackendConformanceTests({
 *   name: 'onnx',
 *   createBackend: ({ modelDir }) => createOnnxBackend({ modelDir: modelDir! }),
 *   modelDirs: [{ name: 'tiny', dir: () => writeTinyModel() }],
 *   oracle: ({ modelDir }) => createJsBackend({ modelDir }),
 * });
 * ```
 *
 * It is the sum of {@link specificationTests}, {@link prefillConsistencyTests}, {@link batchingTests},
 * {@link forkTests}, {@link releaseTests}, {@link errorTests}, {@link abortTests}, {@link embeddingTests} (skipped
 * without `capabilities.embeddings`) and {@link oracleTests}, each of which can also be called alone.
 */
export function runBackendConformanceTests(options: BackendConformanceOptions): void {
  specificationTests(options);
  prefillConsistencyTests(options);
  batchingTests(options);
  forkTests(options);
  releaseTests(options);
  errorTests(options);
  abortTests(options);
  embeddingTests(options);
  oracleTests(options);
}

import { runBackendConformanceTests } from './index.js';
import { createMockBackend } from './mock/mock-backend.js';

// The mock passes the structural parts of the suite (there is no model directory, so no oracle part), in its
// default configuration and without prompt logits / fork, and with latency (so aborts land mid-call) and embeddings.
runBackendConformanceTests({ name: 'mock', createBackend: () => Promise.resolve(createMockBackend()) });
runBackendConformanceTests({
  name: 'mock without prompt logits or fork, batch size 2',
  createBackend: () =>
    Promise.resolve(createMockBackend({ promptLogits: false, fork: false, maxBatchSize: 2, vocabSize: 17, seed: 3 })),
  releaseRounds: 200,
});
runBackendConformanceTests({
  name: 'mock with 1 ms latency',
  createBackend: () =>
    Promise.resolve(
      createMockBackend({ latencyMs: 1, maxPositions: 32, maxBatchSize: 4, embeddings: true, hiddenSize: 8 }),
    ),
  releaseRounds: 40,
  propertyRuns: 3,
});

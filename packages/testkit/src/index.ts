export { runBackendConformanceTests } from './conformance/run-backend-conformance-tests.js';
export { abortTests } from './conformance/abort-tests.js';
export { batchingTests } from './conformance/batching-tests.js';
export { embeddingTests } from './conformance/embedding-tests.js';
export { errorTests } from './conformance/error-tests.js';
export { forkTests } from './conformance/fork-tests.js';
export { oracleTests } from './conformance/oracle-tests.js';
export { prefillConsistencyTests } from './conformance/prefill-consistency-tests.js';
export { releaseTests } from './conformance/release-tests.js';
export { specificationTests } from './conformance/specification-tests.js';
export type { BackendConformanceOptions, ModelDirSource } from './conformance/options.js';
export {
  createMockBackend,
  type MockBackend,
  type MockBackendSettings,
  type MockForwardCall,
} from './mock/mock-backend.js';
export {
  forwardBatchArbitrary,
  generationRequestsArbitrary,
  tokenIdArbitrary,
  tokenSequenceArbitrary,
  type GenerationRequestSample,
} from './arbitraries.js';

export type { BackendForkOptionsV1, BackendV1 } from './backend-v1.js';
export type { BackendEmbedOptionsV1, BackendEmbeddingPoolingV1 } from './backend-v1-embed.js';
export type {
  BackendForwardOptionsV1,
  BackendForwardResultV1,
  BackendSequenceInputV1,
  BackendSequenceResultV1,
} from './backend-v1-forward.js';
export type {
  BackendCapabilitiesV1,
  BackendGenerationDefaultsV1,
  BackendModelV1,
  BackendStatsV1,
} from './backend-v1-model.js';
export type { BackendWarningV1 } from './backend-v1-warning.js';

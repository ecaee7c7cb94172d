export { Client } from './client.js';
export { InferenceAPIClient, deployedModels } from './inference-api.js';
export {
  BadRequestError,
  ClientError,
  ConnectionError,
  GenerationError,
  IncompleteGenerationError,
  NotFoundError,
  NotSupportedError,
  OverloadedError,
  RateLimitExceededError,
  ShardNotReadyError,
  ShardTimeoutError,
  TimeoutError,
  UnknownError,
  ValidationError,
} from './errors.js';
export type { ClientErrorOptions } from './errors.js';
export type {
  BestOfSequence,
  ClientOptions,
  DeployedModel,
  DeployedModelsOptions,
  Details,
  FinishReason,
  Grammar,
  InferenceAPIClientOptions,
  Info,
  InputToken,
  Parameters,
  RequestOptions,
  Response,
  SimpleToken,
  StreamDetails,
  StreamResponse,
  Token,
} from './types.js';

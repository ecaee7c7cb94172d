export {
  createEngine,
  DEFAULT_LIMITS,
  type Engine,
  type EngineSettings,
  type GenerateOptions,
  type GenerationStream,
} from './engine.js';
export {
  CancelledError,
  EngineError,
  EngineValidationError,
  GenerationError,
  OverloadedError,
  ShutdownError,
  type EngineErrorType,
} from './errors.js';
export type {
  ChoiceEndEvent,
  ChoiceResult,
  DoneEvent,
  EngineLimits,
  EngineStats,
  EngineTokenizer,
  ErrorEvent,
  FinishReason,
  GeneratedToken,
  GenerationEvent,
  GenerationParameters,
  GenerationRequest,
  GenerationResult,
  PrefillToken,
  SchedulerSettings,
  StepStats,
  TokenEvent,
} from './types.js';
export { kvBytesPerToken, type PrefixCacheSettings, type PrefixCacheStats } from './prefix-cache.js';

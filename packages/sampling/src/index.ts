export { InvalidParameterError, SamplingError } from './errors.js';
export {
  DEFAULT_WARPER_ORDER,
  normalizeSamplingParameters,
  type NormalizedSamplingParameters,
  type SamplingParameters,
  type ValidationLimits,
  type WarperStage,
  type WatermarkParameters,
} from './parameters.js';
export {
  createSampleResult,
  createSampler,
  sampleBatch,
  type BatchRow,
  type SampleResult,
  type Sampler,
  type SamplerOptions,
  type TopToken,
} from './sampler.js';
export { SequenceState } from './sequence-state.js';
export { statelessProcessor, type LogitsProcessor, type SequenceProcessor } from './logits-processor.js';
export {
  allowOnlyTokens,
  applyFrequencyPresencePenalty,
  applyLogitBias,
  applyMinP,
  applyNoRepeatNgram,
  applyRepetitionPenalty,
  applyTemperature,
  applyTopK,
  applyTopP,
  applyTypicalP,
  createProcessorScratch,
  logSoftmax,
  logSumExp,
  suppressTokens,
  type ProcessorScratch,
} from './processors.js';
export { MAX_SEED, philox4x32, randomSeed, uniform } from './rng.js';
export { Mt19937 } from './mt19937.js';
export {
  GreenlistCache,
  applyWatermark,
  defaultGreenlistCacheEntries,
  defaultWatermarkDelta,
  defaultWatermarkGamma,
  defaultWatermarkHashKey,
  defaultWatermarkZThreshold,
  detectWatermark,
  erfc,
  normalSurvival,
  watermarkGreenlist,
  type DetectWatermarkOptions,
  type GreenlistCacheOptions,
  type WatermarkDetection,
  type WatermarkGreenlistOptions,
} from './watermark.js';
export { setWasmKernelsEnabled, wasmKernelsEnabled } from './wasm/kernels.js';
export { createLogitsArena, type LogitsArena, type LogitsArenaOptions } from './arena.js';
export { StopSequenceMatcher, type StopSequenceMatch, type StopSequencePushResult } from './stop-sequences.js';

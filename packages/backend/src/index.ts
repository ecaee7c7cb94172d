export * from './v1/index.js';
export {
  AbortError,
  BackendDisposedError,
  BackendError,
  BatchLimitError,
  InvalidInputError,
  ModelLoadError,
  PositionLimitError,
  SequenceError,
  UnsupportedModelError,
  type ModelLoadErrorReason,
  type SequenceErrorReason,
} from './errors.js';
export {
  checkForkIds,
  checkForkLength,
  checkForwardInputs,
  forwardLogitsArray,
  releaseSequences,
  type CheckedSequenceInput,
  type ForwardInputLimits,
} from './implement/check-inputs.js';
export { checkEmbedInputs, type EmbedInputLimits } from './implement/check-embed-inputs.js';
export { poolHiddenStates } from './implement/pool-hidden-states.js';
export { SerialQueue } from './implement/serial-queue.js';
export {
  SUPPORTED_MODEL_TYPES,
  parseModelConfig,
  readModelConfig,
  type DecoderModelConfig,
  type DecoderModelType,
  type LayerAttentionType,
  type RopeConfig,
  type RopeScaling,
} from './model-dir/model-config.js';
export {
  ropeInverseFrequencies,
  rotaryDependsOnLength,
  rotaryParameters,
  type RotaryConfig,
  type RotaryOptions,
  type RotaryParameters,
} from './model-dir/rope-frequencies.js';
export {
  generationDefaults,
  parseGenerationConfig,
  readGenerationConfig,
  resolveEosTokenIds,
  type GenerationConfig,
} from './model-dir/generation-config.js';
export { float16BitsToNumber } from './model-dir/float16.js';
export {
  FLOAT_DTYPES,
  openSafetensors,
  type ReadTensorOptions,
  type SafetensorsFile,
  type TensorInfo,
} from './model-dir/safetensors.js';
export {
  SAFETENSORS_FILE,
  SAFETENSORS_INDEX_FILE,
  openModelWeights,
  type ModelWeights,
} from './model-dir/model-weights.js';
export {
  decoderTensorSpecs,
  loadDecoderWeights,
  type DecoderLayerWeights,
  type DecoderTensorSpec,
  type DecoderWeights,
  type LinearWeights,
} from './model-dir/decoder-weights.js';
export { describeModel, readModelDirectory, type ModelDirectory } from './model-dir/model-directory.js';
export { GGUF_ARCHITECTURES, isGgufPath, openGgufModel, type GgufModel } from './model-dir/gguf-model.js';

export { writeModelDir, planModelDir } from './write-model-dir.js';
export type {
  ModelDirInfo,
  ModelDirPlan,
  ModelFormat,
  WriteModelDirOptions,
  WriteProgress,
} from './write-model-dir.js';
export { ensureModelDir, defaultModelCacheDir } from './ensure-model-dir.js';
export type { EnsureModelDirOptions } from './ensure-model-dir.js';
export { exportOnnx } from './export-onnx.js';
export type { ExportOnnxOptions, ExportOnnxResult } from './export-onnx.js';
export { presets, resolveModelConfig } from './model-config.js';
export type { Architecture, ChatFormat, ModelConfig, PresetName } from './model-config.js';
export type { WeightDtype } from './dtype.js';
export type { OnnxGraphStyle, OnnxVariant } from './onnx/decoder-graph.js';
export type { ExternalDataMode } from './onnx/write-onnx.js';
export { InvalidModelConfigError, ModelDirectoryError, ModelKitError } from './errors.js';
export { createProgressReporter, type ProgressOutput } from './progress.js';
export {
  ensureGgufModel,
  ggufTensorName,
  ggufWeightSource,
  permuteRopeRows,
  writeGgufModel,
} from './gguf/export-gguf.js';
export type {
  EnsureGgufModelOptions,
  GgufModelInfo,
  GgufWeightType,
  WriteGgufModelOptions,
} from './gguf/export-gguf.js';
export type { WeightSource } from './weights.js';

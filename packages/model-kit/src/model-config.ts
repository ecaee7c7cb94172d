import { InvalidModelConfigError } from './errors.js';

/** The `model_type` of the Llama-family decoders this package writes and exports. */
export type Architecture = 'llama' | 'qwen2' | 'mistral';

/**
 * The tokenizer and chat-template family written with a model: `llama3` (special tokens `<|begin_of_text|>`,
 * `<|end_of_text|>`, `<|start_header_id|>`, `<|end_header_id|>`, `<|eot_id|>`, the Llama 3 chat template) or
 * `chatml` (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, the Qwen2 ChatML template).
 */
export type ChatFormat = 'llama3' | 'chatml';

/**
 * Shape and hyper-parameters of a Llama-family decoder, in camelCase (written to `config.json` in snake_case).
 *
 * Bias tensors follow the architecture, as in transformers: `qwen2` always has q/k/v biases and no o_proj bias;
 * `llama` has q/k/v/o biases when `attentionBias` is set and MLP biases when `mlpBias` is set; `mistral` has none.
 */
export interface ModelConfig {
  /** `model_type` in `config.json`. */
  architecture: Architecture;
  /** Rows of the embedding and of `lm_head`. May exceed the tokenizer's vocabulary (padding, as in Qwen2). */
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** Grouped-query attention: each key/value head serves `numAttentionHeads / numKeyValueHeads` query heads. */
  numKeyValueHeads: number;
  /** Per-head size; `hiddenSize / numAttentionHeads` when left out. */
  headDim?: number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** `lm_head` shares the embedding matrix; `lm_head.weight` is then absent from the checkpoint. */
  tieWordEmbeddings: boolean;
  /** Llama only: q/k/v/o projection biases (`attention_bias`). */
  attentionBias?: boolean;
  /** Llama only: gate/up/down projection biases (`mlp_bias`). */
  mlpBias?: boolean;
  /** Mistral only: sliding-window attention span (`sliding_window`), or null for full attention. */
  slidingWindow?: number | null;
  /** Tokenizer and chat template family; `chatml` for qwen2, `llama3` otherwise, when left out. */
  chatFormat?: ChatFormat;
}

/** Names of the built-in presets. */
export type PresetName = 'tiny' | 'tiny-qwen2' | 'bench' | 'big-vocab';

/**
 * Built-in model shapes.
 *
 * - `tiny`: llama, hidden 64, 2 layers, 4 heads, 2 KV heads, intermediate 176, vocab 512; for unit tests.
 * - `tiny-qwen2`: qwen2 (q/k/v biases, tied embeddings, ChatML), same size, vocab 640.
 * - `bench`: llama, hidden 768, 12 layers, 12 heads, 4 KV heads, intermediate 2048, vocab 32,000 (124.7M
 *   parameters, 499 MB in float32); the shape of `shared/reference/decode-performance.md`.
 * - `big-vocab`: qwen2 with vocab 151,936 (Qwen2's) and hidden 128, 2 layers, tied; for sampling at full vocab.
 */
export const presets: Readonly<Record<PresetName, Readonly<ModelConfig>>> = {
  tiny: {
    architecture: 'llama',
    vocabSize: 512,
    hiddenSize: 64,
    intermediateSize: 176,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 16,
    maxPositionEmbeddings: 512,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    tieWordEmbeddings: false,
    attentionBias: false,
    mlpBias: false,
    chatFormat: 'llama3',
  },
  'tiny-qwen2': {
    architecture: 'qwen2',
    vocabSize: 640,
    hiddenSize: 64,
    intermediateSize: 176,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    maxPositionEmbeddings: 512,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    tieWordEmbeddings: true,
    chatFormat: 'chatml',
  },
  bench: {
    architecture: 'llama',
    vocabSize: 32000,
    hiddenSize: 768,
    intermediateSize: 2048,
    numHiddenLayers: 12,
    numAttentionHeads: 12,
    numKeyValueHeads: 4,
    headDim: 64,
    maxPositionEmbeddings: 2048,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    tieWordEmbeddings: false,
    attentionBias: false,
    mlpBias: false,
    chatFormat: 'llama3',
  },
  'big-vocab': {
    architecture: 'qwen2',
    vocabSize: 151936,
    hiddenSize: 128,
    intermediateSize: 352,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    maxPositionEmbeddings: 4096,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    tieWordEmbeddings: true,
    chatFormat: 'chatml',
  },
};

/** True when `name` is a built-in preset. */
export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(presets, name);
}

/**
 * Merges `overrides` over `preset` (when given) and checks the result: positive integers, heads dividing evenly,
 * an even head size (rotary embeddings rotate pairs).
 */
export function resolveModelConfig(preset: PresetName | undefined, overrides?: Partial<ModelConfig>): ModelConfig {
  if (preset !== undefined && !isPresetName(preset)) {
    throw new InvalidModelConfigError({
      field: 'preset',
      message: `Unknown preset "${String(preset)}"; expected one of ${Object.keys(presets).join(', ')}.`,
    });
  }
  const base = preset === undefined ? {} : presets[preset];
  const merged = { ...base, ...overrides } as Partial<ModelConfig>;
  const integerFields = [
    'vocabSize',
    'hiddenSize',
    'intermediateSize',
    'numHiddenLayers',
    'numAttentionHeads',
    'numKeyValueHeads',
    'maxPositionEmbeddings',
  ] as const;
  for (const field of integerFields) {
    const value = merged[field];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new InvalidModelConfigError({ field, message: `\`${field}\` must be a positive integer; got ${value}.` });
    }
  }
  const config = merged as ModelConfig;
  if (!['llama', 'qwen2', 'mistral'].includes(config.architecture)) {
    throw new InvalidModelConfigError({
      field: 'architecture',
      message: `\`architecture\` must be llama, qwen2 or mistral; got ${String(config.architecture)}.`,
    });
  }
  for (const field of ['rmsNormEps', 'ropeTheta'] as const) {
    if (!(typeof config[field] === 'number' && config[field] > 0 && Number.isFinite(config[field]))) {
      throw new InvalidModelConfigError({ field, message: `\`${field}\` must be a positive number.` });
    }
  }
  if (typeof config.tieWordEmbeddings !== 'boolean') {
    throw new InvalidModelConfigError({
      field: 'tieWordEmbeddings',
      message: '`tieWordEmbeddings` must be a boolean.',
    });
  }
  const headDim = config.headDim ?? config.hiddenSize / config.numAttentionHeads;
  if (!Number.isSafeInteger(headDim) || headDim < 2 || headDim % 2 !== 0) {
    throw new InvalidModelConfigError({
      field: 'headDim',
      message: `The head size must be an even integer; got ${headDim} (set \`headDim\` or make \`hiddenSize\` divisible by \`numAttentionHeads\`).`,
    });
  }
  if (config.numAttentionHeads % config.numKeyValueHeads !== 0) {
    throw new InvalidModelConfigError({
      field: 'numKeyValueHeads',
      message: `\`numAttentionHeads\` (${config.numAttentionHeads}) must be a multiple of \`numKeyValueHeads\` (${config.numKeyValueHeads}).`,
    });
  }
  if (config.architecture !== 'llama' && (config.attentionBias === true || config.mlpBias === true)) {
    throw new InvalidModelConfigError({
      field: 'attentionBias',
      message: '`attentionBias` and `mlpBias` apply to llama only (qwen2 always has q/k/v biases, mistral none).',
    });
  }
  if (config.slidingWindow != null && config.architecture !== 'mistral') {
    throw new InvalidModelConfigError({ field: 'slidingWindow', message: '`slidingWindow` applies to mistral only.' });
  }
  return {
    ...config,
    headDim,
    chatFormat: config.chatFormat ?? (config.architecture === 'qwen2' ? 'chatml' : 'llama3'),
  };
}

import { InvalidModelConfigError } from './errors.js';
import { parseRopeScaling, type LayerType } from './hf-config.js';

/** The `model_type` of the decoders this package writes and exports. */
export type Architecture = 'llama' | 'qwen2' | 'mistral' | 'qwen3' | 'gemma2' | 'gemma3_text' | 'phi3';

const architectures: readonly Architecture[] = ['llama', 'qwen2', 'mistral', 'qwen3', 'gemma2', 'gemma3_text', 'phi3'];

/**
 * The tokenizer and chat-template family written with a model: `llama3` (special tokens `<|begin_of_text|>`,
 * `<|end_of_text|>`, `<|start_header_id|>`, `<|end_header_id|>`, `<|eot_id|>`, the Llama 3 chat template) or
 * `chatml` (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, the Qwen2 ChatML template), `qwen3` (ChatML plus
 * `<think>`, `</think>`, `<tool_call>`, `</tool_call>`, `<tool_response>`, `</tool_response>`, the Qwen3 template),
 * `gemma` (`<pad>`, `<eos>`, `<bos>`, `<start_of_turn>`, `<end_of_turn>`, the Gemma 3 template) or `phi3`
 * (`<|endoftext|>`, `<|user|>`, `<|assistant|>`, `<|system|>`, `<|end|>`, the Phi-3 template).
 */
export type ChatFormat = 'llama3' | 'chatml' | 'qwen3' | 'gemma' | 'phi3';

/**
 * Shape and hyper-parameters of a Llama-family decoder, in camelCase (written to `config.json` in snake_case).
 *
 * Bias tensors follow the architecture, as in transformers: `qwen2` always has q/k/v biases and no o_proj bias;
 * `llama` has q/k/v/o biases when `attentionBias` is set and MLP biases when `mlpBias` is set; `qwen3`, `gemma2`
 * and `gemma3_text` have q/k/v/o biases when `attentionBias` is set; `mistral` and `phi3` have none.
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
  /** llama, qwen3, gemma2, gemma3_text: q/k/v/o projection biases (`attention_bias`). */
  attentionBias?: boolean;
  /** Llama only: gate/up/down projection biases (`mlp_bias`). */
  mlpBias?: boolean;
  /**
   * Sliding-window attention span (`sliding_window`) of the sliding layers, or null for full attention: mistral and
   * phi3 (every layer), qwen3 (`use_sliding_window`, layers from `maxWindowLayers` on), gemma2 and gemma3_text
   * (their sliding layers; default 4096).
   */
  slidingWindow?: number | null;
  /** qwen3 with `slidingWindow`: the first layer that slides (`max_window_layers`, default 0). */
  maxWindowLayers?: number;
  /** gemma3_text: every `slidingWindowPattern`-th layer attends fully, the others slide (default 6). */
  slidingWindowPattern?: number;
  /** qwen3, gemma2, gemma3_text: the attention kind of each layer (`layer_types`), overriding the defaults. */
  layerTypes?: LayerType[];
  /** gemma: attention scores are scaled by `queryPreAttnScalar^-0.5` (`query_pre_attn_scalar`; default headDim). */
  queryPreAttnScalar?: number;
  /** gemma: scores become `tanh(s / cap) * cap` (`attn_logit_softcapping`); null or left out: off. */
  attnLogitSoftcapping?: number | null;
  /** gemma: logits become `tanh(l / cap) * cap` (`final_logit_softcapping`); null or left out: off. */
  finalLogitSoftcapping?: number | null;
  /** gemma3_text: the rotary base of the sliding layers, unscaled (`rope_local_base_freq`, default 10000). */
  ropeLocalBaseFreq?: number;
  /**
   * The Hugging Face `rope_scaling` object, written verbatim to `config.json` (snake_case keys): `rope_type` (or
   * `type`) linear, llama3, yarn, dynamic or longrope with that type's keys. gemma3_text applies it to its full
   * layers only.
   */
  ropeScaling?: Record<string, unknown> | null;
  /** phi3: rotate only the first `floor(headDim * partialRotaryFactor)` entries of each head (default 1). */
  partialRotaryFactor?: number;
  /** phi3: the pre-training context (`original_max_position_embeddings`, longrope's switch point). */
  originalMaxPositionEmbeddings?: number;
  /**
   * Tokenizer and chat template family; when left out `chatml` for qwen2, `qwen3` for qwen3, `gemma` for gemma2
   * and gemma3_text, `phi3` for phi3, `llama3` otherwise.
   */
  chatFormat?: ChatFormat;
}

/** Names of the built-in presets. */
export type PresetName =
  'tiny' | 'tiny-qwen2' | 'bench' | 'big-vocab' | 'tiny-qwen3' | 'tiny-gemma2' | 'tiny-gemma3' | 'tiny-phi3';

/**
 * Built-in model shapes.
 *
 * - `tiny`: llama, hidden 64, 2 layers, 4 heads, 2 KV heads, intermediate 176, vocab 512; for unit tests.
 * - `tiny-qwen2`: qwen2 (q/k/v biases, tied embeddings, ChatML), same size, vocab 640.
 * - `bench`: llama, hidden 768, 12 layers, 12 heads, 4 KV heads, intermediate 2048, vocab 32,000 (124.7M
 *   parameters, 499 MB in float32); the shape of `shared/reference/decode-performance.md`.
 * - `big-vocab`: qwen2 with vocab 151,936 (Qwen2's) and hidden 128, 2 layers, tied; for sampling at full vocab.
 * - `tiny-qwen3`: qwen3 (per-head q/k RMSNorm), hidden 64, 2 layers, 4 heads, 2 KV heads, head size 32 (not
 *   hidden / heads: q_proj is [128, 64]), intermediate 176, vocab 640, untied, the Qwen3 chat format.
 * - `tiny-gemma2`: gemma2 (embedding scaled by sqrt(64), (1 + w) norms, four norms per layer, GELU-tanh), hidden
 *   64, 4 layers (sliding window 8 on layers 0 and 2), 4 heads, 2 KV heads, head size 16, query_pre_attn_scalar 24,
 *   attention softcap 5 and final softcap 3 (both bind with these weights), vocab 640, tied, the Gemma format.
 * - `tiny-gemma3`: gemma3_text (gemma2's layer plus (1 + w) q/k norms), hidden 64, 3 layers (pattern 3: layers 0
 *   and 1 slide with window 8 and local rotary base 10,000; layer 2 attends fully with base 1e6 and linear rope
 *   scaling factor 2), 4 heads, 1 KV head, head size 16, no softcapping, vocab 640, tied, the Gemma format.
 * - `tiny-phi3`: phi3 (packed qkv_proj / gate_up_proj), hidden 64, 2 layers, 4 heads, 2 KV heads, head size 16,
 *   partial rotary 0.75 (12 rotated entries), longrope with 6 short and 6 long factors, original context 32 and
 *   max positions 256 (the long factors apply past 32 tokens), vocab 640, untied, the Phi-3 chat format.
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
  'tiny-qwen3': {
    architecture: 'qwen3',
    vocabSize: 640,
    hiddenSize: 64,
    intermediateSize: 176,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 32,
    maxPositionEmbeddings: 512,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    tieWordEmbeddings: false,
    attentionBias: false,
    chatFormat: 'qwen3',
  },
  'tiny-gemma2': {
    architecture: 'gemma2',
    vocabSize: 640,
    hiddenSize: 64,
    intermediateSize: 176,
    numHiddenLayers: 4,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 16,
    maxPositionEmbeddings: 512,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    attentionBias: false,
    queryPreAttnScalar: 24,
    slidingWindow: 8,
    attnLogitSoftcapping: 5.0,
    finalLogitSoftcapping: 3.0,
    chatFormat: 'gemma',
  },
  'tiny-gemma3': {
    architecture: 'gemma3_text',
    vocabSize: 640,
    hiddenSize: 64,
    intermediateSize: 176,
    numHiddenLayers: 3,
    numAttentionHeads: 4,
    numKeyValueHeads: 1,
    headDim: 16,
    maxPositionEmbeddings: 512,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    ropeScaling: { factor: 2.0, rope_type: 'linear' },
    tieWordEmbeddings: true,
    attentionBias: false,
    queryPreAttnScalar: 16,
    slidingWindow: 8,
    slidingWindowPattern: 3,
    ropeLocalBaseFreq: 10000,
    attnLogitSoftcapping: null,
    finalLogitSoftcapping: null,
    chatFormat: 'gemma',
  },
  'tiny-phi3': {
    architecture: 'phi3',
    vocabSize: 640,
    hiddenSize: 64,
    intermediateSize: 176,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 16,
    maxPositionEmbeddings: 256,
    originalMaxPositionEmbeddings: 32,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    partialRotaryFactor: 0.75,
    ropeScaling: {
      long_factor: [2.0, 2.75, 3.5, 4.625, 6.25, 8.0],
      short_factor: [1.0, 1.0625, 1.125, 1.25, 1.375, 1.5],
      type: 'longrope',
    },
    slidingWindow: null,
    tieWordEmbeddings: false,
    chatFormat: 'phi3',
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
  if (!architectures.includes(config.architecture)) {
    throw new InvalidModelConfigError({
      field: 'architecture',
      message: `\`architecture\` must be one of ${architectures.join(', ')}; got ${String(config.architecture)}.`,
    });
  }
  const arch = config.architecture;
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
  if (arch === 'phi3' && headDim * config.numAttentionHeads !== config.hiddenSize) {
    throw new InvalidModelConfigError({
      field: 'headDim',
      message: `phi3 derives the head size from \`hiddenSize / numAttentionHeads\` (${config.hiddenSize / config.numAttentionHeads}); got \`headDim\` ${headDim}.`,
    });
  }
  if (config.numAttentionHeads % config.numKeyValueHeads !== 0) {
    throw new InvalidModelConfigError({
      field: 'numKeyValueHeads',
      message: `\`numAttentionHeads\` (${config.numAttentionHeads}) must be a multiple of \`numKeyValueHeads\` (${config.numKeyValueHeads}).`,
    });
  }
  const onlyFor = (field: keyof ModelConfig, allowed: readonly Architecture[], set: boolean) => {
    if (set && !allowed.includes(arch)) {
      throw new InvalidModelConfigError({
        field,
        message: `\`${field}\` applies to ${allowed.join(', ')} only; got architecture ${arch}.`,
      });
    }
  };
  if (config.attentionBias === true && !['llama', 'qwen3', 'gemma2', 'gemma3_text'].includes(arch)) {
    throw new InvalidModelConfigError({
      field: 'attentionBias',
      message: `\`attentionBias\` applies to llama, qwen3, gemma2 and gemma3_text only (qwen2 always has q/k/v biases, mistral and phi3 none); got architecture ${arch}.`,
    });
  }
  onlyFor('mlpBias', ['llama'], config.mlpBias === true);
  onlyFor('slidingWindow', ['mistral', 'qwen3', 'gemma2', 'gemma3_text', 'phi3'], config.slidingWindow != null);
  onlyFor('maxWindowLayers', ['qwen3'], config.maxWindowLayers !== undefined);
  onlyFor('layerTypes', ['qwen3', 'gemma2', 'gemma3_text'], config.layerTypes !== undefined);
  onlyFor('queryPreAttnScalar', ['gemma2', 'gemma3_text'], config.queryPreAttnScalar !== undefined);
  onlyFor('attnLogitSoftcapping', ['gemma2', 'gemma3_text'], config.attnLogitSoftcapping != null);
  onlyFor('finalLogitSoftcapping', ['gemma2', 'gemma3_text'], config.finalLogitSoftcapping != null);
  onlyFor('slidingWindowPattern', ['gemma3_text'], config.slidingWindowPattern !== undefined);
  onlyFor('ropeLocalBaseFreq', ['gemma3_text'], config.ropeLocalBaseFreq !== undefined);
  onlyFor('partialRotaryFactor', ['phi3'], config.partialRotaryFactor !== undefined);
  onlyFor('originalMaxPositionEmbeddings', ['phi3'], config.originalMaxPositionEmbeddings !== undefined);
  const positiveInteger = (field: keyof ModelConfig, value: unknown, minimum = 1) => {
    if (value !== undefined && value !== null && !(Number.isSafeInteger(value) && (value as number) >= minimum)) {
      throw new InvalidModelConfigError({
        field,
        message: `\`${field}\` must be an integer >= ${minimum}; got ${String(value)}.`,
      });
    }
  };
  positiveInteger('slidingWindow', config.slidingWindow);
  positiveInteger('maxWindowLayers', config.maxWindowLayers, 0);
  positiveInteger('slidingWindowPattern', config.slidingWindowPattern);
  positiveInteger('originalMaxPositionEmbeddings', config.originalMaxPositionEmbeddings);
  const positiveNumber = (field: keyof ModelConfig, value: unknown) => {
    if (value !== undefined && value !== null && !(typeof value === 'number' && value > 0 && Number.isFinite(value))) {
      throw new InvalidModelConfigError({
        field,
        message: `\`${field}\` must be a positive number or null; got ${String(value)}.`,
      });
    }
  };
  positiveNumber('queryPreAttnScalar', config.queryPreAttnScalar);
  positiveNumber('attnLogitSoftcapping', config.attnLogitSoftcapping);
  positiveNumber('finalLogitSoftcapping', config.finalLogitSoftcapping);
  positiveNumber('ropeLocalBaseFreq', config.ropeLocalBaseFreq);
  if (
    config.layerTypes !== undefined &&
    !(
      Array.isArray(config.layerTypes) &&
      config.layerTypes.length === config.numHiddenLayers &&
      config.layerTypes.every((t) => t === 'full_attention' || t === 'sliding_attention')
    )
  ) {
    throw new InvalidModelConfigError({
      field: 'layerTypes',
      message: `\`layerTypes\` must list \`numHiddenLayers\` (${config.numHiddenLayers}) entries, each 'full_attention' or 'sliding_attention'.`,
    });
  }
  if (arch === 'qwen3' && config.layerTypes?.includes('sliding_attention') === true && config.slidingWindow == null) {
    throw new InvalidModelConfigError({
      field: 'slidingWindow',
      message: 'qwen3 `layerTypes` with sliding_attention layers need `slidingWindow`.',
    });
  }
  const partialRotaryFactor = config.partialRotaryFactor ?? 1;
  if (!(typeof partialRotaryFactor === 'number' && partialRotaryFactor > 0 && partialRotaryFactor <= 1)) {
    throw new InvalidModelConfigError({
      field: 'partialRotaryFactor',
      message: `\`partialRotaryFactor\` must be a number in (0, 1]; got ${String(partialRotaryFactor)}.`,
    });
  }
  const rotaryDim = Math.floor(headDim * partialRotaryFactor);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
    throw new InvalidModelConfigError({
      field: 'partialRotaryFactor',
      message: `The rotary size floor(headDim * partialRotaryFactor) = floor(${headDim} * ${partialRotaryFactor}) = ${rotaryDim} must be even and at least 2.`,
    });
  }
  if (config.ropeScaling != null) {
    if (typeof config.ropeScaling !== 'object' || Array.isArray(config.ropeScaling)) {
      throw new InvalidModelConfigError({
        field: 'ropeScaling',
        message: '`ropeScaling` must be a `rope_scaling` object (snake_case keys) or null.',
      });
    }
    const topLevelOriginal =
      arch === 'phi3' ? (config.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings) : null;
    try {
      parseRopeScaling(config.ropeScaling, {
        rotaryDim,
        maxPositionEmbeddings: config.maxPositionEmbeddings,
        topLevelOriginal,
      });
    } catch (error) {
      if (!InvalidModelConfigError.isInstance(error)) throw error;
      throw new InvalidModelConfigError({
        field: 'ropeScaling',
        message: `\`ropeScaling\`: ${error.message}`,
        cause: error,
      });
    }
  }
  const defaultFormat: Record<Architecture, ChatFormat> = {
    llama: 'llama3',
    qwen2: 'chatml',
    mistral: 'llama3',
    qwen3: 'qwen3',
    gemma2: 'gemma',
    gemma3_text: 'gemma',
    phi3: 'phi3',
  };
  return { ...config, headDim, chatFormat: config.chatFormat ?? defaultFormat[arch] };
}

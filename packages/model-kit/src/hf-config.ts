import { InvalidModelConfigError } from './errors.js';
import type { Architecture, ModelConfig } from './model-config.js';
import type { WeightDtype } from './dtype.js';

/**
 * Rotary-embedding frequency scaling, as `rope_scaling` in `config.json` (`rope_type`, or `type` in older files).
 * Supported: `default`, `linear` (positions divided by `factor`) and `llama3` (Llama 3.1's frequency-dependent
 * scaling).
 */
export type RopeScaling =
  | { ropeType: 'linear'; factor: number }
  | {
      ropeType: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

/** Everything the forward pass needs to know about a Llama-family decoder, read from a `config.json`. */
export interface DecoderSpec {
  architecture: Architecture;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  tieWordEmbeddings: boolean;
  /** q_proj, k_proj and v_proj have biases. */
  qkvBias: boolean;
  /** o_proj has a bias. */
  outputBias: boolean;
  /** gate_proj, up_proj and down_proj have biases. */
  mlpBias: boolean;
  /** Keys further back than this many positions are masked (Mistral), or null. */
  slidingWindow: number | null;
}

/** Special-token ids that `config.json` and `generation_config.json` refer to. */
export interface ConfigTokenIds {
  bos: number;
  /** First entry is the primary end token; all entries stop generation. */
  eos: number[];
  pad: number;
}

const architectureClass: Record<Architecture, string> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  mistral: 'MistralForCausalLM',
};

/** The `config.json` object transformers would save for `config` (snake_case; keys sorted when serialised). */
export function toHfConfig(config: ModelConfig, tokens: ConfigTokenIds, dtype: WeightDtype): Record<string, unknown> {
  const common = {
    architectures: [architectureClass[config.architecture]],
    attention_dropout: 0.0,
    bos_token_id: tokens.bos,
    hidden_act: 'silu',
    hidden_size: config.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: config.intermediateSize,
    max_position_embeddings: config.maxPositionEmbeddings,
    model_type: config.architecture,
    num_attention_heads: config.numAttentionHeads,
    num_hidden_layers: config.numHiddenLayers,
    num_key_value_heads: config.numKeyValueHeads,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    tie_word_embeddings: config.tieWordEmbeddings,
    torch_dtype: dtype,
    use_cache: true,
    vocab_size: config.vocabSize,
  };
  switch (config.architecture) {
    case 'llama':
      return {
        ...common,
        attention_bias: config.attentionBias ?? false,
        eos_token_id: tokens.eos.length === 1 ? tokens.eos[0] : tokens.eos,
        head_dim: config.headDim,
        mlp_bias: config.mlpBias ?? false,
        pretraining_tp: 1,
        rope_scaling: null,
      };
    case 'qwen2':
      // Real Qwen2 configs carry no head_dim (it is hidden_size / num_attention_heads).
      return {
        ...common,
        eos_token_id: tokens.eos[0],
        max_window_layers: config.numHiddenLayers,
        sliding_window: config.maxPositionEmbeddings,
        use_sliding_window: false,
      };
    case 'mistral':
      return {
        ...common,
        eos_token_id: tokens.eos[0],
        head_dim: config.headDim,
        sliding_window: config.slidingWindow ?? null,
      };
  }
}

/** The `generation_config.json` object: the model's own sampling defaults, as the real releases ship them. */
export function toGenerationConfig(config: ModelConfig, tokens: ConfigTokenIds): Record<string, unknown> {
  if (config.chatFormat === 'chatml') {
    return {
      bos_token_id: tokens.bos,
      do_sample: true,
      eos_token_id: tokens.eos,
      pad_token_id: tokens.pad,
      repetition_penalty: 1.1,
      temperature: 0.7,
      top_k: 20,
      top_p: 0.8,
    };
  }
  return { bos_token_id: tokens.bos, do_sample: true, eos_token_id: tokens.eos, temperature: 0.6, top_p: 0.9 };
}

/**
 * Reads a Llama-family `config.json` object (llama, mistral or qwen2, as transformers writes it, with its
 * defaults for missing fields) into a {@link DecoderSpec}. Throws {@link InvalidModelConfigError} for anything
 * this package cannot express as the standard ONNX decoder graph.
 */
export function parseHfConfig(json: unknown): DecoderSpec {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InvalidModelConfigError({ field: 'config.json', message: 'config.json must hold a JSON object.' });
  }
  const raw = json as Record<string, unknown>;
  const architecture = raw['model_type'];
  if (architecture !== 'llama' && architecture !== 'qwen2' && architecture !== 'mistral') {
    throw new InvalidModelConfigError({
      field: 'model_type',
      message: `model_type ${JSON.stringify(architecture)} is not supported; expected llama, mistral or qwen2.`,
    });
  }
  const integer = (field: string, fallback?: number): number => {
    const value = raw[field] ?? fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new InvalidModelConfigError({ field, message: `\`${field}\` must be a positive integer; got ${value}.` });
    }
    return value;
  };
  const positive = (field: string, fallback: number): number => {
    const value = raw[field] ?? fallback;
    if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
      throw new InvalidModelConfigError({ field, message: `\`${field}\` must be a positive number; got ${value}.` });
    }
    return value;
  };
  const flag = (field: string): boolean => {
    const value = raw[field] ?? false;
    if (typeof value !== 'boolean') {
      throw new InvalidModelConfigError({ field, message: `\`${field}\` must be a boolean; got ${String(value)}.` });
    }
    return value;
  };
  const hiddenAct = raw['hidden_act'] ?? 'silu';
  if (hiddenAct !== 'silu') {
    throw new InvalidModelConfigError({
      field: 'hidden_act',
      message: `hidden_act ${JSON.stringify(hiddenAct)} is not supported; expected silu.`,
    });
  }
  if (raw['quantization_config'] != null) {
    throw new InvalidModelConfigError({
      field: 'quantization_config',
      message: 'Quantized checkpoints (quantization_config) are not supported; export a float16/bfloat16/float32 one.',
    });
  }
  const partialRotary = raw['partial_rotary_factor'];
  if (partialRotary != null && partialRotary !== 1) {
    throw new InvalidModelConfigError({
      field: 'partial_rotary_factor',
      message: 'partial_rotary_factor other than 1 is not supported.',
    });
  }
  const hiddenSize = integer('hidden_size');
  const numHeads = integer('num_attention_heads');
  const numKvHeads = integer('num_key_value_heads', numHeads);
  const headDim = integer('head_dim', hiddenSize / numHeads);
  if (headDim % 2 !== 0) {
    throw new InvalidModelConfigError({ field: 'head_dim', message: `head_dim must be even; got ${headDim}.` });
  }
  if (numHeads % numKvHeads !== 0) {
    throw new InvalidModelConfigError({
      field: 'num_key_value_heads',
      message: `num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads}).`,
    });
  }
  let slidingWindow: number | null = null;
  if (architecture === 'mistral' && raw['sliding_window'] != null) slidingWindow = integer('sliding_window');
  if (architecture === 'qwen2' && raw['use_sliding_window'] === true) {
    throw new InvalidModelConfigError({
      field: 'use_sliding_window',
      message: 'Qwen2 per-layer sliding-window attention (use_sliding_window: true) is not supported.',
    });
  }
  const maxPositionEmbeddings = integer('max_position_embeddings', 2048);
  return {
    architecture,
    vocabSize: integer('vocab_size'),
    hiddenSize,
    intermediateSize: integer('intermediate_size'),
    numLayers: integer('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    maxPositionEmbeddings,
    rmsNormEps: positive('rms_norm_eps', 1e-6),
    ropeTheta: positive('rope_theta', 10000),
    ropeScaling: parseRopeScaling(raw['rope_scaling']),
    tieWordEmbeddings: flag('tie_word_embeddings'),
    qkvBias: architecture === 'qwen2' || (architecture === 'llama' && flag('attention_bias')),
    outputBias: architecture === 'llama' && flag('attention_bias'),
    mlpBias: architecture === 'llama' && flag('mlp_bias'),
    slidingWindow,
  };
}

function parseRopeScaling(value: unknown): RopeScaling | null {
  if (value == null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidModelConfigError({ field: 'rope_scaling', message: 'rope_scaling must be an object or null.' });
  }
  const raw = value as Record<string, unknown>;
  const type = raw['rope_type'] ?? raw['type'];
  const number = (key: string): number => {
    const n = raw[key];
    if (typeof n !== 'number' || !(n > 0)) {
      throw new InvalidModelConfigError({
        field: `rope_scaling.${key}`,
        message: `rope_scaling.${key} must be a positive number; got ${String(n)}.`,
      });
    }
    return n;
  };
  switch (type) {
    case 'default':
      return null;
    case 'linear':
      return { ropeType: 'linear', factor: number('factor') };
    case 'llama3':
      return {
        ropeType: 'llama3',
        factor: number('factor'),
        lowFreqFactor: number('low_freq_factor'),
        highFreqFactor: number('high_freq_factor'),
        originalMaxPositionEmbeddings: number('original_max_position_embeddings'),
      };
    default:
      throw new InvalidModelConfigError({
        field: 'rope_scaling',
        message: `rope_scaling type ${JSON.stringify(type)} is not supported; supported: default, linear, llama3.`,
      });
  }
}

/**
 * The rotary inverse frequencies (`headDim / 2` of them) as transformers computes them in float32:
 * `1 / theta^(2i / headDim)`, then the `rope_scaling` adjustment.
 */
export function ropeInverseFrequencies(spec: DecoderSpec): Float32Array {
  const half = spec.headDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround((2 * i) / spec.headDim);
    out[i] = Math.fround(1 / Math.fround(Math.pow(spec.ropeTheta, exponent)));
  }
  const scaling = spec.ropeScaling;
  if (scaling?.ropeType === 'linear') {
    for (let i = 0; i < half; i++) out[i] = out[i]! / scaling.factor;
  } else if (scaling?.ropeType === 'llama3') {
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldContext } = scaling;
    const lowFreqWavelen = oldContext / lowFreqFactor;
    const highFreqWavelen = oldContext / highFreqFactor;
    for (let i = 0; i < half; i++) {
      const invFreq = out[i]!;
      const wavelen = (2 * Math.PI) / invFreq;
      if (wavelen > lowFreqWavelen) {
        out[i] = invFreq / factor;
      } else if (wavelen >= highFreqWavelen) {
        const smooth = (oldContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        out[i] = ((1 - smooth) * invFreq) / factor + smooth * invFreq;
      }
    }
  }
  return out;
}

import path from 'node:path';
import { UnsupportedModelError } from '../errors.js';
import { ConfigFields } from './config-fields.js';
import { readJsonFile } from './json-file.js';

/** The `model_type` values this package can read. */
export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma2', 'gemma3_text', 'phi3'] as const;

/** A supported Hugging Face `model_type`. */
export type DecoderModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

/**
 * Rotary-embedding frequency scaling (`rope_scaling`, or `rope_parameters` in transformers 5), with every default
 * resolved. Frequencies have {@link DecoderModelConfig.rotaryDim} / 2 entries, `theta^(-2i / rotaryDim)` unscaled.
 *
 * - `linear`: every inverse frequency is divided by `factor`.
 * - `llama3` (Llama 3.1 / 3.2): with `wavelength = 2π / invFreq`, `low = originalMaxPositions / lowFreqFactor`,
 *   `high = originalMaxPositions / highFreqFactor`: wavelengths above `low` are divided by `factor`, those below
 *   `high` are kept, and in between `invFreq` is blended as `(1 - s) * invFreq / factor + s * invFreq` with
 *   `s = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor)`.
 * - `yarn`: YaRN's ramp between interpolated (`/ factor`) and extrapolated frequencies over the dimensions between
 *   the correction range of `betaFast` and `betaSlow` rotations in `originalMaxPositions`; cos and sin multiplied
 *   by `attentionFactor`.
 * - `dynamic` (dynamic NTK): unscaled up to `originalMaxPositions` (`max_position_embeddings`); a forward whose
 *   sequence is longer (`L` = last position + 1) uses base
 *   `theta * (factor * L / originalMaxPositions - (factor - 1))^(rotaryDim / (rotaryDim - 2))`.
 * - `longrope` (Phi-3 / 3.5 / 4): `invFreq_i = 1 / (ext_i * theta^(2i / rotaryDim))` with `ext` = `longFactor` for a
 *   forward whose sequence is longer than `originalMaxPositions`, else `shortFactor`; cos and sin multiplied by
 *   `attentionFactor` in both cases.
 *
 * `dynamic` and `longrope` depend on the sequence length: see {@link rotaryParameters}. `null` in
 * {@link DecoderModelConfig.ropeScaling} means unscaled (`default`).
 */
export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositions: number;
    }
  | {
      readonly type: 'yarn';
      readonly factor: number;
      readonly originalMaxPositions: number;
      readonly betaFast: number;
      readonly betaSlow: number;
      readonly attentionFactor: number;
      readonly truncate: boolean;
    }
  | { readonly type: 'dynamic'; readonly factor: number; readonly originalMaxPositions: number }
  | {
      readonly type: 'longrope';
      readonly shortFactor: readonly number[];
      readonly longFactor: readonly number[];
      readonly originalMaxPositions: number;
      readonly attentionFactor: number;
    };

/** The rotary embedding of one kind of layer: base `theta` and its scaling. */
export interface RopeConfig {
  /** Base of the inverse frequencies. */
  readonly theta: number;
  /** Frequency scaling, or `null`. */
  readonly scaling: RopeScaling | null;
}

/** Attention type of one layer: `sliding_attention` layers see only the last `slidingWindow` positions. */
export type LayerAttentionType = 'full_attention' | 'sliding_attention';

/**
 * A decoder-only Llama-family model as described by `config.json`, normalized to camelCase with every
 * transformers default applied, so that a backend needs no knowledge of the file format or of per-architecture
 * quirks.
 */
export interface DecoderModelConfig {
  /** Path of the `config.json` this was read from (for error messages). */
  readonly file: string;
  /** `model_type`. */
  readonly modelType: DecoderModelType;
  /** `architectures[0]`, or the default `*ForCausalLM` class of `modelType`. */
  readonly architecture: string;
  /** `vocab_size`: rows of the embedding and of `lm_head`. */
  readonly vocabSize: number;
  /** `hidden_size`. */
  readonly hiddenSize: number;
  /** `intermediate_size`: width of the SwiGLU MLP. */
  readonly intermediateSize: number;
  /** `num_hidden_layers`. */
  readonly numLayers: number;
  /** `num_attention_heads`. */
  readonly numAttentionHeads: number;
  /** `num_key_value_heads` (defaults to `num_attention_heads`); query head `h` uses kv head `floor(h / (numAttentionHeads / numKeyValueHeads))`. */
  readonly numKeyValueHeads: number;
  /** `head_dim`, defaulting to `hidden_size / num_attention_heads`. */
  readonly headDim: number;
  /** `rms_norm_eps`. */
  readonly rmsNormEps: number;
  /** `rope_theta`: base of the rotary inverse frequencies `theta^(-2i / rotaryDim)`. */
  readonly ropeTheta: number;
  /** Frequency scaling, or `null` for plain rotary embeddings. */
  readonly ropeScaling: RopeScaling | null;
  /**
   * Rotary embedding of `sliding_attention` layers when it differs from the global one (`gemma3_text`:
   * `rope_local_base_freq`, unscaled), else `null` (every layer uses `ropeTheta` / `ropeScaling`).
   */
  readonly localRope: RopeConfig | null;
  /**
   * Entries of each head that are rotated: `floor(headDim * partial_rotary_factor)` (even). The first `rotaryDim`
   * entries are rotated in the rotate-half layout within themselves (`i` pairs with `i + rotaryDim / 2`); the rest
   * pass through unchanged.
   */
  readonly rotaryDim: number;
  /**
   * The context length served: `max_position_embeddings`, extended as vLLM derives it for the scalings that exist to
   * extend it: `yarn` to `original_max_position_embeddings × factor` and `dynamic` to `max_position_embeddings ×
   * factor` (when larger). Backends cap sequences here.
   */
  readonly maxPositions: number;
  /** `max_position_embeddings` as the file says (the trained context; `maxPositions` may extend it). */
  readonly maxPositionEmbeddings: number;
  /** `tie_word_embeddings`: when true `lm_head` reuses `model.embed_tokens.weight`. */
  readonly tieWordEmbeddings: boolean;
  /** Whether q, k and v projections have biases (`qwen2`: always; `llama`: `attention_bias`). */
  readonly qkvBias: boolean;
  /** Whether the attention output projection has a bias (`llama`: `attention_bias`). */
  readonly outputBias: boolean;
  /** Whether the MLP projections have biases (`llama`: `mlp_bias`). */
  readonly mlpBias: boolean;
  /** Window of `sliding_attention` layers (a position attends to itself and the `slidingWindow - 1` before it), or `null`. */
  readonly slidingWindow: number | null;
  /** Attention type per layer, length `numLayers`; all `full_attention` when `slidingWindow` is `null`. */
  readonly layerTypes: readonly LayerAttentionType[];
  /** MLP activation: `down(act(gate(x)) * up(x))`; `silu` (SwiGLU) or `gelu_pytorch_tanh` (GeGLU, Gemma). */
  readonly hiddenAct: 'silu' | 'gelu_pytorch_tanh';
  /**
   * Per-head RMSNorm of queries and keys (`self_attn.q_norm` / `k_norm`, `[headDim]`) after the projections and
   * before rotary embeddings (`qwen3`, `gemma3_text`).
   */
  readonly queryKeyNorm: boolean;
  /**
   * 1 for Gemma, whose RMSNorms scale by `1 + weight` (the checkpoint stores offsets from one), else 0.
   * {@link loadDecoderWeights} returns the effective weights (`1 + w` in float32), so a backend using it needs
   * nothing else; a backend reading tensors itself must add it.
   */
  readonly normWeightOffset: 0 | 1;
  /**
   * Gemma's four norms per layer: `post_attention_layernorm` normalizes the attention output before the residual
   * add, `pre_feedforward_layernorm` feeds the MLP and `post_feedforward_layernorm` normalizes its output. When
   * false, `post_attention_layernorm` is the MLP's input norm (Llama).
   */
  readonly sandwichNorms: boolean;
  /**
   * Factor on the embedding rows (`gemma2`, `gemma3_text`: `sqrt(hidden_size)` rounded to float32), also when
   * `lm_head` is tied to them; `null` for none.
   */
  readonly embeddingScale: number | null;
  /** Scale of the attention scores `q·k`: `headDim^-0.5`, or `query_pre_attn_scalar^-0.5` (Gemma). */
  readonly attentionScale: number;
  /** `attn_logit_softcapping` (`gemma2`): scaled scores become `tanh(s / cap) * cap` before masking; or `null`. */
  readonly attnLogitSoftcapping: number | null;
  /** `final_logit_softcapping` (`gemma2`): logits become `tanh(l / cap) * cap`; or `null`. */
  readonly finalLogitSoftcapping: number | null;
  /**
   * `phi3`: the checkpoint packs q, k and v into `self_attn.qkv_proj` and gate and up into `mlp.gate_up_proj`
   * (rows in that order). {@link loadDecoderWeights} splits them.
   */
  readonly packedProjections: boolean;
  /** `bos_token_id`. */
  readonly bosTokenId: number | undefined;
  /** `eos_token_id` as a list (empty when absent). */
  readonly eosTokenIds: readonly number[];
  /** `pad_token_id`. */
  readonly padTokenId: number | undefined;
  /** `torch_dtype` (or `dtype` in transformers 5): the checkpoint's dtype, for example `bfloat16`. */
  readonly torchDtype: string | undefined;
}

const defaultArchitectures: Record<DecoderModelType, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  gemma2: 'Gemma2ForCausalLM',
  gemma3_text: 'Gemma3ForCausalLM',
  phi3: 'Phi3ForCausalLM',
};

/** The transformers config-class defaults that differ between the families. */
interface FamilyDefaults {
  readonly maxPositions: number;
  readonly ropeTheta: number;
  readonly rmsNormEps: number;
  readonly tieWordEmbeddings: boolean;
  readonly headDim?: number;
  readonly hiddenAct: string;
}

const familyDefaults: Record<DecoderModelType, FamilyDefaults> = {
  llama: { maxPositions: 2048, ropeTheta: 10000, rmsNormEps: 1e-6, tieWordEmbeddings: false, hiddenAct: 'silu' },
  mistral: { maxPositions: 4096 * 32, ropeTheta: 10000, rmsNormEps: 1e-6, tieWordEmbeddings: false, hiddenAct: 'silu' },
  qwen2: { maxPositions: 32768, ropeTheta: 10000, rmsNormEps: 1e-6, tieWordEmbeddings: false, hiddenAct: 'silu' },
  qwen3: {
    maxPositions: 32768,
    ropeTheta: 10000,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: false,
    headDim: 128,
    hiddenAct: 'silu',
  },
  gemma2: {
    maxPositions: 8192,
    ropeTheta: 10000,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: true,
    headDim: 256,
    hiddenAct: 'gelu_pytorch_tanh',
  },
  gemma3_text: {
    maxPositions: 131072,
    ropeTheta: 1_000_000,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: true,
    headDim: 256,
    hiddenAct: 'gelu_pytorch_tanh',
  },
  phi3: { maxPositions: 4096, ropeTheta: 10000, rmsNormEps: 1e-5, tieWordEmbeddings: false, hiddenAct: 'silu' },
};

const isGemma = (modelType: DecoderModelType): boolean => modelType === 'gemma2' || modelType === 'gemma3_text';

/** Reads and parses `<modelDir>/config.json`. */
export async function readModelConfig(modelDir: string): Promise<DecoderModelConfig> {
  const file = path.join(modelDir, 'config.json');
  const json = await readJsonFile(file, {
    expected: 'a Hugging Face config.json (the model directory must contain one)',
  });
  return parseModelConfig(json, file);
}

/**
 * Normalizes a parsed `config.json` of a `llama`, `mistral`, `qwen2`, `qwen3`, `gemma2`, `gemma3_text` or `phi3`
 * model, applying the transformers defaults of each config class.
 *
 * @param json The parsed file.
 * @param file Path used in error messages.
 * @throws {UnsupportedModelError} another `model_type`, a non-causal-LM architecture, an activation other than
 *   SiLU (GELU-tanh for Gemma), or a `rope_scaling` type other than `default`, `linear`, `llama3`, `yarn`,
 *   `dynamic`, `longrope`.
 * @throws {ModelLoadError} (`invalid-config`) a missing or ill-typed field, or inconsistent head counts.
 */
export function parseModelConfig(json: unknown, file = 'config.json'): DecoderModelConfig {
  const fields = new ConfigFields(file, json, { expected: 'a JSON object (Hugging Face config.json)' });
  const modelType = fields.raw('model_type');
  if (!isSupportedModelType(modelType)) {
    throw new UnsupportedModelError({
      file,
      feature: 'model_type',
      value: modelType,
      supported: SUPPORTED_MODEL_TYPES,
    });
  }
  const defaults = familyDefaults[modelType];

  const architectures = fields.raw('architectures');
  let architecture = defaultArchitectures[modelType];
  if (architectures !== undefined) {
    if (!Array.isArray(architectures) || architectures.some((a) => typeof a !== 'string')) {
      fields.fail('architectures', 'a list of class names');
    }
    const first = (architectures as string[])[0];
    if (first !== undefined) architecture = first;
  }
  if (!architecture.endsWith('ForCausalLM')) {
    throw new UnsupportedModelError({
      file,
      feature: 'architectures[0]',
      value: architecture,
      supported: [defaultArchitectures[modelType]],
    });
  }

  // Gemma's MLP reads `hidden_activation` (configs carry both keys); the others `hidden_act`.
  const actKey = isGemma(modelType) && fields.has('hidden_activation') ? 'hidden_activation' : 'hidden_act';
  const actName = fields.optionalString(actKey) ?? defaults.hiddenAct;
  const supportedActs = isGemma(modelType) ? ['gelu_pytorch_tanh', 'gelu_new'] : ['silu', 'swish'];
  if (!supportedActs.includes(actName)) {
    throw new UnsupportedModelError({ file, feature: actKey, value: actName, supported: supportedActs });
  }
  const hiddenAct = isGemma(modelType) ? 'gelu_pytorch_tanh' : 'silu';

  const hiddenSize = fields.positiveInteger('hidden_size');
  const numLayers = fields.positiveInteger('num_hidden_layers');
  const numAttentionHeads = fields.positiveInteger('num_attention_heads');
  const numKeyValueHeads = fields.positiveInteger('num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fields.fail('num_key_value_heads', `a divisor of num_attention_heads (${numAttentionHeads})`);
  }
  let headDim = fields.optionalPositiveInteger('head_dim') ?? defaults.headDim;
  if (headDim === undefined) {
    if (hiddenSize % numAttentionHeads !== 0) {
      fields.fail('head_dim', `given, since hidden_size ${hiddenSize} is not a multiple of num_attention_heads`);
    }
    headDim = hiddenSize / numAttentionHeads;
  }
  if (headDim % 2 !== 0) fields.fail('head_dim', 'even (rotary embeddings rotate pairs)', headDim);
  const partialRotaryFactor = fields.has('partial_rotary_factor') ? fields.positiveNumber('partial_rotary_factor') : 1;
  if (partialRotaryFactor > 1) fields.fail('partial_rotary_factor', 'at most 1');
  const rotaryDim = Math.floor(headDim * partialRotaryFactor);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
    fields.fail('partial_rotary_factor', `one giving an even rotary size (head_dim ${headDim} x factor)`);
  }

  const maxPositionEmbeddings = fields.positiveInteger('max_position_embeddings', defaults.maxPositions);
  const { ropeTheta, ropeScaling, localRope } = parseRope(fields, {
    modelType,
    rotaryDim,
    maxPositions: maxPositionEmbeddings,
    defaultTheta: defaults.ropeTheta,
  });
  const maxPositions = extendedContext(maxPositionEmbeddings, ropeScaling);
  const { slidingWindow, layerTypes } = parseSlidingWindow(fields, modelType, numLayers);

  const attentionBias = fields.boolean('attention_bias', false);
  const gemma = isGemma(modelType);
  const optionalCap = (name: string, fallback: number | null): number | null =>
    fields.isPresent(name) ? (fields.has(name) ? fields.positiveNumber(name) : null) : fallback;
  return {
    file,
    modelType,
    architecture,
    vocabSize: fields.positiveInteger('vocab_size'),
    hiddenSize,
    intermediateSize: fields.positiveInteger('intermediate_size'),
    numLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: fields.positiveNumber('rms_norm_eps', defaults.rmsNormEps),
    ropeTheta,
    ropeScaling,
    localRope: modelType === 'gemma3_text' && layerTypes.includes('sliding_attention') ? localRope : null,
    rotaryDim,
    maxPositions,
    maxPositionEmbeddings,
    tieWordEmbeddings: fields.boolean('tie_word_embeddings', defaults.tieWordEmbeddings),
    qkvBias: modelType === 'qwen2' ? true : modelType === 'mistral' || modelType === 'phi3' ? false : attentionBias,
    outputBias: modelType === 'llama' || modelType === 'qwen3' || gemma ? attentionBias : false,
    mlpBias: modelType === 'llama' ? fields.boolean('mlp_bias', false) : false,
    slidingWindow,
    layerTypes,
    hiddenAct,
    queryKeyNorm: modelType === 'qwen3' || modelType === 'gemma3_text',
    normWeightOffset: gemma ? 1 : 0,
    sandwichNorms: gemma,
    embeddingScale: gemma ? Math.fround(Math.sqrt(hiddenSize)) : null,
    attentionScale: gemma ? fields.positiveNumber('query_pre_attn_scalar', 256) ** -0.5 : headDim ** -0.5,
    attnLogitSoftcapping:
      modelType === 'gemma2'
        ? optionalCap('attn_logit_softcapping', 50)
        : gemma
          ? optionalCap('attn_logit_softcapping', null)
          : null,
    finalLogitSoftcapping:
      modelType === 'gemma2'
        ? optionalCap('final_logit_softcapping', 30)
        : gemma
          ? optionalCap('final_logit_softcapping', null)
          : null,
    packedProjections: modelType === 'phi3',
    bosTokenId: fields.optionalTokenId('bos_token_id'),
    eosTokenIds: fields.tokenIdList('eos_token_id'),
    padTokenId: fields.optionalTokenId('pad_token_id'),
    torchDtype: fields.optionalString('torch_dtype') ?? fields.optionalString('dtype'),
  };
}

/** The context a scaling extends `max_position_embeddings` to (vLLM's derived max model length). */
function extendedContext(maxPositionEmbeddings: number, scaling: RopeScaling | null): number {
  if (scaling?.type === 'yarn') {
    return Math.max(maxPositionEmbeddings, Math.floor(scaling.originalMaxPositions * scaling.factor));
  }
  if (scaling?.type === 'dynamic')
    return Math.max(maxPositionEmbeddings, Math.floor(maxPositionEmbeddings * scaling.factor));
  return maxPositionEmbeddings;
}

function isSupportedModelType(value: unknown): value is DecoderModelType {
  return typeof value === 'string' && (SUPPORTED_MODEL_TYPES as readonly string[]).includes(value);
}

const supportedRopeTypes = ['default', 'linear', 'llama3', 'yarn', 'dynamic', 'longrope'];

interface RopeContext {
  readonly modelType: DecoderModelType;
  readonly rotaryDim: number;
  readonly maxPositions: number;
  readonly defaultTheta: number;
}

function parseRope(
  fields: ConfigFields,
  context: RopeContext,
): { ropeTheta: number; ropeScaling: RopeScaling | null; localRope: RopeConfig } {
  // transformers 5 moves rope_theta and the scaling into `rope_parameters`; models with two rotary embeddings
  // (Gemma 3) key it by layer type there. Older files use top-level keys (`rope_local_base_freq` for Gemma 3).
  let parameters = fields.optionalObject('rope_parameters');
  let localParameters: ConfigFields | undefined;
  if (parameters?.has('full_attention') === true || parameters?.has('sliding_attention') === true) {
    localParameters = parameters.optionalObject('sliding_attention');
    parameters = parameters.optionalObject('full_attention');
  }
  const scaling = parameters ?? fields.optionalObject('rope_scaling');
  const ropeTheta =
    parameters?.has('rope_theta') === true
      ? parameters.positiveNumber('rope_theta')
      : fields.positiveNumber('rope_theta', context.defaultTheta);
  const localTheta =
    localParameters?.has('rope_theta') === true
      ? localParameters.positiveNumber('rope_theta')
      : fields.positiveNumber('rope_local_base_freq', 10000);
  const localScaling = localParameters === undefined ? null : parseScaling(fields, localParameters, context, true);
  const ropeScaling = scaling === undefined ? null : parseScaling(fields, scaling, context, parameters !== undefined);
  return { ropeTheta, ropeScaling, localRope: { theta: localTheta, scaling: localScaling } };
}

function parseScaling(
  fields: ConfigFields,
  scaling: ConfigFields,
  context: RopeContext,
  inParameters: boolean,
): RopeScaling | null {
  const type = scaling.optionalString('rope_type') ?? scaling.optionalString('type') ?? 'default';
  const half = context.rotaryDim / 2;
  switch (type) {
    case 'default':
      return null;
    case 'linear':
      return { type: 'linear', factor: scaling.positiveNumber('factor') };
    case 'dynamic':
      return { type: 'dynamic', factor: scaling.positiveNumber('factor'), originalMaxPositions: context.maxPositions };
    case 'llama3': {
      const lowFreqFactor = scaling.positiveNumber('low_freq_factor');
      const highFreqFactor = scaling.positiveNumber('high_freq_factor');
      if (highFreqFactor <= lowFreqFactor) {
        scaling.fail('high_freq_factor', `greater than low_freq_factor (${lowFreqFactor})`);
      }
      return {
        type: 'llama3',
        factor: scaling.positiveNumber('factor'),
        lowFreqFactor,
        highFreqFactor,
        originalMaxPositions: scaling.positiveInteger('original_max_position_embeddings'),
      };
    }
    case 'yarn': {
      const factor = scaling.positiveNumber('factor');
      const mscale = scaling.optionalNumber('mscale');
      const mscaleAllDim = scaling.optionalNumber('mscale_all_dim');
      const getMscale = (scale: number, m = 1): number => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      let attentionFactor = scaling.has('attention_factor') ? scaling.positiveNumber('attention_factor') : undefined;
      if (attentionFactor === undefined) {
        attentionFactor =
          mscale !== undefined && mscale !== 0 && mscaleAllDim !== undefined && mscaleAllDim !== 0
            ? getMscale(factor, mscale) / getMscale(factor, mscaleAllDim)
            : getMscale(factor);
      }
      const betaFast = scaling.has('beta_fast') ? scaling.positiveNumber('beta_fast') : 32;
      const betaSlow = scaling.has('beta_slow') ? scaling.positiveNumber('beta_slow') : 1;
      return {
        type: 'yarn',
        factor,
        originalMaxPositions: scaling.positiveInteger('original_max_position_embeddings', context.maxPositions),
        betaFast,
        betaSlow,
        attentionFactor,
        truncate: scaling.boolean('truncate', true),
      };
    }
    case 'longrope':
    case 'su': {
      const factorList = (name: string): number[] => {
        const value = scaling.raw(name);
        if (
          !Array.isArray(value) ||
          value.length !== half ||
          value.some((v) => typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
        ) {
          scaling.fail(name, `a list of ${half} positive numbers (rotary size / 2)`);
        }
        return value as number[];
      };
      const shortFactor = factorList('short_factor');
      const longFactor = factorList('long_factor');
      // Phi-3 keeps `original_max_position_embeddings` at the top level and derives the factor from it.
      const topLevel = !inParameters && fields.has('original_max_position_embeddings');
      const originalMaxPositions = topLevel
        ? fields.positiveInteger('original_max_position_embeddings')
        : scaling.positiveInteger('original_max_position_embeddings', context.maxPositions);
      const factor = topLevel ? context.maxPositions / originalMaxPositions : scaling.positiveNumber('factor', 1);
      const attentionFactor = scaling.has('attention_factor')
        ? scaling.positiveNumber('attention_factor')
        : factor <= 1
          ? 1
          : Math.sqrt(1 + Math.log(factor) / Math.log(originalMaxPositions));
      return { type: 'longrope', shortFactor, longFactor, originalMaxPositions, attentionFactor };
    }
    default:
      throw new UnsupportedModelError({
        file: fields.file,
        feature: `${inParameters ? 'rope_parameters' : 'rope_scaling'}.rope_type`,
        value: type,
        supported: supportedRopeTypes,
      });
  }
}

function parseSlidingWindow(
  fields: ConfigFields,
  modelType: DecoderModelType,
  numLayers: number,
): { slidingWindow: number | null; layerTypes: LayerAttentionType[] } {
  let slidingWindow: number | null;
  let defaultTypes: (layer: number) => LayerAttentionType;
  if (modelType === 'mistral') {
    // MistralConfig defaults sliding_window to 4096; an explicit null turns it off (Mistral v0.2+).
    slidingWindow = fields.isPresent('sliding_window')
      ? (fields.optionalPositiveInteger('sliding_window') ?? null)
      : 4096;
    defaultTypes = () => 'sliding_attention';
  } else if (modelType === 'qwen2' || modelType === 'qwen3') {
    // Qwen2 / Qwen3: the window applies only when use_sliding_window is set, and only to layers >= max_window_layers.
    const use = fields.boolean('use_sliding_window', false);
    const window = fields.positiveInteger('sliding_window', 4096);
    const maxWindowLayers = fields.has('max_window_layers') ? nonNegativeInteger(fields, 'max_window_layers') : 28;
    slidingWindow = use ? window : null;
    defaultTypes = (layer) => (layer >= maxWindowLayers ? 'sliding_attention' : 'full_attention');
  } else if (modelType === 'gemma2' || modelType === 'gemma3_text') {
    // Gemma 2 alternates sliding and full layers (even layers slide); Gemma 3 has one full layer in every
    // `sliding_window_pattern` (default 6).
    slidingWindow = fields.positiveInteger('sliding_window', 4096);
    const pattern =
      modelType === 'gemma2'
        ? 2
        : fields.has('sliding_window_pattern')
          ? fields.positiveInteger('sliding_window_pattern')
          : fields.positiveInteger('_sliding_window_pattern', 6);
    defaultTypes = (layer) => ((layer + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention');
  } else if (modelType === 'phi3') {
    // Phi-3: `sliding_window` (default null) applies to every layer.
    slidingWindow = fields.optionalPositiveInteger('sliding_window') ?? null;
    defaultTypes = () => 'sliding_attention';
  } else {
    slidingWindow = null;
    defaultTypes = () => 'full_attention';
  }

  const explicit = fields.raw('layer_types');
  let layerTypes: LayerAttentionType[];
  if (explicit !== undefined) {
    if (
      !Array.isArray(explicit) ||
      explicit.length !== numLayers ||
      explicit.some((t) => t !== 'full_attention' && t !== 'sliding_attention')
    ) {
      fields.fail('layer_types', `a list of ${numLayers} "full_attention" / "sliding_attention" entries`);
    }
    layerTypes = explicit as LayerAttentionType[];
  } else {
    layerTypes = Array.from({ length: numLayers }, (_, i) => defaultTypes(i));
  }
  if (slidingWindow === null) layerTypes = layerTypes.map(() => 'full_attention');
  else if (!layerTypes.includes('sliding_attention')) slidingWindow = null;
  return { slidingWindow, layerTypes };
}

function nonNegativeInteger(fields: ConfigFields, name: string): number {
  const value = fields.raw(name);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) fields.fail(name, 'a non-negative integer');
  return value;
}

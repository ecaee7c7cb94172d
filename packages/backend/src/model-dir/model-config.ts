import path from 'node:path';
import { UnsupportedModelError } from '../errors.js';
import { ConfigFields } from './config-fields.js';
import { readJsonFile } from './json-file.js';

/** The `model_type` values this package can read. */
export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;

/** A supported Hugging Face `model_type`. */
export type DecoderModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

/**
 * Rotary-embedding frequency scaling (`rope_scaling`, or `rope_parameters` in transformers 5).
 *
 * - `linear`: every inverse frequency is divided by `factor`.
 * - `llama3` (Llama 3.1 / 3.2): with `wavelength = 2π / invFreq`, `low = originalMaxPositions / lowFreqFactor`,
 *   `high = originalMaxPositions / highFreqFactor`: wavelengths above `low` are divided by `factor`, those below
 *   `high` are kept, and in between `invFreq` is blended as `(1 - s) * invFreq / factor + s * invFreq` with
 *   `s = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor)`.
 *
 * `null` in {@link DecoderModelConfig.ropeScaling} means unscaled (`default`).
 */
export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositions: number;
    };

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
  /** `rope_theta`: base of the rotary inverse frequencies `theta^(-2i / headDim)`. */
  readonly ropeTheta: number;
  /** Frequency scaling, or `null` for plain rotary embeddings. */
  readonly ropeScaling: RopeScaling | null;
  /** `max_position_embeddings`. */
  readonly maxPositions: number;
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
  /** `hidden_act`; only SiLU (`silu` / `swish`) is supported. */
  readonly hiddenAct: 'silu';
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
};

/** Default `max_position_embeddings` of each transformers config class. */
const defaultMaxPositions: Record<DecoderModelType, number> = { llama: 2048, mistral: 4096 * 32, qwen2: 32768 };

/** Reads and parses `<modelDir>/config.json`. */
export async function readModelConfig(modelDir: string): Promise<DecoderModelConfig> {
  const file = path.join(modelDir, 'config.json');
  const json = await readJsonFile(file, {
    expected: 'a Hugging Face config.json (the model directory must contain one)',
  });
  return parseModelConfig(json, file);
}

/**
 * Normalizes a parsed `config.json` of a `llama`, `mistral` or `qwen2` model, applying the transformers defaults
 * of each config class.
 *
 * @param json The parsed file.
 * @param file Path used in error messages.
 * @throws {UnsupportedModelError} another `model_type`, a non-causal-LM architecture, an activation other than
 *   SiLU, or a `rope_scaling` type other than `default`, `linear`, `llama3`.
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

  const hiddenAct = fields.optionalString('hidden_act') ?? 'silu';
  if (hiddenAct !== 'silu' && hiddenAct !== 'swish') {
    throw new UnsupportedModelError({ file, feature: 'hidden_act', value: hiddenAct, supported: ['silu', 'swish'] });
  }

  const hiddenSize = fields.positiveInteger('hidden_size');
  const numLayers = fields.positiveInteger('num_hidden_layers');
  const numAttentionHeads = fields.positiveInteger('num_attention_heads');
  const numKeyValueHeads = fields.positiveInteger('num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fields.fail('num_key_value_heads', `a divisor of num_attention_heads (${numAttentionHeads})`);
  }
  let headDim = fields.optionalPositiveInteger('head_dim');
  if (headDim === undefined) {
    if (hiddenSize % numAttentionHeads !== 0) {
      fields.fail('head_dim', `given, since hidden_size ${hiddenSize} is not a multiple of num_attention_heads`);
    }
    headDim = hiddenSize / numAttentionHeads;
  }
  if (headDim % 2 !== 0) fields.fail('head_dim', 'even (rotary embeddings rotate pairs)', headDim);

  const { ropeTheta, ropeScaling } = parseRope(fields);
  const { slidingWindow, layerTypes } = parseSlidingWindow(fields, modelType, numLayers);

  const attentionBias = fields.boolean('attention_bias', false);
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
    rmsNormEps: fields.positiveNumber('rms_norm_eps', 1e-6),
    ropeTheta,
    ropeScaling,
    maxPositions: fields.positiveInteger('max_position_embeddings', defaultMaxPositions[modelType]),
    tieWordEmbeddings: fields.boolean('tie_word_embeddings', false),
    qkvBias: modelType === 'qwen2' ? true : modelType === 'llama' ? attentionBias : false,
    outputBias: modelType === 'llama' ? attentionBias : false,
    mlpBias: modelType === 'llama' ? fields.boolean('mlp_bias', false) : false,
    slidingWindow,
    layerTypes,
    hiddenAct: 'silu',
    bosTokenId: fields.optionalTokenId('bos_token_id'),
    eosTokenIds: fields.tokenIdList('eos_token_id'),
    padTokenId: fields.optionalTokenId('pad_token_id'),
    torchDtype: fields.optionalString('torch_dtype') ?? fields.optionalString('dtype'),
  };
}

function isSupportedModelType(value: unknown): value is DecoderModelType {
  return typeof value === 'string' && (SUPPORTED_MODEL_TYPES as readonly string[]).includes(value);
}

const supportedRopeTypes = ['default', 'linear', 'llama3'];

function parseRope(fields: ConfigFields): { ropeTheta: number; ropeScaling: RopeScaling | null } {
  // transformers 5 moves rope_theta and the scaling into `rope_parameters`; older files use the two top-level keys.
  const parameters = fields.optionalObject('rope_parameters');
  const scaling = parameters ?? fields.optionalObject('rope_scaling');
  const ropeTheta =
    parameters?.has('rope_theta') === true
      ? parameters.positiveNumber('rope_theta')
      : fields.positiveNumber('rope_theta', 10000);
  if (scaling === undefined) return { ropeTheta, ropeScaling: null };

  const type = scaling.optionalString('rope_type') ?? scaling.optionalString('type') ?? 'default';
  switch (type) {
    case 'default':
      return { ropeTheta, ropeScaling: null };
    case 'linear':
      return { ropeTheta, ropeScaling: { type: 'linear', factor: scaling.positiveNumber('factor') } };
    case 'llama3': {
      const lowFreqFactor = scaling.positiveNumber('low_freq_factor');
      const highFreqFactor = scaling.positiveNumber('high_freq_factor');
      if (highFreqFactor <= lowFreqFactor) {
        scaling.fail('high_freq_factor', `greater than low_freq_factor (${lowFreqFactor})`);
      }
      return {
        ropeTheta,
        ropeScaling: {
          type: 'llama3',
          factor: scaling.positiveNumber('factor'),
          lowFreqFactor,
          highFreqFactor,
          originalMaxPositions: scaling.positiveInteger('original_max_position_embeddings'),
        },
      };
    }
    default:
      throw new UnsupportedModelError({
        file: fields.file,
        feature: `${parameters === undefined ? 'rope_scaling' : 'rope_parameters'}.rope_type`,
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
  } else if (modelType === 'qwen2') {
    // Qwen2: the window applies only when use_sliding_window is set, and only to layers >= max_window_layers.
    const use = fields.boolean('use_sliding_window', false);
    const window = fields.positiveInteger('sliding_window', 4096);
    const maxWindowLayers = fields.has('max_window_layers') ? nonNegativeInteger(fields, 'max_window_layers') : 28;
    slidingWindow = use ? window : null;
    defaultTypes = (layer) => (layer >= maxWindowLayers ? 'sliding_attention' : 'full_attention');
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

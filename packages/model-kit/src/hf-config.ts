import { InvalidModelConfigError } from './errors.js';
import type { Architecture, ModelConfig } from './model-config.js';
import type { WeightDtype } from './dtype.js';

/**
 * Rotary-embedding frequency scaling, as `rope_scaling` in `config.json` (`rope_type`, or `type` in older files;
 * or transformers 5's `rope_parameters`). Supported:
 * - `linear`: inverse frequencies divided by `factor`;
 * - `llama3`: Llama 3.1's frequency-dependent scaling;
 * - `yarn`: YaRN's ramp between interpolated (`/ factor`) and original frequencies over the correction range of
 *   `betaFast`..`betaSlow` rotations in `originalMaxPositionEmbeddings`; cos and sin multiplied by
 *   `attentionFactor` (resolved: given, else from `mscale` / `mscale_all_dim`, else `0.1 ln(factor) + 1`);
 * - `dynamic`: dynamic NTK, the base raised for a forward whose sequence length exceeds `maxPositionEmbeddings`
 *   (see {@link ropeInverseFrequencies});
 * - `longrope` (legacy `su`; Phi-3): per-frequency `shortFactor` / `longFactor` divisors (`rotaryDim / 2` each),
 *   the long ones for a forward whose sequence length exceeds `originalMaxPositionEmbeddings`; cos and sin
 *   multiplied by `attentionFactor` (resolved: given, else `sqrt(1 + ln(factor) / ln(original))` when the factor
 *   exceeds 1, else 1).
 */
export type RopeScaling =
  | { ropeType: 'linear'; factor: number }
  | {
      ropeType: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    }
  | {
      ropeType: 'yarn';
      factor: number;
      originalMaxPositionEmbeddings: number;
      betaFast: number;
      betaSlow: number;
      attentionFactor: number;
      truncate: boolean;
    }
  | { ropeType: 'dynamic'; factor: number }
  | {
      ropeType: 'longrope';
      shortFactor: number[];
      longFactor: number[];
      originalMaxPositionEmbeddings: number;
      attentionFactor: number;
    };

/** Attention kind of one decoder layer, as transformers' `layer_types`. */
export type LayerType = 'full_attention' | 'sliding_attention';

/**
 * Everything the forward pass needs to know about a decoder (llama, qwen2, mistral, qwen3, gemma2, gemma3_text,
 * phi3), read from a `config.json`. Each layer: `h = norm(x)`, attention, (post-attention norm), residual add;
 * `h = norm(x)`, MLP, (post-feedforward norm), residual add. Then the final norm and `lm_head`.
 */
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
  /**
   * Positions a graph must cover: `maxPositionEmbeddings`, or the context the scaling extends it to as vLLM derives
   * it (yarn: `originalMaxPositionEmbeddings × factor`; dynamic: `maxPositionEmbeddings × factor`), the same rule
   * as `@gen/backend`'s `maxPositions`. Rotary tables have this many rows.
   */
  contextLength: number;
  rmsNormEps: number;
  /** Rotary base of every layer except gemma3_text's sliding layers (see {@link localRopeTheta}). */
  ropeTheta: number;
  /** Applies to every layer except gemma3_text's sliding layers. */
  ropeScaling: RopeScaling | null;
  tieWordEmbeddings: boolean;
  /** q_proj, k_proj and v_proj have biases. */
  qkvBias: boolean;
  /** o_proj has a bias. */
  outputBias: boolean;
  /** gate_proj, up_proj and down_proj have biases. */
  mlpBias: boolean;
  /**
   * The window of the `sliding_attention` layers (see {@link layerTypes}): a query at position p sees keys at
   * max(0, p - slidingWindow + 1) .. p. Null when no layer slides.
   */
  slidingWindow: number | null;
  /** Attention kind of each layer (`numLayers` entries); all `full_attention` when {@link slidingWindow} is null. */
  layerTypes: LayerType[];
  /**
   * Per-head RMSNorm of queries and keys after q_proj / k_proj, before rotary (`self_attn.q_norm.weight`,
   * `self_attn.k_norm.weight`, shape [headDim]): qwen3, gemma3_text.
   */
  queryKeyNorm: boolean;
  /** Every RMSNorm (q/k norms included) multiplies by `1 + w` (computed in float32) instead of `w`: gemma. */
  normWeightOffset: boolean;
  /**
   * Gemma's four norms per layer: `post_attention_layernorm` normalises the attention output before the residual
   * add, `pre_feedforward_layernorm` feeds the MLP and `post_feedforward_layernorm` normalises its output.
   */
  sandwichNorms: boolean;
  /** MLP activation: `down(act(gate(x)) * up(x))`; `gelu_pytorch_tanh` is GELU's tanh approximation. */
  hiddenAct: 'silu' | 'gelu_pytorch_tanh';
  /** The embedding output is multiplied by this float32 scalar (gemma: `fround(sqrt(hiddenSize))`), or null. */
  embeddingScale: number | null;
  /** Attention scores are `(q . k) * attentionScale`: `1 / sqrt(headDim)`, gemma `queryPreAttnScalar^-0.5`. */
  attentionScale: number;
  /** Scores become `tanh(s / cap) * cap` before the mask and softmax, or null (gemma2). */
  attnLogitSoftcapping: number | null;
  /** Logits become `tanh(l / cap) * cap`, or null (gemma2). */
  finalLogitSoftcapping: number | null;
  /**
   * phi3: the checkpoint stores `self_attn.qkv_proj.weight` (rows of q, then k, then v) and
   * `mlp.gate_up_proj.weight` (rows of gate, then up) instead of the separate projections.
   */
  packedProjections: boolean;
  /**
   * Rotated entries at the start of each head (`floor(headDim * partial_rotary_factor)`, even): entry i pairs with
   * i + rotaryDim / 2; the rest pass through unrotated.
   */
  rotaryDim: number;
  /** gemma3_text: the rotary base of the sliding layers, which use no `ropeScaling`; null otherwise. */
  localRopeTheta: number | null;
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
  qwen3: 'Qwen3ForCausalLM',
  gemma2: 'Gemma2ForCausalLM',
  gemma3_text: 'Gemma3ForCausalLM',
  phi3: 'Phi3ForCausalLM',
};

/** The `model_type` values {@link parseHfConfig} reads. */
export const supportedArchitectures: readonly Architecture[] = Object.keys(architectureClass) as Architecture[];

/**
 * The attention kind of each layer that `config` describes, as transformers' config classes derive `layer_types`
 * (explicit `layerTypes` win): qwen3 slides from layer `maxWindowLayers` on when `slidingWindow` is set; gemma2
 * slides on even layers; gemma3_text on every layer but each `slidingWindowPattern`-th; mistral and phi3 on every
 * layer when `slidingWindow` is set.
 */
export function modelLayerTypes(config: ModelConfig): LayerType[] {
  if (config.layerTypes !== undefined) return [...config.layerTypes];
  const n = config.numHiddenLayers;
  const window = config.slidingWindow ?? null;
  return Array.from({ length: n }, (_, i): LayerType => {
    switch (config.architecture) {
      case 'gemma2':
        return (i + 1) % 2 !== 0 ? 'sliding_attention' : 'full_attention';
      case 'gemma3_text':
        return (i + 1) % (config.slidingWindowPattern ?? 6) !== 0 ? 'sliding_attention' : 'full_attention';
      case 'qwen3':
        return window !== null && i >= (config.maxWindowLayers ?? 0) ? 'sliding_attention' : 'full_attention';
      case 'mistral':
      case 'phi3':
        return window !== null ? 'sliding_attention' : 'full_attention';
      default:
        return 'full_attention';
    }
  });
}

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
  // Old presets write no rope_scaling key for qwen2 / mistral; keep their files unchanged.
  const ropeScaling = config.ropeScaling === undefined ? {} : { rope_scaling: config.ropeScaling };
  const gemma = () => {
    const { hidden_act: _unused, ...rest } = common;
    void _unused;
    return {
      ...rest,
      attention_bias: config.attentionBias ?? false,
      attn_logit_softcapping: config.attnLogitSoftcapping ?? null,
      cache_implementation: 'hybrid',
      eos_token_id: tokens.eos.length === 1 ? tokens.eos[0] : tokens.eos,
      final_logit_softcapping: config.finalLogitSoftcapping ?? null,
      head_dim: config.headDim,
      hidden_activation: 'gelu_pytorch_tanh',
      layer_types: modelLayerTypes(config),
      pad_token_id: tokens.pad,
      query_pre_attn_scalar: config.queryPreAttnScalar ?? config.headDim,
      sliding_window: config.slidingWindow ?? 4096,
    };
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
        rope_scaling: config.ropeScaling ?? null,
      };
    case 'qwen2':
      // Real Qwen2 configs carry no head_dim (it is hidden_size / num_attention_heads).
      return {
        ...common,
        ...ropeScaling,
        eos_token_id: tokens.eos[0],
        max_window_layers: config.numHiddenLayers,
        sliding_window: config.maxPositionEmbeddings,
        use_sliding_window: false,
      };
    case 'mistral':
      return {
        ...common,
        ...ropeScaling,
        eos_token_id: tokens.eos[0],
        head_dim: config.headDim,
        sliding_window: config.slidingWindow ?? null,
      };
    case 'qwen3': {
      const sliding = config.slidingWindow != null;
      return {
        ...common,
        attention_bias: config.attentionBias ?? false,
        eos_token_id: tokens.eos[0],
        head_dim: config.headDim,
        layer_types: modelLayerTypes(config),
        max_window_layers: sliding ? (config.maxWindowLayers ?? 0) : config.numHiddenLayers,
        rope_scaling: config.ropeScaling ?? null,
        // Qwen3Config stores sliding_window = None unless use_sliding_window.
        sliding_window: config.slidingWindow ?? null,
        use_sliding_window: sliding,
      };
    }
    case 'gemma2':
      // google/gemma-2-* configs carry both hidden_act and hidden_activation.
      return { ...gemma(), ...ropeScaling, hidden_act: 'gelu_pytorch_tanh' };
    case 'gemma3_text':
      return {
        ...gemma(),
        rope_local_base_freq: config.ropeLocalBaseFreq ?? 10000,
        rope_scaling: config.ropeScaling ?? null,
        sliding_window_pattern: config.slidingWindowPattern ?? 6,
        use_bidirectional_attention: false,
      };
    case 'phi3':
      return {
        ...common,
        attention_bias: false,
        embd_pdrop: 0.0,
        eos_token_id: tokens.eos[0],
        original_max_position_embeddings: config.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings,
        pad_token_id: tokens.pad,
        partial_rotary_factor: config.partialRotaryFactor ?? 1,
        resid_pdrop: 0.0,
        rope_scaling: config.ropeScaling ?? null,
        sliding_window: config.slidingWindow ?? null,
      };
  }
}

/** The `generation_config.json` object: the model's own sampling defaults, as the real releases ship them. */
export function toGenerationConfig(config: ModelConfig, tokens: ConfigTokenIds): Record<string, unknown> {
  switch (config.chatFormat) {
    case 'chatml':
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
    case 'qwen3':
      // Qwen3's thinking-mode defaults.
      return {
        bos_token_id: tokens.bos,
        do_sample: true,
        eos_token_id: tokens.eos,
        pad_token_id: tokens.pad,
        temperature: 0.6,
        top_k: 20,
        top_p: 0.95,
      };
    case 'gemma':
      return config.architecture === 'gemma2'
        ? {
            bos_token_id: tokens.bos,
            cache_implementation: 'hybrid',
            eos_token_id: tokens.eos,
            pad_token_id: tokens.pad,
          }
        : {
            bos_token_id: tokens.bos,
            cache_implementation: 'hybrid',
            do_sample: true,
            eos_token_id: tokens.eos,
            pad_token_id: tokens.pad,
            top_k: 64,
            top_p: 0.95,
          };
    case 'phi3':
      return { bos_token_id: tokens.bos, eos_token_id: tokens.eos, pad_token_id: tokens.pad };
    default:
      return { bos_token_id: tokens.bos, do_sample: true, eos_token_id: tokens.eos, temperature: 0.6, top_p: 0.9 };
  }
}

const gemmaFamily = (architecture: Architecture) => architecture === 'gemma2' || architecture === 'gemma3_text';

/** transformers' config-class defaults that differ by family. */
const familyDefaults: Record<
  Architecture,
  { maxPositionEmbeddings: number; rmsNormEps: number; ropeTheta: number; tie: boolean; headDim: number | null }
> = {
  llama: { maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, ropeTheta: 10000, tie: false, headDim: null },
  qwen2: { maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, ropeTheta: 10000, tie: false, headDim: null },
  mistral: { maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, ropeTheta: 10000, tie: false, headDim: null },
  qwen3: { maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, ropeTheta: 10000, tie: false, headDim: 128 },
  gemma2: { maxPositionEmbeddings: 8192, rmsNormEps: 1e-6, ropeTheta: 10000, tie: true, headDim: 256 },
  gemma3_text: { maxPositionEmbeddings: 131072, rmsNormEps: 1e-6, ropeTheta: 1_000_000, tie: true, headDim: 256 },
  phi3: { maxPositionEmbeddings: 4096, rmsNormEps: 1e-5, ropeTheta: 10000, tie: false, headDim: null },
};

/**
 * Reads a decoder's `config.json` object (llama, mistral, qwen2, qwen3, gemma2, gemma3_text or phi3, as
 * transformers writes it, with its config classes' defaults for missing fields) into a {@link DecoderSpec}.
 * Throws {@link InvalidModelConfigError} for anything this package cannot express.
 */
export function parseHfConfig(json: unknown): DecoderSpec {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InvalidModelConfigError({ field: 'config.json', message: 'config.json must hold a JSON object.' });
  }
  const raw = json as Record<string, unknown>;
  const architecture = raw['model_type'] as Architecture;
  if (typeof architecture !== 'string' || !Object.hasOwn(architectureClass, architecture)) {
    throw new InvalidModelConfigError({
      field: 'model_type',
      message: `model_type ${JSON.stringify(architecture)} is not supported; expected one of ${supportedArchitectures.join(', ')}.`,
    });
  }
  const defaults = familyDefaults[architecture];
  const gemma = gemmaFamily(architecture);
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
  const flag = (field: string, fallback = false): boolean => {
    const value = raw[field] ?? fallback;
    if (typeof value !== 'boolean') {
      throw new InvalidModelConfigError({ field, message: `\`${field}\` must be a boolean; got ${String(value)}.` });
    }
    return value;
  };
  /** A key that defaults to `fallback` when absent but may be null (off) when present. */
  const optionalPositive = (field: string, fallback: number | null): number | null => {
    const value = field in raw ? raw[field] : fallback;
    if (value === null || value === undefined) return null;
    if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
      throw new InvalidModelConfigError({
        field,
        message: `\`${field}\` must be a positive number or null; got ${String(value)}.`,
      });
    }
    return value;
  };
  const hiddenAct =
    (gemma ? (raw['hidden_activation'] ?? raw['hidden_act']) : raw['hidden_act']) ??
    (gemma ? 'gelu_pytorch_tanh' : 'silu');
  if (hiddenAct !== 'silu' && hiddenAct !== 'gelu_pytorch_tanh') {
    throw new InvalidModelConfigError({
      field: gemma ? 'hidden_activation' : 'hidden_act',
      message: `hidden activation ${JSON.stringify(hiddenAct)} is not supported; expected silu or gelu_pytorch_tanh.`,
    });
  }
  if (raw['quantization_config'] != null) {
    throw new InvalidModelConfigError({
      field: 'quantization_config',
      message: 'Quantized checkpoints (quantization_config) are not supported; export a float16/bfloat16/float32 one.',
    });
  }
  const hiddenSize = integer('hidden_size');
  const numHeads = integer('num_attention_heads');
  const numKvHeads = integer('num_key_value_heads', numHeads);
  const numLayers = integer('num_hidden_layers');
  const headDim = integer('head_dim', defaults.headDim ?? hiddenSize / numHeads);
  if (headDim % 2 !== 0) {
    throw new InvalidModelConfigError({ field: 'head_dim', message: `head_dim must be even; got ${headDim}.` });
  }
  if (numHeads % numKvHeads !== 0) {
    throw new InvalidModelConfigError({
      field: 'num_key_value_heads',
      message: `num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads}).`,
    });
  }
  const partialRotary = raw['partial_rotary_factor'] ?? 1;
  if (typeof partialRotary !== 'number' || !(partialRotary > 0 && partialRotary <= 1)) {
    throw new InvalidModelConfigError({
      field: 'partial_rotary_factor',
      message: `partial_rotary_factor must be a number in (0, 1]; got ${String(partialRotary)}.`,
    });
  }
  if (partialRotary !== 1 && architecture !== 'phi3') {
    throw new InvalidModelConfigError({
      field: 'partial_rotary_factor',
      message: `partial_rotary_factor other than 1 is supported for phi3 only; got ${partialRotary} for ${architecture}.`,
    });
  }
  const rotaryDim = Math.floor(headDim * partialRotary);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
    throw new InvalidModelConfigError({
      field: 'partial_rotary_factor',
      message: `The rotary size floor(head_dim * partial_rotary_factor) must be an even number >= 2; got ${rotaryDim}.`,
    });
  }
  const maxPositionEmbeddings = integer('max_position_embeddings', defaults.maxPositionEmbeddings);
  const { layerTypes, slidingWindow } = parseLayerTypes(raw, architecture, numLayers, integer);

  // transformers 5 moved rope_theta / rope_scaling into rope_parameters (per layer type for gemma3_text).
  let ropeTheta = positive('rope_theta', defaults.ropeTheta);
  let localRopeTheta = architecture === 'gemma3_text' ? positive('rope_local_base_freq', 10000) : null;
  let ropeScalingJson = raw['rope_scaling'];
  const parameters = raw['rope_parameters'];
  if (ropeScalingJson == null && typeof parameters === 'object' && parameters !== null && !Array.isArray(parameters)) {
    const record = parameters as Record<string, unknown>;
    const full = (record['full_attention'] ?? record) as Record<string, unknown>;
    const sliding = record['sliding_attention'] as Record<string, unknown> | undefined;
    if (typeof full['rope_theta'] === 'number') ropeTheta = full['rope_theta'];
    if (localRopeTheta !== null && typeof sliding?.['rope_theta'] === 'number') localRopeTheta = sliding['rope_theta'];
    ropeScalingJson = full;
  }
  const topLevelOriginal =
    raw['original_max_position_embeddings'] != null
      ? integer('original_max_position_embeddings')
      : architecture === 'phi3'
        ? 4096
        : null;
  const ropeScaling = parseRopeScaling(ropeScalingJson, { rotaryDim, maxPositionEmbeddings, topLevelOriginal });

  const attentionBias = flag('attention_bias');
  const withAttentionBias = architecture === 'llama' || architecture === 'qwen3' || gemma;
  const queryPreAttnScalar = gemma ? positive('query_pre_attn_scalar', 256) : null;
  return {
    architecture,
    vocabSize: integer('vocab_size'),
    hiddenSize,
    intermediateSize: integer('intermediate_size'),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    maxPositionEmbeddings,
    contextLength:
      ropeScaling?.ropeType === 'yarn'
        ? Math.max(maxPositionEmbeddings, Math.floor(ropeScaling.originalMaxPositionEmbeddings * ropeScaling.factor))
        : ropeScaling?.ropeType === 'dynamic'
          ? Math.max(maxPositionEmbeddings, Math.floor(maxPositionEmbeddings * ropeScaling.factor))
          : maxPositionEmbeddings,
    rmsNormEps: positive('rms_norm_eps', defaults.rmsNormEps),
    ropeTheta,
    ropeScaling,
    tieWordEmbeddings: flag('tie_word_embeddings', defaults.tie),
    qkvBias: architecture === 'qwen2' || (withAttentionBias && attentionBias),
    outputBias: withAttentionBias && attentionBias,
    mlpBias: architecture === 'llama' && flag('mlp_bias'),
    slidingWindow,
    layerTypes,
    queryKeyNorm: architecture === 'qwen3' || architecture === 'gemma3_text',
    normWeightOffset: gemma,
    sandwichNorms: gemma,
    hiddenAct,
    embeddingScale: gemma ? Math.fround(Math.sqrt(hiddenSize)) : null,
    attentionScale: queryPreAttnScalar !== null ? queryPreAttnScalar ** -0.5 : 1 / Math.sqrt(headDim),
    attnLogitSoftcapping: gemma
      ? optionalPositive('attn_logit_softcapping', architecture === 'gemma2' ? 50 : null)
      : null,
    finalLogitSoftcapping: gemma
      ? optionalPositive('final_logit_softcapping', architecture === 'gemma2' ? 30 : null)
      : null,
    packedProjections: architecture === 'phi3',
    rotaryDim,
    localRopeTheta,
  };
}

function parseLayerTypes(
  raw: Record<string, unknown>,
  architecture: Architecture,
  numLayers: number,
  integer: (field: string, fallback?: number) => number,
): { layerTypes: LayerType[]; slidingWindow: number | null } {
  let window: number | null = null;
  let types: LayerType[];
  const explicit = raw['layer_types'];
  switch (architecture) {
    case 'llama':
      types = new Array<LayerType>(numLayers).fill('full_attention');
      break;
    case 'mistral':
    case 'phi3':
      if (raw['sliding_window'] != null) window = integer('sliding_window');
      types = new Array<LayerType>(numLayers).fill(window === null ? 'full_attention' : 'sliding_attention');
      break;
    case 'qwen2':
    case 'qwen3': {
      if (raw['use_sliding_window'] === true) window = integer('sliding_window', 4096);
      const from = raw['max_window_layers'] ?? 28;
      if (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 0) {
        throw new InvalidModelConfigError({
          field: 'max_window_layers',
          message: `\`max_window_layers\` must be a non-negative integer; got ${String(from)}.`,
        });
      }
      types = Array.from({ length: numLayers }, (_, i) =>
        window !== null && i >= from ? 'sliding_attention' : 'full_attention',
      );
      break;
    }
    case 'gemma2':
    case 'gemma3_text': {
      window = integer('sliding_window', 4096);
      const pattern =
        architecture === 'gemma2'
          ? 2
          : integer(raw['sliding_window_pattern'] != null ? 'sliding_window_pattern' : '_sliding_window_pattern', 6);
      types = Array.from({ length: numLayers }, (_, i) =>
        (i + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention',
      );
      break;
    }
  }
  if (explicit != null && architecture !== 'llama' && architecture !== 'mistral' && architecture !== 'phi3') {
    if (
      !Array.isArray(explicit) ||
      explicit.length !== numLayers ||
      !explicit.every((t) => t === 'full_attention' || t === 'sliding_attention')
    ) {
      throw new InvalidModelConfigError({
        field: 'layer_types',
        message: `layer_types must list ${numLayers} entries, each "full_attention" or "sliding_attention".`,
      });
    }
    types = [...(explicit as LayerType[])];
  }
  // Qwen configs keep sliding_window = None unless use_sliding_window: sliding layers then attend fully.
  if (window === null && (architecture === 'qwen2' || architecture === 'qwen3'))
    types = types.map(() => 'full_attention');
  if (!types.includes('sliding_attention')) return { layerTypes: types, slidingWindow: null };
  if (window === null) {
    throw new InvalidModelConfigError({
      field: 'sliding_window',
      message: 'layer_types has sliding_attention layers but sliding_window is not set.',
    });
  }
  return { layerTypes: types, slidingWindow: window };
}

/** What {@link parseRopeScaling} needs from the rest of the config. */
export interface RopeScalingContext {
  rotaryDim: number;
  maxPositionEmbeddings: number;
  /** The top-level `original_max_position_embeddings` (phi3: default 4096), or null when the config has none. */
  topLevelOriginal: number | null;
}

/**
 * Reads a `rope_scaling` object (snake_case, `rope_type` or legacy `type`) into a {@link RopeScaling}, resolving
 * the defaults of yarn and longrope (their `attentionFactor` included) as transformers does. Null for none or
 * `default`. Throws {@link InvalidModelConfigError} (field `rope_scaling...`) for anything else.
 */
export function parseRopeScaling(value: unknown, context: RopeScalingContext): RopeScaling | null {
  if (value == null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidModelConfigError({ field: 'rope_scaling', message: 'rope_scaling must be an object or null.' });
  }
  const raw = value as Record<string, unknown>;
  const type = raw['rope_type'] ?? raw['type'];
  const number = (key: string, fallback?: number): number => {
    const n = raw[key] ?? fallback;
    if (typeof n !== 'number' || !(n > 0) || !Number.isFinite(n)) {
      throw new InvalidModelConfigError({
        field: `rope_scaling.${key}`,
        message: `rope_scaling.${key} must be a positive number; got ${String(n)}.`,
      });
    }
    return n;
  };
  const optional = (key: string): number | null => (raw[key] == null ? null : number(key));
  const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
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
    case 'dynamic':
      return { ropeType: 'dynamic', factor: number('factor') };
    case 'yarn': {
      const factor = number('factor');
      const given = optional('attention_factor');
      const m = optional('mscale');
      const mAll = optional('mscale_all_dim');
      const truncate = raw['truncate'] ?? true;
      if (typeof truncate !== 'boolean') {
        throw new InvalidModelConfigError({
          field: 'rope_scaling.truncate',
          message: `rope_scaling.truncate must be a boolean; got ${String(truncate)}.`,
        });
      }
      return {
        ropeType: 'yarn',
        factor,
        originalMaxPositionEmbeddings: number('original_max_position_embeddings', context.maxPositionEmbeddings),
        betaFast: number('beta_fast', 32),
        betaSlow: number('beta_slow', 1),
        attentionFactor:
          given ?? (m !== null && mAll !== null ? mscale(factor, m) / mscale(factor, mAll) : mscale(factor)),
        truncate,
      };
    }
    case 'longrope':
    case 'su': {
      const list = (key: string): number[] => {
        const entries = raw[key];
        if (
          !Array.isArray(entries) ||
          entries.length !== context.rotaryDim / 2 ||
          !entries.every((n) => typeof n === 'number' && n > 0 && Number.isFinite(n))
        ) {
          throw new InvalidModelConfigError({
            field: `rope_scaling.${key}`,
            message: `rope_scaling.${key} must list rotaryDim / 2 = ${context.rotaryDim / 2} positive numbers; got ${Array.isArray(entries) ? `${entries.length} entries` : String(entries)}.`,
          });
        }
        return [...(entries as number[])];
      };
      const shortFactor = list('short_factor');
      const longFactor = list('long_factor');
      let original: number;
      let factor: number;
      if (context.topLevelOriginal !== null) {
        original = context.topLevelOriginal;
        factor = context.maxPositionEmbeddings / original;
      } else {
        original = number('original_max_position_embeddings', context.maxPositionEmbeddings);
        factor = number('factor', 1);
      }
      const given = optional('attention_factor');
      return {
        ropeType: 'longrope',
        shortFactor,
        longFactor,
        originalMaxPositionEmbeddings: original,
        attentionFactor: given ?? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original))),
      };
    }
    default:
      throw new InvalidModelConfigError({
        field: 'rope_scaling',
        message: `rope_scaling type ${JSON.stringify(type)} is not supported; supported: default, linear, llama3, yarn, dynamic, longrope.`,
      });
  }
}

/** Which rotary frequencies to compute: see {@link ropeInverseFrequencies}. */
export interface RopeFrequencyOptions {
  /**
   * Length of the sequence in this forward (last position + 1). `dynamic` and `longrope` depend on it; left out,
   * the frequencies for short sequences (unscaled dynamic, longrope's short factors).
   */
  sequenceLength?: number;
  /** gemma3_text's sliding layers use `localRopeTheta` without scaling. Default `full_attention`. */
  layerType?: LayerType;
}

/**
 * The rotary inverse frequencies (`rotaryDim / 2` of them) as transformers computes them in float32:
 * `1 / theta^(2i / rotaryDim)`, then the `rope_scaling` adjustment:
 * - linear: divided by `factor`; llama3: Llama 3.1's wavelength bands;
 * - yarn: `(base_i / factor) * ramp_i + base_i * (1 - ramp_i)` over the correction range;
 * - dynamic: for `sequenceLength` L > maxPositionEmbeddings M the base becomes
 *   `theta * (factor * L / M - (factor - 1)) ^ (rotaryDim / (rotaryDim - 2))`;
 * - longrope: `1 / (ext_i * theta^(2i / rotaryDim))` with ext = longFactor when L > originalMaxPositionEmbeddings,
 *   else shortFactor.
 * Multiply cos and sin by {@link ropeAttentionFactor}.
 */
export function ropeInverseFrequencies(spec: DecoderSpec, options: RopeFrequencyOptions = {}): Float32Array {
  const dim = spec.rotaryDim;
  const half = dim / 2;
  const local = options.layerType === 'sliding_attention' && spec.localRopeTheta !== null;
  const scaling = local ? null : spec.ropeScaling;
  let theta = local ? spec.localRopeTheta! : spec.ropeTheta;
  const length = options.sequenceLength;
  if (scaling?.ropeType === 'dynamic' && length !== undefined && length > spec.maxPositionEmbeddings) {
    const { factor } = scaling;
    theta = theta * ((factor * length) / spec.maxPositionEmbeddings - (factor - 1)) ** (dim / (dim - 2));
  }
  const out = new Float32Array(half);
  const powers = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround((2 * i) / dim);
    powers[i] = Math.fround(Math.pow(theta, exponent));
    out[i] = Math.fround(1 / powers[i]!);
  }
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
  } else if (scaling?.ropeType === 'yarn') {
    const { factor, originalMaxPositionEmbeddings: original, betaFast, betaSlow, truncate } = scaling;
    const correction = (rotations: number) =>
      (dim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
    let low = correction(betaFast);
    let high = correction(betaSlow);
    if (truncate) {
      low = Math.floor(low);
      high = Math.ceil(high);
    }
    low = Math.max(low, 0);
    high = Math.min(high, dim - 1);
    if (low === high) high += 0.001;
    for (let i = 0; i < half; i++) {
      const ramp = Math.fround(Math.min(1, Math.max(0, Math.fround((i - low) / (high - low)))));
      const extrapolation = Math.fround(1 - ramp);
      const interpolated = Math.fround(1 / Math.fround(factor * powers[i]!));
      out[i] = Math.fround(interpolated * Math.fround(1 - extrapolation)) + Math.fround(out[i]! * extrapolation);
    }
  } else if (scaling?.ropeType === 'longrope') {
    const long = length !== undefined && length > scaling.originalMaxPositionEmbeddings;
    const ext = long ? scaling.longFactor : scaling.shortFactor;
    for (let i = 0; i < half; i++) out[i] = 1 / Math.fround(Math.fround(ext[i]!) * powers[i]!);
  }
  return out;
}

/**
 * The factor that multiplies both cos and sin of the rotary embedding: yarn's and longrope's resolved
 * `attentionFactor`, else 1 (also for gemma3_text's sliding layers, which use no scaling).
 */
export function ropeAttentionFactor(spec: DecoderSpec, layerType: LayerType = 'full_attention'): number {
  if (layerType === 'sliding_attention' && spec.localRopeTheta !== null) return 1;
  const scaling = spec.ropeScaling;
  return scaling?.ropeType === 'yarn' || scaling?.ropeType === 'longrope' ? scaling.attentionFactor : 1;
}

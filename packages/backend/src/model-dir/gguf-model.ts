import {
  endOfGenerationIds,
  getNumber,
  getString,
  GgufError,
  ggmlTypeName,
  dequantize,
  readGgufFile,
  readGgufTensorData,
  type GgufFile,
  type GgufTensorInfo,
} from '@gen/gguf';
import { ModelLoadError, UnsupportedModelError } from '../errors.js';
import type { GenerationConfig } from './generation-config.js';
import {
  parseModelConfig,
  type DecoderModelConfig,
  type DecoderModelType,
  type LayerAttentionType,
} from './model-config.js';
import type { ModelDirectory } from './model-directory.js';
import type { ModelWeights } from './model-weights.js';
import type { ReadTensorOptions, TensorInfo } from './safetensors.js';

/** GGUF architectures (`general.architecture`) read here, and the transformers `model_type` each one is. */
export const GGUF_ARCHITECTURES: Readonly<Record<string, DecoderModelType>> = {
  llama: 'llama',
  qwen2: 'qwen2',
  qwen3: 'qwen3',
  gemma2: 'gemma2',
  gemma3: 'gemma3_text',
  phi3: 'phi3',
};

/** A GGUF model file opened as a model directory: its config (from the metadata) and its weights (dequantized). */
export interface GgufModel {
  /** The config and generation config, as if read from `config.json` / `generation_config.json`. */
  readonly directory: ModelDirectory;
  /** The tensors under their Hugging Face names, as float32 (see {@link openGgufModel}). */
  readonly weights: ModelWeights;
  /** The parsed header (metadata and tensor infos; tensor data is read on demand). */
  readonly file: GgufFile;
}

/** True when `path` names a GGUF file by its extension. */
export function isGgufPath(path: string): boolean {
  return path.toLowerCase().endsWith('.gguf');
}

/**
 * Opens a GGUF file (llama.cpp's format) as a decoder: `general.architecture` `llama` (Llama, Mistral), `qwen2`,
 * `qwen3`, `gemma2`, `gemma3` (as `gemma3_text`) or `phi3`, hyperparameters from `{arch}.*`, bos / eos from
 * `tokenizer.ggml.*` (eos as llama.cpp decides the end of generation). Tensors keep llama.cpp's names in the file
 * (`blk.0.attn_q.weight`, ...) and are served under the Hugging Face names (`model.layers.0.self_attn.q_proj.weight`,
 * phi3's packed `attn_qkv` / `ffn_up` as `self_attn.qkv_proj` / `mlp.gate_up_proj`), dequantized to float32 from any
 * type `@gen/gguf` dequantizes (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, Q8_K); for `llama`, the
 * q / k rows are put back in Hugging Face's rotary layout (llama.cpp's converter interleaves them). Only the header
 * (and phi3's rope factors) is read up front; each tensor is read when asked for.
 *
 * The config says what the file means to llama.cpp (src/models/<arch>.cpp), where that differs from transformers:
 * - Gemma: norm weights are stored as `1 + w`, so `normWeightOffset` is 0; the attention scale is
 *   `1/sqrt(head_dim)` (`query_pre_attn_scalar` = head_dim; hidden / heads for the 27B shapes: 46 gemma2 layers,
 *   62 gemma3 layers); sliding layers from `attention.sliding_window_pattern` (gemma2 default 2, gemma3 6) with
 *   `attention.sliding_window` (gemma2 default 4096; gemma3 slides only when it is given and positive); gemma2
 *   always soft-caps (defaults 50 and 30) and always ties the output to `token_embd`; gemma3 has no attention
 *   soft-cap; sliding layers rotate with `rope.freq_base_swa` (gemma3: unscaled, default 10000).
 * - qwen3: optional q/k/v biases, never an output bias; no sliding window.
 * - phi3: no sliding window (llama.cpp disables it); `rope.dimension_count` as the partial rotary size; the longrope
 *   factors from `rope_factors_long` / `rope_factors_short` with `rope.scaling.attn_factor` (default 1) as the
 *   attention factor and `rope.scaling.original_context_length` as the switch point. llama.cpp picks long or short
 *   once per context (long when its context, padded to 256, exceeds the original length); this config keeps
 *   transformers' rule (long for a forward whose sequence exceeds it): llama.cpp's depends on the context size,
 *   which a config cannot express.
 *
 * @throws {ModelLoadError} `missing-file`, `invalid-header` (not GGUF, or a malformed one), `invalid-config` (a
 *   missing or bad hyperparameter), `missing-tensor`, `shape-mismatch`, `unsupported-dtype` (a ggml type without a
 *   dequantizer, named); {@link UnsupportedModelError} for other architectures.
 */
export async function openGgufModel(path: string): Promise<GgufModel> {
  let file: GgufFile;
  try {
    file = await readGgufFile(path, { metadataOnly: true });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ENOENT') {
      throw new ModelLoadError({
        file: path,
        expected: 'a GGUF model file',
        reason: 'missing-file',
        message: 'does not exist',
        cause: error,
      });
    }
    throw new ModelLoadError({
      file: path,
      expected: 'a GGUF file (llama.cpp format, version 2 or 3)',
      reason: GgufError.isInstance(error) && code === 'TRUNCATED' ? 'truncated' : 'invalid-header',
      message: `cannot be read as GGUF: ${(error as Error).message}`,
      cause: error,
    });
  }
  const config = await configOf(file, path);
  const generationConfig = generationConfigOf(file, path);
  const directory: ModelDirectory = { dir: path, config, generationConfig };
  return { directory, weights: new GgufWeights(path, file, config), file };
}

async function configOf(file: GgufFile, path: string): Promise<DecoderModelConfig> {
  const fail = (key: string, expected: string, cause?: unknown): never => {
    throw new ModelLoadError({
      file: path,
      expected,
      reason: 'invalid-config',
      message: `metadata '${key}' is missing or invalid`,
      cause,
    });
  };
  const read = <T>(key: string, get: () => T | undefined, expected: string): T | undefined => {
    try {
      return get();
    } catch (error) {
      return fail(key, expected, error);
    }
  };
  const architecture = read('general.architecture', () => getString(file, 'general.architecture'), 'a string');
  if (architecture === undefined) fail('general.architecture', 'the architecture name, for example llama');
  const modelType = Object.hasOwn(GGUF_ARCHITECTURES, architecture!) ? GGUF_ARCHITECTURES[architecture!] : undefined;
  if (modelType === undefined) {
    throw new UnsupportedModelError({
      file: path,
      feature: 'general.architecture',
      value: architecture,
      supported: Object.keys(GGUF_ARCHITECTURES),
    });
  }
  const number = (key: string): number | undefined =>
    read(`${architecture}.${key}`, () => getNumber(file, `${architecture}.${key}`), 'a number');
  const need = (key: string): number => number(key) ?? fail(`${architecture}.${key}`, 'a positive integer');
  const embedding = file.tensor('token_embd.weight');
  if (embedding === undefined) missing(path, 'token_embd.weight');
  const vocabSize = embedding!.shape[1] ?? 0;
  const hidden = need('embedding_length');
  const layers = need('block_count');
  const heads = need('attention.head_count');
  // llama.cpp: n_embd_head_k = key_length, else n_embd / n_head (llama-model.cpp load_hparams).
  const headDim = number('attention.key_length') ?? hidden / heads;
  const scalingType = read(
    `${architecture}.rope.scaling.type`,
    () => getString(file, `${architecture}.rope.scaling.type`),
    'a string',
  );
  const json: Record<string, unknown> = {
    model_type: modelType,
    vocab_size: vocabSize,
    hidden_size: hidden,
    intermediate_size: need('feed_forward_length'),
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: number('attention.head_count_kv') ?? heads,
    head_dim: headDim,
    rms_norm_eps: number('attention.layer_norm_rms_epsilon') ?? 1e-5,
    rope_theta: number('rope.freq_base') ?? 10000,
    max_position_embeddings: number('context_length') ?? 2048,
    tie_word_embeddings: file.tensor('output.weight') === undefined,
  };
  const hasQueryBias = file.tensor('blk.0.attn_q.bias') !== undefined;
  if (modelType === 'llama' && hasQueryBias) json['attention_bias'] = true;
  // llama.cpp reads rope.scaling.factor with the type defaulting to linear; `none` turns scaling off.
  const scalingFactor = number('rope.scaling.factor') ?? number('rope.scale_linear');
  if ((scalingType ?? 'linear') !== 'none' && (scalingType !== undefined || scalingFactor !== undefined)) {
    if (scalingType !== undefined && scalingType !== 'linear') {
      throw new UnsupportedModelError({
        file: path,
        feature: `${architecture}.rope.scaling.type`,
        value: scalingType,
        supported: ['none', 'linear'],
      });
    }
    if (scalingFactor !== undefined && scalingFactor !== 0 && scalingFactor !== 1) {
      json['rope_scaling'] = { rope_type: 'linear', factor: scalingFactor };
    }
  }
  const overrides: Partial<Mutable<DecoderModelConfig>> = {};
  let gemma2SwaBase: number | undefined;
  if (modelType === 'gemma2' || modelType === 'gemma3_text') {
    // llama.cpp scales Gemma's queries by 1/sqrt(head_dim), by 1/sqrt(n_embd / n_head) for the 27B shapes, and has
    // no query_pre_attn_scalar (src/models/gemma2.cpp, gemma3.cpp load_arch_hparams).
    const is27b = layers === (modelType === 'gemma2' ? 46 : 62);
    json['query_pre_attn_scalar'] = is27b ? Math.trunc(hidden / heads) : headDim;
    const finalCap = number('final_logit_softcapping');
    const window = number('attention.sliding_window');
    const swaBase = number('rope.freq_base_swa');
    if (modelType === 'gemma2') {
      // gemma2.cpp: SWA always (window default 4096, pattern default 2), both soft-caps always (defaults 50 / 30),
      // output always token_embd.
      json['attn_logit_softcapping'] = number('attn_logit_softcapping') ?? 50;
      json['final_logit_softcapping'] = finalCap ?? 30;
      json['sliding_window'] = window ?? 4096;
      json['layer_types'] = patternLayerTypes(layers, number('attention.sliding_window_pattern') ?? 2);
      json['tie_word_embeddings'] = true;
      // gemma2.cpp: the sliding layers may have their own base (rope.freq_base_swa), with the global scaling.
      if (swaBase !== undefined && swaBase !== json['rope_theta']) gemma2SwaBase = swaBase;
    } else {
      // gemma3.cpp: SWA only with a positive sliding_window (pattern default 6, sliding layers at freq_base_swa,
      // default 10000, unscaled); no attention soft-cap; the final soft-cap only when given and non-zero.
      json['attn_logit_softcapping'] = null;
      json['final_logit_softcapping'] = finalCap === undefined || finalCap === 0 ? null : finalCap;
      const sliding = window !== undefined && window > 0;
      json['sliding_window'] = sliding ? window : 4096;
      json['layer_types'] = sliding
        ? patternLayerTypes(layers, number('attention.sliding_window_pattern') ?? 6)
        : patternLayerTypes(layers, 1).map(() => 'full_attention');
      json['rope_local_base_freq'] = swaBase ?? 10000;
    }
  }
  if (modelType === 'qwen3' && hasQueryBias) {
    // llama.cpp qwen3 loads optional q/k/v biases but no attn_output bias.
    overrides.qkvBias = true;
  }
  if (modelType === 'phi3') {
    const rotary = number('rope.dimension_count') ?? headDim;
    // floor(headDim * factor) must give back the rotary size exactly.
    json['partial_rotary_factor'] = rotary === headDim ? 1 : (rotary + 0.5) / headDim;
    const original = number('rope.scaling.original_context_length') ?? json['max_position_embeddings'];
    json['original_max_position_embeddings'] = original;
    // llama.cpp disables Phi-3 sliding-window attention whatever the file says (src/models/phi3.cpp).
    json['sliding_window'] = null;
    const long = file.tensor('rope_factors_long.weight');
    const short = file.tensor('rope_factors_short.weight');
    if (long !== undefined && short !== undefined) {
      const factors = async (tensor: GgufTensorInfo) =>
        Array.from(dequantize(tensor.type, await readGgufTensorData(path, file, tensor.name), tensor.elementCount));
      json['rope_scaling'] = {
        rope_type: 'longrope',
        long_factor: await factors(long),
        short_factor: await factors(short),
        attention_factor: phi3AttentionFactor(
          number('rope.scaling.attn_factor'),
          json['max_position_embeddings'],
          original,
        ),
      };
    }
  }
  const bos = read('tokenizer.ggml.bos_token_id', () => getNumber(file, 'tokenizer.ggml.bos_token_id'), 'a token id');
  if (bos !== undefined) json['bos_token_id'] = bos;
  const eos = read('tokenizer.ggml.eos_token_id', () => endOfGenerationIds(file), 'token ids');
  if (eos !== undefined && eos.length > 0) json['eos_token_id'] = eos;
  const config = parseModelConfig(json, path);
  if (gemma2SwaBase !== undefined && config.layerTypes.includes('sliding_attention')) {
    overrides.localRope = { theta: gemma2SwaBase, scaling: config.ropeScaling };
  }
  // Gemma files hold the effective norm weights (the converter writes 1 + w): nothing to add when loading.
  const normWeightOffset =
    modelType === 'gemma2' || modelType === 'gemma3_text' ? { normWeightOffset: 0 as const } : {};
  return { ...config, ...overrides, ...normWeightOffset };
}

/**
 * Phi-3's longrope attention factor: `rope.scaling.attn_factor` (llama.cpp's default 1). The converter writes the
 * transformers default `sqrt(1 + ln(max / original) / ln(original))` as float32; when the stored value is that
 * default rounded, the default itself is used, so the GGUF gives the same float64 factor as the config.
 */
function phi3AttentionFactor(stored: number | undefined, maxPositions: unknown, original: unknown): number {
  if (stored === undefined) return 1;
  const scale = Number(maxPositions) / Number(original);
  const computed = scale > 1 ? Math.sqrt(1 + Math.log(scale) / Math.log(Number(original))) : 1;
  return Math.fround(computed) === stored ? computed : stored;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The layer types llama.cpp derives from a sliding-window pattern (llama-hparams.cpp `set_swa_pattern`). */
function patternLayerTypes(layers: number, pattern: number): LayerAttentionType[] {
  return Array.from({ length: layers }, (_, i) =>
    pattern === 0 || i % pattern < pattern - 1 ? 'sliding_attention' : 'full_attention',
  );
}

/** The sampling defaults a GGUF file may carry (`general.sampling.*`, as llama.cpp reads them). */
function generationConfigOf(file: GgufFile, path: string): GenerationConfig | undefined {
  const value = (key: string): number | undefined => {
    try {
      return getNumber(file, `general.sampling.${key}`);
    } catch {
      return undefined;
    }
  };
  const topK = value('top_k');
  const topP = value('top_p');
  const temperature = value('temp');
  const repetitionPenalty = value('penalty_repeat');
  if ([topK, topP, temperature, repetitionPenalty].every((v) => v === undefined)) return undefined;
  return {
    file: path,
    ...(topK === undefined ? {} : { topK }),
    ...(topP === undefined ? {} : { topP }),
    ...(temperature === undefined ? {} : { temperature }),
    ...(repetitionPenalty === undefined ? {} : { repetitionPenalty }),
  };
}

function missing(path: string, name: string): never {
  throw new ModelLoadError({
    file: path,
    expected: `a tensor named ${name}`,
    reason: 'missing-tensor',
    message: `has no tensor ${name}`,
  });
}

/** Hugging Face tensor names -> llama.cpp's, for the tensors a decoder of `modelType` needs. */
function ggufNameOf(name: string, modelType: DecoderModelType): string | undefined {
  if (name === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (name === 'model.norm.weight') return 'output_norm.weight';
  if (name === 'lm_head.weight') return 'output.weight';
  const match = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  if (match === null) return undefined;
  const [, layer, part, kind] = match;
  const gguf = layerNames(modelType)[part!];
  return gguf === undefined ? undefined : `blk.${layer}.${gguf}.${kind}`;
}

const LLAMA_LAYER_NAMES: Readonly<Record<string, string>> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.q_norm': 'attn_q_norm',
  'self_attn.k_norm': 'attn_k_norm',
  'self_attn.o_proj': 'attn_output',
  post_attention_layernorm: 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

/** Gemma's sandwich norms: `post_attention_norm`, `ffn_norm` (the MLP's input) and `post_ffw_norm`. */
const GEMMA_LAYER_NAMES: Readonly<Record<string, string>> = {
  ...LLAMA_LAYER_NAMES,
  post_attention_layernorm: 'post_attention_norm',
  pre_feedforward_layernorm: 'ffn_norm',
  post_feedforward_layernorm: 'post_ffw_norm',
};

/** Phi-3's packed projections: `attn_qkv` (q, k, v rows) and `ffn_up` (gate rows, then up: 2 x n_ff). */
const PHI3_LAYER_NAMES: Readonly<Record<string, string>> = {
  input_layernorm: 'attn_norm',
  'self_attn.qkv_proj': 'attn_qkv',
  'self_attn.o_proj': 'attn_output',
  post_attention_layernorm: 'ffn_norm',
  'mlp.gate_up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

function layerNames(modelType: DecoderModelType): Readonly<Record<string, string>> {
  if (modelType === 'gemma2' || modelType === 'gemma3_text') return GEMMA_LAYER_NAMES;
  return modelType === 'phi3' ? PHI3_LAYER_NAMES : LLAMA_LAYER_NAMES;
}

class GgufWeights implements ModelWeights {
  readonly files: readonly string[];
  private readonly byHfName = new Map<string, GgufTensorInfo>();

  constructor(
    readonly modelDir: string,
    private readonly file: GgufFile,
    private readonly config: DecoderModelConfig,
  ) {
    this.files = [modelDir];
    const byGgufName = new Map(file.tensors.map((tensor) => [tensor.name, tensor]));
    for (const name of hfNames(config)) {
      const tensor = byGgufName.get(ggufNameOf(name, config.modelType)!);
      if (tensor !== undefined) this.byHfName.set(name, tensor);
    }
  }

  names(): string[] {
    return [...this.byHfName.keys()];
  }

  has(name: string): boolean {
    return this.byHfName.has(name);
  }

  info(name: string): TensorInfo | undefined {
    const tensor = this.byHfName.get(name);
    if (tensor === undefined) return undefined;
    return {
      name,
      dtype: ggmlTypeName(tensor.type) ?? `ggml type ${tensor.type}`,
      shape: [...tensor.shape].reverse(),
      file: this.modelDir,
      byteOffset: this.file.dataOffset + tensor.offset,
      byteLength: tensor.byteLength,
    };
  }

  async readFloat32(name: string, options: ReadTensorOptions = {}): Promise<Float32Array> {
    const tensor = this.byHfName.get(name);
    if (tensor === undefined) missing(this.modelDir, `${ggufNameOf(name, this.config.modelType) ?? name} (${name})`);
    const shape = [...tensor!.shape].reverse();
    if (options.shape !== undefined && !sameShape(shape, options.shape)) {
      throw new ModelLoadError({
        file: this.modelDir,
        expected: `a tensor of shape [${options.shape.join(', ')}]`,
        reason: 'shape-mismatch',
        message: `${tensor!.name} (${name}) has shape [${shape.join(', ')}]`,
      });
    }
    let values: Float32Array;
    try {
      const data = await readGgufTensorData(this.modelDir, this.file, tensor!.name);
      values = dequantize(tensor!.type, data, tensor!.elementCount);
    } catch (error) {
      if (GgufError.isInstance(error) && (error as { code?: string }).code === 'UNSUPPORTED_TYPE') {
        throw new ModelLoadError({
          file: this.modelDir,
          expected: 'F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K or Q8_K tensors',
          reason: 'unsupported-dtype',
          message: `${tensor!.name} is ${ggmlTypeName(tensor!.type)}, which cannot be dequantized here`,
          cause: error,
        });
      }
      throw new ModelLoadError({
        file: this.modelDir,
        expected: `the data of ${tensor!.name}`,
        reason: 'truncated',
        message: (error as Error).message,
        cause: error,
      });
    }
    if (this.config.modelType === 'llama') {
      if (name.endsWith('self_attn.q_proj.weight') || name.endsWith('self_attn.q_proj.bias')) {
        values = unpermute(values, this.config.numAttentionHeads, shape);
      } else if (name.endsWith('self_attn.k_proj.weight') || name.endsWith('self_attn.k_proj.bias')) {
        values = unpermute(values, this.config.numKeyValueHeads, shape);
      }
    }
    return values;
  }

  async close(): Promise<void> {}
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

/** Every Hugging Face tensor name a decoder of `config` may read (biases included). */
function hfNames(config: DecoderModelConfig): string[] {
  const names = ['model.embed_tokens.weight', 'model.norm.weight', 'lm_head.weight'];
  for (let i = 0; i < config.numLayers; i++) {
    for (const part of Object.keys(layerNames(config.modelType))) {
      names.push(`model.layers.${i}.${part}.weight`, `model.layers.${i}.${part}.bias`);
    }
  }
  return names;
}

/**
 * Undoes llama.cpp's q / k permutation (`convert_hf_to_gguf.py`'s `LlamaModel.permute`: per head, the rows
 * `[0, 2, 4, ...]` and `[1, 3, 5, ...]` of the rotary halves interleaved): row `h·d + 2j + k` of the file is row
 * `h·d + k·d/2 + j` of the Hugging Face weight, for `d` rows per head. Works for weights `[rows, cols]` and biases.
 */
function unpermute(values: Float32Array, heads: number, shape: readonly number[]): Float32Array {
  const rows = shape[0]!;
  const cols = shape.length > 1 ? shape[1]! : 1;
  const perHead = rows / heads;
  const half = perHead / 2;
  const out = new Float32Array(values.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (let k = 0; k < 2; k++) {
        const from = h * perHead + 2 * j + k;
        const to = h * perHead + k * half + j;
        out.set(values.subarray(from * cols, from * cols + cols), to * cols);
      }
    }
  }
  return out;
}

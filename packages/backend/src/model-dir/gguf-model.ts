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
import { parseModelConfig, type DecoderModelConfig } from './model-config.js';
import type { ModelDirectory } from './model-directory.js';
import type { ModelWeights } from './model-weights.js';
import type { ReadTensorOptions, TensorInfo } from './safetensors.js';

/** GGUF architectures (`general.architecture`) read here, and the transformers `model_type` each one is. */
export const GGUF_ARCHITECTURES: Readonly<Record<string, 'llama' | 'qwen2'>> = { llama: 'llama', qwen2: 'qwen2' };

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
 * Opens a GGUF file (llama.cpp's format) as a Llama-family model: `general.architecture` `llama` (Llama, Mistral)
 * or `qwen2`, hyperparameters from `{arch}.*`, bos / eos from `tokenizer.ggml.*` (eos as llama.cpp decides the end
 * of generation). Tensors keep llama.cpp's names in the file (`blk.0.attn_q.weight`, ...) and are served under the
 * Hugging Face names (`model.layers.0.self_attn.q_proj.weight`), dequantized to float32 from any type `@gen/gguf`
 * dequantizes (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, Q8_K); for `llama`, the q / k rows are put
 * back in Hugging Face's rotary layout (llama.cpp's converter interleaves them). Only the header is read up front;
 * each tensor is read when asked for.
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
  const config = configOf(file, path);
  const generationConfig = generationConfigOf(file, path);
  const directory: ModelDirectory = { dir: path, config, generationConfig };
  return { directory, weights: new GgufWeights(path, file, config), file };
}

function configOf(file: GgufFile, path: string): DecoderModelConfig {
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
  const modelType = GGUF_ARCHITECTURES[architecture!];
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
  const heads = need('attention.head_count');
  const keyLength = number('attention.key_length');
  const scalingType = read(
    `${architecture}.rope.scaling.type`,
    () => getString(file, `${architecture}.rope.scaling.type`),
    'a string',
  );
  const json: Record<string, unknown> = {
    model_type: modelType,
    vocab_size: vocabSize,
    hidden_size: need('embedding_length'),
    intermediate_size: need('feed_forward_length'),
    num_hidden_layers: need('block_count'),
    num_attention_heads: heads,
    num_key_value_heads: number('attention.head_count_kv') ?? heads,
    rms_norm_eps: number('attention.layer_norm_rms_epsilon') ?? 1e-5,
    rope_theta: number('rope.freq_base') ?? 10000,
    max_position_embeddings: number('context_length') ?? 2048,
    tie_word_embeddings: file.tensor('output.weight') === undefined,
  };
  if (keyLength !== undefined) json['head_dim'] = keyLength;
  if (modelType === 'llama' && file.tensor('blk.0.attn_q.bias') !== undefined) json['attention_bias'] = true;
  if (scalingType !== undefined && scalingType !== 'none') {
    if (scalingType !== 'linear') {
      throw new UnsupportedModelError({
        file: path,
        feature: `${architecture}.rope.scaling.type`,
        value: scalingType,
        supported: ['none', 'linear'],
      });
    }
    json['rope_scaling'] = { rope_type: 'linear', factor: number('rope.scaling.factor') ?? 1 };
  }
  const bos = read('tokenizer.ggml.bos_token_id', () => getNumber(file, 'tokenizer.ggml.bos_token_id'), 'a token id');
  if (bos !== undefined) json['bos_token_id'] = bos;
  const eos = read('tokenizer.ggml.eos_token_id', () => endOfGenerationIds(file), 'token ids');
  if (eos !== undefined && eos.length > 0) json['eos_token_id'] = eos;
  return parseModelConfig(json, path);
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

/** Hugging Face tensor names -> llama.cpp's, for the tensors a Llama-family decoder needs. */
function ggufNameOf(name: string): string | undefined {
  if (name === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (name === 'model.norm.weight') return 'output_norm.weight';
  if (name === 'lm_head.weight') return 'output.weight';
  const match = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  if (match === null) return undefined;
  const [, layer, part, kind] = match;
  const gguf = LAYER_NAMES[part!];
  return gguf === undefined ? undefined : `blk.${layer}.${gguf}.${kind}`;
}

const LAYER_NAMES: Record<string, string> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  post_attention_layernorm: 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

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
      const tensor = byGgufName.get(ggufNameOf(name)!);
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
    if (tensor === undefined) missing(this.modelDir, `${ggufNameOf(name) ?? name} (${name})`);
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

/** Every Hugging Face tensor name a Llama-family decoder of `config` may read (biases included). */
function hfNames(config: DecoderModelConfig): string[] {
  const names = ['model.embed_tokens.weight', 'model.norm.weight', 'lm_head.weight'];
  for (let i = 0; i < config.numLayers; i++) {
    for (const part of Object.keys(LAYER_NAMES)) {
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

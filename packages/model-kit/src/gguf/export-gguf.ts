/**
 * GGUF export (llama.cpp's model format) of model-kit's seeded models, or of any config plus weights.
 *
 * Tensor names, metadata keys and tensor transforms follow llama.cpp's own converter (`convert_hf_to_gguf.py` and
 * its `conversion/*.py` model classes; see `gguf-architecture.ts`): `llama` and `mistral` configs become the `llama`
 * architecture, whose q/k projection rows are permuted from Hugging Face's rotate-half layout to llama.cpp's
 * interleaved rope layout; `qwen2`, `qwen3` (with `attn_q_norm` / `attn_k_norm`), `gemma2`, `gemma3_text` (as
 * `gemma3`; norm weights stored as `1 + w`, Gemma's sandwich norms as `post_attention_norm` / `ffn_norm` /
 * `post_ffw_norm`) and `phi3` (packed `attn_qkv` and `ffn_up` of 2 x n_ff rows, longrope factors as
 * `rope_factors_long` / `rope_factors_short`) use NEOX rope in llama.cpp: no permutation. Configurations whose
 * meaning llama.cpp cannot reproduce are refused (see {@link writeGgufModel}).
 */
import { createHash } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  GGML_TYPE,
  dequantize,
  getString,
  kv,
  quantize,
  readGgufFile,
  writeGguf,
  type GgufFile,
  type GgufTensorInput,
  type GgufValue,
} from '@gen/gguf';
import { defaultModelCacheDir, ensureModelDir } from '../ensure-model-dir.js';
import { InvalidModelConfigError } from '../errors.js';
import { parseHfConfig, toHfConfig, type DecoderSpec } from '../hf-config.js';
import { resolveModelConfig, type ModelConfig, type PresetName } from '../model-config.js';
import { buildTokenizerFiles } from '../tokenizer/tokenizer-files.js';
import { generatorFingerprint, modelKitVersion } from '../version.js';
import { decoderTensors, elementCount, seededWeights, type WeightSource } from '../weights.js';
import { writeModelDir } from '../write-model-dir.js';
import {
  architectureMetadata,
  checkGgufExpressible,
  ggufArchitectureOf,
  ggufTensorName,
  ropeFactorTensors,
  storesNormPlusOne,
  type GgufArchitecture,
} from './gguf-architecture.js';

export { ggufTensorName, type GgufArchitecture } from './gguf-architecture.js';

/**
 * Storage type of the 2-D weights of a GGUF file (1-D tensors, norms and biases, are always F32):
 *
 * - `f32`, `f16`: every matrix in that type (`general.file_type` 0 / 1);
 * - `q8_0`, `q4_0`: every matrix in that block format, the token embedding and `output.weight` included (llama.cpp's
 *   `llama-quantize` would keep `output.weight` at Q6_K for q4_0; this is simpler and documented). A matrix whose
 *   rows are not a multiple of 32 values (the block size), for example `ffn_down` of a model whose
 *   `intermediateSize` is 176, is stored as F16, the fallback `llama-quantize` uses for such tensors.
 * - `q4_k_m`: `llama-quantize`'s Q4_K_M mix without an importance matrix (`general.file_type` 15): Q4_K, with
 *   Q6_K for `output.weight` (and for the token embedding when it is tied), and for `attn_v` and `ffn_down` of the
 *   layers `use_more_bits` picks (the first and last eighth, and every third in between); a matrix whose rows are
 *   not a multiple of 256 falls back as llama.cpp does (Q4_K to Q5_0, Q6_K to Q8_0 or, for the output, Q8_0; F16
 *   when not even a multiple of 32).
 */
export type GgufWeightType = 'f32' | 'f16' | 'q8_0' | 'q4_0' | 'q4_k_m';

const ggmlTypes: Record<GgufWeightType, number> = {
  f32: GGML_TYPE.F32,
  f16: GGML_TYPE.F16,
  q8_0: GGML_TYPE.Q8_0,
  q4_0: GGML_TYPE.Q4_0,
  q4_k_m: GGML_TYPE.Q4_K,
};

/** `enum llama_ftype` of each type (`general.file_type`). */
const fileTypes: Record<GgufWeightType, number> = { f32: 0, f16: 1, q8_0: 7, q4_0: 2, q4_k_m: 15 };

/** `llama_token_type` values written to `tokenizer.ggml.token_type`. */
const tokenType = { normal: 1, control: 3, userDefined: 4, unused: 5 } as const;

/** Options of {@link writeGgufModel}. */
export interface WriteGgufModelOptions {
  /** A built-in shape; `config` entries override it. Without a preset, `config` must be complete. */
  preset?: PresetName;
  config?: Partial<ModelConfig>;
  /**
   * Weights by Hugging Face name (`model.layers.0.self_attn.q_proj.weight`, ...), as float32 in PyTorch layout.
   * Default: model-kit's seeded weights for `seed` (the same values `writeModelDir` writes to `model.safetensors`
   * in float32).
   */
  weights?: WeightSource;
  /** Seed of the seeded weights (ignored with `weights`). Default 0. */
  seed?: number;
  /** File to write (its directory is created). */
  outFile: string;
  /** Storage type of the matrices; see {@link GgufWeightType}. Default `f32`. */
  type?: GgufWeightType;
}

/** What {@link writeGgufModel} wrote. */
export interface GgufModelInfo {
  file: string;
  /** `general.architecture`: `llama` (llama, mistral), `qwen2`, `qwen3`, `gemma2`, `gemma3` (gemma3_text), `phi3`. */
  architecture: GgufArchitecture;
  config: ModelConfig;
  /**
   * Tensors in file order, with the ggml type each was stored as; `hfName` is the Hugging Face tensor (phi3's
   * `rope_factors_*` come from `rope_scaling` and name it `rope_scaling.long_factor` / `short_factor`).
   */
  tensors: Array<{ name: string; hfName: string; type: number; shape: number[] }>;
  bytes: number;
}

/**
 * llama.cpp's `LlamaModel.permute`: the rows of each head go from Hugging Face's rotate-half order (first half of
 * the head, then second half) to interleaved pairs, `new[h, 2i + j] = old[h, j * half + i]`. `values` holds
 * `rows x columns` row-major (columns 1 for a bias). With `inverse` it undoes the permutation.
 */
export function permuteRopeRows(values: Float32Array, heads: number, columns: number, inverse = false): Float32Array {
  const rows = values.length / columns;
  const headDim = rows / heads;
  const half = headDim / 2;
  const out = new Float32Array(values.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const permuted = h * headDim + 2 * i + j;
        const original = h * headDim + j * half + i;
        const [to, from] = inverse ? [original, permuted] : [permuted, original];
        out.set(values.subarray(from * columns, (from + 1) * columns), to * columns);
      }
    }
  }
  return out;
}

function resolveSpec(options: Pick<WriteGgufModelOptions, 'preset' | 'config'>) {
  const config = resolveModelConfig(options.preset, options.config);
  const tokenizer = buildTokenizerFiles(config.chatFormat!, {
    modelVocabSize: config.vocabSize,
    modelMaxLength: config.maxPositionEmbeddings,
  });
  const spec = parseHfConfig(toHfConfig(config, tokenizer.tokenIds, 'float32'));
  checkGgufExpressible(config, spec);
  return { config, tokenizer, spec };
}

/** How the rows of a Hugging Face tensor are permuted in the GGUF file (llama's q/k only). */
function ropePermutation(spec: DecoderSpec, arch: string, hfName: string): number | undefined {
  if (arch !== 'llama') return undefined;
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return spec.numHeads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return spec.numKvHeads;
  return undefined;
}

/** llama.cpp's `use_more_bits`: the layers that get more bits in the _M mixes. */
function useMoreBits(layer: number, layers: number): boolean {
  return (
    layer < Math.trunc(layers / 8) ||
    layer >= Math.trunc((7 * layers) / 8) ||
    (layer - Math.trunc(layers / 8)) % 3 === 2
  );
}

/** The type `llama-quantize` gives a matrix in a Q4_K_M file (`llama_tensor_get_type_impl` and its fallback). */
function q4kmType(name: string, shape: readonly number[], layers: number, tied: boolean): number {
  const columns = shape[shape.length - 1]!;
  if (name === 'output.weight' || (tied && name === 'token_embd.weight')) {
    return columns % 256 !== 0 ? GGML_TYPE.Q8_0 : GGML_TYPE.Q6_K;
  }
  const layer = /^blk\.(\d+)\.(attn_v|ffn_down)\.weight$/.exec(name);
  const target = layer !== null && useMoreBits(Number(layer[1]), layers) ? GGML_TYPE.Q6_K : GGML_TYPE.Q4_K;
  if (columns % 256 === 0) return target;
  const fallback = target === GGML_TYPE.Q6_K ? GGML_TYPE.Q8_0 : GGML_TYPE.Q5_0;
  return columns % 32 === 0 ? fallback : GGML_TYPE.F16;
}

function storageType(type: GgufWeightType, shape: readonly number[], name = '', layers = 0, tied = false): number {
  if (shape.length === 1) return GGML_TYPE.F32;
  if (type === 'q4_k_m') return q4kmType(name, shape, layers, tied);
  const ggml = ggmlTypes[type];
  if ((ggml === GGML_TYPE.Q8_0 || ggml === GGML_TYPE.Q4_0) && shape[shape.length - 1]! % 32 !== 0) return GGML_TYPE.F16;
  return ggml;
}

/**
 * `general.name`. llama.cpp's vocabulary loader treats a model whose name contains "phi3" or "phi-3" as a
 * SentencePiece Phi-3 (special tokens right-stripped, `</s>` required: src/llama-vocab.cpp, "set attributes by
 * model name"); model-kit's phi3 tokenizer is Phi-4-mini's byte-level one, whose GGUF names carry no "phi3".
 */
function generalName(name: string, arch: GgufArchitecture): string {
  return arch === 'phi3' ? name.replace(/phi-?3/gi, 'phi') : name;
}

/**
 * Writes a GGUF file that llama.cpp loads: the preset's (or `config`'s) hyper-parameters as `{arch}.*` metadata,
 * model-kit's byte-level BPE tokenizer as a `gpt2` tokenizer (`tokenizer.ggml.pre` `qwen2` for the ChatML and
 * Qwen3 formats, `llama-bpe` for the others, which share Llama 3's split pattern; the vocabulary padded with
 * `[PAD{i}]` unused tokens up to `vocabSize`, as llama.cpp's converter does), special token ids, the chat template,
 * and every tensor (see {@link GgufWeightType}). Tied embeddings write no `output.weight` (llama.cpp then reuses
 * `token_embd.weight`). Unlike the converter, Gemma 3's embedding keeps all `vocabSize` rows (the converter drops
 * the rows past the tokenizer's vocabulary), so both files give logits of the same width.
 *
 * @throws {InvalidModelConfigError} for a configuration llama.cpp would compute differently from transformers:
 *   mistral or qwen3 or phi3 with a sliding window, qwen3 or Gemma with attention biases, Gemma whose
 *   `queryPreAttnScalar` is not what llama.cpp uses (the head size, or hidden / heads for the 27B shapes), gemma2
 *   without both soft-caps or untied, gemma3_text with an attention soft-cap, Gemma `layerTypes` other than the
 *   sliding-window pattern, rotary scaling other than linear (phi3: longrope, with the converter's attention
 *   factor).
 */
export async function writeGgufModel(options: WriteGgufModelOptions): Promise<GgufModelInfo> {
  const type = options.type ?? 'f32';
  if (!Object.hasOwn(ggmlTypes, type)) {
    throw new InvalidModelConfigError({
      field: 'type',
      message: `\`type\` must be f32, f16, q8_0, q4_0 or q4_k_m; got ${String(type)}.`,
    });
  }
  const seed = options.seed ?? 0;
  const { config, tokenizer, spec } = resolveSpec(options);
  const weights = options.weights ?? seededWeights(spec, seed, 'float32');
  const arch = ggufArchitectureOf[config.architecture];

  const tokenizerJson = JSON.parse(tokenizer.files['tokenizer.json']!) as {
    added_tokens: Array<{ id: number; content: string; special: boolean }>;
    model: { vocab: Record<string, number>; merges: string[] };
  };
  const tokenizerConfig = JSON.parse(tokenizer.files['tokenizer_config.json']!) as { chat_template?: string };
  const tokens: string[] = new Array<string>(config.vocabSize);
  const types = new Int32Array(config.vocabSize).fill(tokenType.unused);
  for (const [text, id] of Object.entries(tokenizerJson.model.vocab)) {
    tokens[id] = text;
    types[id] = tokenType.normal;
  }
  // Special added tokens are CONTROL; Qwen3's `<think>`, `<tool_call>`, ... (special: false) USER_DEFINED, as the
  // converter writes them.
  for (const { id, content, special } of tokenizerJson.added_tokens) {
    tokens[id] = content;
    types[id] = special ? tokenType.control : tokenType.userDefined;
  }
  for (let id = 0; id < tokens.length; id++) tokens[id] ??= `[PAD${id}]`;
  const { tokenIds } = tokenizer;
  const format = config.chatFormat!;
  const chatml = format === 'chatml' || format === 'qwen3';
  // Llama 3 and Gemma prepend their bos token; ChatML, Qwen3 and Phi-3 (Phi-4-mini's tokenizer) add none.
  const addBos = format === 'llama3' || format === 'gemma';

  const metadata: Array<[string, GgufValue]> = [
    ['general.architecture', kv.string(arch)],
    ['general.type', kv.string('model')],
    ['general.name', kv.string(generalName(options.preset ?? `model-kit ${config.architecture}`, arch))],
    ['general.file_type', kv.uint32(fileTypes[type])],
    ['general.quantization_version', kv.uint32(2)],
    ...architectureMetadata(config, spec),
    ['tokenizer.ggml.model', kv.string('gpt2')],
    ['tokenizer.ggml.pre', kv.string(chatml ? 'qwen2' : 'llama-bpe')],
    ['tokenizer.ggml.tokens', kv.array('string', tokens)],
    ['tokenizer.ggml.token_type', kv.array('int32', types)],
    ['tokenizer.ggml.merges', kv.array('string', tokenizerJson.model.merges)],
    ['tokenizer.ggml.bos_token_id', kv.uint32(tokenIds.bos)],
    // The primary end token of config.json / generation_config.json; llama.cpp adds the other end tokens
    // (`<|eot_id|>`, `<|endoftext|>`, `<end_of_turn>`, `<|end|>`, ...) to its end-of-generation set by their text.
    ['tokenizer.ggml.eos_token_id', kv.uint32(tokenIds.eos[0]!)],
    ...(!chatml && tokenIds.eos.length > 1
      ? ([['tokenizer.ggml.eot_token_id', kv.uint32(tokenIds.eos[1]!)]] as Array<[string, GgufValue]>)
      : []),
    ['tokenizer.ggml.padding_token_id', kv.uint32(tokenIds.pad)],
    ['tokenizer.ggml.add_bos_token', kv.bool(addBos)],
    ['tokenizer.ggml.add_eos_token', kv.bool(false)],
    ['tokenizer.chat_template', kv.string(tokenizerConfig.chat_template ?? '')],
  ];

  const tensors: GgufTensorInput[] = [];
  const written: GgufModelInfo['tensors'] = [];
  // The converter yields Phi-3's rope factors (generate_extra_tensors) before the checkpoint's tensors.
  for (const { name, values } of ropeFactorTensors(spec)) {
    const hfName = `rope_scaling.${name.startsWith('rope_factors_long') ? 'long' : 'short'}_factor`;
    tensors.push({ name, shape: [values.length], type: GGML_TYPE.F32, data: quantize(GGML_TYPE.F32, values) });
    written.push({ name, hfName, type: GGML_TYPE.F32, shape: [values.length] });
  }
  for (const { name: hfName, shape } of decoderTensors(spec)) {
    const name = ggufTensorName(hfName, arch);
    if (name === undefined) throw new Error(`unreachable: no GGUF name for ${hfName}`);
    let values = await weights.read(hfName);
    if (values.length !== elementCount(shape)) {
      throw new InvalidModelConfigError({
        field: 'weights',
        message: `${hfName} has ${values.length} values; its shape [${shape.join(', ')}] needs ${elementCount(shape)}.`,
      });
    }
    const heads = ropePermutation(spec, arch, hfName);
    if (heads !== undefined) values = permuteRopeRows(values, heads, shape.length === 1 ? 1 : shape[1]!);
    if (storesNormPlusOne(arch, hfName)) values = values.map((w) => 1 + w);
    const ggmlShape = [...shape].reverse();
    const ggmlType = storageType(type, shape, name, spec.numLayers, spec.tieWordEmbeddings);
    tensors.push({ name, shape: ggmlShape, type: ggmlType, data: quantize(ggmlType, values) });
    written.push({ name, hfName, type: ggmlType, shape: ggmlShape });
  }
  const bytes = writeGguf({ metadata, tensors });
  await mkdir(dirname(options.outFile), { recursive: true });
  await writeFile(options.outFile, bytes);
  return { file: options.outFile, architecture: arch, config, tensors: written, bytes: bytes.byteLength };
}

/**
 * The Hugging Face weights a GGUF file written by {@link writeGgufModel} holds, dequantized to float32 with the
 * converter's transforms undone (llama's q/k permutation; Gemma's `1 + w` norms become `w` again, exact for the
 * stored weights of at least 0.5 and otherwise within a float32 rounding): a {@link WeightSource} to write a model
 * directory whose `model.safetensors` holds what llama.cpp computes with (for comparing a quantized file with
 * `@gen/backend-js`).
 */
export async function ggufWeightSource(file: string): Promise<WeightSource & { gguf: GgufFile }> {
  const gguf = await readGgufFile(file);
  const arch = getString(gguf, 'general.architecture') as GgufArchitecture;
  const headCount = Number(gguf.metadata.get(`${arch}.attention.head_count`)?.value);
  const kvHeadCount = Number(gguf.metadata.get(`${arch}.attention.head_count_kv`)?.value);
  return {
    gguf,
    read(hfName) {
      const name = ggufTensorName(hfName, arch);
      const info = name === undefined ? undefined : gguf.tensor(name);
      if (info === undefined) return Promise.reject(new Error(`${file}: no tensor for ${hfName}`));
      let values = dequantize(info.type, gguf.tensorData(info.name), info.elementCount);
      if (arch === 'llama') {
        const columns = info.shape.length === 1 ? 1 : info.shape[0]!;
        if (/\.attn_q\./.test(info.name)) values = permuteRopeRows(values, headCount, columns, true);
        if (/\.attn_k\./.test(info.name)) values = permuteRopeRows(values, kvHeadCount, columns, true);
      }
      if (storesNormPlusOne(arch, hfName)) values = values.map((w) => w - 1);
      return Promise.resolve(values);
    },
  };
}

/** Options of {@link ensureGgufModel}. */
export interface EnsureGgufModelOptions {
  /** Default 0. */
  seed?: number;
  /** Default `f32`. */
  type?: GgufWeightType;
  /** Default: `ensureModelDir`'s cache. */
  cacheDir?: string;
  /**
   * Overrides of the preset (as `writeModelDir`'s `config`), for example `{ queryPreAttnScalar: 16 }` to make a
   * Gemma preset one llama.cpp can reproduce. With overrides, the model directory (safetensors only) is cached
   * under a name that includes a hash of them.
   */
  config?: Partial<ModelConfig>;
}

const inFlight = new Map<string, Promise<string>>();

/** The cached safetensors directory of a preset with config overrides (atomic, like `ensureModelDir`). */
async function ensureOverriddenModelDir(
  preset: PresetName,
  config: Partial<ModelConfig>,
  seed: number,
  cacheDir: string,
): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 10);
  const name = `${preset}-${seed}-${modelKitVersion}-${generatorFingerprint()}-config${hash}-safetensors`;
  const finalDir = join(cacheDir, name);
  const pending = inFlight.get(finalDir);
  if (pending !== undefined) return pending;
  const promise = (async () => {
    if (existsSync(finalDir)) return finalDir;
    await mkdir(cacheDir, { recursive: true });
    const temporary = join(cacheDir, `.tmp-${name}-${process.pid}-${Math.random().toString(36).slice(2)}`);
    try {
      await writeModelDir({ preset, config, seed, outDir: temporary, formats: ['safetensors'] });
      await rename(temporary, finalDir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (!((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(finalDir))) throw error;
    } finally {
      await rm(temporary, { recursive: true, force: true });
    }
    return finalDir;
  })();
  inFlight.set(finalDir, promise);
  try {
    return await promise;
  } finally {
    inFlight.delete(finalDir);
  }
}

/**
 * The cached model directory of `preset` and `seed` (`ensureModelDir`, float32 safetensors; with `config`
 * overrides a safetensors-only directory of its own) with `model-<type>.gguf` written into it the first time
 * (atomically: a temporary file renamed into place), so `@gen/backend-js` on `modelDir` and llama.cpp on `file`
 * compute with the same weights (for `f32`).
 *
 * @throws {InvalidModelConfigError} as {@link writeGgufModel}, for a configuration llama.cpp cannot reproduce.
 */
export async function ensureGgufModel(
  preset: PresetName,
  options: EnsureGgufModelOptions = {},
): Promise<{ modelDir: string; file: string }> {
  const type = options.type ?? 'f32';
  const seed = options.seed ?? 0;
  // Refuse before writing anything.
  resolveSpec({ preset, ...(options.config === undefined ? {} : { config: options.config }) });
  const modelDir =
    options.config === undefined
      ? await ensureModelDir(preset, {
          seed,
          ...(options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir }),
        })
      : await ensureOverriddenModelDir(preset, options.config, seed, options.cacheDir ?? defaultModelCacheDir());
  const file = join(modelDir, `model-${type}.gguf`);
  if (!existsSync(file)) {
    const temporary = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await writeGgufModel({
        preset,
        seed,
        type,
        outFile: temporary,
        ...(options.config === undefined ? {} : { config: options.config }),
      });
      await rename(temporary, file);
    } finally {
      await rm(temporary, { force: true });
    }
  }
  return { modelDir, file };
}

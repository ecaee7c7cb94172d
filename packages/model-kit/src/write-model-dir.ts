import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dtypeByteSize, encodeAsDtype, safetensorsDtypeCode, type WeightDtype } from './dtype.js';
import { InvalidModelConfigError } from './errors.js';
import { parseHfConfig, toGenerationConfig, toHfConfig, type ConfigTokenIds, type DecoderSpec } from './hf-config.js';
import { stringifyJson } from './json.js';
import { resolveModelConfig, type ModelConfig, type PresetName } from './model-config.js';
import {
  buildDecoderGraph,
  checkQuantBlockSize,
  contribOpsets,
  decoderOpsetVersion,
  defaultOnnxGraphStyle,
  onnxVariantFiles,
  type OnnxGraphStyle,
  type OnnxVariant,
} from './onnx/decoder-graph.js';
import { buildFusedDecoderGraph } from './onnx/fused-decoder-graph.js';
import { writeOnnxModel, type ExternalDataMode } from './onnx/write-onnx.js';
import { writeSafetensors, type SafetensorsEntry } from './safetensors.js';
import { buildTokenizerFiles } from './tokenizer/tokenizer-files.js';
import { modelKitVersion } from './version.js';
import { decoderTensors, elementCount, seededWeights, type WeightSource } from './weights.js';

/** Weight formats a model directory can hold. */
export type ModelFormat = 'safetensors' | 'onnx';

/** Progress of one file being written. */
export interface WriteProgress {
  /** Path relative to the model directory, for example `model.safetensors` or `onnx/model.onnx`. */
  file: string;
  bytesWritten: number;
  totalBytes: number;
}

/** Options of {@link writeModelDir}. */
export interface WriteModelDirOptions {
  /** A built-in shape; `config` entries override it. Without a preset, `config` must be complete. */
  preset?: PresetName;
  config?: Partial<ModelConfig>;
  /** Seed of the weights (a non-negative safe integer). Same seed, same options: byte-identical files. */
  seed?: number;
  /** Directory to write; created if missing. Files from an earlier write that this one does not produce (for
   * example `onnx/model.onnx` when `formats` is `['safetensors']`) are removed so the directory is consistent. */
  outDir: string;
  /** Default `['safetensors', 'onnx']`. */
  formats?: readonly ModelFormat[];
  /** Storage type of `model.safetensors` (default float32). The ONNX graph holds the same values as float32. */
  dtype?: WeightDtype;
  /** Split the safetensors checkpoint into shards of at most this many bytes, with `model.safetensors.index.json`
   * (transformers' `max_shard_size`). Default: one file. */
  maxShardSize?: number;
  /** `auto` (default): `onnx/model.onnx_data` only above 2 GiB; `always` forces it, `never` forbids it. */
  onnxExternalData?: ExternalDataMode;
  /**
   * ONNX files to write (with the `onnx` format), named as onnx-community publishes them: `fp32`
   * (`onnx/model.onnx`), `fp16` (`model_fp16.onnx`), `int8` (`model_quantized.onnx`), `q4`
   * (`model_q4.onnx`); see {@link OnnxVariant}. Default `['fp32']`.
   */
  onnxVariants?: readonly OnnxVariant[];
  /**
   * Whether the ONNX graphs take a `position_ids` input (default true). Without it positions are counted from
   * `attention_mask`, like exports of models that have no position input; for testing loaders.
   */
  onnxPositionIds?: boolean;
  /**
   * How the ONNX graphs are built (same file names either way): `standard` (the Optimum / onnx-community layout
   * that transformers.js loads) or `fused` (onnxruntime's fused operators with a shared KV buffer, for
   * `@gen/backend-onnx` and onnxruntime); see {@link OnnxGraphStyle}. Default `fused`. `onnxPositionIds` applies
   * to `standard` graphs only (fused graphs take each token's position from its cache slot).
   */
  onnxGraphStyle?: OnnxGraphStyle;
  /**
   * Weights per quantization block of the `int8` and `q4` variants (16, 32, 64, 128 or 256; default 32): larger
   * blocks store fewer scales and decode faster, with more quantization error.
   */
  onnxQuantBlockSize?: number;
  /**
   * Weights by Hugging Face name instead of the seeded ones (for example `ggufWeightSource(file)`: the dequantized
   * weights of a GGUF file). `seed` is then ignored; the values are rounded to `dtype` as usual.
   */
  weights?: WeightSource;
  onProgress?: (progress: WriteProgress) => void;
}

/** What {@link writeModelDir} wrote. */
export interface ModelDirInfo {
  dir: string;
  /** The resolved configuration (preset merged with overrides, head size and chat format filled in). */
  config: ModelConfig;
  /** Files written, relative to `dir`, sorted. */
  files: string[];
  /** Number of weights (tied embeddings counted once). */
  parameterCount: number;
  /** Tokens the tokenizer knows (learned plus special); can be less than `config.vocabSize`. */
  tokenizerVocabSize: number;
  tokenIds: ConfigTokenIds;
}

/** What a write would produce, without writing anything: see {@link planModelDir}. */
export interface ModelDirPlan {
  /** The resolved configuration. */
  config: ModelConfig;
  /** The `config.json` object. */
  hfConfig: Record<string, unknown>;
  /** Checkpoint tensors by Hugging Face name with their PyTorch shapes, in module order. */
  tensors: Array<{ name: string; shape: number[] }>;
  /** Number of weights (tied embeddings counted once). */
  parameterCount: number;
  /** Tokens the tokenizer knows (learned plus special); can be less than `config.vocabSize`. */
  tokenizerVocabSize: number;
  tokenIds: ConfigTokenIds;
}

/**
 * The configuration, `config.json`, tensor shapes and tokenizer size that {@link writeModelDir} would produce for
 * these options, computed without writing (cheap even for large presets). Throws
 * {@link InvalidModelConfigError} like `writeModelDir`.
 */
export function planModelDir(options: Pick<WriteModelDirOptions, 'preset' | 'config' | 'dtype'>): ModelDirPlan {
  const { config, hfConfig, tensors, parameterCount, tokenizer } = plan(options);
  return {
    config,
    hfConfig,
    tensors,
    parameterCount,
    tokenizerVocabSize: tokenizer.tokenizerVocabSize,
    tokenIds: tokenizer.tokenIds,
  };
}

function plan(options: Pick<WriteModelDirOptions, 'preset' | 'config' | 'dtype'>) {
  const config = resolveModelConfig(options.preset, options.config);
  const tokenizer = buildTokenizerFiles(config.chatFormat!, {
    modelVocabSize: config.vocabSize,
    modelMaxLength: config.maxPositionEmbeddings,
  });
  const hfConfig = toHfConfig(config, tokenizer.tokenIds, options.dtype ?? 'float32');
  // Reading our own config.json back gives the spec, so writing and exporting share one interpretation.
  const spec = parseHfConfig(hfConfig);
  const tensors = decoderTensors(spec);
  const parameterCount = tensors.reduce((sum, t) => sum + elementCount(t.shape), 0);
  return { config, hfConfig, spec, tokenizer, tensors, parameterCount };
}

/**
 * Writes a complete Hugging Face model directory from seeded random weights: `config.json`,
 * `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json` (and for
 * ChatML and Qwen3 models `vocab.json` + `merges.txt`), `model.safetensors` (or shards with an index) and
 * `onnx/model.onnx` (+ `onnx/model.onnx_data`) in the Optimum layout. Weights are produced and written one tensor
 * at a time, so memory stays at about the largest tensor.
 */
export async function writeModelDir(options: WriteModelDirOptions): Promise<ModelDirInfo> {
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new InvalidModelConfigError({
      field: 'seed',
      message: `\`seed\` must be a non-negative integer; got ${seed}.`,
    });
  }
  const dtype = options.dtype ?? 'float32';
  if (!(dtype in dtypeByteSize)) {
    throw new InvalidModelConfigError({ field: 'dtype', message: `\`dtype\` must be float32, float16 or bfloat16.` });
  }
  const formats = new Set(options.formats ?? ['safetensors', 'onnx']);
  for (const format of formats) {
    if (format !== 'safetensors' && format !== 'onnx') {
      throw new InvalidModelConfigError({ field: 'formats', message: `Unknown format "${String(format)}".` });
    }
  }
  const planned = plan(options);
  const dir = options.outDir;
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  const textFiles: Record<string, string> = {
    'config.json': stringifyJson(planned.hfConfig, { sortKeys: true }),
    'generation_config.json': stringifyJson(toGenerationConfig(planned.config, planned.tokenizer.tokenIds), {
      sortKeys: true,
    }),
    ...planned.tokenizer.files,
  };
  await removeStale(dir, Object.keys(textFiles));
  for (const [name, text] of Object.entries(textFiles)) {
    await writeFile(join(dir, name), text);
    files.push(name);
  }
  const weights = options.weights ?? seededWeights(planned.spec, seed, dtype);
  if (formats.has('safetensors')) {
    files.push(
      ...(await writeCheckpoint(dir, planned.tensors, weights, dtype, options.maxShardSize, options.onProgress)),
    );
  }
  if (formats.has('onnx')) {
    files.push(
      ...(await writeOnnxDecoder(dir, planned.spec, weights, options.onnxExternalData, options.onProgress, {
        variants: options.onnxVariants,
        positionIds: options.onnxPositionIds,
        graphStyle: options.onnxGraphStyle,
        quantBlockSize: options.onnxQuantBlockSize,
      })),
    );
  }
  return {
    dir,
    config: planned.config,
    files: files.sort(),
    parameterCount: planned.parameterCount,
    tokenizerVocabSize: planned.tokenizer.tokenizerVocabSize,
    tokenIds: planned.tokenizer.tokenIds,
  };
}

/**
 * Writes `onnx/model.onnx` (+ `onnx/model.onnx_data`) and the other requested variants for `spec` under `dir`;
 * returns the relative paths.
 */
export async function writeOnnxDecoder(
  dir: string,
  spec: DecoderSpec,
  weights: WeightSource,
  externalData: ExternalDataMode | undefined,
  onProgress: ((progress: WriteProgress) => void) | undefined,
  graphOptions: {
    variants?: readonly OnnxVariant[] | undefined;
    positionIds?: boolean | undefined;
    graphStyle?: OnnxGraphStyle | undefined;
    quantBlockSize?: number | undefined;
  } = {},
): Promise<string[]> {
  const variants = [...new Set<OnnxVariant>(graphOptions.variants ?? ['fp32'])];
  const style = graphOptions.graphStyle ?? defaultOnnxGraphStyle;
  if (style !== 'standard' && style !== 'fused') {
    throw new InvalidModelConfigError({
      field: 'onnxGraphStyle',
      message: `Unknown ONNX graph style "${String(style)}"; expected standard or fused.`,
    });
  }
  const quantBlockSize = checkQuantBlockSize(graphOptions.quantBlockSize);
  const files: string[] = [];
  for (const variant of variants) {
    const fileName = onnxVariantFiles[variant];
    if (fileName === undefined) {
      throw new InvalidModelConfigError({
        field: 'onnxVariants',
        message: `Unknown ONNX variant "${String(variant)}"; expected one of ${Object.keys(onnxVariantFiles).join(', ')}.`,
      });
    }
    const written = await writeOnnxModel({
      modelPath: join(dir, 'onnx', fileName),
      graph:
        style === 'fused'
          ? buildFusedDecoderGraph(spec, weights, { variant, quantBlockSize })
          : buildDecoderGraph(spec, weights, {
              variant,
              quantBlockSize,
              ...(graphOptions.positionIds === undefined ? {} : { positionIds: graphOptions.positionIds }),
            }),
      opsetVersion: decoderOpsetVersion,
      ...(style === 'fused' || variant === 'int8' || variant === 'q4' ? { extraOpsets: contribOpsets } : {}),
      producerVersion: modelKitVersion,
      externalData: externalData ?? 'auto',
      onBytes: (path, bytesWritten, totalBytes) =>
        onProgress?.({ file: `onnx/${path.slice(path.lastIndexOf('/') + 1)}`, bytesWritten, totalBytes }),
    });
    files.push(`onnx/${fileName}`);
    if (written.dataPath !== undefined) files.push(`onnx/${fileName}_data`);
  }
  return files;
}

async function writeCheckpoint(
  dir: string,
  tensors: ReturnType<typeof decoderTensors>,
  weights: WeightSource,
  dtype: WeightDtype,
  maxShardSize: number | undefined,
  onProgress: ((progress: WriteProgress) => void) | undefined,
): Promise<string[]> {
  const entries: SafetensorsEntry[] = tensors.map(({ name, shape }) => ({
    name,
    dtype: safetensorsDtypeCode[dtype],
    shape,
    byteLength: elementCount(shape) * dtypeByteSize[dtype],
    produce: async () => encodeAsDtype(await weights.read(name), dtype),
  }));
  const metadata = { format: 'pt' };
  const report = (file: string) => (bytesWritten: number, totalBytes: number) =>
    onProgress?.({ file, bytesWritten, totalBytes });
  if (maxShardSize === undefined) {
    await writeSafetensors(join(dir, 'model.safetensors'), entries, { metadata, onBytes: report('model.safetensors') });
    return ['model.safetensors'];
  }
  if (!Number.isSafeInteger(maxShardSize) || maxShardSize < 1) {
    throw new InvalidModelConfigError({ field: 'maxShardSize', message: '`maxShardSize` must be a positive integer.' });
  }
  // transformers' sharding: walk the state dict in module order and start a new shard when the next tensor would
  // overflow the current one.
  const shards: SafetensorsEntry[][] = [];
  let current: SafetensorsEntry[] = [];
  let currentSize = 0;
  for (const entry of entries) {
    if (current.length > 0 && currentSize + entry.byteLength > maxShardSize) {
      shards.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(entry);
    currentSize += entry.byteLength;
  }
  shards.push(current);
  const names = shards.map(
    (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`,
  );
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const name = names[i]!;
    for (const entry of shard) weightMap[entry.name] = name;
    await writeSafetensors(join(dir, name), shard, { metadata, onBytes: report(name) });
  }
  const totalSize = entries.reduce((sum, entry) => sum + entry.byteLength, 0);
  await writeFile(
    join(dir, 'model.safetensors.index.json'),
    stringifyJson({ metadata: { total_size: totalSize }, weight_map: weightMap }, { sortKeys: true }),
  );
  return [...names, 'model.safetensors.index.json'];
}

/** Removes weight and tokenizer files an earlier write may have left, except those about to be rewritten. */
async function removeStale(dir: string, keep: readonly string[]): Promise<void> {
  const names = await readdir(dir);
  const ours = (name: string) =>
    name === 'model.safetensors' ||
    name === 'model.safetensors.index.json' ||
    /^model-\d{5}-of-\d{5}\.safetensors$/.test(name) ||
    name === 'vocab.json' ||
    name === 'merges.txt';
  for (const name of names) if (ours(name) && !keep.includes(name)) await rm(join(dir, name), { force: true });
  for (const fileName of Object.values(onnxVariantFiles)) {
    await rm(join(dir, 'onnx', fileName), { force: true });
    await rm(join(dir, 'onnx', `${fileName}_data`), { force: true });
  }
}

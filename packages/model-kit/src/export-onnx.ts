import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ModelDirectoryError } from './errors.js';
import { parseHfConfig, type DecoderSpec } from './hf-config.js';
import type { OnnxGraphStyle, OnnxVariant } from './onnx/decoder-graph.js';
import type { ExternalDataMode } from './onnx/write-onnx.js';
import { openSafetensorsCheckpoint } from './safetensors.js';
import { decoderTensors } from './weights.js';
import { writeOnnxDecoder, type WriteProgress } from './write-model-dir.js';

/** Options of {@link exportOnnx}. */
export interface ExportOnnxOptions {
  /** Where to write; default the model directory itself. A different directory also gets the model's config and
   * tokenizer files, so it is a complete ONNX model directory. */
  outDir?: string;
  /** `auto` (default): `onnx/model.onnx_data` only above 2 GiB; `always` forces it, `never` forbids it. */
  externalData?: ExternalDataMode;
  /**
   * Files to write, named as onnx-community does: `fp32` (`onnx/model.onnx`), `fp16` (`model_fp16.onnx`),
   * `int8` (`model_quantized.onnx`), `q4` (`model_q4.onnx`). Quantization is done here, from the float weights.
   * Default `['fp32']`.
   */
  variants?: readonly OnnxVariant[];
  /**
   * `standard` (the Optimum / onnx-community layout, for transformers.js and any ONNX loader) or `fused`
   * (onnxruntime's fused operators and a shared KV buffer, for `@gen/backend-onnx`); see `OnnxGraphStyle`.
   * Default `fused`.
   */
  graphStyle?: OnnxGraphStyle;
  /**
   * Weights per quantization block of the `int8` and `q4` variants: 16, 32, 64, 128 or 256 (default 32). Larger
   * blocks store fewer scales and decode faster, with more quantization error.
   */
  quantBlockSize?: number;
  onProgress?: (progress: WriteProgress) => void;
}

/** What {@link exportOnnx} wrote. */
export interface ExportOnnxResult {
  dir: string;
  /** Files written, relative to `dir`. */
  files: string[];
  /** `model_type` of the exported model. */
  architecture: DecoderSpec['architecture'];
  /** Storage type of the checkpoint that was read (`mixed` when its tensors differ). */
  sourceDtype: string;
}

/** Files besides the weights that make a model directory usable (copied when exporting to another directory). */
const companionFiles = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
  'chat_template.jinja',
  'chat_template.json',
];

/** Checkpoint tensors that carry nothing the forward pass needs (old Llama checkpoints saved rotary buffers). */
const ignorable = /\.rotary_emb\.inv_freq$/;

/**
 * Converts a safetensors decoder model directory (llama, mistral, qwen2, qwen3, gemma2, gemma3_text or phi3; float32,
 * float16 or bfloat16; `model.safetensors` or shards with `model.safetensors.index.json`) to `onnx/model.onnx` (and
 * the other requested variants) in the fused or the standard Optimum layout, so it can be served by an ONNX backend
 * without Python. Reads one tensor at a time. Every family is expressible in both styles: the fused graph applies
 * rotary embeddings outside `GroupQueryAttention` (from a `position_ids` input) where onnxruntime's kernel cannot
 * (length-dependent `dynamic` / `longrope` frequencies, a rotary size that is not a multiple of 16), and refuses
 * only head sizes that are not a multiple of 8 (export the standard style then).
 *
 * Throws {@link InvalidModelConfigError} for configurations the graph cannot express and
 * {@link ModelDirectoryError} for missing files, missing or misshapen tensors, and tensors the config does not
 * account for (for example biases when `attention_bias` is false).
 */
export async function exportOnnx(dir: string, options: ExportOnnxOptions = {}): Promise<ExportOnnxResult> {
  const configPath = join(dir, 'config.json');
  const text = await readFile(configPath, 'utf8').catch((cause: unknown) => {
    throw new ModelDirectoryError({ path: configPath, message: 'Cannot read config.json', cause });
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ModelDirectoryError({ path: configPath, message: 'config.json is not valid JSON', cause });
  }
  const spec = parseHfConfig(json);
  const checkpoint = await openSafetensorsCheckpoint(dir);
  const expected = decoderTensors(spec);
  const expectedNames = new Set(expected.map((t) => t.name));
  for (const { name, shape } of expected) {
    const found = checkpoint.tensors.get(name);
    if (found === undefined) {
      throw new ModelDirectoryError({ path: dir, message: `Tensor ${name} is missing from the checkpoint` });
    }
    if (found.shape.join() !== shape.join()) {
      throw new ModelDirectoryError({
        path: found.file,
        message: `Tensor ${name} has shape [${found.shape.join(', ')}]; config.json implies [${shape.join(', ')}]`,
      });
    }
  }
  for (const name of checkpoint.tensors.keys()) {
    const tiedHead = name === 'lm_head.weight' && spec.tieWordEmbeddings;
    if (!expectedNames.has(name) && !tiedHead && !ignorable.test(name)) {
      throw new ModelDirectoryError({
        path: dir,
        message: `Tensor ${name} is not part of a ${spec.architecture} model as config.json describes it`,
      });
    }
  }
  const outDir = options.outDir ?? dir;
  await mkdir(outDir, { recursive: true });
  if (resolve(outDir) !== resolve(dir)) {
    for (const name of companionFiles) {
      await copyFile(join(dir, name), join(outDir, name)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
    }
  }
  const files = await writeOnnxDecoder(
    outDir,
    spec,
    { read: (name) => checkpoint.readFloat32(name) },
    options.externalData,
    options.onProgress,
    { variants: options.variants, graphStyle: options.graphStyle, quantBlockSize: options.quantBlockSize },
  );
  return { dir: outDir, files, architecture: spec.architecture, sourceDtype: checkpoint.dtype };
}

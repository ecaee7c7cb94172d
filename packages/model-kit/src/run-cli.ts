import { parseArgs } from 'node:util';
import type { WeightDtype } from './dtype.js';
import { ModelKitError } from './errors.js';
import { exportOnnx } from './export-onnx.js';
import { isPresetName, presets } from './model-config.js';
import {
  defaultOnnxGraphStyle,
  onnxVariantFiles,
  type OnnxGraphStyle,
  type OnnxVariant,
} from './onnx/decoder-graph.js';
import type { ExternalDataMode } from './onnx/write-onnx.js';
import { createProgressReporter, type ProgressOutput } from './progress.js';
import { writeModelDir, type ModelFormat } from './write-model-dir.js';

/** Text of `gen-model --help`. */
export const helpText = `gen-model: make Hugging Face model directories from seeded weights, or export one to ONNX.

Usage:
  gen-model make --preset NAME --out DIR [--seed N] [--dtype f32|f16|bf16]
                 [--formats safetensors,onnx] [--layers N] [--shard-size BYTES]
                 [--external-data auto|always|never] [--onnx-variants fp32,fp16,int8,q4]
                 [--graph-style fused|standard] [--quant-block-size 32]
  gen-model export-onnx DIR [--out DIR] [--external-data auto|always|never]
                 [--onnx-variants fp32,fp16,int8,q4] [--graph-style fused|standard]
                 [--quant-block-size 32]
  gen-model --help

Presets: ${Object.keys(presets).join(', ')}

make         writes config.json, generation_config.json, tokenizer files, model.safetensors and
             onnx/model.onnx (Optimum layout). Same preset, seed and options: byte-identical files.
export-onnx  converts a safetensors llama / mistral / qwen2 model directory (F32, F16 or BF16,
             single file or sharded) to onnx/model.onnx, in DIR or in --out.

--onnx-variants  ONNX files to write (default fp32): fp32 onnx/model.onnx, fp16 model_fp16.onnx,
             int8 model_quantized.onnx (8-bit MatMulNBits), q4 model_q4.onnx (4-bit MatMulNBits).
--graph-style    how the graphs are built (default ${defaultOnnxGraphStyle}): standard is the Optimum /
             onnx-community layout (transformers.js, any ONNX loader); fused uses onnxruntime's fused
             operators (GroupQueryAttention with a shared KV buffer, SkipSimplifiedLayerNormalization,
             MatMulNBits), as onnxruntime-genai builds decoders: for @gen/backend-onnx and onnxruntime only.
--quant-block-size  weights per scale of the int8 and q4 variants: 16, 32 (default), 64, 128 or 256;
             larger blocks decode faster, with more quantization error.

Progress goes to stderr (a bar on a terminal, plain lines otherwise); a summary to stdout.
`;

const dtypes: Record<string, WeightDtype> = {
  f32: 'float32',
  float32: 'float32',
  f16: 'float16',
  float16: 'float16',
  bf16: 'bfloat16',
  bfloat16: 'bfloat16',
};

/** Streams the CLI writes to (process streams in the real binary, buffers in tests). */
export interface CliIo {
  stdout: ProgressOutput;
  stderr: ProgressOutput;
}

class UsageError extends Error {}

/**
 * Runs `gen-model` with `argv` (without the node and script paths). Returns the exit code: 0 on success, 2 for a
 * usage error, 1 when the work failed.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      io.stdout.write(helpText);
      return command === undefined ? 2 : 0;
    }
    if (command === 'make') return await make(rest, io);
    if (command === 'export-onnx') return await exportCommand(rest, io);
    throw new UsageError(`unknown command "${command}"`);
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`gen-model: ${(error as Error).message}\nRun gen-model --help for usage.\n`);
      return 2;
    }
    // Model errors and file-system errors (ENOENT, EACCES, ENOSPC...) are the user's to fix: a message, no stack.
    const code = (error as NodeJS.ErrnoException).code;
    if (ModelKitError.isInstance(error) || (typeof code === 'string' && /^E[A-Z]+$/.test(code))) {
      io.stderr.write(`gen-model: ${(error as Error).message}\n`);
      return 1;
    }
    throw error;
  }
}

function externalDataOption(value: string | undefined): ExternalDataMode | undefined {
  if (value === undefined || value === 'auto' || value === 'always' || value === 'never') return value;
  throw new UsageError(`--external-data must be auto, always or never; got "${value}"`);
}

function variantsOption(value: string | undefined): OnnxVariant[] | undefined {
  if (value === undefined) return undefined;
  const variants = value.split(',').map((v) => v.trim());
  for (const variant of variants) {
    if (!Object.hasOwn(onnxVariantFiles, variant)) {
      throw new UsageError(`--onnx-variants takes ${Object.keys(onnxVariantFiles).join(', ')}; got "${variant}"`);
    }
  }
  return variants as OnnxVariant[];
}

function graphStyleOption(value: string | undefined): OnnxGraphStyle | undefined {
  if (value === undefined || value === 'standard' || value === 'fused') return value;
  throw new UsageError(`--graph-style must be fused or standard; got "${value}"`);
}

function quantBlockSizeOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!['16', '32', '64', '128', '256'].includes(value)) {
    throw new UsageError(`--quant-block-size must be 16, 32, 64, 128 or 256; got "${value}"`);
  }
  return Number(value);
}

function integerOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`--${name} must be a non-negative integer; got "${value}"`);
  }
  return Number(value);
}

async function make(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      preset: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string' },
      dtype: { type: 'string' },
      formats: { type: 'string' },
      layers: { type: 'string' },
      'shard-size': { type: 'string' },
      'external-data': { type: 'string' },
      'onnx-variants': { type: 'string' },
      'graph-style': { type: 'string' },
      'quant-block-size': { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (values.preset === undefined || !isPresetName(values.preset)) {
    throw new UsageError(`--preset must be one of ${Object.keys(presets).join(', ')}`);
  }
  if (values.out === undefined) throw new UsageError('--out DIR is required');
  const dtype = dtypes[values.dtype ?? 'f32'];
  if (dtype === undefined) throw new UsageError(`--dtype must be f32, f16 or bf16; got "${values.dtype}"`);
  const formats = (values.formats ?? 'safetensors,onnx').split(',').map((f) => f.trim());
  for (const format of formats) {
    if (format !== 'safetensors' && format !== 'onnx') {
      throw new UsageError(`--formats takes safetensors and/or onnx; got "${format}"`);
    }
  }
  const layers = integerOption('layers', values.layers);
  if (layers === 0) throw new UsageError('--layers must be at least 1');
  const shardSize = integerOption('shard-size', values['shard-size']);
  const externalData = externalDataOption(values['external-data']);
  const variants = variantsOption(values['onnx-variants']);
  const graphStyle = graphStyleOption(values['graph-style']);
  const quantBlockSize = quantBlockSizeOption(values['quant-block-size']);
  const progress = createProgressReporter(io.stderr);
  const started = performance.now();
  const info = await writeModelDir({
    ...(quantBlockSize === undefined ? {} : { onnxQuantBlockSize: quantBlockSize }),
    preset: values.preset,
    ...(layers === undefined ? {} : { config: { numHiddenLayers: layers } }),
    seed: integerOption('seed', values.seed) ?? 0,
    outDir: values.out,
    dtype,
    formats: formats as ModelFormat[],
    ...(shardSize === undefined ? {} : { maxShardSize: shardSize }),
    ...(externalData === undefined ? {} : { onnxExternalData: externalData }),
    ...(variants === undefined ? {} : { onnxVariants: variants }),
    ...(graphStyle === undefined ? {} : { onnxGraphStyle: graphStyle }),
    onProgress: progress.report,
  });
  progress.finish();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  io.stdout.write(
    `Wrote ${info.dir} in ${seconds} s: ${info.config.architecture}, ${info.parameterCount.toLocaleString('en-US')} parameters, ` +
      `vocab ${info.config.vocabSize} (tokenizer ${info.tokenizerVocabSize})\n${info.files.map((f) => `  ${f}\n`).join('')}`,
  );
  return 0;
}

async function exportCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      out: { type: 'string' },
      'external-data': { type: 'string' },
      'onnx-variants': { type: 'string' },
      'graph-style': { type: 'string' },
      'quant-block-size': { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new UsageError('export-onnx takes exactly one model directory');
  const externalData = externalDataOption(values['external-data']);
  const variants = variantsOption(values['onnx-variants']);
  const graphStyle = graphStyleOption(values['graph-style']);
  const quantBlockSize = quantBlockSizeOption(values['quant-block-size']);
  const progress = createProgressReporter(io.stderr);
  const started = performance.now();
  const result = await exportOnnx(positionals[0]!, {
    ...(quantBlockSize === undefined ? {} : { quantBlockSize }),
    ...(values.out === undefined ? {} : { outDir: values.out }),
    ...(externalData === undefined ? {} : { externalData }),
    ...(variants === undefined ? {} : { variants }),
    ...(graphStyle === undefined ? {} : { graphStyle }),
    onProgress: progress.report,
  });
  progress.finish();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  io.stdout.write(
    `Exported ${result.architecture} (${result.sourceDtype}) to ${result.dir} in ${seconds} s\n${result.files.map((f) => `  ${f}\n`).join('')}`,
  );
  return 0;
}

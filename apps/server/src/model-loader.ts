import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { createProgressReporter, ensureModelDir } from '@gen/model-kit';
import { loadTokenizer } from '@gen/tokenizer';
import { backendEntry, parseBackendName, resolveAuto, type BackendChoice } from './backends.js';
import type { LoadedModel } from './context.js';

export type { BackendName } from './backends.js';

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /** A Hugging Face model directory. Without it, the embedded demo model is generated (once) and served. */
  modelDir?: string;
  /**
   * Which backend runs the forward pass: `auto` (default; onnx when the directory has an ONNX export, else js), a
   * backend of `BACKENDS`, or one added with `registerBackend`.
   */
  backend?: BackendChoice;
  /** Name to serve the model under. Default: the directory name. */
  modelId?: string;
  /** Most sequences per forward pass. */
  maxBatchSize?: number;
  /** Intra-op threads (onnx). */
  threads?: number;
  /** ONNX file variant (fp32, fp16, int8, q4, q4f16). */
  dtype?: string;
  /** Where progress lines go (default: stderr). */
  log?: (message: string) => void;
}

/** The model, plus whether it is the embedded demo model. */
export interface LoadedModelInfo extends LoadedModel {
  embedded: boolean;
  modelDir: string;
}

/** The preset the demo model is made from. */
export const DEMO_PRESET = 'tiny';

/**
 * Loads a model directory with the chosen backend and its tokenizer. With no directory, generates the embedded
 * demo model (seeded random weights in the real formats, from `@gen/model-kit`) into the cache on first use.
 */
export async function loadModel(options: LoadModelOptions = {}): Promise<LoadedModelInfo> {
  const log = options.log ?? ((message: string) => process.stderr.write(`${message}\n`));
  const requested = parseBackendName(options.backend ?? 'auto', 'backend');
  let modelDir: string;
  let embedded = false;
  if (options.modelDir === undefined) {
    embedded = true;
    const reporter = createProgressReporter(process.stderr);
    modelDir = await ensureModelDir(DEMO_PRESET, { onProgress: (progress) => reporter.report(progress) });
    reporter.finish();
  } else {
    modelDir = resolve(options.modelDir);
    if (!existsSync(join(modelDir, 'config.json'))) {
      throw new Error(`${modelDir} is not a model directory: config.json is missing`);
    }
  }
  const backendName = requested === 'auto' ? await resolveAuto(modelDir, log) : requested;
  const entry = backendEntry(backendName);
  if (entry === undefined) throw new Error(`backend ${JSON.stringify(backendName)} is no longer registered`);
  const backend = await entry.load(modelDir, {
    ...(options.maxBatchSize === undefined ? {} : { maxBatchSize: options.maxBatchSize }),
    ...(options.threads === undefined ? {} : { threads: options.threads }),
    ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
    log,
  });
  for (const warning of backend.warnings) log(`backend warning: ${JSON.stringify(warning)}`);
  const tokenizer = await loadTokenizer(modelDir);
  const modelId = options.modelId ?? (embedded ? `gen-demo-${DEMO_PRESET}` : basename(modelDir));
  return { backend, tokenizer, modelId, modelDir, embedded };
}

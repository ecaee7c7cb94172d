import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { BackendV1 } from '@gen/backend';
import { createJsBackend } from '@gen/backend-js';
import { createProgressReporter, ensureModelDir } from '@gen/model-kit';
import { loadTokenizer } from '@gen/tokenizer';
import type { LoadedModel } from './context.js';

/** Backends the server can run: `auto` picks onnx when the directory has an ONNX export, else js. */
export type BackendName = 'auto' | 'onnx' | 'js' | 'tfjs';

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /** A Hugging Face model directory. Without it, the embedded demo model is generated (once) and served. */
  modelDir?: string;
  backend?: BackendName;
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

async function importOptional(name: string): Promise<Record<string, unknown>> {
  try {
    return (await import(name)) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`the ${name} package is not installed or failed to load: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Loads a model directory with the chosen backend and its tokenizer. With no directory, generates the embedded
 * demo model (seeded random weights in the real formats, from `@gen/model-kit`) into the cache on first use.
 */
export async function loadModel(options: LoadModelOptions = {}): Promise<LoadedModelInfo> {
  const log = options.log ?? ((message: string) => process.stderr.write(`${message}\n`));
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
  let backendName = options.backend ?? 'auto';
  if (backendName === 'auto') {
    backendName = 'js';
    if (existsSync(join(modelDir, 'onnx'))) {
      try {
        await importOptional('@gen/backend-onnx');
        backendName = 'onnx';
      } catch (error) {
        log(`backend auto: using js, onnx is unavailable (${(error as Error).message.split(':')[0]})`);
      }
    }
  }
  let backend: BackendV1;
  if (backendName === 'js') {
    backend = await createJsBackend({
      modelDir,
      ...(options.maxBatchSize === undefined ? {} : { maxBatchSize: options.maxBatchSize }),
    });
  } else if (backendName === 'onnx') {
    const onnx = await importOptional('@gen/backend-onnx');
    const create = onnx['createOnnxBackend'] as (settings: Record<string, unknown>) => Promise<BackendV1>;
    backend = await create({
      modelDir,
      ...(options.maxBatchSize === undefined ? {} : { maxBatchSize: options.maxBatchSize }),
      ...(options.threads === undefined ? {} : { intraOpThreads: options.threads }),
      ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
    });
  } else {
    const tfjs = await importOptional('@gen/backend-tfjs');
    const create = tfjs['createTfjsBackend'] as (settings: Record<string, unknown>) => Promise<BackendV1>;
    backend = await create({ modelDir });
  }
  const binding = backend.capabilities.details?.['binding'];
  if (binding !== undefined) {
    log(`backend onnx: ${String(binding)} binding (${String(backend.capabilities.details?.['bindingReason'])})`);
  }
  for (const warning of backend.warnings) log(`backend warning: ${JSON.stringify(warning)}`);
  const tokenizer = await loadTokenizer(modelDir);
  const modelId = options.modelId ?? (embedded ? `gen-demo-${DEMO_PRESET}` : basename(modelDir));
  return { backend, tokenizer, modelId, modelDir, embedded };
}

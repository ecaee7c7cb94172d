import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { createProgressReporter, ensureModelDir } from '@gen/model-kit';
import { loadTokenizer } from '@gen/tokenizer';
import {
  backendEntry,
  backendNames,
  isGgufModel,
  parseBackendName,
  resolveAuto,
  type BackendChoice,
} from './backends.js';
import type { LoadedModel } from './context.js';

export type { BackendName } from './backends.js';

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /**
   * A Hugging Face model directory, or a GGUF file (or a directory holding one GGUF file and no config.json). Without
   * it, the embedded demo model is generated (once) and served.
   */
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
    modelDir = resolveModelPath(resolve(options.modelDir));
  }
  const backendName = requested === 'auto' ? await resolveAuto(modelDir, log) : requested;
  const entry = backendEntry(backendName);
  if (entry === undefined) throw new Error(`backend ${JSON.stringify(backendName)} is no longer registered`);
  if (!(await entry.canServe(modelDir))) {
    const able: string[] = [];
    for (const name of backendNames()) {
      const other = backendEntry(name);
      if (other !== undefined && (await other.canServe(modelDir))) able.push(name);
    }
    throw new Error(
      `backend ${backendName} cannot serve ${isGgufModel(modelDir) ? 'a GGUF file' : 'this model directory'} (${modelDir}); backends that can: ${able.join(', ')}`,
    );
  }
  const backend = await entry.load(modelDir, {
    ...(options.maxBatchSize === undefined ? {} : { maxBatchSize: options.maxBatchSize }),
    ...(options.threads === undefined ? {} : { threads: options.threads }),
    ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
    log,
  });
  for (const warning of backend.warnings) log(`backend warning: ${JSON.stringify(warning)}`);
  const tokenizer = await loadTokenizer(modelDir);
  const modelId =
    options.modelId ?? (embedded ? `gen-demo-${DEMO_PRESET}` : basename(modelDir).replace(/\.gguf$/i, ''));
  return { backend, tokenizer, modelId, modelDir, embedded };
}

/**
 * The model a `--model` path names: a GGUF file; a directory with config.json (a Hugging Face model); or a directory
 * without config.json holding exactly one GGUF file.
 *
 * @throws {Error} naming the path and what was expected.
 */
function resolveModelPath(path: string): string {
  if (!existsSync(path)) throw new Error(`${path} does not exist: give a Hugging Face model directory or a GGUF file`);
  if (statSync(path).isFile()) {
    if (isGgufModel(path)) return path;
    throw new Error(
      `${path} is a file but not a GGUF file (.gguf): give a GGUF file or a Hugging Face model directory`,
    );
  }
  if (existsSync(join(path, 'config.json'))) return path;
  const ggufs = readdirSync(path).filter(isGgufModel).sort();
  if (ggufs.length === 1) return join(path, ggufs[0]!);
  if (ggufs.length > 1) {
    throw new Error(`${path} has no config.json and several GGUF files (${ggufs.join(', ')}): give the path of one`);
  }
  throw new Error(`${path} is not a model directory: config.json is missing (and there is no .gguf file)`);
}

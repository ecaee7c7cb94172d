import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WeightDtype } from './dtype.js';
import type { PresetName } from './model-config.js';
import { defaultOnnxGraphStyle, type OnnxGraphStyle, type OnnxVariant } from './onnx/decoder-graph.js';
import { generatorFingerprint, modelKitVersion } from './version.js';
import { writeModelDir, type ModelFormat, type WriteProgress } from './write-model-dir.js';

/** Options of {@link ensureModelDir}. */
export interface EnsureModelDirOptions {
  /** Default 0. */
  seed?: number;
  /** Default {@link defaultModelCacheDir}. */
  cacheDir?: string;
  /** Storage type of `model.safetensors`; default float32. */
  dtype?: WeightDtype;
  /**
   * ONNX files to write besides `onnx/model.onnx` (see `WriteModelDirOptions.onnxVariants`), for example
   * `['fp32', 'int8', 'q4']`. Default `['fp32']`. Each set of variants is cached under its own name.
   */
  onnxVariants?: readonly OnnxVariant[];
  /** How the ONNX graphs are built (see `WriteModelDirOptions.onnxGraphStyle`); each style is cached apart. */
  onnxGraphStyle?: OnnxGraphStyle;
  /**
   * Weight formats to write (see `WriteModelDirOptions.formats`); default `['safetensors', 'onnx']`.
   * `['safetensors']` skips the ONNX graphs (cached apart, under a `-safetensors` suffix).
   */
  formats?: readonly ModelFormat[];
  onProgress?: (progress: WriteProgress) => void;
}

/**
 * The cache directory for generated models: `$GEN_MODEL_CACHE_DIR` when set, else `<repo>/.gen-cache/models` when
 * this package sits inside the gen workspace (found by its `pnpm-workspace.yaml`), else
 * `<os tmpdir>/gen-model-kit/models`.
 */
export function defaultModelCacheDir(): string {
  const fromEnv = process.env['GEN_MODEL_CACHE_DIR'];
  if (fromEnv) return fromEnv;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return join(dir, '.gen-cache', 'models');
    const parent = dirname(dir);
    if (parent === dir) return join(tmpdir(), 'gen-model-kit', 'models');
    dir = parent;
  }
}

const inFlight = new Map<string, Promise<string>>();

/**
 * Returns the directory of `preset` generated with `seed` (safetensors and ONNX, plus config and tokenizer),
 * generating it into the cache the first time: `<cacheDir>/<preset>-<seed>-<version>-<fingerprint>[-<dtype>]`,
 * where the fingerprint hashes this package's code, so a changed generator never serves stale files (older
 * copies of the same preset and seed are removed when a new one is made).
 *
 * Safe under concurrency, within a process and across processes: each writer fills a private temporary directory
 * and renames it into place (atomic); a writer that loses the race discards its copy and returns the winner's.
 */
export async function ensureModelDir(preset: PresetName, options: EnsureModelDirOptions = {}): Promise<string> {
  const seed = options.seed ?? 0;
  const dtype = options.dtype ?? 'float32';
  const cacheDir = options.cacheDir ?? defaultModelCacheDir();
  const prefix = `${preset}-${seed}-`;
  const variants = [...new Set<OnnxVariant>(options.onnxVariants ?? ['fp32'])].sort();
  const variantSuffix = variants.length === 1 && variants[0] === 'fp32' ? '' : `-onnx${variants.join('')}`;
  const style = options.onnxGraphStyle ?? defaultOnnxGraphStyle;
  const styleSuffix = style === defaultOnnxGraphStyle ? '' : `-${style}`;
  const formats = [...new Set<ModelFormat>(options.formats ?? ['safetensors', 'onnx'])].sort();
  const withOnnx = formats.includes('onnx');
  const formatSuffix = withOnnx && formats.includes('safetensors') ? '' : `-${formats.join('')}`;
  const suffix = `${dtype === 'float32' ? '' : `-${dtype}`}${withOnnx ? `${variantSuffix}${styleSuffix}` : ''}${formatSuffix}`;
  const name = `${prefix}${modelKitVersion}-${generatorFingerprint()}${suffix}`;
  const finalDir = join(cacheDir, name);
  const pending = inFlight.get(finalDir);
  if (pending !== undefined) return pending;
  const promise = (async () => {
    if (existsSync(finalDir)) return finalDir;
    await mkdir(cacheDir, { recursive: true });
    const temporary = join(cacheDir, `.tmp-${name}-${process.pid}-${Math.random().toString(36).slice(2)}`);
    try {
      await writeModelDir({
        preset,
        seed,
        dtype,
        outDir: temporary,
        formats,
        onnxVariants: variants,
        onnxGraphStyle: style,
        ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      });
      await rename(temporary, finalDir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Another process renamed its copy first: use that one.
      if (!((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(finalDir))) throw error;
    } finally {
      await rm(temporary, { recursive: true, force: true });
    }
    await removeOlderCopies(cacheDir, prefix, suffix, name);
    return finalDir;
  })();
  inFlight.set(finalDir, promise);
  try {
    return await promise;
  } finally {
    inFlight.delete(finalDir);
  }
}

/** Removes copies of the same preset, seed and dtype made by other versions of the generator. */
async function removeOlderCopies(cacheDir: string, prefix: string, suffix: string, keep: string): Promise<void> {
  const pattern = /^[^-]+-[0-9a-f]{12}((?:-[a-z0-9]+)*)$/;
  for (const entry of await readdir(cacheDir)) {
    if (entry === keep || !entry.startsWith(prefix)) continue;
    const rest = entry.slice(prefix.length);
    const match = pattern.exec(rest);
    if (match === null || (match[1] ?? '') !== suffix) continue;
    await rm(join(cacheDir, entry), { recursive: true, force: true }).catch(() => undefined);
  }
}

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BackendV1 } from '@gen/backend';
import type * as JsPackage from '@gen/backend-js';
import type * as LlamaCppPackage from '@gen/backend-llamacpp';
import type * as OnnxPackage from '@gen/backend-onnx';
import type * as TfjsPackage from '@gen/backend-tfjs';

/** What {@link BackendEntry.load} gets besides the model directory: the model options of `gen serve` / `loadModel`. */
export interface BackendLoadOptions {
  /** Most sequences per forward pass (`--max-batch-size`). Default: the backend's limit. */
  maxBatchSize?: number;
  /** Intra-op threads (`--threads`), for backends that have them. */
  threads?: number;
  /** Model file variant (`--dtype`), for backends that have several. */
  dtype?: string;
  /** Where notes about the backend go (the binding chosen, fallbacks). */
  log: (message: string) => void;
}

/** One backend the server can run, as the CLI, `auto` and `loadModel` see it. */
export interface BackendEntry {
  /** One line for `gen --help`. */
  readonly description: string;
  /** The npm package that implements the backend: `load` imports it, and `auto` checks that it loads. */
  readonly packageName: string;
  /**
   * Rank in `auto`: among the backends that can serve the directory and whose package loads, the highest wins (ties:
   * the first registered). Left out: `auto` never picks this backend; it runs only when named.
   */
  readonly autoPriority?: number;
  /** What {@link BackendEntry.canServe} checks, in words, for the help of `auto` ("the directory has ..."). */
  readonly servesWhen?: string;
  /**
   * Whether the backend can serve `modelDir`: a model directory (with a `config.json`) or a GGUF file (see
   * {@link isGgufModel}); used by `auto`, and to refuse a named backend that cannot read the model.
   */
  canServe(modelDir: string): boolean | Promise<boolean>;
  /**
   * Why the backend cannot run on this machine even though its package imports (a native library that is missing
   * or fails to load), or `undefined` when it can. `auto` skips it and says why. Optional.
   */
  unavailable?(): Promise<string | undefined>;
  /**
   * Creates the backend for `modelDir`. Import the package with {@link importBackendPackage} here, not at the top of
   * the module, so that optional backends stay optional and a missing one fails with a clear message.
   */
  load(modelDir: string, options: BackendLoadOptions): Promise<BackendV1>;
}

/**
 * Imports a backend package by name, turning a failure into an error that names the package.
 *
 * @throws {Error} `the <name> package is not installed or failed to load: <reason>`, with the import error as cause.
 */
export async function importBackendPackage<Module>(packageName: string): Promise<Module> {
  try {
    return (await import(packageName)) as Module;
  } catch (error) {
    throw new Error(`the ${packageName} package is not installed or failed to load: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Whether a model path is a GGUF file (llama.cpp's format) rather than a Hugging Face model directory. */
export function isGgufModel(modelPath: string): boolean {
  return modelPath.toLowerCase().endsWith('.gguf');
}

function hasOnnxExport(modelDir: string): boolean {
  if (isGgufModel(modelDir)) return false;
  const dir = join(modelDir, 'onnx');
  if (!existsSync(dir)) return false;
  return readdirSync(dir).some((name) => name.startsWith('model') && name.endsWith('.onnx'));
}

/**
 * The backends the server ships with. The CLI's `--backend` help and validation, `gen --help` and `auto` are derived
 * from this map (and from {@link registerBackend}); its order is the order they list the backends in.
 */
export const BACKENDS = {
  onnx: {
    description: 'onnxruntime on the ONNX export in onnx/ (fp32, fp16, int8, q4, q4f16; CPU, or CUDA when installed)',
    packageName: '@gen/backend-onnx',
    autoPriority: 2,
    servesWhen: 'the directory has onnx/model*.onnx',
    canServe: hasOnnxExport,
    async load(modelDir, options) {
      const { createOnnxBackend } = await importBackendPackage<typeof OnnxPackage>('@gen/backend-onnx');
      const backend = await createOnnxBackend({
        modelDir,
        ...(options.maxBatchSize === undefined ? {} : { maxBatchSize: options.maxBatchSize }),
        ...(options.threads === undefined ? {} : { intraOpThreads: options.threads }),
        // The backend checks the variant and names the valid ones.
        ...(options.dtype === undefined ? {} : { dtype: options.dtype as OnnxPackage.OnnxModelDtype }),
      });
      const binding = backend.capabilities.details?.['binding'];
      if (binding !== undefined) {
        options.log(
          `backend onnx: ${String(binding)} binding (${String(backend.capabilities.details?.['bindingReason'])})`,
        );
      }
      return backend;
    },
  },
  js: {
    description:
      'pure TypeScript on the safetensors weights or a GGUF file (dequantized to float32, CPU), no native dependencies',
    packageName: '@gen/backend-js',
    autoPriority: 1,
    canServe: () => true,
    async load(modelDir, options) {
      const { createJsBackend } = await importBackendPackage<typeof JsPackage>('@gen/backend-js');
      return createJsBackend({
        modelDir,
        ...(options.maxBatchSize === undefined ? {} : { maxBatchSize: options.maxBatchSize }),
      });
    },
  },
  tfjs: {
    description:
      'TensorFlow.js on the safetensors weights: tfjs-node-gpu, tfjs-node, wasm or cpu, the first that loads',
    packageName: '@gen/backend-tfjs',
    // No autoPriority: auto never picks tfjs, it runs only when named.
    canServe: (modelDir: string) => !isGgufModel(modelDir),
    async load(modelDir, options) {
      const { createTfjsBackend } = await importBackendPackage<typeof TfjsPackage>('@gen/backend-tfjs');
      return createTfjsBackend({
        modelDir,
        ...(options.maxBatchSize === undefined ? {} : { maxBatchSize: options.maxBatchSize }),
      });
    },
  },
  llamacpp: {
    description: "llama.cpp's kernels on a GGUF file (F32, F16, Q8_0, Q4_0, K-quants; CPU variants chosen at run time)",
    packageName: '@gen/backend-llamacpp',
    autoPriority: 3,
    servesWhen: 'the model is a GGUF file',
    canServe: isGgufModel,
    async unavailable() {
      const { loadLlamaCApi } = await importBackendPackage<typeof LlamaCppPackage>('@gen/backend-llamacpp');
      try {
        loadLlamaCApi();
        return undefined;
      } catch (error) {
        return (error as Error).message;
      }
    },
    async load(modelPath, options) {
      const { createLlamaCppBackend } = await importBackendPackage<typeof LlamaCppPackage>('@gen/backend-llamacpp');
      return createLlamaCppBackend({
        modelPath,
        ...(options.maxBatchSize === undefined ? {} : { maxBatchSize: options.maxBatchSize }),
        ...(options.threads === undefined ? {} : { threads: options.threads }),
      });
    },
  },
} satisfies Record<string, BackendEntry>;

/** `auto` (see {@link resolveAuto}) or one of the {@link BACKENDS} the server ships with. */
export type BackendName = 'auto' | keyof typeof BACKENDS;

/** A {@link BackendName}, or the name of a backend added with {@link registerBackend}. */
export type BackendChoice = BackendName | (string & {});

const registered = new Map<string, BackendEntry>();

/** Every backend, built-in then registered, in listing order. */
function entries(): [string, BackendEntry][] {
  return [...Object.entries(BACKENDS), ...registered];
}

/** The backend registered under `name` (built-in or added with {@link registerBackend}); `undefined` for `auto`. */
export function backendEntry(name: string): BackendEntry | undefined {
  return Object.hasOwn(BACKENDS, name) ? BACKENDS[name as keyof typeof BACKENDS] : registered.get(name);
}

/**
 * Adds a backend under `name`, for packages that bring their own: `gen --help` lists it, `--backend <name>` and
 * `loadModel({ backend: name })` load it, and `auto` considers it when it has an `autoPriority`. Call it before
 * `main()` or `loadModel()`.
 *
 * @returns A function that removes the backend again.
 * @throws {Error} When `name` is not lower-case letters, digits and dashes, is `auto`, or is taken.
 */
export function registerBackend(name: string, entry: BackendEntry): () => void {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) {
    throw new Error(`backend names are lower-case letters, digits and dashes, got ${JSON.stringify(name)}`);
  }
  if (name === 'auto' || backendEntry(name) !== undefined) {
    throw new Error(`the backend name ${JSON.stringify(name)} is taken`);
  }
  registered.set(name, entry);
  return () => {
    if (registered.get(name) === entry) registered.delete(name);
  };
}

/** `auto` followed by every backend, built-in then registered, in listing order. */
export function backendNames(): string[] {
  return ['auto', ...entries().map(([name]) => name)];
}

/** `a, b or c`. */
function orList(items: readonly string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

/** {@link backendNames} as a phrase: `auto, onnx, js or tfjs`. */
export function backendNameList(): string {
  return orList(backendNames());
}

/** A backend name that is not `auto` nor any backend's. */
export class UnknownBackendError extends Error {
  constructor(
    /** The name given. */
    readonly backend: unknown,
    /** The valid names when it was given. */
    readonly names: readonly string[],
    /** What the name was given as, for the message: `--backend` (the CLI flag) or `backend` (the option). */
    label: string,
  ) {
    super(`${label} must be ${orList(names)}, got ${JSON.stringify(backend)}`);
    this.name = 'UnknownBackendError';
  }
}

/**
 * Checks a backend name (from the command line, the environment or an option).
 *
 * @param label How the message names the value: `--backend must be auto, onnx, js or tfjs, got "cuda"`.
 * @throws {UnknownBackendError} When `raw` is neither `auto` nor a backend's name.
 */
export function parseBackendName(raw: unknown, label = '--backend'): BackendChoice {
  if (raw === 'auto' || (typeof raw === 'string' && backendEntry(raw) !== undefined)) return raw;
  throw new UnknownBackendError(raw, backendNames(), label);
}

/** The backends `auto` considers, best first. */
function autoCandidates(): [string, BackendEntry & { autoPriority: number }][] {
  return entries()
    .filter((item): item is [string, BackendEntry & { autoPriority: number }] => item[1].autoPriority !== undefined)
    .sort((a, b) => b[1].autoPriority - a[1].autoPriority);
}

/** What `auto` does, in words: `onnx when the directory has onnx/model*.onnx, else js`. */
export function describeAuto(): string {
  return autoCandidates()
    .map(([name, entry]) => (entry.servesWhen === undefined ? name : `${name} when ${entry.servesWhen}`))
    .join(', else ');
}

/**
 * The backend `auto` picks for `modelDir`: the one with the highest `autoPriority` that can serve the model and
 * whose package (and native library) loads: llamacpp for a GGUF file, onnx when the directory has an ONNX export,
 * else js. Backends skipped because their package
 * does not load are logged: `backend auto: using js, onnx is unavailable (...)`.
 *
 * @throws {Error} When no backend can serve the directory.
 */
export async function resolveAuto(modelDir: string, log: (message: string) => void = () => undefined): Promise<string> {
  const unavailable: string[] = [];
  for (const [name, entry] of autoCandidates()) {
    if (!(await entry.canServe(modelDir))) continue;
    try {
      await importBackendPackage(entry.packageName);
    } catch (error) {
      unavailable.push(`${name} is unavailable (${(error as Error).message.split(':')[0]})`);
      continue;
    }
    const reason = await entry.unavailable?.();
    if (reason !== undefined) {
      unavailable.push(`${name} is unavailable (${reason})`);
      continue;
    }
    if (unavailable.length > 0) log(`backend auto: using ${name}, ${unavailable.join(', ')}`);
    return name;
  }
  throw new Error(
    `backend auto: no backend can serve ${modelDir}${unavailable.length > 0 ? ` (${unavailable.join(', ')})` : ''}`,
  );
}

import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as WasmModule from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';

/**
 * A TensorFlow.js backend package this package can run on:
 * - `node-gpu`: `@tensorflow/tfjs-node-gpu` (libtensorflow with CUDA; tfjs backend name `tensorflow`),
 * - `node`: `@tensorflow/tfjs-node` (libtensorflow on the CPU; also named `tensorflow`),
 * - `wasm`: `@tensorflow/tfjs-backend-wasm` (XNNPACK compiled to WebAssembly, SIMD),
 * - `cpu`: the plain JavaScript backend of `@tensorflow/tfjs-backend-cpu`.
 */
export type TfjsBackendKind = 'node-gpu' | 'node' | 'wasm' | 'cpu';

/** The order tried when no backend is forced. */
export const DEFAULT_BACKEND_ORDER: readonly TfjsBackendKind[] = ['node-gpu', 'node', 'wasm', 'cpu'];

/** Why a candidate was passed over. `not-installed` is expected; `failed` means it is there but did not start. */
export interface BackendAttempt {
  readonly kind: TfjsBackendKind;
  readonly outcome: 'not-installed' | 'failed';
  readonly reason: string;
}

/** The backend that was chosen, and what happened to the ones tried before it. */
export interface SelectedBackend {
  readonly kind: TfjsBackendKind;
  /** The tfjs backend name (`tensorflow`, `wasm`, `cpu`), as `tf.getBackend()` reports it. */
  readonly tfjsBackend: string;
  /** `cuda:0` when tfjs-node-gpu runs on a GPU, `wasm` for WebAssembly, else `cpu`. */
  readonly device: string;
  /** Backend-specific facts (SIMD, threads, package). */
  readonly details: Readonly<Record<string, unknown>>;
  readonly attempts: readonly BackendAttempt[];
}

/** Options of {@link selectBackend}. */
export interface SelectBackendOptions {
  /** Candidates in order; the first that initialises wins. */
  readonly order: readonly TfjsBackendKind[];
  /** Directory (or URL prefix) holding the `tfjs-backend-wasm*.wasm` files; default the npm package's `dist/`. */
  readonly wasmPaths?: string | undefined;
  /** Called once per candidate that was passed over, with the reason. */
  readonly log?: ((message: string) => void) | undefined;
}

const require = createRequire(import.meta.url);

const nodePackages = { 'node-gpu': '@tensorflow/tfjs-node-gpu', node: '@tensorflow/tfjs-node' } as const;

/** Thrown by a candidate that is not installed at all (the expected case for tfjs-node on most machines). */
class NotInstalled extends Error {}

const initialised = new Map<TfjsBackendKind, Promise<SelectedBackend>>();

/**
 * Initialises the first backend of `options.order` that works and makes it the active tfjs backend. Candidates
 * that are missing or fail are reported in `attempts` (and to `log`); when none works the error lists every
 * reason. A backend that initialised once is reused (tfjs keeps one engine per process).
 */
export async function selectBackend(options: SelectBackendOptions): Promise<SelectedBackend> {
  const attempts: BackendAttempt[] = [];
  for (const kind of options.order) {
    try {
      let pending = initialised.get(kind);
      if (pending === undefined) {
        pending = initialise(kind, options.wasmPaths);
        initialised.set(kind, pending);
        pending.catch(() => initialised.delete(kind));
      }
      const selected = await pending;
      await activate(selected.tfjsBackend);
      return { ...selected, attempts };
    } catch (error) {
      const outcome = error instanceof NotInstalled ? 'not-installed' : 'failed';
      const reason = error instanceof Error ? error.message : String(error);
      attempts.push({ kind, outcome, reason });
      options.log?.(
        `tfjs backend ${kind} ${outcome === 'failed' ? 'failed to initialise' : 'is not installed'}: ${reason}`,
      );
    }
  }
  throw new Error(
    `no TensorFlow.js backend could be initialised (tried ${options.order.join(', ')}):\n` +
      attempts.map((a) => `  - ${a.kind}: ${a.reason}`).join('\n'),
  );
}

/** Makes `name` the active tfjs backend (cheap when it already is). */
export async function activate(name: string): Promise<void> {
  if (tf.getBackend() === name) return;
  if (!(await tf.setBackend(name))) throw new Error(`tfjs could not switch to the ${name} backend`);
}

async function initialise(kind: TfjsBackendKind, wasmPaths: string | undefined): Promise<SelectedBackend> {
  switch (kind) {
    case 'node-gpu':
    case 'node':
      return initialiseNode(kind);
    case 'wasm':
      return initialiseWasm(wasmPaths);
    case 'cpu':
      return initialiseCpu();
  }
}

async function initialiseNode(kind: 'node-gpu' | 'node'): Promise<SelectedBackend> {
  const name = nodePackages[kind];
  let packageDir: string;
  try {
    packageDir = path.dirname(require.resolve(`${name}/package.json`));
  } catch {
    throw new NotInstalled(`${name} is not installed (optional; see docs/backends/tfjs.md)`);
  }
  // tfjs-node's own install script downloads libtensorflow and the prebuilt addon into lib/napi-v*/. pnpm does
  // not run it unless the package is approved, and it fails without internet: check before importing, since a
  // failed import leaves half-registered kernels behind.
  const libDir = path.join(packageDir, 'lib');
  const addons = existsSync(libDir)
    ? readdirSync(libDir).filter((entry) => existsSync(path.join(libDir, entry, 'tfjs_binding.node')))
    : [];
  if (addons.length === 0) {
    throw new Error(
      `${name} is installed but its native addon (${path.join(libDir, 'napi-v8', 'tfjs_binding.node')}) is ` +
        `missing: its install script did not run (pnpm runs it only for approved builds: pnpm approve-builds) ` +
        `or could not download libtensorflow`,
    );
  }
  await withoutTfjsNoise(() => import(name));
  if (tf.findBackend('tensorflow') === null && tf.findBackendFactory('tensorflow') === null) {
    throw new Error(`${name} loaded but registered no "tensorflow" backend`);
  }
  await activateCapturing('tensorflow');
  await smokeTest();
  const backend = tf.backend() as { isUsingGpuDevice?: boolean };
  const gpu = backend.isUsingGpuDevice === true;
  return {
    kind,
    tfjsBackend: 'tensorflow',
    device: gpu ? 'cuda:0' : 'cpu',
    details: { package: name, gpu },
    attempts: [],
  };
}

async function initialiseWasm(wasmPaths: string | undefined): Promise<SelectedBackend> {
  let wasm: typeof WasmModule;
  try {
    wasm = await import('@tensorflow/tfjs-backend-wasm');
  } catch (error) {
    throw new NotInstalled(`@tensorflow/tfjs-backend-wasm cannot be imported: ${(error as Error).message}`);
  }
  // In Node.js the .wasm files are read from disk: point tfjs at the ones the npm package ships.
  const prefix = wasmPaths ?? path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), path.sep);
  try {
    wasm.setWasmPaths(prefix.endsWith('/') || prefix.endsWith(path.sep) ? prefix : `${prefix}/`);
  } catch (error) {
    // tfjs-backend-wasm refuses new paths (and never retries) once a start has failed in this process.
    throw new Error(
      `an earlier initialisation of the wasm backend in this process failed, and tfjs-backend-wasm does not retry ` +
        `(${(error as Error).message})`,
    );
  }
  await activateCapturing('wasm');
  await smokeTest();
  const [simd, threads] = await Promise.all([
    tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
    tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
  ]);
  return {
    kind: 'wasm',
    tfjsBackend: 'wasm',
    device: 'wasm',
    details: {
      package: '@tensorflow/tfjs-backend-wasm',
      wasmPaths: prefix,
      simd: simd === true,
      // tfjs-backend-wasm 4.22 turns multithreading off under Node.js (WASM_HAS_MULTITHREAD_SUPPORT is false when
      // IS_NODE; tensorflow/tfjs#3830), so this is 1 here.
      threads: threads === true ? wasm.getThreadsCount() : 1,
    },
    attempts: [],
  };
}

async function initialiseCpu(): Promise<SelectedBackend> {
  await import('@tensorflow/tfjs-backend-cpu');
  await activateCapturing('cpu');
  // The cpu backend prints a "install tfjs-node to speed things up" banner on its first write; the fallback order
  // and docs/backends/tfjs.md already say so.
  (tf.backend() as { firstUse?: boolean }).firstUse = false;
  await smokeTest();
  return {
    kind: 'cpu',
    tfjsBackend: 'cpu',
    device: 'cpu',
    details: { package: '@tensorflow/tfjs-backend-cpu' },
    attempts: [],
  };
}

/** `tf.setBackend`, turning tfjs's logged initialisation error into the thrown reason. */
async function activateCapturing(name: string): Promise<void> {
  const messages: string[] = [];
  const ok = await withConsoleWarn(
    (message) => messages.push(message),
    () => tf.setBackend(name),
  );
  if (!ok) {
    const detail = messages.filter((m) => !m.startsWith('Initialization of backend')).join(' ');
    throw new Error(`tfjs could not initialise the ${name} backend${detail === '' ? '' : `: ${detail}`}`);
  }
}

/** A 2x2 product read back, so that a backend that initialises but cannot compute is caught here. */
async function smokeTest(): Promise<void> {
  const product = tf.tidy(() => tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])));
  try {
    const values = await product.data();
    if (values[0] !== 19 || values[3] !== 50) throw new Error(`smoke test computed [${[...values].join(', ')}]`);
  } finally {
    product.dispose();
  }
}

async function withoutTfjsNoise<T>(run: () => Promise<T>): Promise<T> {
  // Importing tfjs-node after a failed tfjs-node-gpu (or the reverse) re-registers every kernel, and tfjs warns
  // once per kernel; those lines say nothing useful.
  return withConsoleWarn((message, original) => {
    if (!/^The kernel '.*' for backend '.*' is already registered$/.test(message)) original(message);
  }, run);
}

async function withConsoleWarn<T>(
  sink: (message: string, original: (message: string) => void) => void,
  run: () => Promise<T>,
): Promise<T> {
  const original = console.warn;
  console.warn = (...args: unknown[]) => sink(args.map(String).join(' '), (m) => original.call(console, m));
  try {
    return await run();
  } finally {
    console.warn = original;
  }
}

/**
 * onnxruntime's C API, called through koffi (a foreign function interface for Node.js that ships prebuilt binaries)
 * on the `libonnxruntime` that onnxruntime-node installs. This is what lets the `direct` binding run a session
 * without onnxruntime-node's per-run copies: onnxruntime-node converts every output into a new JavaScript buffer
 * after each run, the outputs bound to caller buffers included, where the C API leaves a bound output in place.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as KoffiModule from 'koffi';

type Koffi = typeof KoffiModule;
type KoffiFunction = ReturnType<Koffi['decode']> & {
  (...args: unknown[]): unknown;
  async: (...args: unknown[]) => void;
};

/** A native pointer as koffi hands it back (a bigint), or `null`. */
export type Pointer = bigint | null;

/** The C API version asked for: every slot used here exists from this version on. */
const apiVersion = 16;

/**
 * Zero-based slots of the function pointers used from `struct OrtApi` (`onnxruntime_c_api.h`). The struct only
 * grows at its end, so the slots hold for every onnxruntime release that serves {@link apiVersion}.
 */
const slots = {
  GetErrorCode: 1,
  GetErrorMessage: 2,
  CreateEnv: 3,
  CreateSession: 7,
  Run: 9,
  CreateSessionOptions: 10,
  SetSessionExecutionMode: 13,
  EnableProfiling: 14,
  SetSessionLogSeverityLevel: 22,
  SetSessionGraphOptimizationLevel: 23,
  SetIntraOpNumThreads: 24,
  SetInterOpNumThreads: 25,
  SessionGetInputCount: 30,
  SessionGetOutputCount: 31,
  SessionGetInputTypeInfo: 33,
  SessionGetOutputTypeInfo: 34,
  SessionGetInputName: 36,
  SessionGetOutputName: 37,
  CreateRunOptions: 39,
  RunOptionsSetTerminate: 46,
  RunOptionsUnsetTerminate: 47,
  CreateTensorWithDataAsOrtValue: 49,
  GetTensorMutableData: 51,
  CastTypeInfoToTensorInfo: 55,
  GetOnnxTypeFromTypeInfo: 56,
  GetTensorElementType: 60,
  GetDimensionsCount: 61,
  GetDimensions: 62,
  GetSymbolicDimensions: 63,
  GetTensorTypeAndShape: 65,
  CreateCpuMemoryInfo: 69,
  AllocatorFree: 76,
  GetAllocatorWithDefaultOptions: 78,
  ReleaseStatus: 93,
  ReleaseMemoryInfo: 94,
  ReleaseSession: 95,
  ReleaseValue: 96,
  ReleaseRunOptions: 97,
  ReleaseTypeInfo: 98,
  ReleaseTensorTypeAndShapeInfo: 99,
  ReleaseSessionOptions: 100,
  SessionEndProfiling: 110,
  AddSessionConfigEntry: 130,
} as const;

/** `ORTCHAR_T`, the character type of paths: UTF-16 `wchar_t` on Windows, UTF-8 `char` elsewhere. */
const pathChar = process.platform === 'win32' ? 'const char16_t' : 'const char';

/** C signatures of the slots (`void *` results are `OrtStatus*`, null on success). */
const signatures: Record<keyof typeof slots, string> = {
  GetErrorCode: 'int f(void *status)',
  GetErrorMessage: 'const char *f(void *status)',
  CreateEnv: 'void *f(int level, const char *logid, _Out_ void **out)',
  CreateSession: `void *f(void *env, ${pathChar} *path, void *options, _Out_ void **out)`,
  Run:
    'void *f(void *session, void *runOptions, const char **inputNames, void **inputs, size_t inputCount, ' +
    'const char **outputNames, size_t outputCount, _Inout_ void **outputs)',
  CreateSessionOptions: 'void *f(_Out_ void **out)',
  SetSessionExecutionMode: 'void *f(void *options, int mode)',
  EnableProfiling: `void *f(void *options, ${pathChar} *prefix)`,
  SetSessionLogSeverityLevel: 'void *f(void *options, int level)',
  SetSessionGraphOptimizationLevel: 'void *f(void *options, int level)',
  SetIntraOpNumThreads: 'void *f(void *options, int threads)',
  SetInterOpNumThreads: 'void *f(void *options, int threads)',
  SessionGetInputCount: 'void *f(void *session, _Out_ size_t *out)',
  SessionGetOutputCount: 'void *f(void *session, _Out_ size_t *out)',
  SessionGetInputTypeInfo: 'void *f(void *session, size_t index, _Out_ void **out)',
  SessionGetOutputTypeInfo: 'void *f(void *session, size_t index, _Out_ void **out)',
  SessionGetInputName: 'void *f(void *session, size_t index, void *allocator, _Out_ void **out)',
  SessionGetOutputName: 'void *f(void *session, size_t index, void *allocator, _Out_ void **out)',
  CreateRunOptions: 'void *f(_Out_ void **out)',
  RunOptionsSetTerminate: 'void *f(void *options)',
  RunOptionsUnsetTerminate: 'void *f(void *options)',
  CreateTensorWithDataAsOrtValue:
    'void *f(void *memoryInfo, void *data, size_t byteLength, void *shape, size_t rank, int type, _Out_ void **out)',
  GetTensorMutableData: 'void *f(void *value, _Out_ void **out)',
  CastTypeInfoToTensorInfo: 'void *f(void *typeInfo, _Out_ void **out)',
  GetOnnxTypeFromTypeInfo: 'void *f(void *typeInfo, _Out_ int *out)',
  GetTensorElementType: 'void *f(void *info, _Out_ int *out)',
  GetDimensionsCount: 'void *f(void *info, _Out_ size_t *out)',
  GetDimensions: 'void *f(void *info, void *dims, size_t count)',
  GetSymbolicDimensions: 'void *f(void *info, void *names, size_t count)',
  GetTensorTypeAndShape: 'void *f(void *value, _Out_ void **out)',
  CreateCpuMemoryInfo: 'void *f(int allocatorType, int memoryType, _Out_ void **out)',
  AllocatorFree: 'void *f(void *allocator, void *pointer)',
  GetAllocatorWithDefaultOptions: 'void *f(_Out_ void **out)',
  ReleaseStatus: 'void f(void *status)',
  ReleaseMemoryInfo: 'void f(void *info)',
  ReleaseSession: 'void f(void *session)',
  ReleaseValue: 'void f(void *value)',
  ReleaseRunOptions: 'void f(void *options)',
  ReleaseTypeInfo: 'void f(void *info)',
  ReleaseTensorTypeAndShapeInfo: 'void f(void *info)',
  ReleaseSessionOptions: 'void f(void *options)',
  SessionEndProfiling: 'void *f(void *session, void *allocator, _Out_ void **out)',
  AddSessionConfigEntry: 'void *f(void *options, const char *key, const char *value)',
};

/** Bytes of stack koffi gives a call run on its worker threads (onnxruntime's kernels need more than the default). */
const asyncStackBytes = 8 * 1024 * 1024;

/** An error status returned by the C API: onnxruntime's message and `OrtErrorCode`. */
export class OrtStatusError extends Error {
  constructor(
    message: string,
    /** `OrtErrorCode`: 1 fail, 2 invalid argument, 3 no such file, 7 invalid protobuf, 10 invalid graph... */
    readonly code: number,
  ) {
    super(message);
    this.name = 'OrtStatusError';
  }
}

/** The loaded C API: typed calls plus the process-wide environment, CPU memory info and default allocator. */
export interface OrtCApi {
  readonly koffi: Koffi;
  /** onnxruntime's version string (for example `1.30.0`). */
  readonly version: string;
  /** The shared library that was loaded. */
  readonly library: string;
  /** Whether runs may go to koffi's worker threads (its async stack could be made large enough). */
  readonly asyncRuns: boolean;
  readonly env: Pointer;
  readonly cpuMemory: Pointer;
  readonly allocator: Pointer;
  readonly fn: { readonly [K in keyof typeof slots]: KoffiFunction };
  /** Throws the status as an {@link OrtStatusError} (and releases it) unless it is null. */
  check(status: unknown, what: string): void;
  /** Calls a C function whose last parameter is an `_Out_` pointer and returns what it wrote. */
  out(what: string, f: KoffiFunction, ...args: unknown[]): Pointer;
  /** A NUL-terminated C string. */
  string(pointer: Pointer): string;
}

let loaded: { api?: OrtCApi; error?: string } | undefined;

/**
 * Loads koffi and onnxruntime's C API once per process. Returns the reason instead when it cannot (koffi is not
 * installed or has no binary for this platform, the library is missing or older than the API needed).
 */
export function loadOrtCApi(): { api: OrtCApi } | { error: string } {
  if (loaded === undefined) {
    try {
      loaded = { api: load() };
    } catch (error) {
      loaded = { error: error instanceof Error ? error.message : String(error) };
    }
  }
  return loaded.api === undefined ? { error: loaded.error! } : { api: loaded.api };
}

/** The `libonnxruntime` shared library bundled with the installed onnxruntime-node, or undefined. */
export function findOnnxruntimeLibrary(): string | undefined {
  const require = createRequire(import.meta.url);
  let root: string;
  try {
    root = dirname(require.resolve('onnxruntime-node/package.json'));
  } catch {
    return undefined;
  }
  const dir = join(root, 'bin', 'napi-v6', process.platform, process.arch);
  if (!existsSync(dir)) return undefined;
  const name = readdirSync(dir).find((file) => /^(lib)?onnxruntime(\.\d+)*\.(so(\.\d+)*|dylib|dll)$/.test(file));
  return name === undefined ? undefined : join(dir, name);
}

function load(): OrtCApi {
  const require = createRequire(import.meta.url);
  let koffi: Koffi;
  try {
    koffi = require('koffi') as Koffi;
  } catch (error) {
    throw new Error(`koffi is not installed or has no binary for ${process.platform}-${process.arch}`, {
      cause: error,
    });
  }
  // Runs on koffi's worker threads use koffi's own stack, 128 KiB unless configured before any library loads.
  let asyncRuns = (koffi.config().async_stack_size ?? 0) >= asyncStackBytes;
  if (!asyncRuns) {
    try {
      koffi.config({ ...koffi.config(), async_stack_size: asyncStackBytes });
      asyncRuns = true;
    } catch {
      // Another module loaded a library through koffi first: runs stay on the main thread.
    }
  }
  const library = findOnnxruntimeLibrary();
  if (library === undefined) throw new Error('no onnxruntime shared library found beside onnxruntime-node');
  const lib = koffi.load(library);
  const base = lib.func('void *OrtGetApiBase()')() as Pointer;
  if (base === null) throw new Error(`${library}: OrtGetApiBase returned null`);
  const [getApi, getVersion] = koffi.decode(base, koffi.array('void *', 2)) as [Pointer, Pointer];
  const version = (koffi.decode(getVersion, koffi.proto('const char *OrtGetVersionString()')) as () => string)();
  const apiPointer = (koffi.decode(getApi, koffi.proto('void *OrtGetApi(uint32_t version)')) as (v: number) => Pointer)(
    apiVersion,
  );
  if (apiPointer === null) throw new Error(`onnxruntime ${version} does not serve C API version ${apiVersion}`);
  const maxSlot = Math.max(...Object.values(slots));
  const table = koffi.decode(apiPointer, koffi.array('void *', maxSlot + 1)) as Pointer[];
  const fn = {} as Record<keyof typeof slots, KoffiFunction>;
  for (const name of Object.keys(slots) as (keyof typeof slots)[]) {
    const pointer = table[slots[name]];
    if (pointer === null || pointer === undefined) throw new Error(`onnxruntime ${version}: OrtApi.${name} is null`);
    fn[name] = koffi.decode(pointer, koffi.proto(signatures[name].replace('f(', `Ort${name}(`))) as KoffiFunction;
  }
  const string = (pointer: Pointer): string => (pointer === null ? '' : (koffi.decode(pointer, 'char', -1) as string));
  const check = (status: unknown, what: string): void => {
    if (status === null || status === undefined) return;
    const message = fn.GetErrorMessage(status) as string;
    const code = fn.GetErrorCode(status) as number;
    fn.ReleaseStatus(status);
    throw new OrtStatusError(`${what}: ${message}`, code);
  };
  const out = (what: string, f: KoffiFunction, ...args: unknown[]): Pointer => {
    const result: Pointer[] = [null];
    check(f(...args, result), what);
    return result[0]!;
  };
  // ORT_LOGGING_LEVEL_ERROR; the environment is process-wide and lives as long as the process.
  const env = out('CreateEnv', fn.CreateEnv, 3, 'gen');
  // OrtDeviceAllocator, OrtMemTypeDefault: what tensors over caller memory are described with.
  const cpuMemory = out('CreateCpuMemoryInfo', fn.CreateCpuMemoryInfo, 0, 0);
  const allocator = out('GetAllocatorWithDefaultOptions', fn.GetAllocatorWithDefaultOptions);
  return { koffi, version, library, asyncRuns, env, cpuMemory, allocator, fn, check, out, string };
}

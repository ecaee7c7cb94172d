/**
 * llama.cpp's C API (`llama.h`, `ggml-backend.h`), called through koffi on the prebuilt libraries of
 * `@node-llama-cpp/<platform>-<arch>` (`bins/<platform>-<arch>/libllama*.so`, `libggml*.so` and the CPU variants
 * `libggml-cpu-*.so`, of which ggml loads the best one for this CPU).
 *
 * The struct layouts below are those of the llama.cpp release that package was built from (`llama.h` of
 * `@node-llama-cpp/linux-x64` 3.21.1, llama.cpp `v0.4.0`): `llama_model_params` 80 bytes, `llama_context_params`
 * 160, `llama_batch` 56 on x86-64. They are checked against the sizes and offsets a C compiler gives for that
 * header in `llama-c-api.test.ts`; a different package version may need them updated.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as KoffiModule from 'koffi';
import { LlamaCppUnavailableError } from './errors.js';

type Koffi = typeof KoffiModule;

/** A koffi function: callable, with `.async(...args, callback)` to run on a koffi worker thread. */
export type KoffiFunction = ((...args: unknown[]) => unknown) & {
  async: (...args: unknown[]) => void;
};

/** A native pointer as koffi hands it back, or `null`. */
export type Pointer = unknown;

/** The npm package that ships the prebuilt libraries for this platform. */
export const prebuiltPackage = `@node-llama-cpp/${process.platform}-${process.arch}`;

/** Bytes of stack koffi gives calls run on its worker threads (ggml's graph compute needs more than the default). */
const asyncStackBytes = 8 * 1024 * 1024;

/** `enum ggml_log_level`. */
export const logLevels = ['none', 'debug', 'info', 'warn', 'error', 'cont'] as const;

const signatures = {
  llama_backend_init: 'void llama_backend_init()',
  llama_print_system_info: 'const char *llama_print_system_info()',
  llama_max_parallel_sequences: 'size_t llama_max_parallel_sequences()',
  llama_log_set: 'void llama_log_set(void *callback, void *user_data)',
  llama_model_default_params: 'llama_model_params llama_model_default_params()',
  llama_context_default_params: 'llama_context_params llama_context_default_params()',
  llama_model_load_from_file: 'void *llama_model_load_from_file(const char *path, llama_model_params params)',
  llama_model_free: 'void llama_model_free(void *model)',
  llama_init_from_model: 'void *llama_init_from_model(void *model, llama_context_params params)',
  llama_free: 'void llama_free(void *ctx)',
  llama_model_get_vocab: 'void *llama_model_get_vocab(void *model)',
  llama_model_n_ctx_train: 'int32_t llama_model_n_ctx_train(void *model)',
  llama_model_n_embd: 'int32_t llama_model_n_embd(void *model)',
  llama_model_n_layer: 'int32_t llama_model_n_layer(void *model)',
  llama_model_n_head: 'int32_t llama_model_n_head(void *model)',
  llama_model_n_head_kv: 'int32_t llama_model_n_head_kv(void *model)',
  llama_model_n_params: 'uint64_t llama_model_n_params(void *model)',
  llama_model_size: 'uint64_t llama_model_size(void *model)',
  llama_model_desc: 'int32_t llama_model_desc(void *model, _Out_ char *buf, size_t size)',
  llama_model_meta_val_str:
    'int32_t llama_model_meta_val_str(void *model, const char *key, _Out_ char *buf, size_t size)',
  llama_vocab_n_tokens: 'int32_t llama_vocab_n_tokens(void *vocab)',
  llama_vocab_bos: 'int32_t llama_vocab_bos(void *vocab)',
  llama_vocab_eos: 'int32_t llama_vocab_eos(void *vocab)',
  llama_vocab_is_eog: 'bool llama_vocab_is_eog(void *vocab, int32_t token)',
  llama_n_ctx: 'uint32_t llama_n_ctx(void *ctx)',
  llama_n_batch: 'uint32_t llama_n_batch(void *ctx)',
  llama_n_seq_max: 'uint32_t llama_n_seq_max(void *ctx)',
  llama_get_memory: 'void *llama_get_memory(void *ctx)',
  llama_memory_clear: 'void llama_memory_clear(void *mem, bool data)',
  llama_memory_seq_rm: 'bool llama_memory_seq_rm(void *mem, int32_t seq, int32_t p0, int32_t p1)',
  llama_memory_seq_cp: 'void llama_memory_seq_cp(void *mem, int32_t src, int32_t dst, int32_t p0, int32_t p1)',
  llama_memory_seq_pos_max: 'int32_t llama_memory_seq_pos_max(void *mem, int32_t seq)',
  llama_batch_init: 'llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max)',
  llama_batch_free: 'void llama_batch_free(llama_batch batch)',
  llama_decode: 'int32_t llama_decode(void *ctx, llama_batch batch)',
  llama_get_logits_ith: 'float *llama_get_logits_ith(void *ctx, int32_t i)',
  llama_set_abort_callback: 'void llama_set_abort_callback(void *ctx, void *callback, void *data)',
  llama_set_embeddings: 'void llama_set_embeddings(void *ctx, bool embeddings)',
  llama_get_embeddings_ith: 'float *llama_get_embeddings_ith(void *ctx, int32_t i)',
  llama_state_seq_get_size: 'size_t llama_state_seq_get_size(void *ctx, int32_t seq)',
  llama_state_seq_get_data: 'size_t llama_state_seq_get_data(void *ctx, _Out_ uint8_t *dst, size_t size, int32_t seq)',
  llama_state_seq_set_data: 'size_t llama_state_seq_set_data(void *ctx, const uint8_t *src, size_t size, int32_t seq)',
  llama_attach_threadpool: 'void llama_attach_threadpool(void *ctx, void *threadpool, void *threadpool_batch)',
} as const;

const ggmlSignatures = {
  ggml_backend_load_all_from_path: 'void ggml_backend_load_all_from_path(const char *dir)',
  ggml_backend_dev_count: 'size_t ggml_backend_dev_count()',
  ggml_backend_reg_by_name: 'void *ggml_backend_reg_by_name(const char *name)',
  ggml_backend_reg_get_proc_address: 'void *ggml_backend_reg_get_proc_address(void *reg, const char *name)',
} as const;

/** The loaded C API. */
export interface LlamaCApi {
  readonly koffi: Koffi;
  /** Directory of the libraries. */
  readonly libraryDir: string;
  /** `libllama` that was loaded. */
  readonly library: string;
  /** Version of the prebuilt package. */
  readonly packageVersion: string | undefined;
  /** The CPU variants ggml loaded (`libggml-cpu-zen4.so`, ...), from its log. */
  readonly cpuVariants: readonly string[];
  /** `llama_print_system_info()`. */
  readonly systemInfo: string;
  /** Whether `llama_decode` may run on koffi's worker threads (its stack could be made large enough). */
  readonly asyncCalls: boolean;
  readonly fn: { readonly [K in keyof typeof signatures | keyof typeof ggmlSignatures]: KoffiFunction };
  /**
   * A C function `bool f(void *data)` that returns whether the byte at `data` is non-zero (libc's `strlen` on a
   * two-byte buffer `[flag, 0]`), used as ggml's abort callback so an abort set from JavaScript stops a decode
   * running on a worker thread at its next graph node without calling back into JavaScript. Undefined when libc's
   * `dlsym` is unavailable.
   */
  readonly flagCallback: Pointer | undefined;
  /** A C function that ignores its arguments (libc's `abs`), used as a silent log callback. */
  readonly quietLog: Pointer | undefined;
  /**
   * ggml's CPU thread pools (`ggml_threadpool_new` / `ggml_threadpool_free`, found through the CPU backend's
   * `ggml_backend_reg_get_proc_address`, as llama.cpp's own tools find them): a pool attached to a context with
   * `llama_attach_threadpool` keeps its `threads - 1` worker threads between decodes, where without one ggml starts
   * and joins them in every `llama_decode`. Undefined when the CPU backend does not export them.
   */
  readonly threadPools: LlamaThreadPools | undefined;
  /** Runs `fn` with llama.cpp's and ggml's log going to `sink`, then silences it again. */
  captureLog<T>(sink: (level: string, text: string) => void, fn: () => T): T;
}

/** See `LlamaCApi.threadPools`. */
export interface LlamaThreadPools {
  /**
   * A pool of `threads` threads (the calling thread counts as one) whose idle threads spin-wait for the next graph
   * at `poll` (ggml's polling level, 0: sleep at once, 50: llama.cpp's default, 100: the most) before sleeping.
   */
  create(threads: number, poll: number): Pointer;
  /** Stops and frees a pool (detach it from its context first, or free the context). */
  free(pool: Pointer): void;
}

let loaded: { api?: LlamaCApi; error?: LlamaCppUnavailableError } | undefined;

/** Loads koffi and the libraries once per process, or throws {@link LlamaCppUnavailableError} saying why. */
export function loadLlamaCApi(): LlamaCApi {
  if (loaded === undefined) {
    try {
      loaded = { api: load() };
    } catch (error) {
      loaded = {
        error: LlamaCppUnavailableError.isInstance(error)
          ? (error as LlamaCppUnavailableError)
          : new LlamaCppUnavailableError({
              reason: 'library-load-failed',
              message: `llama.cpp could not be loaded: ${error instanceof Error ? error.message : String(error)}`,
              cause: error,
            }),
      };
    }
  }
  if (loaded.api === undefined) throw loaded.error!;
  return loaded.api;
}

/** The directory of the prebuilt libraries (`GEN_LLAMACPP_LIB_DIR`, else the npm package's), or why there is none. */
export function findLibraryDir(): { dir: string; packageVersion: string | undefined } | { error: string } {
  const fromEnv = process.env['GEN_LLAMACPP_LIB_DIR'];
  if (fromEnv) {
    return existsSync(fromEnv)
      ? { dir: fromEnv, packageVersion: undefined }
      : { error: `GEN_LLAMACPP_LIB_DIR ${fromEnv} does not exist` };
  }
  const require = createRequire(import.meta.url);
  let root: string;
  let packageVersion: string | undefined;
  try {
    // The package exports only `.` (dist/index.js), not its package.json.
    root = dirname(dirname(require.resolve(prebuiltPackage)));
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: string };
    packageVersion = manifest.version;
  } catch (error) {
    return {
      error:
        `the optional dependency ${prebuiltPackage} is not installed (llama.cpp's prebuilt libraries for ` +
        `${process.platform}-${process.arch}; only linux-x64 is declared): ${error instanceof Error ? error.message : String(error)}`,
    };
  }
  const dir = join(root, 'bins', `${process.platform}-${process.arch}`);
  if (!existsSync(dir)) return { error: `${prebuiltPackage} has no ${dir}` };
  return { dir, packageVersion };
}

function load(): LlamaCApi {
  const found = findLibraryDir();
  if ('error' in found) throw new LlamaCppUnavailableError({ reason: 'package-not-found', message: found.error });
  const require = createRequire(import.meta.url);
  let koffi: Koffi;
  try {
    koffi = require('koffi') as Koffi;
  } catch (error) {
    throw new LlamaCppUnavailableError({
      reason: 'koffi-not-found',
      message: `koffi is not installed or has no binary for ${process.platform}-${process.arch}`,
      cause: error,
    });
  }
  let asyncCalls = (koffi.config().async_stack_size ?? 0) >= asyncStackBytes;
  if (!asyncCalls) {
    try {
      koffi.config({ ...koffi.config(), async_stack_size: asyncStackBytes });
      asyncCalls = true;
    } catch {
      // Another module loaded a library through koffi first: decodes stay on the main thread.
    }
  }
  const { dir } = found;
  const names = readdirSync(dir);
  const llamaName = names.find((name) => /^libllama(\.v[\d.]+)?\.(so|dylib)$/.test(name));
  const ggmlName = names.find((name) => /^libggml(\.v[\d.]+)?\.(so|dylib)$/.test(name));
  if (llamaName === undefined || ggmlName === undefined) {
    throw new LlamaCppUnavailableError({
      reason: 'library-load-failed',
      message: `${dir} has no libllama / libggml shared library`,
    });
  }
  const library = join(dir, llamaName);
  let llama: ReturnType<Koffi['load']>;
  let ggml: ReturnType<Koffi['load']>;
  try {
    ggml = koffi.load(join(dir, ggmlName));
    llama = koffi.load(library);
  } catch (error) {
    throw new LlamaCppUnavailableError({
      reason: 'library-load-failed',
      message: `${library} failed to load: ${error instanceof Error ? error.message : String(error)}`,
      cause: error,
    });
  }
  defineTypes(koffi);
  const fn = {} as Record<string, KoffiFunction>;
  for (const [name, signature] of Object.entries(signatures)) fn[name] = llama.func(signature) as KoffiFunction;
  for (const [name, signature] of Object.entries(ggmlSignatures)) fn[name] = ggml.func(signature) as KoffiFunction;

  // libc helpers for the abort flag and a silent logger (see LlamaCApi.flagCallback / quietLog).
  let flagCallback: Pointer | undefined;
  let quietLog: Pointer | undefined;
  try {
    const libc = koffi.load(process.platform === 'darwin' ? 'libc.dylib' : 'libc.so.6');
    const dlsym = libc.func('void *dlsym(void *handle, const char *name)') as KoffiFunction;
    // RTLD_DEFAULT is a null handle on glibc.
    flagCallback = dlsym(null, 'strlen') ?? undefined;
    quietLog = dlsym(null, 'abs') ?? undefined;
  } catch {
    flagCallback = undefined;
    quietLog = undefined;
  }

  let sink: ((level: string, text: string) => void) | undefined;
  const logProto = koffi.proto('void gen_llama_log_callback(int level, const char *text, void *user)');
  const logCallback = koffi.register(
    (level: number, text: string) => sink?.(logLevels[level] ?? String(level), text ?? ''),
    koffi.pointer(logProto),
  );
  const silence = () => {
    if (process.env['GEN_LLAMACPP_LOG'] === '1') fn['llama_log_set']!(null, null);
    else fn['llama_log_set']!(quietLog ?? logCallback, null);
  };
  const captureLog = <T>(to: (level: string, text: string) => void, body: () => T): T => {
    sink =
      process.env['GEN_LLAMACPP_LOG'] === '1' ? (level, text) => (to(level, text), process.stderr.write(text)) : to;
    fn['llama_log_set']!(logCallback, null);
    try {
      return body();
    } finally {
      sink = undefined;
      silence();
    }
  };

  const cpuVariants: string[] = [];
  captureLog(
    (_level, text) => {
      const match = /loaded \S+ backend from (.+)$/m.exec(text);
      if (match !== null) cpuVariants.push(match[1]!.trim().split('/').pop()!);
    },
    () => {
      fn['ggml_backend_load_all_from_path']!(dir);
      fn['llama_backend_init']!();
    },
  );
  if ((fn['ggml_backend_dev_count']!() as number) === 0) {
    throw new LlamaCppUnavailableError({
      reason: 'library-load-failed',
      message: `ggml found no backend in ${dir} (no libggml-cpu-*.so variant loads on this CPU)`,
    });
  }
  const systemInfo = fn['llama_print_system_info']!() as string;
  return {
    threadPools: findThreadPools(koffi, fn),
    koffi,
    libraryDir: dir,
    library,
    packageVersion: found.packageVersion,
    cpuVariants,
    systemInfo,
    asyncCalls,
    fn: fn as LlamaCApi['fn'],
    flagCallback,
    quietLog,
    captureLog,
  };
}

/** `ggml_threadpool_new` / `ggml_threadpool_free` of the CPU backend, when it exports them. */
function findThreadPools(koffi: Koffi, fn: Record<string, KoffiFunction>): LlamaThreadPools | undefined {
  const registry = fn['ggml_backend_reg_by_name']!('CPU') as Pointer;
  if (registry === null) return undefined;
  const create = fn['ggml_backend_reg_get_proc_address']!(registry, 'ggml_threadpool_new') as Pointer;
  const free = fn['ggml_backend_reg_get_proc_address']!(registry, 'ggml_threadpool_free') as Pointer;
  if (create === null || free === null) return undefined;
  const createType = koffi.proto('void *gen_ggml_threadpool_new(ggml_threadpool_params *params)');
  const freeType = koffi.proto('void gen_ggml_threadpool_free(void *threadpool)');
  return {
    create: (threads, poll) =>
      koffi.call(create, createType, {
        // ggml_threadpool_params_init's defaults, with `poll`: no CPU mask (inherited affinity), normal priority.
        cpumask: new Array<boolean>(ggmlMaxThreads).fill(false),
        n_threads: threads,
        prio: 0,
        poll,
        strict_cpu: false,
        paused: false,
      }) as Pointer,
    free: (pool) => {
      koffi.call(free, freeType, pool);
    },
  };
}

/** `GGML_MAX_N_THREADS`: the length of `ggml_threadpool_params.cpumask`. */
const ggmlMaxThreads = 512;

/** The structs of `llama.h` passed by value. */
function defineTypes(koffi: Koffi): void {
  koffi.struct('ggml_threadpool_params', {
    cpumask: koffi.array('bool', ggmlMaxThreads),
    n_threads: 'int32_t',
    prio: 'int32_t',
    poll: 'uint32_t',
    strict_cpu: 'bool',
    paused: 'bool',
  });
  koffi.struct('llama_model_params', {
    devices: 'void *',
    tensor_buft_overrides: 'void *',
    n_gpu_layers: 'int32_t',
    split_mode: 'int32_t',
    load_mode: 'int32_t',
    lazy_mode: 'int32_t',
    main_gpu: 'int32_t',
    tensor_split: 'void *',
    progress_callback: 'void *',
    progress_callback_user_data: 'void *',
    kv_overrides: 'void *',
    vocab_only: 'bool',
    check_tensors: 'bool',
    use_extra_bufts: 'bool',
    no_host: 'bool',
    no_alloc: 'bool',
    load_mtp: 'bool',
  });
  koffi.struct('llama_context_params', {
    n_ctx: 'uint32_t',
    n_batch: 'uint32_t',
    n_ubatch: 'uint32_t',
    n_seq_max: 'uint32_t',
    n_rs_seq: 'uint32_t',
    n_outputs_max: 'uint32_t',
    n_outputs_max_per_seq: 'uint32_t',
    n_threads: 'int32_t',
    n_threads_batch: 'int32_t',
    ctx_type: 'int32_t',
    rope_scaling_type: 'int32_t',
    pooling_type: 'int32_t',
    attention_type: 'int32_t',
    flash_attn_type: 'int32_t',
    rope_freq_base: 'float',
    rope_freq_scale: 'float',
    yarn_ext_factor: 'float',
    yarn_attn_factor: 'float',
    yarn_beta_fast: 'float',
    yarn_beta_slow: 'float',
    yarn_orig_ctx: 'uint32_t',
    defrag_thold: 'float',
    cb_eval: 'void *',
    cb_eval_user_data: 'void *',
    type_k: 'int32_t',
    type_v: 'int32_t',
    abort_callback: 'void *',
    abort_callback_data: 'void *',
    embeddings: 'bool',
    offload_kqv: 'bool',
    no_perf: 'bool',
    op_offload: 'bool',
    swa_full: 'bool',
    kv_unified: 'bool',
    samplers: 'void *',
    n_samplers: 'size_t',
    ctx_other: 'void *',
  });
  koffi.struct('llama_batch', {
    n_tokens: 'int32_t',
    token: 'void *',
    embd: 'void *',
    pos: 'void *',
    n_seq_id: 'void *',
    seq_id: 'void *',
    logits: 'void *',
  });
}

/** `llama_model_params` fields this package sets. */
export interface LlamaModelParams {
  n_gpu_layers: number;
  vocab_only: boolean;
  [field: string]: unknown;
}

/** `llama_context_params` fields this package sets. */
export interface LlamaContextParams {
  n_ctx: number;
  n_batch: number;
  n_ubatch: number;
  n_seq_max: number;
  n_outputs_max: number;
  n_outputs_max_per_seq: number;
  n_threads: number;
  n_threads_batch: number;
  flash_attn_type: number;
  type_k: number;
  type_v: number;
  no_perf: boolean;
  kv_unified: boolean;
  [field: string]: unknown;
}

/** `llama_batch` as koffi returns it (pointer fields are opaque). */
export interface LlamaBatch {
  n_tokens: number;
  token: Pointer;
  embd: Pointer;
  pos: Pointer;
  n_seq_id: Pointer;
  seq_id: Pointer;
  logits: Pointer;
}

/** Physical CPU cores (distinct `physical id` / `core id` pairs of `/proc/cpuinfo`), else logical CPUs. */
export function physicalCores(logical: number, cpuinfo: string | undefined): number {
  if (cpuinfo === undefined) return logical;
  const cores = new Set<string>();
  let physical = '';
  for (const line of cpuinfo.split('\n')) {
    const [key, value] = line.split(':').map((part) => part.trim());
    if (key === 'physical id') physical = value ?? '';
    if (key === 'core id') cores.add(`${physical}:${value ?? ''}`);
  }
  return cores.size > 0 ? Math.min(cores.size, logical) : logical;
}

import { existsSync, readFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import {
  AbortError,
  BackendDisposedError,
  BackendError,
  ModelLoadError,
  SerialQueue,
  UnsupportedModelError,
  checkEmbedInputs,
  checkForkIds,
  checkForkLength,
  checkForwardInputs,
  forwardLogitsArray,
  poolHiddenStates,
  releaseSequences,
  type BackendCapabilitiesV1,
  type BackendEmbedOptionsV1,
  type BackendForkOptionsV1,
  type BackendForwardOptionsV1,
  type BackendForwardResultV1,
  type BackendModelV1,
  type BackendSequenceResultV1,
  type BackendStatsV1,
  type BackendV1,
  type BackendWarningV1,
  type ModelLoadErrorReason,
} from '@gen/backend';
import { GgufError, getString, readGgufFile } from '@gen/gguf';
import {
  loadLlamaCApi,
  physicalCores,
  type LlamaBatch,
  type LlamaCApi,
  type LlamaContextParams,
  type LlamaModelParams,
  type Pointer,
} from './llama-c-api.js';
import type { LlamaCppBackendSettings } from './llamacpp-backend-settings.js';

/**
 * `Float32Array` views of llama.cpp's output rows (logits, embeddings), kept per output index. A `koffi.view` is
 * an external `ArrayBuffer`; made afresh for every row of every step, they are garbage V8 collects on its worker
 * threads, which then take the cores from llama.cpp's compute threads (measured: a 16-row Q4_0 decode step 14%
 * slower inside `llama_decode`). llama.cpp keeps its output buffer across calls, so output `k` comes back at the
 * same address and its view is made once. A view is only read right after llama.cpp returned its address for a
 * row of this length, so one left over from a moved buffer is never read.
 */
class RowViews {
  private readonly addresses: bigint[] = [];
  private readonly views: Float32Array[] = [];

  constructor(
    private readonly koffi: LlamaCApi['koffi'],
    private readonly length: number,
  ) {}

  /** The row at `pointer`, llama.cpp's answer for batch position `k`. */
  view(k: number, pointer: Pointer): Float32Array {
    const address = this.koffi.address(pointer);
    if (this.addresses[k] !== address) {
      this.addresses[k] = address;
      this.views[k] = new Float32Array(this.koffi.view(pointer, this.length * 4));
    }
    return this.views[k]!;
  }
}

/** Architectures tested with this backend (llama.cpp loads many more; they are not refused). */
export const TESTED_ARCHITECTURES = ['llama', 'qwen2', 'qwen3', 'gemma2', 'gemma3', 'phi3'] as const;

const architectureClasses: Record<string, string> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  gemma2: 'Gemma2ForCausalLM',
  gemma3: 'Gemma3ForCausalLM',
  phi3: 'Phi3ForCausalLM',
};

/** Hugging Face `model_type` of the llama.cpp architectures whose names differ from it. */
const modelTypes: Record<string, string> = { gemma3: 'gemma3_text' };

/** `enum llama_ftype` values with a plain name. */
const fileTypeNames: Record<number, string> = {
  0: 'float32',
  1: 'float16',
  2: 'q4_0',
  3: 'q4_1',
  7: 'q8_0',
  32: 'bfloat16',
};

const ggmlType = { f32: 0, f16: 1 } as const;
const flashAttentionType = { auto: -1, off: 0, on: 1 } as const;

function checkPositiveInteger(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
}

/** A run of KV cells appended by one sequence; shared by forks (llama.cpp's `seq_cp` adds ids to the same cells). */
interface Segment {
  cells: number;
  refs: number;
}

interface SequenceState {
  /** llama.cpp sequence id. */
  readonly slot: number;
  length: number;
  segments: Segment[];
}

/**
 * Checks the file before llama.cpp sees it, so the common problems are typed errors that name the file: missing,
 * not GGUF, unreadable metadata. Returns the architecture.
 */
async function checkModelFile(path: string): Promise<string> {
  if (!existsSync(path)) {
    throw new ModelLoadError({ file: path, reason: 'missing-file', expected: 'a GGUF file', message: 'no such file' });
  }
  if (!statSync(path).isFile()) {
    throw new ModelLoadError({ file: path, reason: 'missing-file', expected: 'a GGUF file', message: 'not a file' });
  }
  const handle = await open(path, 'r');
  const magic = Buffer.alloc(4);
  try {
    await handle.read(magic, 0, 4, 0);
  } finally {
    await handle.close();
  }
  if (magic.toString('latin1') !== 'GGUF') {
    throw new ModelLoadError({
      file: path,
      reason: 'invalid-header',
      expected: 'a GGUF file (magic "GGUF")',
      message: `not a GGUF file (starts with ${JSON.stringify(magic.toString('latin1'))})`,
    });
  }
  let architecture: string | undefined;
  try {
    const file = await readGgufFile(path, { metadataOnly: true });
    architecture = getString(file, 'general.architecture');
  } catch (error) {
    const code = error instanceof GgufError ? error.code : undefined;
    throw new ModelLoadError({
      file: path,
      reason: code === 'TRUNCATED' ? 'truncated' : 'invalid-header',
      expected: 'a readable GGUF header',
      message: `GGUF header: ${error instanceof Error ? error.message : String(error)}`,
      cause: error,
    });
  }
  if (architecture === undefined) {
    throw new ModelLoadError({
      file: path,
      reason: 'invalid-config',
      expected: 'a general.architecture string',
      message: 'the GGUF metadata has no general.architecture',
    });
  }
  return architecture;
}

/** The typed error for a model llama.cpp refused, from what it logged. */
function loadFailure(path: string, architecture: string, log: string): ModelLoadError {
  if (/unknown model architecture/i.test(log)) {
    return new UnsupportedModelError({
      file: path,
      feature: 'general.architecture',
      value: architecture,
      supported: [...TESTED_ARCHITECTURES],
    });
  }
  const reason: ModelLoadErrorReason = /missing tensor|tensor '[^']*' not found/i.test(log)
    ? 'missing-tensor'
    : /wrong shape|shape/i.test(log)
      ? 'shape-mismatch'
      : /not within the file bounds|truncat|unexpected end/i.test(log)
        ? 'truncated'
        : 'invalid-config';
  const lines = log
    .split('\n')
    .filter((line) => /error|failed/i.test(line))
    .slice(-3)
    .join('; ');
  return new ModelLoadError({
    file: path,
    reason,
    expected: `a ${architecture} model llama.cpp can load`,
    message: `llama.cpp could not load the model: ${lines || log.slice(-400)}`,
  });
}

/**
 * Creates a backend that runs a GGUF model with llama.cpp (libllama + ggml, CPU), called through koffi.
 *
 * One `llama_context` holds every sequence: a unified KV cache of `contextSize` cells and one llama.cpp sequence
 * id per live sequence (`maxSequences` of them). A `doForward` batch, prompts and decode steps mixed, goes to
 * `llama_decode` as one `llama_batch` (split into `batchTokens`-token pieces), with `logits[i]` set for the last
 * token of each sequence and for every token of sequences that asked for prompt logits; logits are read with
 * `llama_get_logits_ith`. Fork is `llama_memory_seq_cp` (the cells are shared, not copied), release
 * `llama_memory_seq_rm`. A failed or aborted call removes what it appended (`llama_memory_seq_rm` from each
 * sequence's previous length), so it changes nothing.
 *
 * @throws {LlamaCppUnavailableError} the prebuilt libraries (`@node-llama-cpp/<platform>-<arch>`) or koffi are
 *   missing, or the libraries fail to load (the message has the OS error).
 * @throws {ModelLoadError} the file is missing, not GGUF, has an unreadable header, or llama.cpp refuses it
 *   (missing tensor, wrong shape...; the message has llama.cpp's own words).
 * @throws {UnsupportedModelError} llama.cpp does not know the file's `general.architecture`.
 * @throws {BackendError} llama.cpp cannot create the context (for example not enough memory for `contextSize`).
 */
export async function createLlamaCppBackend(settings: LlamaCppBackendSettings): Promise<BackendV1> {
  const maxBatchSize = settings.maxBatchSize ?? 16;
  checkPositiveInteger('maxBatchSize', maxBatchSize);
  checkPositiveInteger('maxSequences', settings.maxSequences);
  checkPositiveInteger('maxPositions', settings.maxPositions);
  checkPositiveInteger('contextSize', settings.contextSize);
  checkPositiveInteger('batchTokens', settings.batchTokens);
  checkPositiveInteger('threads', settings.threads);
  const kvCacheType = settings.kvCacheType ?? 'f16';
  if (!Object.hasOwn(ggmlType, kvCacheType)) throw new RangeError(`kvCacheType must be f32 or f16, got ${kvCacheType}`);
  const flashAttention = settings.flashAttention ?? 'off';
  if (!Object.hasOwn(flashAttentionType, flashAttention)) {
    throw new RangeError(`flashAttention must be auto, on or off, got ${flashAttention}`);
  }
  const threadPoll = settings.threadPoll ?? 0;
  if (!Number.isInteger(threadPoll) || threadPoll < 0 || threadPoll > 100) {
    throw new RangeError(`threadPoll must be an integer from 0 to 100, got ${threadPoll}`);
  }
  const envThread = process.env['GEN_LLAMACPP_DECODE_THREAD'];
  const decodeThread = settings.decodeThread ?? (envThread === 'worker' ? 'worker' : 'main');

  const api = loadLlamaCApi();
  const path = settings.modelPath;
  const architecture = await checkModelFile(path);
  const { fn } = api;
  const warnings: BackendWarningV1[] = [];

  const modelParams = fn.llama_model_default_params() as LlamaModelParams;
  modelParams.n_gpu_layers = 0;
  let log = '';
  const model = api.captureLog(
    (_level, text) => {
      log += text;
    },
    () => fn.llama_model_load_from_file(path, modelParams) as Pointer,
  );
  if (model === null) throw loadFailure(path, architecture, log);

  try {
    const meta = (key: string): string | undefined => {
      const buffer = Buffer.alloc(512);
      const n = fn.llama_model_meta_val_str(model, key, buffer, buffer.length) as number;
      return n < 0 ? undefined : buffer.toString('utf8', 0, Math.min(n, buffer.length - 1));
    };
    const vocab = fn.llama_model_get_vocab(model) as Pointer;
    const vocabSize = fn.llama_vocab_n_tokens(vocab) as number;
    const contextLength = fn.llama_model_n_ctx_train(model) as number;
    const nEmbd = fn.llama_model_n_embd(model) as number;
    const nLayer = fn.llama_model_n_layer(model) as number;
    const nHead = fn.llama_model_n_head(model) as number;
    const nHeadKv = fn.llama_model_n_head_kv(model) as number;
    const keyLength = Number(meta(`${architecture}.attention.key_length`) ?? nEmbd / nHead);
    const valueLength = Number(meta(`${architecture}.attention.value_length`) ?? keyLength);
    const maxPositions = Math.min(settings.maxPositions ?? contextLength, contextLength);
    if (settings.maxPositions !== undefined && settings.maxPositions > contextLength) {
      warnings.push({
        type: 'unsupported-setting',
        setting: 'maxPositions',
        details: `clamped to ${architecture}.context_length ${contextLength}`,
      });
    }
    const parallel = Number(fn.llama_max_parallel_sequences());
    let maxSequences = settings.maxSequences ?? Math.min(Math.max(maxBatchSize, 64), parallel);
    if (maxSequences > parallel) {
      warnings.push({ type: 'unsupported-setting', setting: 'maxSequences', details: `clamped to ${parallel}` });
      maxSequences = parallel;
    }
    if (maxBatchSize > maxSequences) {
      throw new RangeError(`maxBatchSize (${maxBatchSize}) must not exceed maxSequences (${maxSequences})`);
    }
    const contextSize = settings.contextSize ?? maxBatchSize * maxPositions;
    const batchTokens = Math.min(settings.batchTokens ?? 512, contextSize);
    const threads = settings.threads ?? physicalCores(availableParallelism(), readCpuinfo());

    const contextParams = fn.llama_context_default_params() as LlamaContextParams;
    Object.assign(contextParams, {
      n_ctx: contextSize,
      n_batch: batchTokens,
      n_ubatch: batchTokens,
      n_seq_max: maxSequences,
      // llama.cpp reserves max(outputs, n_seq_max) logits rows and asserts that fits n_outputs_max.
      n_outputs_max: Math.max(batchTokens, maxSequences),
      n_outputs_max_per_seq: 0,
      n_threads: threads,
      n_threads_batch: threads,
      flash_attn_type: flashAttentionType[flashAttention],
      type_k: ggmlType[kvCacheType],
      type_v: ggmlType[kvCacheType],
      no_perf: true,
      kv_unified: true,
      offload_kqv: false,
      op_offload: false,
    });
    let contextLog = '';
    const context = api.captureLog(
      (_level, text) => {
        contextLog += text;
      },
      () => fn.llama_init_from_model(model, contextParams) as Pointer,
    );
    if (context === null) {
      const lines = contextLog
        .split('\n')
        .filter((line) => /error|fail/i.test(line))
        .join('; ');
      throw new BackendError(`llama.cpp could not create a context (n_ctx ${contextSize}): ${lines || 'no reason'}`);
    }

    let pool: Pointer = null;
    if (settings.threadPool !== false) {
      if (api.threadPools === undefined) {
        warnings.push({
          type: 'unsupported-setting',
          setting: 'threadPool',
          details: 'the CPU backend does not export ggml_threadpool_new; ggml starts its threads in every decode',
        });
      } else {
        pool = api.threadPools.create(threads, threadPoll);
        if (pool === null) throw new BackendError(`llama.cpp could not create a pool of ${threads} threads`);
        fn.llama_attach_threadpool(context, pool, pool);
      }
    }

    const elementBytes = kvCacheType === 'f32' ? 4 : 2;
    const bytesPerCell = nLayer * nHeadKv * (keyLength + valueLength) * elementBytes;
    const fileType = Number(meta('general.file_type') ?? -1);
    const descriptionBuffer = Buffer.alloc(256);
    const descriptionLength = fn.llama_model_desc(model, descriptionBuffer, descriptionBuffer.length) as number;
    const details = {
      file: path,
      description: descriptionBuffer.toString('utf8', 0, Math.max(0, descriptionLength)),
      parameters: Number(fn.llama_model_n_params(model)),
      modelBytes: Number(fn.llama_model_size(model)),
      fileType,
      threads,
      threadPool: pool === null ? 'per-decode' : 'persistent',
      ...(pool === null ? {} : { threadPoll }),
      decodeThread: decodeThread === 'worker' && !api.asyncCalls ? 'main' : decodeThread,
      contextSize: fn.llama_n_ctx(context) as number,
      maxSequences: fn.llama_n_seq_max(context) as number,
      batchTokens: fn.llama_n_batch(context) as number,
      kvCacheType,
      kvCacheAllocatedBytes: (fn.llama_n_ctx(context) as number) * bytesPerCell,
      flashAttention,
      library: api.library,
      prebuiltPackageVersion: api.packageVersion,
      cpuVariants: api.cpuVariants,
      systemInfo: api.systemInfo,
    };
    if (decodeThread === 'worker' && !api.asyncCalls) {
      warnings.push({
        type: 'unsupported-setting',
        setting: 'decodeThread',
        details: 'koffi was configured by another module before its async stack could be enlarged; decoding on main',
      });
    }

    const bos = fn.llama_vocab_bos(vocab) as number;
    const eos = fn.llama_vocab_eos(vocab) as number;
    const eosTokenIds: number[] = eos >= 0 && eos < vocabSize ? [eos] : [];
    for (let token = 0; token < vocabSize; token++) {
      if (token !== eos && (fn.llama_vocab_is_eog(vocab, token) as boolean)) eosTokenIds.push(token);
    }
    const modelInfo: BackendModelV1 = {
      architecture: architectureClasses[architecture] ?? architecture,
      modelType: modelTypes[architecture] ?? architecture,
      vocabSize,
      maxPositions,
      eosTokenIds,
      bosTokenId: bos >= 0 && bos < vocabSize ? bos : undefined,
      dtype: fileTypeNames[fileType] ?? `ftype-${fileType}`,
      numLayers: nLayer,
      hiddenSize: nEmbd,
      numAttentionHeads: nHead,
      numKeyValueHeads: nHeadKv,
      headDim: keyLength,
      details,
    };
    const capabilities: BackendCapabilitiesV1 = {
      maxBatchSize,
      device: 'cpu',
      promptLogits: true,
      fork: true,
      forkPrefix: true,
      embeddings: true,
      logitsBuffer: true,
      details,
    };
    return new LlamaCppBackend(api, model, context, modelInfo, capabilities, warnings, {
      maxSequences: details.maxSequences,
      contextSize: details.contextSize,
      batchTokens: details.batchTokens,
      bytesPerCell,
      worker: details.decodeThread === 'worker',
      pool,
    });
  } catch (error) {
    fn.llama_model_free(model);
    throw error;
  }
}

function readCpuinfo(): string | undefined {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined;
  }
}

interface BackendLayout {
  readonly maxSequences: number;
  readonly contextSize: number;
  readonly batchTokens: number;
  readonly bytesPerCell: number;
  readonly worker: boolean;
  /** The thread pool attached to the context (freed after it), or null. */
  readonly pool: Pointer;
}

/** One input of a call, with its slot and where its outputs go. */
interface Row {
  readonly index: number;
  readonly id: string;
  readonly tokens: Int32Array;
  readonly start: number;
  readonly wantPromptLogits: boolean;
  readonly state: SequenceState | undefined;
  readonly slot: number;
  promptLogits: Float32Array | undefined;
}

class LlamaCppBackend implements BackendV1 {
  readonly specificationVersion = 'v1';
  readonly backendId = 'llamacpp';
  private modelHandle: Pointer;
  private context: Pointer;
  private readonly memory: Pointer;
  private readonly sequences = new Map<string, SequenceState>();
  private readonly freeSlots: number[];
  private readonly queue = new SerialQueue();
  private readonly batch: LlamaBatch;
  private readonly batchToken: Int32Array;
  private readonly batchPos: Int32Array;
  private readonly batchSeqCount: Int32Array;
  private readonly batchSeq: Int32Array[];
  private readonly batchLogits: Int8Array;
  private readonly abortFlagPointer: Pointer;
  private readonly abortFlag: Uint8Array | undefined;
  private readonly logitsRows: RowViews;
  private readonly embeddingRows: RowViews;
  private cells = 0;

  constructor(
    private readonly api: LlamaCApi,
    modelHandle: Pointer,
    context: Pointer,
    readonly model: BackendModelV1,
    readonly capabilities: BackendCapabilitiesV1,
    readonly warnings: readonly BackendWarningV1[],
    private readonly layout: BackendLayout,
  ) {
    this.modelHandle = modelHandle;
    this.context = context;
    const { fn, koffi } = api;
    this.memory = fn.llama_get_memory(context);
    this.freeSlots = Array.from({ length: layout.maxSequences }, (_, i) => layout.maxSequences - 1 - i);
    const n = layout.batchTokens;
    this.batch = fn.llama_batch_init(n, 0, 1) as LlamaBatch;
    this.batchToken = new Int32Array(koffi.view(this.batch.token, n * 4));
    this.batchPos = new Int32Array(koffi.view(this.batch.pos, n * 4));
    this.batchSeqCount = new Int32Array(koffi.view(this.batch.n_seq_id, n * 4)).fill(1);
    this.batchSeq = (koffi.decode(this.batch.seq_id, 'void *', n) as Pointer[]).map(
      (pointer) => new Int32Array(koffi.view(pointer, 4)),
    );
    this.batchLogits = new Int8Array(koffi.view(this.batch.logits, n));
    this.logitsRows = new RowViews(koffi, model.vocabSize);
    this.embeddingRows = new RowViews(koffi, model.hiddenSize ?? 0);
    if (api.flagCallback !== undefined) {
      this.abortFlagPointer = koffi.alloc('uint8_t', 2);
      this.abortFlag = new Uint8Array(koffi.view(this.abortFlagPointer, 2)).fill(0);
      fn.llama_set_abort_callback(context, api.flagCallback, this.abortFlagPointer);
    } else {
      this.abortFlagPointer = null;
      this.abortFlag = undefined;
    }
  }

  doForward(options: BackendForwardOptionsV1): Promise<BackendForwardResultV1> {
    return this.queue.run(() => this.forward(options));
  }

  doEmbed(options: BackendEmbedOptionsV1): Promise<Float32Array[]> {
    return this.queue.run(() => this.embed(options));
  }

  doRelease(ids: readonly string[]): Promise<void> {
    return this.queue.run(() => {
      this.live();
      releaseSequences(ids, (id) => {
        const state = this.sequences.get(id);
        if (state === undefined) return false;
        this.sequences.delete(id);
        this.api.fn.llama_memory_seq_rm(this.memory, state.slot, -1, -1);
        this.freeSlots.push(state.slot);
        this.dropSegments(state.segments);
        return true;
      });
    });
  }

  /**
   * Forks through `llama_memory_seq_cp`: the copy shares the source's cells (positions `[0, length)` with
   * `options.length`). A prefix that ends inside a run of cells counts that part again for the copy in
   * `kvCacheBytes` while both live (conservative; the total returns to zero once both are released).
   */
  doFork(fromId: string, toId: string, options: BackendForkOptionsV1 = {}): Promise<void> {
    return this.queue.run(() => {
      this.live();
      checkForkIds(fromId, toId, (id) => this.sequences.has(id));
      const source = this.sequences.get(fromId)!;
      const length = checkForkLength(fromId, options.length, source.length);
      const slot = this.freeSlots.pop();
      if (slot === undefined) throw this.tooManySequences();
      if (length === source.length) {
        this.api.fn.llama_memory_seq_cp(this.memory, source.slot, slot, -1, -1);
        for (const segment of source.segments) segment.refs++;
        this.sequences.set(toId, { slot, length, segments: [...source.segments] });
        return;
      }
      this.api.fn.llama_memory_seq_cp(this.memory, source.slot, slot, 0, length);
      const segments: Segment[] = [];
      let covered = 0;
      for (const segment of source.segments) {
        if (covered + segment.cells > length) break;
        segment.refs++;
        segments.push(segment);
        covered += segment.cells;
      }
      if (covered < length) {
        segments.push({ cells: length - covered, refs: 1 });
        this.cells += length - covered;
      }
      this.sequences.set(toId, { slot, length, segments });
    });
  }

  /**
   * `kvCacheBytes` is computed from the model's hyper-parameters, not asked of llama.cpp: the KV cells live
   * sequences hold (each cell once, however many forks share it) × `n_layer × n_head_kv × (key_length +
   * value_length) × bytes per element` (2 for `f16`, 4 for `f32`). The cache itself is allocated up front
   * (`capabilities.details.kvCacheAllocatedBytes`).
   */
  stats(): BackendStatsV1 {
    let cachedTokens = 0;
    for (const state of this.sequences.values()) cachedTokens += state.length;
    return {
      sequences: this.sequences.size,
      cachedTokens,
      kvCacheBytes: this.cells * this.layout.bytesPerCell,
    };
  }

  doDispose(): Promise<void> {
    return this.queue.run(() => {
      if (this.context === null) return;
      const { fn, koffi } = this.api;
      this.sequences.clear();
      this.cells = 0;
      fn.llama_batch_free(this.batch);
      fn.llama_free(this.context);
      if (this.layout.pool !== null) this.api.threadPools!.free(this.layout.pool);
      fn.llama_model_free(this.modelHandle);
      if (this.abortFlagPointer !== null) koffi.free(this.abortFlagPointer);
      this.context = null;
      this.modelHandle = null;
    });
  }

  private live(): void {
    if (this.context === null) throw new BackendDisposedError(this.backendId);
  }

  private tooManySequences(): BackendError {
    return new BackendError(
      `llamacpp: ${this.layout.maxSequences} sequences are live (maxSequences); release some or raise maxSequences`,
    );
  }

  private dropSegments(segments: readonly Segment[]): void {
    for (const segment of segments) {
      segment.refs--;
      if (segment.refs === 0) this.cells -= segment.cells;
    }
  }

  /**
   * Synchronous where `llama_decode` runs on the main thread (no microtask hops between the end of the decode and
   * the caller: they cost a batch-1 step microseconds, measured), a promise on the worker thread.
   */
  private forward(options: BackendForwardOptionsV1): BackendForwardResultV1 | Promise<BackendForwardResultV1> {
    this.live();
    const { vocabSize, maxPositions } = this.model;
    const checked = checkForwardInputs(
      options,
      { vocabSize, maxPositions, maxBatchSize: this.capabilities.maxBatchSize },
      (id) => this.sequences.get(id)?.length,
    );
    let fresh = 0;
    for (const input of checked) if (!this.sequences.has(input.id)) fresh++;
    if (fresh > this.freeSlots.length) throw this.tooManySequences();
    const taken: number[] = [];
    const rows: Row[] = [];
    for (let index = 0; index < checked.length; index++) {
      const input = checked[index]!;
      const state = this.sequences.get(input.id);
      const slot = state?.slot ?? this.freeSlots.pop()!;
      if (state === undefined) taken.push(slot);
      rows.push({
        index,
        id: input.id,
        tokens: input.tokens,
        start: input.start,
        wantPromptLogits: input.wantPromptLogits,
        state,
        slot,
        promptLogits: undefined,
      });
    }
    const logits = forwardLogitsArray(options, rows.length, vocabSize);
    const { fn } = this.api;
    const undo = (error: unknown): never => {
      // Remove what this call appended, give back the slots of new sequences.
      for (const row of rows) fn.llama_memory_seq_rm(this.memory, row.slot, row.start, -1);
      this.freeSlots.push(...taken.reverse());
      throw error;
    };
    let pending: Promise<void> | undefined;
    try {
      pending = this.decodeRows(
        rows,
        options.signal,
        (row, position) => row.wantPromptLogits || position === row.tokens.length - 1,
        (k, row, position) => {
          const pointer = fn.llama_get_logits_ith(this.context, k) as Pointer;
          if (pointer === null) throw new BackendError(`llamacpp: no logits for batch position ${k}`);
          const values = this.logitsRows.view(k, pointer);
          if (position === row.tokens.length - 1) logits.set(values, row.index * vocabSize);
          if (row.wantPromptLogits) {
            row.promptLogits ??= new Float32Array(row.tokens.length * vocabSize);
            row.promptLogits.set(values, position * vocabSize);
          }
        },
      );
    } catch (error) {
      undo(error);
    }
    if (pending !== undefined) return pending.then(() => this.forwardResult(rows, logits), undo);
    return this.forwardResult(rows, logits);
  }

  /** Records what a successful `forward` appended and builds its result. */
  private forwardResult(rows: readonly Row[], logits: Float32Array): BackendForwardResultV1 {
    const vocabSize = this.model.vocabSize;
    const results: BackendSequenceResultV1[] = [];
    for (const row of rows) {
      let state = row.state;
      if (state === undefined) {
        state = { slot: row.slot, length: 0, segments: [] };
        this.sequences.set(row.id, state);
      }
      const last = state.segments.at(-1);
      if (last !== undefined && last.refs === 1) last.cells += row.tokens.length;
      else state.segments.push({ cells: row.tokens.length, refs: 1 });
      this.cells += row.tokens.length;
      state.length += row.tokens.length;
      const rowLogits = logits.subarray(row.index * vocabSize, (row.index + 1) * vocabSize);
      results.push(
        row.promptLogits === undefined
          ? { id: row.id, logits: rowLogits, length: state.length }
          : { id: row.id, logits: rowLogits, length: state.length, promptLogits: row.promptLogits },
      );
    }
    return { logits, sequences: results, warnings: [] };
  }

  /**
   * Runs the rows' tokens through `llama_decode` in pieces of at most `batchTokens`, asking for an output where
   * `wantOutput` says and handing each to `collect` (with its index in the piece) right after its piece ran. An
   * abort of `signal` is checked before every piece and, on a worker thread, stops a running piece. Returns when
   * done on the main thread (`undefined`), a promise on the worker thread.
   */
  private decodeRows(
    rows: readonly Row[],
    signal: AbortSignal | undefined,
    wantOutput: (row: Row, position: number) => boolean,
    collect: (k: number, row: Row, position: number) => void,
  ): Promise<void> | undefined {
    const { fn } = this.api;
    const capacity = this.layout.batchTokens;
    const outputs: Array<{ row: Row; position: number }> = [];
    // The next token to place: rows[r].tokens[j].
    let r = 0;
    let j = 0;
    /** Fills the batch with up to `capacity` tokens from the cursor on; returns how many. */
    const fill = (): number => {
      let count = 0;
      while (r < rows.length && count < capacity) {
        const row = rows[r]!;
        const { tokens, start, slot } = row;
        for (; j < tokens.length && count < capacity; j++) {
          this.batchToken[count] = tokens[j]!;
          this.batchPos[count] = start + j;
          this.batchSeqCount[count] = 1;
          this.batchSeq[count]![0] = slot;
          this.batchLogits[count] = wantOutput(row, j) ? 1 : 0;
          outputs[count] = { row, position: j };
          count++;
        }
        if (j === tokens.length) {
          r++;
          j = 0;
        }
      }
      return count;
    };
    const check = (status: number, count: number): void => {
      if (status === 0) return;
      if (status === 2 || signal?.aborted === true) throw new AbortError({ cause: signal?.reason });
      throw new BackendError(
        status === 1
          ? `llamacpp: the KV cache has no room for ${count} more tokens (contextSize ${this.layout.contextSize} cells, ${this.cells} held by live sequences); release sequences or raise contextSize`
          : `llamacpp: llama_decode failed with status ${status}`,
      );
    };
    const finish = (count: number): void => {
      for (let k = 0; k < count; k++) {
        if (this.batchLogits[k] === 0) continue;
        const { row, position } = outputs[k]!;
        collect(k, row, position);
      }
    };
    const batch = this.batch;

    if (!this.layout.worker) {
      // On the main thread a running decode cannot see an abort: the signal is checked between pieces only.
      for (let count = fill(); count > 0; count = fill()) {
        AbortError.throwIfAborted(signal);
        batch.n_tokens = count;
        check(fn.llama_decode(this.context, batch) as number, count);
        finish(count);
      }
      return undefined;
    }

    const flag = this.abortFlag;
    const onAbort = () => flag?.fill(1, 0, 1);
    signal?.addEventListener('abort', onAbort);
    const run = async (): Promise<void> => {
      try {
        for (let count = fill(); count > 0; count = fill()) {
          AbortError.throwIfAborted(signal);
          batch.n_tokens = count;
          const status = await new Promise<number>((resolve, reject) =>
            fn.llama_decode.async(this.context, batch, (error: unknown, value: number) =>
              error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(value),
            ),
          );
          check(status, count);
          finish(count);
        }
      } finally {
        signal?.removeEventListener('abort', onAbort);
        flag?.fill(0, 0, 1);
      }
    };
    return run();
  }

  /**
   * Runs each input from position 0 on a scratch sequence id (a free one, released afterwards) with llama.cpp's
   * embeddings output switched on (`llama_set_embeddings`): `llama_get_embeddings_ith` is then the final norm's
   * output of every token (the state `output.weight` turns into logits), pooled by `poolHiddenStates`.
   */
  private async embed(options: BackendEmbedOptionsV1): Promise<Float32Array[]> {
    this.live();
    const { vocabSize, maxPositions } = this.model;
    const hiddenSize = this.model.hiddenSize!;
    const inputs = checkEmbedInputs(options, {
      vocabSize,
      maxPositions,
      maxBatchSize: this.capabilities.maxBatchSize,
    });
    if (inputs.length > this.freeSlots.length) throw this.tooManySequences();
    const { fn } = this.api;
    const offsets: number[] = [];
    let total = 0;
    for (const tokens of inputs) {
      offsets.push(total);
      total += tokens.length;
    }
    const states = new Float32Array(total * hiddenSize);
    const rows: Row[] = inputs.map((tokens, index) => ({
      index,
      id: String(index),
      tokens,
      start: 0,
      wantPromptLogits: false,
      state: undefined,
      slot: this.freeSlots.pop()!,
      promptLogits: undefined,
    }));
    fn.llama_set_embeddings(this.context, true);
    try {
      await this.decodeRows(
        rows,
        options.signal,
        () => true,
        (k, row, position) => {
          const pointer = fn.llama_get_embeddings_ith(this.context, k) as Pointer;
          if (pointer === null) throw new BackendError(`llamacpp: no embeddings for batch position ${k}`);
          states.set(this.embeddingRows.view(k, pointer), (offsets[row.index]! + position) * hiddenSize);
        },
      );
    } finally {
      fn.llama_set_embeddings(this.context, false);
      for (const row of rows) fn.llama_memory_seq_rm(this.memory, row.slot, -1, -1);
      for (let i = rows.length - 1; i >= 0; i--) this.freeSlots.push(rows[i]!.slot);
    }
    return poolHiddenStates(
      states,
      inputs.map((tokens) => tokens.length),
      hiddenSize,
      options.pooling,
    );
  }
}

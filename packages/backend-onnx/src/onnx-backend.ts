import {
  AbortError,
  checkForkIds,
  checkForkLength,
  checkForwardInputs,
  releaseSequences,
  SerialQueue,
  BackendDisposedError,
  describeModel,
  readModelDirectory,
  type BackendCapabilitiesV1,
  type BackendForkOptionsV1,
  type BackendForwardOptionsV1,
  type BackendForwardResultV1,
  type BackendModelV1,
  type BackendSequenceResultV1,
  type BackendStatsV1,
  type BackendV1,
  type BackendWarningV1,
} from '@gen/backend';
import { capacitySteps, FusedKvCache, type FusedState } from './fused-runner.js';
import { readGraphSignature } from './graph-signature.js';
import { compactGroup, type CacheGroup, type SequenceState } from './kv-group.js';
import { graphMentions, resolveModelFile } from './model-file.js';
import type { OnnxBackendSettings } from './onnx-backend-settings.js';
import { executeRun, planRuns, type RowInput, type RowOutput, type RunContext } from './run-batch.js';
import type { OnnxSession } from './onnx-session.js';
import { openSession } from './session.js';

function checkPositiveInteger(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
}

/**
 * Creates a backend that runs a Hugging Face ONNX decoder (`onnx/model*.onnx` of a llama, mistral, qwen2, qwen3,
 * gemma2, gemma3_text or phi3 model directory) with onnxruntime-node.
 *
 * The graph's inputs, outputs, cache shapes and dtypes are read from the session, so exports made by Optimum,
 * onnx-community, `@gen/model-kit` or others load alike (with or without `position_ids`, float32 or float16
 * caches, merged decoders with `use_cache_branch`). Each sequence keeps its own KV cache; a batch may mix new
 * prompts and decode steps of any lengths (past caches left-padded, new tokens right-padded, masks and
 * positions per row). Supports prompt logits, fork (the cache is shared copy-on-write), abort (checked before and
 * after each onnxruntime run: a run itself cannot be interrupted) and overlapping calls (run in call order).
 *
 * @throws {ModelLoadError} `config.json` or the `.onnx` file for `dtype` is missing or unreadable (the message
 *   lists the variants that exist), the graph's cache shapes disagree with `config.json`.
 * @throws {UnsupportedModelError} the architecture is not supported, or the graph is not a decoder with a KV cache.
 * @throws {BackendError} none of `executionProviders` can be loaded.
 */
export async function createOnnxBackend(settings: OnnxBackendSettings): Promise<BackendV1> {
  const maxBatchSize = settings.maxBatchSize ?? 32;
  checkPositiveInteger('maxBatchSize', maxBatchSize);
  checkPositiveInteger('maxPositions', settings.maxPositions);
  checkPositiveInteger('intraOpThreads', settings.intraOpThreads);
  if (settings.kvCapacity !== undefined && settings.kvCapacity !== 'grow') {
    checkPositiveInteger('kvCapacity', settings.kvCapacity);
  }
  const directory = await readModelDirectory(settings.modelDir);
  const { config } = directory;
  const dtype = settings.dtype ?? 'fp32';
  const file = await resolveModelFile(settings.modelDir, dtype, settings.modelFile);
  const warnings: BackendWarningV1[] = [];
  if (settings.maxPositions !== undefined && settings.maxPositions > config.maxPositions) {
    warnings.push({
      type: 'unsupported-setting',
      setting: 'maxPositions',
      details: `clamped to max_position_embeddings ${config.maxPositions}`,
    });
  }
  const opened = await openSession(file.path, settings, warnings);
  let signature;
  try {
    signature = readGraphSignature(opened.session.inputMetadata, opened.session.outputMetadata, config, file.path);
  } catch (error) {
    await opened.session.release();
    throw error;
  }
  if (
    settings.preferredOutputLocation !== undefined &&
    settings.preferredOutputLocation !== 'cpu' &&
    opened.executionProvider !== 'webgpu'
  ) {
    warnings.push({
      type: 'unsupported-setting',
      setting: 'preferredOutputLocation',
      details: `onnxruntime-node keeps outputs on the device only with the webgpu provider; ${opened.executionProvider} returns CPU tensors`,
    });
  }
  const fused = signature.style === 'fused';
  const groupQueryAttention = fused || (await graphMentions(file.path, 'GroupQueryAttention'));
  const alone = fused
    ? undefined
    : signature.attentionMask === undefined
      ? 'the graph has no attention_mask input'
      : signature.fixedBatch !== undefined
        ? 'the graph fixes the batch dimension to 1'
        : groupQueryAttention
          ? 'the graph uses GroupQueryAttention, which expects caches that start at slot 0 of every row'
          : undefined;
  if (alone !== undefined) {
    warnings.push({ type: 'other', message: `${alone}: sequences of a batch run one at a time` });
  }

  const computeDtype =
    file.dtype === undefined || file.dtype === 'fp32' || file.dtype === 'fp16'
      ? signature.logits.type === 'float16'
        ? 'float16'
        : 'float32'
      : file.dtype;
  const settingsReport = {
    file: file.relativePath,
    fileBytes: file.bytes,
    dtype: file.dtype ?? computeDtype,
    kvCacheDtype: signature.kvType,
    logitsDtype: signature.logits.type,
    executionProvider: opened.executionProvider,
    intraOpThreads: settings.intraOpThreads ?? 'auto',
    intraOpSpinning: settings.intraOpSpinning === true,
    graphOptimizationLevel: settings.graphOptimizationLevel ?? 'all',
    preferredOutputLocation: settings.preferredOutputLocation ?? 'cpu',
    onnxruntime: opened.onnxruntimeVersion,
    binding: opened.binding,
    bindingReason: opened.bindingReason,
    ...(opened.runThread === undefined ? {} : { runThread: opened.runThread }),
    graphInputs: opened.session.inputNames.length,
    positionIds: signature.positionIds !== undefined,
    groupQueryAttention,
    graphStyle: signature.style,
    ...(fused ? { kvCapacity: settings.kvCapacity ?? 'grow' } : {}),
  };
  const model = describeModel(directory, {
    dtype: computeDtype,
    ...(settings.maxPositions === undefined ? {} : { maxPositions: settings.maxPositions }),
    details: settingsReport,
  });
  const capabilities: BackendCapabilitiesV1 = {
    maxBatchSize,
    device: opened.device,
    promptLogits: true,
    fork: true,
    forkPrefix: true,
    details: settingsReport,
  };
  const layout = {
    layers: signature.layers.length,
    kvHeads: signature.kvHeads,
    headDim: signature.headDim,
    kvType: signature.kvType,
  };
  const cache: SequenceCache<FusedState> | SequenceCache<SequenceState> = fused
    ? new FusedSequenceCache(
        new FusedKvCache({
          session: opened.session,
          signature,
          layout,
          vocabSize: config.vocabSize,
          maxCapacity: config.maxPositions,
          capacity: settings.kvCapacity ?? 'grow',
          capacityStep: capacitySteps[opened.binding],
          maxRunRows: maxBatchSize,
          file: file.path,
        }),
      )
    : new GroupSequenceCache({
        session: opened.session,
        signature,
        layout,
        vocabSize: config.vocabSize,
        maxPositions: model.maxPositions,
        paddedBatches: alone === undefined,
        file: file.path,
      });
  return new OnnxBackend<never>(cache as SequenceCache<never>, opened.session, model, capabilities, warnings);
}

/** What a call computed; committed by the backend only when the whole call succeeded. */
interface CallResult<S> {
  readonly logits: Float32Array;
  readonly outputs: readonly RowOutput<S>[];
  /** Live sequences outside the call whose cache moved. */
  readonly relocated?: ReadonlyMap<string, S>;
}

/** How live sequences keep their caches, for one graph style. */
interface SequenceCache<S extends { readonly length: number }> {
  forward(rows: RowInput<S>[], live: ReadonlyMap<string, S>, signal: AbortSignal | undefined): Promise<CallResult<S>>;
  /** After a call was committed. */
  committed(result: CallResult<S>): void;
  /** The state of a fork of the first `length` tokens of `source` (`length` in `1..source.length`). */
  fork(source: S, live: ReadonlyMap<string, S>, length: number): Promise<S> | S;
  /** After sequences were released. */
  released(live: ReadonlyMap<string, S>): void;
  /** Bytes of the caches live sequences hold. */
  bytes(live: ReadonlyMap<string, S>): number;
}

/** Standard graphs: caches are the immutable `present` tensors of runs (see `CacheGroup`). */
class GroupSequenceCache implements SequenceCache<SequenceState> {
  constructor(private readonly context: RunContext) {}

  async forward(
    rows: RowInput[],
    _live: ReadonlyMap<string, SequenceState>,
    signal: AbortSignal | undefined,
  ): Promise<CallResult<SequenceState>> {
    const { context } = this;
    const runs = planRuns(rows, context, Number.POSITIVE_INFINITY);
    // One run: it may hand over onnxruntime's logits array as the result; several runs fill a shared one.
    let logits: Float32Array | undefined =
      runs.length === 1 ? undefined : new Float32Array(rows.length * context.vocabSize);
    const outputs: RowOutput[] = [];
    for (const run of runs) {
      AbortError.throwIfAborted(signal);
      const result = await executeRun(run, context, logits, signal);
      logits = result.logits;
      outputs.push(...result.outputs);
    }
    if (logits === undefined) throw new Error('unreachable: a call has at least one run');
    return { logits, outputs };
  }

  committed(): void {}

  fork(
    source: SequenceState,
    _live: ReadonlyMap<string, SequenceState>,
    length: number,
  ): Promise<SequenceState> | SequenceState {
    // Cache groups are immutable (each run returns new tensors), so a whole copy shares the source's until either
    // sequence runs again; a prefix is copied out into a group of its own.
    if (length === source.length) return source;
    return compactGroup([{ ...source, length }], this.context.layout).then((group) => ({ group, row: 0, length }));
  }

  released(): void {}

  /**
   * The cache tensors live sequences hold, each shared group once: with no padding held it is `2 x layers x kvHeads
   * x headDim x bytesPerElement x cachedTokens`; padding slots of batched caches count too.
   */
  bytes(live: ReadonlyMap<string, SequenceState>): number {
    let bytes = 0;
    const groups = new Set<CacheGroup>();
    for (const state of live.values()) {
      if (!groups.has(state.group)) {
        groups.add(state.group);
        bytes += state.group.bytes;
      }
    }
    return bytes;
  }
}

/** Fused graphs: fixed-capacity buffers written in place (see `FusedKvCache`). */
class FusedSequenceCache implements SequenceCache<FusedState> {
  constructor(private readonly cache: FusedKvCache) {}

  forward(
    rows: RowInput<FusedState>[],
    live: ReadonlyMap<string, FusedState>,
    signal: AbortSignal | undefined,
  ): Promise<CallResult<FusedState>> {
    return this.cache.forward(rows, live, signal);
  }

  committed(result: CallResult<FusedState>): void {
    this.cache.committed(result.outputs);
  }

  /** A copy of the source's first `length` cache slots (runs write in place, so caches cannot be shared). */
  fork(source: FusedState, live: ReadonlyMap<string, FusedState>, length: number): FusedState {
    return this.cache.fork(source, live, length);
  }

  released(live: ReadonlyMap<string, FusedState>): void {
    this.cache.released(live);
  }

  /** The buffers live sequences use, each once: rows x capacity slots, free rows and spare slots included. */
  bytes(live: ReadonlyMap<string, FusedState>): number {
    return this.cache.bytes(live);
  }
}

class OnnxBackend<S extends { readonly length: number }> implements BackendV1 {
  readonly specificationVersion = 'v1';
  readonly backendId = 'onnx';
  readonly model: BackendModelV1;
  readonly capabilities: BackendCapabilitiesV1;
  readonly warnings: readonly BackendWarningV1[];
  private session: OnnxSession | undefined;
  private readonly sequences = new Map<string, S>();
  private readonly queue = new SerialQueue();

  constructor(
    private readonly cache: SequenceCache<S>,
    session: OnnxSession,
    model: BackendModelV1,
    capabilities: BackendCapabilitiesV1,
    warnings: BackendWarningV1[],
  ) {
    this.session = session;
    this.model = model;
    this.capabilities = capabilities;
    this.warnings = warnings;
  }

  doForward(options: BackendForwardOptionsV1): Promise<BackendForwardResultV1> {
    return this.queue.run(() => this.forward(options));
  }

  doRelease(ids: readonly string[]): Promise<void> {
    return this.queue.run(() => {
      this.live();
      try {
        releaseSequences(ids, (id) => this.sequences.delete(id));
      } finally {
        this.cache.released(this.sequences);
      }
    });
  }

  doFork(fromId: string, toId: string, options: BackendForkOptionsV1 = {}): Promise<void> {
    return this.queue.run(async () => {
      this.live();
      checkForkIds(fromId, toId, (id) => this.sequences.has(id));
      const source = this.sequences.get(fromId)!;
      const length = checkForkLength(fromId, options.length, source.length);
      this.sequences.set(toId, await this.cache.fork(source, this.sequences, length));
    });
  }

  /**
   * `kvCacheBytes` counts the caches live sequences hold, each shared buffer once. Standard graphs: with no padding
   * held it is `2 x layers x kvHeads x headDim x bytesPerElement x cachedTokens`; padding slots of batched caches
   * count too. Fused graphs: the buffers in use, rows x capacity slots each.
   */
  stats(): BackendStatsV1 {
    let cachedTokens = 0;
    for (const state of this.sequences.values()) cachedTokens += state.length;
    return { sequences: this.sequences.size, cachedTokens, kvCacheBytes: this.cache.bytes(this.sequences) };
  }

  doDispose(): Promise<void> {
    return this.queue.run(async () => {
      const session = this.session;
      this.session = undefined;
      this.sequences.clear();
      this.cache.released(this.sequences);
      await session?.release();
    });
  }

  private live(): void {
    if (this.session === undefined) throw new BackendDisposedError(this.backendId);
  }

  private validate(options: BackendForwardOptionsV1): RowInput<S>[] {
    const { vocabSize, maxPositions } = this.model;
    const checked = checkForwardInputs(
      options,
      { vocabSize, maxPositions, maxBatchSize: this.capabilities.maxBatchSize },
      (id) => this.sequences.get(id)?.length,
    );
    return checked.map((input, index) => ({
      index,
      id: input.id,
      tokens: input.tokens,
      state: this.sequences.get(input.id),
      start: input.start,
      wantPromptLogits: input.wantPromptLogits,
    }));
  }

  private async forward(options: BackendForwardOptionsV1): Promise<BackendForwardResultV1> {
    this.live();
    AbortError.throwIfAborted(options.signal);
    const rows = this.validate(options);
    const vocabSize = this.model.vocabSize;
    const result = await this.cache.forward(rows, this.sequences, options.signal);
    const { logits, outputs } = result;
    AbortError.throwIfAborted(options.signal);

    // Commit: nothing above this line changed a sequence or the set of live sequences.
    for (const [id, state] of result.relocated ?? []) this.sequences.set(id, state);
    this.cache.committed(result);
    const results: BackendSequenceResultV1[] = new Array(rows.length);
    for (const output of outputs) {
      const { index, id } = output.input;
      this.sequences.set(id, output.state);
      results[index] = {
        id,
        logits: logits.subarray(index * vocabSize, (index + 1) * vocabSize),
        length: output.state.length,
        ...(output.promptLogits === undefined ? {} : { promptLogits: output.promptLogits }),
      };
    }
    return { logits, sequences: results, warnings: [] };
  }
}

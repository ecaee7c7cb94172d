import {
  AbortError,
  BackendDisposedError,
  BackendError,
  checkEmbedInputs,
  checkForkIds,
  checkForkLength,
  checkForwardInputs,
  describeModel,
  poolHiddenStates,
  readModelDirectory,
  releaseSequences,
  SerialQueue,
  type BackendCapabilitiesV1,
  type BackendForkOptionsV1,
  type BackendEmbedOptionsV1,
  type BackendForwardOptionsV1,
  type BackendForwardResultV1,
  type BackendModelV1,
  type BackendSequenceResultV1,
  type BackendStatsV1,
  type BackendV1,
  type BackendWarningV1,
} from '@gen/backend';
import { TfjsDecoder, type Segment } from './decoder.js';
import { createKvCache, type KvCache, type KvShape } from './kv-cache.js';
import { activate, DEFAULT_BACKEND_ORDER, selectBackend, type TfjsBackendKind } from './select-backend.js';
import { tensorMemory, type TensorMemory } from './tensor-memory.js';
import { loadModelTensors } from './weights.js';

/** Settings of {@link createTfjsBackend}. */
export interface TfjsBackendSettings {
  /**
   * A Hugging Face model directory: `config.json` (`model_type` llama, mistral, qwen2, qwen3, gemma2, gemma3_text or phi3), optional
   * `generation_config.json`, and `model.safetensors` or `model.safetensors.index.json` with its shards (F32,
   * F16 or BF16; converted to float32 on load).
   */
  modelDir: string;
  /**
   * Which TensorFlow.js backend to run on. `auto` (default) takes the first that initialises of `node-gpu`
   * (`@tensorflow/tfjs-node-gpu`, CUDA), `node` (`@tensorflow/tfjs-node`), `wasm` (`@tensorflow/tfjs-backend-wasm`)
   * and `cpu` (plain JavaScript). Naming one forces it: creation then fails when it does not initialise.
   */
  tfjsBackend?: 'auto' | TfjsBackendKind;
  /**
   * Where the `tfjs-backend-wasm*.wasm` files are (a directory path or URL prefix). Default: the `dist/` folder of
   * the installed `@tensorflow/tfjs-backend-wasm`. Only the first wasm initialisation in a process uses it.
   */
  wasmPaths?: string;
  /** Receives one line per tfjs backend that was passed over, with the reason. Default: none (see `capabilities`). */
  log?: (message: string) => void;
  /** Most sequences per `doForward` call. Default 32. */
  maxBatchSize?: number;
  /**
   * Position limit per sequence, at most the model's `max_position_embeddings` (a larger value is clamped, with
   * an `unsupported-setting` warning). Default: `max_position_embeddings`.
   */
  maxPositions?: number;
}

/**
 * One queue for every tfjs backend in the process: tfjs has a single engine (one active backend, one tidy scope
 * stack), so the steps of two instances, possibly on different tfjs backends, must not interleave.
 */
const engineQueue = new SerialQueue();

/** Segments of at least this many tokens use per-head 2-D attention products on wasm (see `AttentionStrategy`). */
const WASM_PER_HEAD_FROM_TOKENS = 16;

/**
 * Creates a backend that runs Llama / Mistral / Qwen2 / Qwen3 / Gemma 2 / Gemma 3 / Phi-3 decoders with TensorFlow.js
 * ops in float32, on the best tfjs backend that loads here (see {@link TfjsBackendSettings.tfjsBackend}): RMSNorm
 * (Gemma's `1 + w` and sandwich norms, per-head q/k norms), rotary embeddings (linear, llama3, yarn, dynamic,
 * longrope scaling; partial and per-layer-type; rotate_half layout), grouped-query attention over per-sequence KV
 * caches (written in place on wasm and cpu) with score scale and softcapping, SwiGLU or GeGLU MLP, biases, packed
 * phi3 projections, sliding windows, tied or untied head, final logit softcapping. Batches may mix prefills and
 * decode steps of any lengths; prompt logits, fork, embeddings (`doEmbed`), release and abort (checked before every
 * layer) are supported. Every tensor a call creates is disposed before it returns; a sequence's cache tensors are
 * disposed on release.
 *
 * @throws {ModelLoadError} the model directory cannot be read (names the file and what was expected).
 * @throws {UnsupportedModelError} the model is not a supported architecture.
 * @throws {BackendError} no tfjs backend could be initialised (the message lists why each one failed).
 */
export async function createTfjsBackend(settings: TfjsBackendSettings): Promise<BackendV1> {
  const maxBatchSize = settings.maxBatchSize ?? 32;
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
    throw new RangeError(`maxBatchSize must be a positive integer, got ${maxBatchSize}`);
  }
  if (settings.maxPositions !== undefined && (!Number.isInteger(settings.maxPositions) || settings.maxPositions < 1)) {
    throw new RangeError(`maxPositions must be a positive integer, got ${settings.maxPositions}`);
  }
  const requested = settings.tfjsBackend ?? 'auto';
  if (requested !== 'auto' && !DEFAULT_BACKEND_ORDER.includes(requested)) {
    throw new RangeError(`tfjsBackend must be auto, ${DEFAULT_BACKEND_ORDER.join(', ')}; got ${String(requested)}`);
  }
  const directory = await readModelDirectory(settings.modelDir);
  const { config } = directory;
  const warnings: BackendWarningV1[] = [];
  if (settings.maxPositions !== undefined && settings.maxPositions > config.maxPositions) {
    warnings.push({
      type: 'unsupported-setting',
      setting: 'maxPositions',
      details: `clamped to max_position_embeddings ${config.maxPositions}`,
    });
  }

  return engineQueue.run(async () => {
    let selected;
    try {
      selected = await selectBackend({
        order: requested === 'auto' ? DEFAULT_BACKEND_ORDER : [requested],
        wasmPaths: settings.wasmPaths,
        log: settings.log,
      });
    } catch (error) {
      throw new BackendError((error as Error).message, { cause: error });
    }
    for (const attempt of selected.attempts) {
      if (attempt.outcome === 'failed') {
        warnings.push({
          type: 'other',
          message: `tfjs backend ${attempt.kind} failed to initialise: ${attempt.reason}`,
        });
      }
    }
    const weights = await loadModelTensors(settings.modelDir, config);
    const memory = tensorMemory(selected.tfjsBackend);
    const decoder = new TfjsDecoder(config, weights, {
      perHeadFromTokens: selected.tfjsBackend === 'wasm' ? WASM_PER_HEAD_FROM_TOKENS : Infinity,
    });
    const model = describeModel(directory, {
      dtype: 'float32',
      ...(settings.maxPositions === undefined ? {} : { maxPositions: settings.maxPositions }),
      details: { tfjsBackend: selected.tfjsBackend, device: selected.device },
    });
    const capabilities: BackendCapabilitiesV1 = {
      maxBatchSize,
      device: selected.device,
      promptLogits: true,
      fork: true,
      forkPrefix: true,
      embeddings: true,
      details: {
        tfjsBackend: selected.tfjsBackend,
        tfjsBackendKind: selected.kind,
        ...selected.details,
        kvCache: memory === undefined ? 'concat' : 'in-place',
        weightBytes: decoder.weightBytes,
        fallbacks: selected.attempts.map((a) => `${a.kind}: ${a.reason}`),
      },
    };
    return new TfjsBackend(decoder, selected.tfjsBackend, memory, model, capabilities, warnings);
  });
}

class TfjsBackend implements BackendV1 {
  readonly specificationVersion = 'v1';
  readonly backendId = 'tfjs';
  readonly model: BackendModelV1;
  readonly capabilities: BackendCapabilitiesV1;
  readonly warnings: readonly BackendWarningV1[];
  private decoder: TfjsDecoder | undefined;
  private readonly tfjsBackend: string;
  private readonly memory: TensorMemory | undefined;
  private readonly shape: KvShape;
  private readonly sequences = new Map<string, KvCache>();

  constructor(
    decoder: TfjsDecoder,
    tfjsBackend: string,
    memory: TensorMemory | undefined,
    model: BackendModelV1,
    capabilities: BackendCapabilitiesV1,
    warnings: BackendWarningV1[],
  ) {
    this.decoder = decoder;
    this.tfjsBackend = tfjsBackend;
    this.memory = memory;
    this.model = model;
    this.capabilities = capabilities;
    this.warnings = warnings;
    const config = decoder.config;
    this.shape = {
      numLayers: config.numLayers,
      numHeads: config.numAttentionHeads,
      numKeyValueHeads: config.numKeyValueHeads,
      headDim: config.headDim,
    };
  }

  doForward(options: BackendForwardOptionsV1): Promise<BackendForwardResultV1> {
    return this.run((decoder) => this.forward(decoder, options));
  }

  doRelease(ids: readonly string[]): Promise<void> {
    return this.run(() => {
      releaseSequences(ids, (id) => {
        const cache = this.sequences.get(id);
        if (cache === undefined) return false;
        cache.dispose();
        this.sequences.delete(id);
        return true;
      });
    });
  }

  doFork(fromId: string, toId: string, options: BackendForkOptionsV1 = {}): Promise<void> {
    return this.run(() => {
      checkForkIds(fromId, toId, (id) => this.sequences.has(id));
      const source = this.sequences.get(fromId)!;
      this.sequences.set(toId, source.clone(checkForkLength(fromId, options.length, source.length)));
    });
  }

  doEmbed(options: BackendEmbedOptionsV1): Promise<Float32Array[]> {
    return this.run((decoder) => this.embed(decoder, options));
  }

  stats(): BackendStatsV1 {
    let cachedTokens = 0;
    let kvCacheBytes = 0;
    for (const cache of this.sequences.values()) {
      cachedTokens += cache.length;
      kvCacheBytes += cache.bytes;
    }
    return { sequences: this.sequences.size, cachedTokens, kvCacheBytes };
  }

  doDispose(): Promise<void> {
    return engineQueue.run(async () => {
      const decoder = this.decoder;
      if (decoder === undefined) return;
      this.decoder = undefined;
      await activate(this.tfjsBackend);
      for (const cache of this.sequences.values()) cache.dispose();
      this.sequences.clear();
      decoder.dispose();
    });
  }

  /** Runs `task` in the engine queue with this instance's tfjs backend active. */
  private run<T>(task: (decoder: TfjsDecoder) => Promise<T> | T): Promise<T> {
    return engineQueue.run(async () => {
      const decoder = this.decoder;
      if (decoder === undefined) throw new BackendDisposedError(this.backendId);
      await activate(this.tfjsBackend);
      return task(decoder);
    });
  }

  private async embed(decoder: TfjsDecoder, options: BackendEmbedOptionsV1): Promise<Float32Array[]> {
    const { vocabSize, maxPositions } = this.model;
    const inputs = checkEmbedInputs(options, { vocabSize, maxPositions, maxBatchSize: this.capabilities.maxBatchSize });
    // Caches of this call only, never registered in `sequences`: disposed whatever happens.
    const segments: Segment[] = inputs.map((tokens) => ({
      cache: createKvCache(this.shape, this.memory),
      tokens,
      start: 0,
      allLogits: false,
    }));
    try {
      for (const segment of segments) segment.cache.reserve(segment.tokens.length, maxPositions);
      const states = await decoder.hiddenStates(segments, options.signal);
      AbortError.throwIfAborted(options.signal);
      return poolHiddenStates(
        states,
        inputs.map((tokens) => tokens.length),
        decoder.config.hiddenSize,
        options.pooling,
      );
    } finally {
      for (const segment of segments) segment.cache.dispose();
    }
  }

  private async forward(decoder: TfjsDecoder, options: BackendForwardOptionsV1): Promise<BackendForwardResultV1> {
    const { vocabSize, maxPositions } = this.model;
    const inputs = checkForwardInputs(
      options,
      { vocabSize, maxPositions, maxBatchSize: this.capabilities.maxBatchSize },
      (id) => this.sequences.get(id)?.length,
    );
    const segments: (Segment & { fresh: boolean })[] = inputs.map((input) => {
      const existing = this.sequences.get(input.id);
      return {
        cache: existing ?? createKvCache(this.shape, this.memory),
        fresh: existing === undefined,
        tokens: input.tokens,
        start: input.start,
        allLogits: input.wantPromptLogits,
      };
    });

    let rows: Float32Array;
    try {
      for (const segment of segments) segment.cache.reserve(segment.start + segment.tokens.length, maxPositions);
      rows = await decoder.forward(segments, options.signal);
      AbortError.throwIfAborted(options.signal);
    } catch (error) {
      for (const segment of segments) {
        if (segment.fresh) segment.cache.dispose();
        else segment.cache.rollback();
      }
      throw error;
    }

    // Commit: nothing above changed a sequence's length or the set of live sequences.
    const logits = new Float32Array(inputs.length * vocabSize);
    const results: BackendSequenceResultV1[] = [];
    let row = 0;
    for (let i = 0; i < inputs.length; i++) {
      const input = inputs[i]!;
      const segment = segments[i]!;
      const n = segment.tokens.length;
      segment.cache.commit(n);
      this.sequences.set(input.id, segment.cache);
      const count = segment.allLogits ? n : 1;
      const last = (row + count - 1) * vocabSize;
      logits.set(rows.subarray(last, last + vocabSize), i * vocabSize);
      results.push({
        id: input.id,
        logits: logits.subarray(i * vocabSize, (i + 1) * vocabSize),
        length: segment.cache.length,
        ...(segment.allLogits ? { promptLogits: rows.slice(row * vocabSize, (row + n) * vocabSize) } : {}),
      });
      row += count;
    }
    return { logits, sequences: results, warnings: [] };
  }
}

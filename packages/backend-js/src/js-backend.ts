import {
  AbortError,
  BackendDisposedError,
  checkEmbedInputs,
  checkForkIds,
  checkForkLength,
  checkForwardInputs,
  forwardLogitsArray,
  describeModel,
  isGgufPath,
  loadDecoderWeights,
  openGgufModel,
  poolHiddenStates,
  readModelDirectory,
  releaseSequences,
  SerialQueue,
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
} from '@gen/backend';
import { Decoder, type Segment } from './decoder.js';
import { KvCache } from './kv-cache.js';

/** Settings of {@link createJsBackend}. */
export interface JsBackendSettings {
  /**
   * A Hugging Face model directory: `config.json` (`model_type` llama, mistral, qwen2, qwen3, gemma2, gemma3_text
   * or phi3), optional
   * `generation_config.json`, and `model.safetensors` or `model.safetensors.index.json` with its shards (F32,
   * F16 or BF16; everything is converted to float32 in memory). Or a GGUF file (llama.cpp's format; a path ending in
   * `.gguf`, architecture llama or qwen2): config from its metadata, tensors dequantized to float32 from any type
   * `@gen/gguf` reads (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, ...), so the oracle runs the very weights of a
   * quantized file.
   */
  modelDir: string;
  /** Most sequences per `doForward` call. Default 32. */
  maxBatchSize?: number;
  /**
   * Position limit per sequence, at most the model's `max_position_embeddings` (a larger value is clamped, with
   * an `unsupported-setting` warning). Default: `max_position_embeddings`.
   */
  maxPositions?: number;
}

/**
 * Creates the pure-TypeScript backend: the Llama / Mistral / Qwen2 decoder computed in float32 on the CPU, on
 * the main thread, with no native dependency. It is the numerical reference other backends are tested against;
 * it is not fast (a decode step reads every weight once, about 4 bytes per parameter).
 *
 * Supports prompt logits, fork, embeddings (`doEmbed`: mean or last pooling of the final hidden states), abort
 * (checked before every layer, the call yielding to the event loop there) and overlapping calls (run one after
 * another). Every rejected call leaves the sequences unchanged.
 *
 * @throws {ModelLoadError} the model directory cannot be read (names the file and what was expected).
 * @throws {UnsupportedModelError} the model is not a supported architecture.
 */
export async function createJsBackend(settings: JsBackendSettings): Promise<BackendV1> {
  const maxBatchSize = settings.maxBatchSize ?? 32;
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
    throw new RangeError(`maxBatchSize must be a positive integer, got ${maxBatchSize}`);
  }
  if (settings.maxPositions !== undefined && (!Number.isInteger(settings.maxPositions) || settings.maxPositions < 1)) {
    throw new RangeError(`maxPositions must be a positive integer, got ${settings.maxPositions}`);
  }
  const gguf = isGgufPath(settings.modelDir) ? await openGgufModel(settings.modelDir) : undefined;
  const directory = gguf?.directory ?? (await readModelDirectory(settings.modelDir));
  const { config } = directory;
  const warnings: BackendWarningV1[] = [];
  if (settings.maxPositions !== undefined && settings.maxPositions > config.maxPositions) {
    warnings.push({
      type: 'unsupported-setting',
      setting: 'maxPositions',
      details: `clamped to max_position_embeddings ${config.maxPositions}`,
    });
  }
  const weights = await loadDecoderWeights(gguf?.weights ?? settings.modelDir, config);
  const decoder = new Decoder(config, weights);
  const model = describeModel(directory, {
    dtype: 'float32',
    ...(settings.maxPositions === undefined ? {} : { maxPositions: settings.maxPositions }),
  });
  return new JsBackend(decoder, model, maxBatchSize, warnings);
}

class JsBackend implements BackendV1 {
  readonly specificationVersion = 'v1';
  readonly backendId = 'js';
  readonly model: BackendModelV1;
  readonly capabilities: BackendCapabilitiesV1;
  readonly warnings: readonly BackendWarningV1[];
  private decoder: Decoder | undefined;
  private readonly sequences = new Map<string, KvCache>();
  private readonly queue = new SerialQueue();

  constructor(decoder: Decoder, model: BackendModelV1, maxBatchSize: number, warnings: BackendWarningV1[]) {
    this.decoder = decoder;
    this.model = model;
    this.warnings = warnings;
    this.capabilities = {
      maxBatchSize,
      device: 'cpu',
      promptLogits: true,
      fork: true,
      forkPrefix: true,
      logitsBuffer: true,
      embeddings: true,
      details: { threads: 1, weightBytes: decoder.weightBytes },
    };
  }

  doForward(options: BackendForwardOptionsV1): Promise<BackendForwardResultV1> {
    return this.queue.run(() => this.forward(options));
  }

  doRelease(ids: readonly string[]): Promise<void> {
    return this.queue.run(() => {
      this.live();
      releaseSequences(ids, (id) => this.sequences.delete(id));
    });
  }

  doFork(fromId: string, toId: string, options: BackendForkOptionsV1 = {}): Promise<void> {
    return this.queue.run(() => {
      this.live();
      checkForkIds(fromId, toId, (id) => this.sequences.has(id));
      const source = this.sequences.get(fromId)!;
      this.sequences.set(toId, source.clone(checkForkLength(fromId, options.length, source.length)));
    });
  }

  doEmbed(options: BackendEmbedOptionsV1): Promise<Float32Array[]> {
    return this.queue.run(() => this.embed(options));
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
    return this.queue.run(() => {
      this.decoder = undefined;
      this.sequences.clear();
    });
  }

  private live(): Decoder {
    if (this.decoder === undefined) throw new BackendDisposedError(this.backendId);
    return this.decoder;
  }

  private async embed(options: BackendEmbedOptionsV1): Promise<Float32Array[]> {
    const decoder = this.live();
    const { vocabSize, maxPositions } = this.model;
    const inputs = checkEmbedInputs(options, { vocabSize, maxPositions, maxBatchSize: this.capabilities.maxBatchSize });
    const config = decoder.config;
    // Caches of this call only: nothing is registered in `sequences`, and they are dropped when it returns.
    const segments: Segment[] = inputs.map((tokens) => ({
      cache: new KvCache(config.numLayers, config.numKeyValueHeads, config.headDim),
      tokens,
      start: 0,
      allLogits: false,
    }));
    const states = await decoder.hiddenStates(segments, maxPositions, options.signal);
    AbortError.throwIfAborted(options.signal);
    return poolHiddenStates(
      states,
      inputs.map((tokens) => tokens.length),
      config.hiddenSize,
      options.pooling,
    );
  }

  private async forward(options: BackendForwardOptionsV1): Promise<BackendForwardResultV1> {
    const decoder = this.live();
    const { vocabSize, maxPositions } = this.model;
    const inputs = checkForwardInputs(
      options,
      { vocabSize, maxPositions, maxBatchSize: this.capabilities.maxBatchSize },
      (id) => this.sequences.get(id)?.length,
    );
    const config = decoder.config;
    const segments: Segment[] = inputs.map((input) => ({
      cache: this.sequences.get(input.id) ?? new KvCache(config.numLayers, config.numKeyValueHeads, config.headDim),
      tokens: input.tokens,
      start: input.start,
      allLogits: input.wantPromptLogits,
    }));

    const rows = await decoder.forward(segments, maxPositions, options.signal);
    AbortError.throwIfAborted(options.signal);

    // Commit: nothing above this line changed a sequence's length or the set of live sequences.
    const logits = forwardLogitsArray(options, inputs.length, vocabSize);
    const results: BackendSequenceResultV1[] = [];
    let row = 0;
    for (let i = 0; i < inputs.length; i++) {
      const input = inputs[i]!;
      const segment = segments[i]!;
      const n = segment.tokens.length;
      segment.cache.length = segment.start + n;
      this.sequences.set(input.id, segment.cache);
      const count = segment.allLogits ? n : 1;
      const last = (row + count - 1) * vocabSize;
      logits.set(rows.subarray(last, last + vocabSize), i * vocabSize);
      results.push({
        id: input.id,
        logits: logits.subarray(i * vocabSize, (i + 1) * vocabSize),
        length: segment.cache.length,
        ...(segment.allLogits ? { promptLogits: rows.subarray(row * vocabSize, (row + n) * vocabSize) } : {}),
      });
      row += count;
    }
    return { logits, sequences: results, warnings: [] };
  }
}

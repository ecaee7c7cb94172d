import {
  AbortError,
  BackendDisposedError,
  checkEmbedInputs,
  checkForkIds,
  checkForwardInputs,
  poolHiddenStates,
  releaseSequences,
  SerialQueue,
  type BackendCapabilitiesV1,
  type BackendEmbedOptionsV1,
  type BackendForwardOptionsV1,
  type BackendForwardResultV1,
  type BackendModelV1,
  type BackendSequenceResultV1,
  type BackendStatsV1,
  type BackendV1,
  type BackendWarningV1,
} from '@gen/backend';

/** One validated `doForward` call as the mock saw it (for assertions in engine tests). */
export interface MockForwardCall {
  /** 0 for the first call of this backend. */
  readonly index: number;
  /** The batch: ids, appended tokens, and the length each sequence had before the call. */
  readonly sequences: readonly {
    readonly id: string;
    readonly tokens: readonly number[];
    readonly startPosition: number;
  }[];
}

/** Settings of {@link createMockBackend}. */
export interface MockBackendSettings {
  /** Default 64. */
  vocabSize?: number;
  /** Default 256. */
  maxPositions?: number;
  /** Default 16. */
  maxBatchSize?: number;
  /** Default `[1]`. */
  eosTokenIds?: readonly number[];
  /** Default 0. */
  bosTokenId?: number;
  /** Changes the default logits function. Default 0. */
  seed?: number;
  /** Whether prompt logits are supported (else requests get an `unsupported-option` warning). Default true. */
  promptLogits?: boolean;
  /** Whether `doFork` exists. Default true. */
  fork?: boolean;
  /**
   * Whether `doEmbed` exists. Default false. Its hidden state at a position is a hash of the token history up to
   * it (values in `[-1, 1)`), pooled as asked; `model.hiddenSize` is set then.
   */
  embeddings?: boolean;
  /** `model.hiddenSize`, the length of every embedding. Default 16. */
  hiddenSize?: number;
  /** Delay of every `doForward`, in milliseconds, abortable. A function gets the call. Default 0. */
  latencyMs?: number | ((call: MockForwardCall) => number);
  /**
   * Replaces the default logits: fills `out` (`[vocabSize]`, zeroed) with the logits after `history` (the whole
   * token history of the sequence up to and including the position). Must be deterministic.
   */
  logits?: (history: readonly number[], out: Float32Array) => void;
  /** Return an error to make that call reject with it (after validation and latency; nothing changes). */
  failure?: (call: MockForwardCall) => Error | undefined;
  /** Default `mock`. */
  backendId?: string;
}

/** The mock backend: a {@link BackendV1} plus what engine tests want to inspect. */
export interface MockBackend extends BackendV1 {
  /** Every validated `doForward` call, in order. */
  readonly calls: readonly MockForwardCall[];
  /** The inputs of every validated `doEmbed` call, in order. */
  readonly embedCalls: readonly (readonly number[])[][];
  /** The token history of a live sequence, or `undefined`. */
  history(id: string): readonly number[] | undefined;
}

interface MockSequence {
  tokens: number[];
  state: number;
}

/** murmur3 finalizer: a good 32-bit mix. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const nextState = (state: number, token: number): number => mix((state ^ Math.imul(token + 1, 0x9e3779b1)) >>> 0);

/** The mock's hidden state after a history whose hash is `state`: `[hiddenSize]` values in `[-1, 1)`. */
function hashedHiddenState(state: number, out: Float32Array): void {
  for (let d = 0; d < out.length; d++) out[d] = (mix((state ^ Math.imul(d + 1, 0x165667b1)) >>> 0) / 2 ** 32) * 2 - 1;
}

function hashedLogits(state: number, out: Float32Array): void {
  for (let v = 0; v < out.length; v++) out[v] = (mix((state + Math.imul(v + 1, 0x27d4eb2f)) >>> 0) / 2 ** 32) * 8 - 4;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortError({ cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Creates a deterministic mock backend for engine and server tests. Its logits are a pure function of each
 * sequence's token history (a hash by default, or `settings.logits`), so prefill, decode, batching and fork agree
 * exactly; it validates inputs and reports errors exactly like a real backend, supports abort, overlapping
 * calls, configurable latency and injected failures, optionally embeddings (`settings.embeddings`), and passes the
 * structural parts of the conformance suite.
 */
export function createMockBackend(settings: MockBackendSettings = {}): MockBackend {
  const backend = new Mock(settings);
  if (settings.fork === false) Object.defineProperty(backend, 'doFork', { value: undefined });
  if (settings.embeddings !== true) Object.defineProperty(backend, 'doEmbed', { value: undefined });
  return backend;
}

class Mock implements MockBackend {
  readonly specificationVersion = 'v1';
  readonly backendId: string;
  readonly model: BackendModelV1;
  readonly capabilities: BackendCapabilitiesV1;
  readonly warnings: readonly BackendWarningV1[] = [];
  readonly calls: MockForwardCall[] = [];
  readonly embedCalls: number[][][] = [];
  private readonly settings: MockBackendSettings;
  private readonly sequences = new Map<string, MockSequence>();
  private readonly seedState: number;
  private readonly queue = new SerialQueue();
  private disposed = false;

  constructor(settings: MockBackendSettings) {
    this.settings = settings;
    const vocabSize = settings.vocabSize ?? 64;
    this.backendId = settings.backendId ?? 'mock';
    this.seedState = mix((settings.seed ?? 0) + 0x51ed27);
    this.model = {
      architecture: 'MockForCausalLM',
      modelType: 'mock',
      vocabSize,
      maxPositions: settings.maxPositions ?? 256,
      eosTokenIds: settings.eosTokenIds ?? [1],
      bosTokenId: settings.bosTokenId ?? 0,
      dtype: 'float32',
      ...(settings.embeddings === true ? { hiddenSize: settings.hiddenSize ?? 16 } : {}),
    };
    this.capabilities = {
      maxBatchSize: settings.maxBatchSize ?? 16,
      device: 'mock',
      promptLogits: settings.promptLogits ?? true,
      fork: settings.fork ?? true,
      embeddings: settings.embeddings ?? false,
    };
  }

  history(id: string): readonly number[] | undefined {
    return this.sequences.get(id)?.tokens;
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

  doFork(fromId: string, toId: string): Promise<void> {
    return this.queue.run(() => {
      this.live();
      checkForkIds(fromId, toId, (id) => this.sequences.has(id));
      const source = this.sequences.get(fromId)!;
      this.sequences.set(toId, { tokens: [...source.tokens], state: source.state });
    });
  }

  doEmbed(options: BackendEmbedOptionsV1): Promise<Float32Array[]> {
    return this.queue.run(() => {
      this.live();
      const { vocabSize, maxPositions } = this.model;
      const inputs = checkEmbedInputs(options, {
        vocabSize,
        maxPositions,
        maxBatchSize: this.capabilities.maxBatchSize,
      });
      this.embedCalls.push(inputs.map((tokens) => Array.from(tokens)));
      const hidden = this.model.hiddenSize!;
      const rows = new Float32Array(inputs.reduce((sum, tokens) => sum + tokens.length, 0) * hidden);
      let row = 0;
      for (const tokens of inputs) {
        let state = this.seedState;
        for (const token of tokens) {
          state = nextState(state, token);
          hashedHiddenState(state, rows.subarray(row * hidden, ++row * hidden));
        }
      }
      return poolHiddenStates(
        rows,
        inputs.map((tokens) => tokens.length),
        hidden,
        options.pooling,
      );
    });
  }

  stats(): BackendStatsV1 {
    let cachedTokens = 0;
    for (const sequence of this.sequences.values()) cachedTokens += sequence.tokens.length;
    return { sequences: this.sequences.size, cachedTokens, kvCacheBytes: cachedTokens * 8 };
  }

  doDispose(): Promise<void> {
    return this.queue.run(() => {
      this.disposed = true;
      this.sequences.clear();
    });
  }

  private live(): void {
    if (this.disposed) throw new BackendDisposedError(this.backendId);
  }

  private async forward(options: BackendForwardOptionsV1): Promise<BackendForwardResultV1> {
    this.live();
    const { vocabSize, maxPositions } = this.model;
    const inputs = checkForwardInputs(
      options,
      { vocabSize, maxPositions, maxBatchSize: this.capabilities.maxBatchSize },
      (id) => this.sequences.get(id)?.tokens.length,
    );
    const batch = inputs.map(({ id, tokens, start }) => ({ id, tokens: Array.from(tokens), startPosition: start }));
    const call: MockForwardCall = { index: this.calls.length, sequences: batch };
    this.calls.push(call);
    const latency =
      typeof this.settings.latencyMs === 'function' ? this.settings.latencyMs(call) : (this.settings.latencyMs ?? 0);
    if (latency > 0) await sleep(latency, options.signal);
    AbortError.throwIfAborted(options.signal);
    const failure = this.settings.failure?.(call);
    if (failure !== undefined) throw failure;

    const warnings: BackendWarningV1[] = [];
    const logits = new Float32Array(inputs.length * vocabSize);
    const results: BackendSequenceResultV1[] = [];
    const updated: MockSequence[] = [];
    for (let i = 0; i < batch.length; i++) {
      const { id, tokens } = batch[i]!;
      const existing = this.sequences.get(id);
      // Work on a copy so that a throwing custom logits function leaves every sequence unchanged.
      const sequence = { tokens: [...(existing?.tokens ?? [])], state: existing?.state ?? this.seedState };
      const wantPrompt = inputs[i]!.wantPromptLogits;
      const prompt =
        wantPrompt && this.capabilities.promptLogits ? new Float32Array(tokens.length * vocabSize) : undefined;
      if (wantPrompt && prompt === undefined) {
        warnings.push({ type: 'unsupported-option', option: 'wantPromptLogits', sequenceId: id });
      }
      for (let j = 0; j < tokens.length; j++) {
        sequence.tokens.push(tokens[j]!);
        sequence.state = nextState(sequence.state, tokens[j]!);
        const isLast = j === tokens.length - 1;
        if (prompt === undefined && !isLast) continue;
        const row =
          prompt !== undefined
            ? prompt.subarray(j * vocabSize, (j + 1) * vocabSize)
            : logits.subarray(i * vocabSize, (i + 1) * vocabSize);
        if (this.settings.logits !== undefined) this.settings.logits(sequence.tokens.slice(), row);
        else hashedLogits(sequence.state, row);
        if (isLast && prompt !== undefined) logits.set(row, i * vocabSize);
      }
      updated.push(sequence);
      results.push({
        id,
        logits: logits.subarray(i * vocabSize, (i + 1) * vocabSize),
        length: sequence.tokens.length,
        ...(prompt === undefined ? {} : { promptLogits: prompt }),
      });
    }
    batch.forEach(({ id }, i) => this.sequences.set(id, updated[i]!));
    return { logits, sequences: results, warnings };
  }
}

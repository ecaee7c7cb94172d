import type { BackendSequenceInputV1, BackendV1 } from '@gen/backend';
import {
  StopSequenceMatcher,
  createLogitsArena,
  createSampleResult,
  logSumExp,
  type LogitsArena,
  type SampleResult,
  type SequenceState,
} from '@gen/sampling';
import { EventChannel } from './channel.js';
import { PrefixCache, kvBytesPerToken, type PrefixCacheSettings } from './prefix-cache.js';
import { CancelledError, EngineError, GenerationError, OverloadedError, ShutdownError } from './errors.js';
import type {
  ChoiceResult,
  EngineLimits,
  EngineStats,
  EngineTokenizer,
  FinishReason,
  GeneratedToken,
  GenerationEvent,
  GenerationRequest,
  GenerationResult,
  PrefillToken,
  SchedulerSettings,
  StepStats,
} from './types.js';
import { validateRequest, type ValidatedRequest } from './validate.js';

/** Settings of {@link createEngine}. */
export interface EngineSettings {
  /** The forward pass. The engine only uses the BackendV1 interface. */
  backend: BackendV1;
  /** Tokenizer of the same model. */
  tokenizer: EngineTokenizer;
  /** Request limits; unset fields take TGI's defaults (or the model's positions). */
  limits?: Partial<EngineLimits>;
  /** Step planning; unset fields take the defaults. */
  scheduler?: Partial<SchedulerSettings>;
  /** Called after every step (for metrics). Exceptions thrown here are ignored. */
  onStep?: (stats: StepStats) => void;
  /**
   * Prefix caching across requests: prompts stay cached in the backend (as sequences of their own) after they are
   * prefilled, and a later prompt that starts with one forks it and prefills only the rest. Needs a backend with
   * `capabilities.forkPrefix`; without one (or with `maxBytes` 0, the default) every prompt is prefilled whole.
   * Outputs are the same with the cache on or off.
   */
  prefixCache?: PrefixCacheSettings;
}

/** Options of one `generate` call. */
export interface GenerateOptions {
  /** Aborting cancels the request: it ends with a `CancelledError` and its cache is freed at the next step. */
  signal?: AbortSignal;
}

/** The events of one request, plus helpers. Iterate it once. */
export interface GenerationStream extends AsyncIterable<GenerationEvent> {
  /** The request id. */
  readonly id: string;
  /** Number of prompt tokens after truncation (known before anything runs). */
  readonly inputTokens: number;
  /** Consumes the stream and resolves with the result (rejects with the request's error). */
  result(): Promise<GenerationResult>;
  /** Cancels the request. */
  cancel(reason?: string): void;
}

/** The engine: a request queue and a continuous-batching loop over one backend. */
export interface Engine {
  /**
   * Validates and enqueues a request. Throws synchronously, before anything is streamed: `EngineValidationError`
   * for a bad request, `OverloadedError` when `maxConcurrentRequests` are in flight, `ShutdownError` when closing.
   * Every accepted request ends exactly once: with a `done` event or an `error` event.
   */
  generate(request: GenerationRequest, options?: GenerateOptions): GenerationStream;
  /** The limits requests are validated against. */
  readonly limits: Readonly<EngineLimits>;
  /** Current counters. */
  stats(): EngineStats;
  /** Releases every cached prefix (their KV returns to the backend). Resolves when they are released. */
  clearPrefixCache(): Promise<void>;
  /**
   * Stops accepting requests, lets queued and running ones finish (at most `timeoutMs`, default 30 s), then
   * cancels what remains. Resolves when nothing is left running.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

interface ChoiceState {
  index: number;
  sequenceId: string;
  sequence: SequenceState;
  decoder: { push(id: number): string; flush(): string };
  matcher: StopSequenceMatcher | undefined;
  /** Token sampled but not yet appended to the backend sequence. */
  pending: number | undefined;
  /** Whether the backend holds this sequence. */
  live: boolean;
  /** Prompt tokens of this choice already appended (used when it prefills on its own, without fork). */
  prefilled: number;
  finished: boolean;
  generatedIds: number[];
  text: string;
  stopped: { sequence: string } | undefined;
  logprobSum: number;
  tokens: GeneratedToken[] | undefined;
  topTokens: GeneratedToken[][] | undefined;
  result: ChoiceResult | undefined;
}

interface RequestState {
  validated: ValidatedRequest;
  channel: EventChannel<GenerationEvent>;
  createdAt: number;
  admittedAt: number;
  choices: ChoiceState[];
  /** Choices that prefill the prompt themselves (only choice 0 when the backend can fork). */
  prefillers: ChoiceState[];
  /** Forking happens once the first prefiller finishes the prompt. */
  forkPending: boolean;
  prefill: PrefillToken[] | undefined;
  /** Prompt tokens taken from the prefix cache. */
  cachedTokens: number;
  /** The cached sequence to fork the first `length` prompt tokens from, before this request's first forward. */
  cacheFork: { from: string; length: number } | undefined;
  cancelled: Error | undefined;
  ended: boolean;
  removeAbortListener: (() => void) | undefined;
}

interface BatchEntry {
  request: RequestState;
  choice: ChoiceState;
  input: BackendSequenceInputV1;
  /** Prompt tokens in this entry (0 for a decode step). */
  promptTokens: number;
}

/**
 * The default request limits, declared once: TGI's router defaults (`max_best_of` 2, `max_stop_sequences` 4,
 * `max_top_n_tokens` 5, `max_concurrent_requests` 128) and `maxN` 16. The server derives its defaults from these.
 */
export const DEFAULT_LIMITS = Object.freeze({
  maxBestOf: 2,
  maxN: 16,
  maxStopSequences: 4,
  maxTopNTokens: 5,
  maxConcurrentRequests: 128,
});

/**
 * Creates an engine over a backend and a tokenizer. The engine runs its loop only while there is work, yields to
 * the event loop between steps (at least every `scheduler.yieldIntervalMs`), and never throws from the loop: a
 * backend failure fails the requests of that step (with `GenerationError`) and the engine keeps serving.
 */
export function createEngine(settings: EngineSettings): Engine {
  return new ContinuousBatchingEngine(settings);
}

class ContinuousBatchingEngine implements Engine {
  readonly limits: Readonly<EngineLimits>;
  private readonly backend: BackendV1;
  private readonly tokenizer: EngineTokenizer;
  private readonly scheduler: SchedulerSettings;
  private readonly onStep: ((stats: StepStats) => void) | undefined;
  private readonly queue: RequestState[] = [];
  private readonly running: RequestState[] = [];
  private loop: Promise<void> | undefined;
  private closing = false;
  private readonly totals = { steps: 0, totalTokens: 0, forwardMs: 0, samplingMs: 0, otherMs: 0 };
  private readonly sampleResult: SampleResult = createSampleResult();
  private idle: (() => void)[] = [];
  private readonly prefixCache: PrefixCache | undefined;
  private prefixIds = 0;
  /**
   * Next-token logits of every step, reused (`doForward`'s `logitsBuffer`) where the backend can write into it:
   * a decode step then allocates nothing for its `[batch, vocab]` floats, and the garbage collector, whose worker
   * threads compete with a native backend's compute threads for the cores, has that much less to do. Grown to
   * the next power of two of the batch's rows, at most `scheduler.maxBatchSize`, when a batch needs more. Taken
   * from {@link arena} when the sampling kernels run (an ordinary array otherwise).
   */
  private logitsBuffer: Float32Array | undefined;
  /**
   * The sampling kernels' memory that the step's logits rows live in, shared with every request's sampler: a
   * greedy sampler then reads the row where the backend wrote it instead of copying 4 × vocab bytes into cold
   * memory first (measured: the gap between two batch-1 llama.cpp Q4_0 decodes went from 68.9 to 65.2 µs).
   * Samplers run only between forward passes, and the arena is laid out for `limits.maxTopNTokens` up front, so its
   * memory does not grow under a backend's writes.
   */
  private readonly arena: LogitsArena;

  constructor(settings: EngineSettings) {
    this.backend = settings.backend;
    this.tokenizer = settings.tokenizer;
    this.onStep = settings.onStep;
    const maxPositions = this.backend.model.maxPositions;
    const limits = settings.limits ?? {};
    const maxTotalTokens = limits.maxTotalTokens ?? maxPositions;
    this.limits = Object.freeze({
      maxInputTokens: limits.maxInputTokens ?? Math.max(1, maxTotalTokens - 1),
      maxTotalTokens,
      maxBestOf: limits.maxBestOf ?? DEFAULT_LIMITS.maxBestOf,
      maxN: limits.maxN ?? DEFAULT_LIMITS.maxN,
      maxStopSequences: limits.maxStopSequences ?? DEFAULT_LIMITS.maxStopSequences,
      maxTopNTokens: limits.maxTopNTokens ?? DEFAULT_LIMITS.maxTopNTokens,
      maxConcurrentRequests: limits.maxConcurrentRequests ?? DEFAULT_LIMITS.maxConcurrentRequests,
      defaultMaxNewTokens: limits.defaultMaxNewTokens,
    });
    if (this.limits.maxTotalTokens > maxPositions) {
      throw new EngineError(
        'validation',
        `maxTotalTokens (${this.limits.maxTotalTokens}) exceeds the backend's maxPositions (${maxPositions})`,
      );
    }
    if (this.limits.maxInputTokens >= this.limits.maxTotalTokens) {
      throw new EngineError('validation', `maxInputTokens must be < maxTotalTokens (${this.limits.maxTotalTokens})`);
    }
    const backendBatch = this.backend.capabilities.maxBatchSize;
    this.scheduler = {
      maxBatchSize: Math.min(settings.scheduler?.maxBatchSize ?? backendBatch, backendBatch),
      maxBatchTokens: settings.scheduler?.maxBatchTokens ?? 512,
      yieldIntervalMs: settings.scheduler?.yieldIntervalMs ?? 10,
    };
    if (!(this.scheduler.maxBatchSize >= 1) || !(this.scheduler.maxBatchTokens >= 1)) {
      throw new EngineError('validation', 'scheduler maxBatchSize and maxBatchTokens must be >= 1');
    }
    // Infinity would never turn the event loop while requests run: no I/O, no timers, no disconnects.
    if (!(Number.isFinite(this.scheduler.yieldIntervalMs) && this.scheduler.yieldIntervalMs >= 0)) {
      throw new EngineError('validation', 'scheduler yieldIntervalMs must be a finite number >= 0');
    }
    const cache = settings.prefixCache;
    const capabilities = this.backend.capabilities;
    if (cache !== undefined && !(cache.maxBytes >= 0)) {
      throw new EngineError('validation', 'prefixCache.maxBytes must be a number >= 0');
    }
    if (
      cache !== undefined &&
      cache.maxBytes > 0 &&
      capabilities.fork &&
      capabilities.forkPrefix === true &&
      typeof this.backend.doFork === 'function'
    ) {
      this.prefixCache = new PrefixCache(cache.maxBytes, kvBytesPerToken(this.backend.model), {
        ...(cache.blockSize === undefined ? {} : { blockSize: cache.blockSize }),
        ...(cache.maxEntries === undefined ? {} : { maxEntries: cache.maxEntries }),
      });
    }
    this.arena = createLogitsArena({
      vocabSize: this.backend.model.vocabSize,
      maxTopNTokens: this.limits.maxTopNTokens,
    });
    // Every id's text now, not at its first sight mid-stream (measured: 36 µs per token at a batch-1 llama.cpp
    // step of a random-weight model, whose tokens keep being new, against 8 µs once every id was known).
    try {
      this.tokenizer.prepareStreamDecoding?.();
    } catch {
      // Only an optimization: stream decoders compute the same texts when they meet an id (and fail there, per
      // request, if the tokenizer cannot).
    }
  }

  /** Whether prefix caching is on (settings ask for it and the backend can fork prefixes). */
  get prefixCaching(): boolean {
    return this.prefixCache !== undefined;
  }

  async clearPrefixCache(): Promise<void> {
    const cache = this.prefixCache;
    if (cache === undefined) return;
    const ids = cache.ids();
    for (const id of ids) cache.remove(id);
    await this.releaseIds(ids);
  }

  private async releaseIds(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    try {
      await this.backend.doRelease(ids);
    } catch {
      // The backend releases every known id even when it rejects.
    }
  }

  generate(request: GenerationRequest, options: GenerateOptions = {}): GenerationStream {
    if (this.closing) throw new ShutdownError();
    if (this.queue.length + this.running.length >= this.limits.maxConcurrentRequests) throw new OverloadedError();
    const validated = validateRequest(request, {
      vocabSize: this.backend.model.vocabSize,
      eosTokenIds: this.backend.model.eosTokenIds,
      limits: this.limits,
      tokenizer: this.tokenizer,
      arena: this.arena,
    });
    if (validated.choices > this.scheduler.maxBatchSize) {
      throw new EngineError(
        'validation',
        `this request needs ${validated.choices} sequences but a batch holds ${this.scheduler.maxBatchSize}`,
      );
    }
    const signal = options.signal;
    if (signal?.aborted === true)
      throw new CancelledError('Request was cancelled before it started', { cause: signal.reason });

    const state: RequestState = {
      validated,
      channel: new EventChannel<GenerationEvent>(() =>
        this.cancel(state, new CancelledError('Stream closed by the consumer')),
      ),
      createdAt: performance.now(),
      admittedAt: 0,
      choices: [],
      prefillers: [],
      forkPending: false,
      prefill: validated.decoderInputDetails ? [] : undefined,
      cachedTokens: 0,
      cacheFork: undefined,
      cancelled: undefined,
      ended: false,
      removeAbortListener: undefined,
    };
    if (signal !== undefined) {
      const onAbort = () => this.cancel(state, new CancelledError('Request was cancelled', { cause: signal.reason }));
      signal.addEventListener('abort', onAbort, { once: true });
      state.removeAbortListener = () => signal.removeEventListener('abort', onAbort);
    }
    this.queue.push(state);
    this.wake();

    const channel = state.channel;
    return {
      id: validated.id,
      inputTokens: validated.inputIds.length,
      [Symbol.asyncIterator]: () => channel,
      cancel: (reason?: string) => this.cancel(state, new CancelledError(reason ?? 'Request was cancelled')),
      result: async () => {
        for await (const event of channel) {
          if (event.type === 'done') return event.result;
          if (event.type === 'error') throw event.error;
        }
        throw state.cancelled ?? new CancelledError();
      },
    };
  }

  stats(): EngineStats {
    let live = 0;
    for (const request of this.running) for (const choice of request.choices) if (choice.live) live++;
    return {
      queueSize: this.queue.length,
      runningRequests: this.running.length,
      batchSize: live,
      ...this.totals,
      ...(this.prefixCache === undefined ? {} : { prefixCache: this.prefixCache.stats() }),
    };
  }

  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closing = true;
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (this.queue.length + this.running.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idle.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    for (const request of [...this.queue, ...this.running])
      this.cancel(request, new ShutdownError('Engine closed before the request finished'));
    await this.loop;
    await this.clearPrefixCache();
  }

  private cancel(request: RequestState, error: Error): void {
    if (request.ended || request.cancelled !== undefined) return;
    request.cancelled = error;
    const queued = this.queue.indexOf(request);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      this.end(request, { type: 'error', error });
      this.notifyIdle();
      return;
    }
    // A running request is released at the start of the next step (or right away when the loop is idle).
    this.wake();
  }

  private wake(): void {
    if (this.loop !== undefined) return;
    this.loop = this.runLoop().finally(() => {
      this.loop = undefined;
      if (this.queue.length + this.running.length > 0) this.wake();
    });
  }

  private notifyIdle(): void {
    if (this.queue.length + this.running.length > 0) return;
    const waiting = this.idle;
    this.idle = [];
    for (const resolve of waiting) resolve();
  }

  private async runLoop(): Promise<void> {
    // Start on a microtask: requests submitted in the same synchronous run as the one that woke the loop are
    // queued by then, so the first step prefills them together.
    await Promise.resolve();
    // A turn of the event loop cost a main-thread llama.cpp step 10-16 us (about a third of what gen added around
    // llama_decode): with steps of a few ms that was measurable, so the loop turns it every yieldIntervalMs.
    let yielded = performance.now();
    while (this.queue.length + this.running.length > 0) {
      try {
        await this.step();
      } catch (error) {
        // Never let the loop die: fail everything that is running, keep the queue.
        const failure = new GenerationError(`engine step failed: ${errorMessage(error)}`, { cause: error });
        for (const request of [...this.running]) await this.fail(request, failure);
      }
      this.notifyIdle();
      if (performance.now() - yielded >= this.scheduler.yieldIntervalMs) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        yielded = performance.now();
      }
    }
    this.notifyIdle();
  }

  private async releaseCancelled(): Promise<void> {
    for (const request of [...this.running]) {
      if (request.cancelled !== undefined) await this.fail(request, request.cancelled);
    }
  }

  private anyCancelled(): boolean {
    for (const request of this.running) if (request.cancelled !== undefined) return true;
    return false;
  }

  /** Ends a running request with an error and frees its sequences. */
  private async fail(request: RequestState, error: Error): Promise<void> {
    const index = this.running.indexOf(request);
    if (index >= 0) this.running.splice(index, 1);
    await this.release(request.choices.filter((choice) => choice.live));
    this.end(request, { type: 'error', error });
  }

  private async release(choices: ChoiceState[]): Promise<void> {
    if (choices.length === 0) return;
    for (const choice of choices) choice.live = false;
    try {
      await this.backend.doRelease(choices.map((choice) => choice.sequenceId));
    } catch {
      // The backend releases every known id even when it rejects; nothing else to do.
    }
  }

  private end(request: RequestState, event: GenerationEvent): void {
    if (request.ended) return;
    request.ended = true;
    request.removeAbortListener?.();
    request.channel.push(event);
    request.channel.close();
  }

  private liveSequences(): number {
    let count = 0;
    for (const request of this.running) count += request.choices.length;
    return count;
  }

  private admit(request: RequestState): void {
    const v = request.validated;
    request.admittedAt = performance.now();
    const fork = this.backend.capabilities.fork && typeof this.backend.doFork === 'function';
    for (let index = 0; index < v.choices; index++) {
      request.choices.push({
        index,
        sequenceId: `${v.id}#${index}`,
        sequence: v.sampler.createSequence(v.inputIds, index),
        decoder: this.tokenizer.createStreamDecoder({ skipSpecialTokens: true, promptTokens: v.inputIds }),
        matcher: v.stop.length > 0 ? new StopSequenceMatcher(v.stop) : undefined,
        pending: undefined,
        live: false,
        prefilled: 0,
        finished: false,
        generatedIds: [],
        text: '',
        stopped: undefined,
        logprobSum: 0,
        tokens: v.details || v.topNTokens > 0 ? [] : undefined,
        topTokens: v.topNTokens > 0 ? [] : undefined,
        result: undefined,
      });
    }
    request.prefillers = fork ? [request.choices[0]!] : [...request.choices];
    request.forkPending = fork && v.choices > 1;
    // Prompt logprobs (decoder input details) need every prompt position run: no cache for those requests.
    if (this.prefixCache !== undefined && request.prefill === undefined) {
      const hit = this.prefixCache.lookup(v.inputIds);
      if (hit !== undefined) {
        request.cacheFork = { from: hit.entry.id, length: hit.length };
        request.cachedTokens = hit.length;
        request.choices[0]!.prefilled = hit.length;
      }
    }
    this.running.push(request);
  }

  private plan(): BatchEntry[] {
    const entries: BatchEntry[] = [];
    let budget = this.scheduler.maxBatchTokens;
    // Running streams decode first, so a long prefill never stalls them.
    for (const request of this.running) {
      for (const choice of request.choices) {
        if (choice.pending === undefined || choice.finished) continue;
        entries.push({
          request,
          choice,
          promptTokens: 0,
          input: { id: choice.sequenceId, tokens: [choice.pending], startPosition: choice.sequence.length - 1 },
        });
        budget--;
      }
    }
    // Then prefill chunks, in arrival order, admitting queued requests while there is room.
    const prefillFrom = (request: RequestState): void => {
      const prompt = request.validated.inputIds;
      for (const choice of request.prefillers) {
        if (budget <= 0 || choice.prefilled >= prompt.length) continue;
        const chunk = Math.min(budget, prompt.length - choice.prefilled);
        entries.push({
          request,
          choice,
          promptTokens: chunk,
          input: {
            id: choice.sequenceId,
            tokens: prompt.slice(choice.prefilled, choice.prefilled + chunk),
            startPosition: choice.prefilled,
            wantPromptLogits: request.prefill !== undefined && choice.index === 0,
          },
        });
        budget -= chunk;
      }
    };
    for (const request of this.running) prefillFrom(request);
    while (this.queue.length > 0 && budget > 0) {
      const next = this.queue[0]!;
      if (this.liveSequences() + next.validated.choices > this.scheduler.maxBatchSize) break;
      this.queue.shift();
      this.admit(next);
      prefillFrom(next);
    }
    return entries;
  }

  private async step(): Promise<void> {
    // Awaits only where there is work: each await is a microtask hop, and a step's JavaScript runs with caches
    // that the forward pass just emptied, so hops cost a batch-1 llama.cpp step microseconds (measured).
    if (this.anyCancelled()) await this.releaseCancelled();
    const stepStart = performance.now();
    let entries = this.plan();
    if (entries.length === 0) return;
    // Cache hits admitted in this plan: fork the cached prefix into the request's sequence before it runs.
    for (const request of this.running) {
      const fork = request.cacheFork;
      if (fork === undefined) continue;
      request.cacheFork = undefined;
      const choice = request.choices[0]!;
      try {
        await this.backend.doFork!(fork.from, choice.sequenceId, { length: fork.length });
        choice.live = true;
      } catch (error) {
        await this.fail(
          request,
          new GenerationError(`the backend failed to fork a cached prefix: ${errorMessage(error)}`, { cause: error }),
        );
      }
    }
    if (entries.some((entry) => entry.request.ended)) {
      entries = entries.filter((entry) => !entry.request.ended);
      if (entries.length === 0) return;
    }

    const forwardStart = performance.now();
    let output;
    try {
      const sequences = entries.map((entry) => entry.input);
      output = await this.backend.doForward(
        this.backend.capabilities.logitsBuffer === true
          ? { sequences, logitsBuffer: this.logitsRows(entries.length) }
          : { sequences },
      );
    } catch (error) {
      const failure = new GenerationError(`the backend failed: ${errorMessage(error)}`, { cause: error });
      for (const request of new Set(entries.map((entry) => entry.request))) await this.fail(request, failure);
      return;
    }
    const forwardMs = performance.now() - forwardStart;
    for (const entry of entries) entry.choice.live = true;

    let samplingMs = 0;
    const toRelease: ChoiceState[] = [];
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const { request, choice } = entry;
      const result = output.sequences[i]!;
      if (request.cancelled !== undefined || request.ended) continue;
      try {
        const prompt = request.validated.inputIds;
        if (entry.promptTokens > 0) {
          if (result.promptLogits !== undefined && request.prefill !== undefined) {
            this.recordPrefill(request, choice.prefilled, entry.promptTokens, result.promptLogits);
          }
          choice.prefilled += entry.promptTokens;
          if (choice.prefilled < prompt.length) continue;
          if (choice.index === 0) await this.cachePrompt(choice, prompt);
          // Prompt complete: fork it to the other choices, then every choice draws its first token from this row.
          let siblings: ChoiceState[] = [choice];
          if (request.forkPending) {
            request.forkPending = false;
            try {
              for (const other of request.choices) {
                if (other === choice) continue;
                await this.backend.doFork!(choice.sequenceId, other.sequenceId);
                other.live = true;
                other.prefilled = prompt.length;
              }
            } catch (error) {
              await this.fail(
                request,
                new GenerationError(`the backend failed to fork: ${errorMessage(error)}`, { cause: error }),
              );
              continue;
            }
            siblings = request.choices;
          }
          // Copies for all but the last sibling before any samples (a sampler may modify its row in place).
          const rows = siblings.map((_, s) => (s === siblings.length - 1 ? result.logits : result.logits.slice()));
          for (let s = 0; s < siblings.length; s++) {
            const sibling = siblings[s]!;
            const start = performance.now();
            this.sampleInto(rows[s]!, sibling, request);
            samplingMs += performance.now() - start;
            if (sibling.finished) toRelease.push(sibling);
          }
        } else {
          const start = performance.now();
          this.sampleInto(result.logits, choice, request);
          samplingMs += performance.now() - start;
          if (choice.finished) toRelease.push(choice);
        }
        if (request.choices.every((c) => c.finished)) this.complete(request);
      } catch (error) {
        // A failure while choosing or decoding a token fails this request only.
        await this.fail(request, new GenerationError(`generation failed: ${errorMessage(error)}`, { cause: error }));
      }
    }
    if (toRelease.length > 0) await this.release(toRelease.filter((choice) => choice.live));

    const totalMs = performance.now() - stepStart;
    let tokens = 0;
    let prefillTokens = 0;
    for (const entry of entries) {
      tokens += entry.input.tokens.length;
      prefillTokens += entry.promptTokens;
    }
    const stats: StepStats = {
      batchSize: entries.length,
      tokens,
      prefillTokens,
      forwardMs,
      samplingMs,
      otherMs: Math.max(0, totalMs - forwardMs - samplingMs),
    };
    this.totals.steps++;
    this.totals.totalTokens += tokens;
    this.totals.forwardMs += forwardMs;
    this.totals.samplingMs += samplingMs;
    this.totals.otherMs += stats.otherMs;
    try {
      this.onStep?.(stats);
    } catch {
      // Metrics must not break generation.
    }
  }

  /**
   * The reusable logits array with room for `rows` rows. Nothing reads a step's logits after the step (siblings
   * of a fork sample from copies), so the next step may overwrite them.
   */
  private logitsRows(rows: number): Float32Array {
    const vocabSize = this.backend.model.vocabSize;
    const buffer = this.logitsBuffer;
    // An arena view is detached (its length 0) once the arena's memory has grown: then it is taken again.
    if (buffer === undefined || buffer.length < rows * vocabSize) {
      let capacity = 1;
      while (capacity < rows) capacity *= 2;
      // A batch never has more rows than maxBatchSize (the scheduler admits no more).
      capacity = Math.min(capacity, this.scheduler.maxBatchSize);
      const rowsBuffer = this.arena.rows(capacity) ?? new Float32Array(capacity * vocabSize);
      this.logitsBuffer = rowsBuffer;
      return rowsBuffer;
    }
    return buffer;
  }

  /** Prompt-token logprobs of one prefill chunk: row j predicts the token after position start + j. */
  private recordPrefill(request: RequestState, start: number, count: number, promptLogits: Float32Array): void {
    const prefill = request.prefill!;
    const prompt = request.validated.inputIds;
    const vocabSize = this.backend.model.vocabSize;
    if (start === 0) prefill.push({ id: prompt[0]!, text: this.tokenizer.decode([prompt[0]!]), logprob: undefined });
    for (let j = 0; j < count; j++) {
      const position = start + j + 1;
      if (position >= prompt.length) break;
      const row = promptLogits.subarray(j * vocabSize, (j + 1) * vocabSize);
      const id = prompt[position]!;
      prefill.push({ id, text: this.tokenizer.decode([id]), logprob: row[id]! - logSumExp(row) });
    }
  }

  /** Samples the next token of a choice from its row, emits the token event, and decides whether it ends. */
  private sampleInto(row: Float32Array, choice: ChoiceState, request: RequestState): void {
    const v = request.validated;
    const sampled = v.sampler.sample(row, choice.sequence, this.sampleResult);
    const id = sampled.tokenId;
    choice.sequence.accept(id);
    choice.generatedIds.push(id);
    choice.logprobSum += sampled.logprob;

    const special = this.tokenizer.isSpecial(id);
    const piece = choice.decoder.push(id);
    const token: GeneratedToken = {
      id,
      text: special ? this.tokenizer.decode([id], { skipSpecialTokens: false }) : piece,
      logprob: sampled.logprob,
      special,
    };
    if (v.rawLogprobs) token.rawLogprob = sampled.rawLogprob;

    let finish: FinishReason | undefined;
    const generated = choice.generatedIds.length;
    if (generated >= v.maxNewTokens || choice.sequence.length >= this.limits.maxTotalTokens) finish = 'length';
    else if (v.eosTokenIds.has(id)) finish = 'eos_token';
    else if (v.stopTokenIds.has(id)) finish = 'stop_sequence';

    let delta = '';
    const emit = (text: string): void => {
      if (choice.stopped !== undefined) return;
      if (choice.matcher === undefined) {
        delta += text;
        return;
      }
      const pushed = choice.matcher.push(text);
      delta += pushed.text;
      if (pushed.stop !== null) choice.stopped = { sequence: pushed.stop.sequence };
    };
    emit(piece);
    if (choice.stopped !== undefined && finish === undefined) finish = 'stop_sequence';
    if (finish !== undefined) {
      const flushed = choice.decoder.flush();
      // The held-back tail belongs to the last token, so token texts still spell the generated text.
      if (!special) token.text += flushed;
      emit(flushed);
      if (choice.stopped === undefined && choice.matcher !== undefined) delta += choice.matcher.flush();
    }
    choice.text += delta;

    let topTokens: GeneratedToken[] | undefined;
    if (v.topNTokens > 0) {
      topTokens = sampled.topTokens.map((top) => ({
        id: top.id,
        text: this.tokenizer.decode([top.id], { skipSpecialTokens: false }),
        logprob: top.logprob,
        special: this.tokenizer.isSpecial(top.id),
      }));
      choice.topTokens!.push(topTokens);
    }
    choice.tokens?.push(token);
    request.channel.push({
      type: 'token',
      choice: choice.index,
      index: generated - 1,
      token,
      delta,
      ...(topTokens === undefined ? {} : { topTokens }),
    });

    if (finish === undefined) {
      choice.pending = id;
      return;
    }
    choice.pending = undefined;
    choice.finished = true;
    const decoded = this.tokenizer.decode(choice.generatedIds, { skipSpecialTokens: true });
    choice.result = {
      index: choice.index,
      finishReason: finish,
      generatedText: (v.returnFullText && v.inputText !== undefined ? v.inputText : '') + decoded,
      text: choice.text,
      ...(choice.stopped === undefined ? {} : { stopSequence: choice.stopped.sequence }),
      generatedTokens: generated,
      logprobSum: choice.logprobSum,
      ...(choice.tokens === undefined ? {} : { tokens: choice.tokens }),
      ...(choice.topTokens === undefined ? {} : { topTokens: choice.topTokens }),
    };
    request.channel.push({ type: 'choice-end', choice: choice.result });
  }

  /** Keeps a copy of a just-prefilled prompt in the prefix cache (when it is worth it), evicting what it must. */
  private async cachePrompt(choice: ChoiceState, prompt: readonly number[]): Promise<void> {
    const cache = this.prefixCache;
    if (cache === undefined || !cache.wants(prompt)) return;
    const id = `prefix-cache#${this.prefixIds++}`;
    try {
      await this.backend.doFork!(choice.sequenceId, id);
    } catch {
      return; // No room in the backend: the prompt is simply not cached.
    }
    await this.releaseIds(cache.insert(id, [...prompt]));
  }

  private complete(request: RequestState): void {
    const index = this.running.indexOf(request);
    if (index >= 0) this.running.splice(index, 1);
    const v = request.validated;
    const choices = request.choices.map((choice) => choice.result!);
    let best = 0;
    for (let i = 1; i < choices.length; i++) if (choices[i]!.logprobSum > choices[best]!.logprobSum) best = i;
    const now = performance.now();
    const result: GenerationResult = {
      id: v.id,
      choices,
      best,
      seed: v.sampler.doSample ? v.sampler.seed : undefined,
      inputTokens: v.inputIds.length,
      inputIds: v.inputIds,
      ...(request.prefill === undefined ? {} : { prefill: request.prefill }),
      cachedTokens: request.cachedTokens,
      timings: {
        queueMs: request.admittedAt - request.createdAt,
        inferenceMs: now - request.admittedAt,
        totalMs: now - request.createdAt,
      },
    };
    this.end(request, { type: 'done', result });
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

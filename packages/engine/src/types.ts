import type { PrefixCacheStats } from './prefix-cache.js';
import type { LogitsProcessor, SamplingParameters } from '@gen/sampling';

/**
 * What the engine needs from a tokenizer. `@gen/tokenizer`'s `Tokenizer` satisfies it; tests may pass a small one.
 */
export interface EngineTokenizer {
  /** Token ids of `text`; `addSpecialTokens` adds BOS and the like as the model's tokenizer does. */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`. */
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  /** Whether `id` is a special token (BOS, EOS, chat markers...). */
  isSpecial(id: number): boolean;
  /**
   * A streaming detokenizer: `push(id)` returns the new text, `flush()` whatever was held back. Concatenated, the
   * outputs equal `decode(ids, { skipSpecialTokens })`.
   */
  createStreamDecoder(options?: { skipSpecialTokens?: boolean; promptTokens?: readonly number[] }): {
    push(id: number): string;
    flush(): string;
  };
  /**
   * Optional: computes every id's stream-decoding texts up front (`@gen/tokenizer`'s tokenizers have it); the
   * engine calls it once, when it is created, so no token pays for its first sight mid-stream.
   */
  prepareStreamDecoding?(): void;
}

/** Everything a request can set: TGI's `parameters`, the OpenAI extras and the sampling parameters. */
export interface GenerationParameters extends SamplingParameters {
  /** Most tokens to generate; integer > 0. Default: fill up to `maxTotalTokens` (TGI 3), or the configured default. */
  maxNewTokens?: number;
  /** Stop strings, matched on the decoded text across token boundaries (at most `maxStopSequences`). */
  stop?: readonly string[];
  /** Token ids that end a choice like EOS does (finish reason `stop_sequence`). */
  stopTokenIds?: readonly number[];
  /** Keep generating past EOS tokens. */
  ignoreEos?: boolean;
  /** Number of choices to return (OpenAI `n`); each samples its own stream. Default 1. */
  n?: number;
  /** Generate this many choices and return the most likely (highest sum of logprobs) first (TGI `best_of`). */
  bestOf?: number;
  /** Collect per-token details for the final result (TGI `details`). */
  details?: boolean;
  /** Also compute prompt-token logprobs (TGI `decoder_input_details`). */
  decoderInputDetails?: boolean;
  /** Keep only the last `truncate` input tokens. */
  truncate?: number;
  /** Prepend the prompt text to the generated text (TGI `return_full_text`). */
  returnFullText?: boolean;
  /** Tokenize text inputs with special tokens (BOS...). Default true; chat templates already contain them. */
  addSpecialTokens?: boolean;
  /** Also report each token's logprob under the raw model distribution. */
  rawLogprobs?: boolean;
  /**
   * Compute each generated token's logprob (default true). `false` (for a caller that reports none, such as an
   * OpenAI request without `logprobs`) saves a log-sum-exp over the vocabulary per greedy step; token logprobs and
   * `logprobSum` are then NaN. Ignored (logprobs computed) with `bestOf` > 1, which ranks choices by them.
   */
  logprobs?: boolean;
  /** Take top tokens from the processed (default, as TGI) or the raw distribution. */
  topTokensFrom?: 'processed' | 'raw';
  /**
   * More logits processors for this request, applied after the built-in ones, for example a constraint from
   * `@gen/structured` (JSON Schema, regex, tool calls). Each choice gets its own state.
   */
  logitsProcessors?: readonly LogitsProcessor[];
}

/** A generation request: a prompt (text, or token ids) and its parameters. */
export interface GenerationRequest {
  /** Prompt text (tokenized by the engine's tokenizer) or prompt token ids. */
  inputs: string | readonly number[];
  parameters?: GenerationParameters;
  /** Caller's id for logs and sequence names; one is made up when absent. */
  id?: string;
}

/** A token as clients see it. */
export interface GeneratedToken {
  id: number;
  /** The token's text: its share of the decoded text, or its own text when it is special. */
  text: string;
  /** log p under the processed distribution (what TGI reports); NaN for greedy steps of a `logprobs: false` request. */
  logprob: number;
  /** log p under the raw model distribution, when `rawLogprobs` was asked. */
  rawLogprob?: number;
  special: boolean;
}

/** A prompt token with its logprob (undefined for the first token, which nothing predicts). */
export interface PrefillToken {
  id: number;
  text: string;
  logprob: number | undefined;
}

/** Why a choice ended (TGI's names; OpenAI maps `eos_token` and `stop_sequence` to `stop`). */
export type FinishReason = 'length' | 'eos_token' | 'stop_sequence';

/** One generated token of one choice, as it happens. */
export interface TokenEvent {
  type: 'token';
  /** Choice index (0 for the first; n / best_of choices count up). */
  choice: number;
  /** Index of this token within the choice's generated tokens. */
  index: number;
  token: GeneratedToken;
  /**
   * Text that is safe to show now: never contains any part of a stop sequence (text that might start one is
   * held back until decided) nor special tokens. Concatenated over a choice it equals the choice's `text`.
   */
  delta: string;
  /** The most likely tokens at this step, when `topNTokens` > 0. */
  topTokens?: GeneratedToken[];
}

/** The end of one choice. */
export interface ChoiceEndEvent {
  type: 'choice-end';
  choice: ChoiceResult;
}

/** The end of the whole request: every choice's result. Always the last event of a successful stream. */
export interface DoneEvent {
  type: 'done';
  result: GenerationResult;
}

/** The request failed or was cancelled. Always the last event of a failed stream. */
export interface ErrorEvent {
  type: 'error';
  error: Error;
}

/** What a generation stream yields. */
export type GenerationEvent = TokenEvent | ChoiceEndEvent | DoneEvent | ErrorEvent;

/** The result of one choice. */
export interface ChoiceResult {
  index: number;
  finishReason: FinishReason;
  /**
   * TGI's `generated_text`: the decoded generated tokens (special tokens skipped), including a matched stop
   * sequence, prefixed with the prompt when `returnFullText`.
   */
  generatedText: string;
  /** OpenAI's text: the decoded generated tokens up to (excluding) a matched stop sequence. */
  text: string;
  /** The stop sequence that ended the choice, when one did. */
  stopSequence?: string;
  /** Number of generated tokens. */
  generatedTokens: number;
  /** Sum of the chosen tokens' logprobs (how `best_of` ranks choices). */
  logprobSum: number;
  /** The tokens, when `details` (or top tokens / logprobs) were asked. */
  tokens?: GeneratedToken[];
  /** Top tokens per step, when `topNTokens` > 0. */
  topTokens?: GeneratedToken[][];
}

/** The result of a request. */
export interface GenerationResult {
  /** Request id. */
  id: string;
  /** Choices in index order. With `bestOf`, `best` names the one with the highest logprob sum. */
  choices: ChoiceResult[];
  /** Index of the best choice (highest `logprobSum`); 0 for single-choice requests. */
  best: number;
  /** The seed sampling used, or undefined for greedy requests. */
  seed: number | undefined;
  /** Number of prompt tokens (after truncation). */
  inputTokens: number;
  /** Prompt token ids (after truncation). */
  inputIds: number[];
  /** Prompt tokens with logprobs, when `decoderInputDetails` was asked. */
  prefill?: PrefillToken[];
  /** Prompt tokens reused from the prefix cache instead of prefilled (OpenAI's `cached_tokens`); 0 without a hit. */
  cachedTokens: number;
  /** Milliseconds spent queued, in inference (admission to end), and in total. */
  timings: { queueMs: number; inferenceMs: number; totalMs: number };
}

/** Limits every request is validated against (TGI's router flags). */
export interface EngineLimits {
  /** Largest prompt, in tokens (TGI `max_input_tokens`). Default: model max positions - 1. */
  maxInputTokens: number;
  /** Largest prompt + max_new_tokens (TGI `max_total_tokens`). Default: model max positions. */
  maxTotalTokens: number;
  /** Largest `best_of` (TGI `max_best_of`, default 2). */
  maxBestOf: number;
  /**
   * Largest `n`, the choices returned (default 16). Its own limit, not `maxBestOf`: OpenAI clients ask for many
   * choices, and they share the prompt's KV through fork where the backend can.
   */
  maxN: number;
  /** Most stop sequences (TGI `max_stop_sequences`, default 4). */
  maxStopSequences: number;
  /** Largest `top_n_tokens` (TGI `max_top_n_tokens`, default 5). */
  maxTopNTokens: number;
  /** Requests admitted and not finished, queued ones included; beyond it `generate` throws overloaded (TGI 128). */
  maxConcurrentRequests: number;
  /** `max_new_tokens` when a request does not set it; default: whatever fills `maxTotalTokens`. */
  defaultMaxNewTokens: number | undefined;
}

/** How steps are planned. */
export interface SchedulerSettings {
  /** Most backend sequences per step (capped by the backend's own limit). Default: the backend's. */
  maxBatchSize: number;
  /**
   * Token budget of one step: decode tokens count 1 each, prefill chunks fill the rest, so a long prompt is
   * prefilled in chunks while running streams keep decoding. Default 512.
   */
  maxBatchTokens: number;
  /**
   * Longest run of steps, in milliseconds, between two turns of the event loop (`setImmediate`): the loop yields
   * after a step once this much time has passed since it last yielded, so I/O (new requests, disconnects, timers)
   * waits at most about this long plus one step. A step that awaits real work off the main thread yields by itself;
   * this bounds backends that compute on the main thread. `0` yields after every step. Default 10; must be finite.
   */
  yieldIntervalMs: number;
}

/** Timing of one engine step, for metrics. */
export interface StepStats {
  /** Backend sequences in the step. */
  batchSize: number;
  /** Tokens fed to the backend (decode + prefill). */
  tokens: number;
  /** Prefill tokens among them. */
  prefillTokens: number;
  /** Milliseconds in `backend.doForward`. */
  forwardMs: number;
  /** Milliseconds choosing tokens (sampling, logprobs). */
  samplingMs: number;
  /** Milliseconds in the rest of the step (planning, detokenizing, stop checks, events). */
  otherMs: number;
}

/** Counters and gauges of the engine, cheap to read. */
export interface EngineStats {
  /** Requests waiting for admission. */
  queueSize: number;
  /** Requests admitted and not finished. */
  runningRequests: number;
  /** Backend sequences live (one per running choice). */
  batchSize: number;
  /** Steps run so far. */
  steps: number;
  /** Totals over all steps. */
  totalTokens: number;
  forwardMs: number;
  samplingMs: number;
  otherMs: number;
  /** The prefix cache's counters, when prefix caching is on. */
  prefixCache?: PrefixCacheStats;
}

/**
 * Constrains the generated text (TGI's guided generation): `json` takes a JSON Schema (an object, or its text),
 * `regex` a regular expression the whole output must match.
 */
export type Grammar = { type: 'json'; value: Record<string, unknown> | string } | { type: 'regex'; value: string };

/**
 * Generation parameters, TGI's `parameters` in camelCase (sent as snake_case: `doSample` -> `do_sample`).
 * Every field is optional; a field left out is not sent and takes the server's default, except `details`, which the
 * client sends as `true` unless told otherwise (as the Python client does). The client checks ranges before sending
 * (see {@link ValidationError}); the server checks them again against its own limits.
 */
export interface Parameters {
  /** Activate logits sampling (otherwise greedy decoding, unless a sampling parameter is set). */
  doSample?: boolean;
  /** Maximum number of generated tokens; integer > 0. */
  maxNewTokens?: number;
  /** Repetition penalty (CTRL paper), > 0; 1.0 means no penalty. */
  repetitionPenalty?: number;
  /** Frequency penalty in [-2, 2]: subtracts `penalty * count` from the logit of each token already generated. */
  frequencyPenalty?: number;
  /** Whether to prepend the prompt to the generated text. */
  returnFullText?: boolean;
  /** Stop generating when one of these strings is generated (the Python client's `stop_sequences`). */
  stop?: string[];
  /** Random sampling seed; integer >= 0. Seeds above 2^53 cannot be represented exactly by a JavaScript number. */
  seed?: number;
  /** The value used to modulate the logits distribution; > 0. */
  temperature?: number;
  /** Keep only the `topK` most probable tokens; integer > 0. */
  topK?: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probabilities add up to `topP`; in (0, 1]. */
  topP?: number;
  /** Truncate the input to its last `truncate` tokens; integer > 0. */
  truncate?: number;
  /** Typical decoding mass (Meister et al. 2022); in (0, 1]. */
  typicalP?: number;
  /**
   * Generate `bestOf` sequences and return the one with the highest total logprob; integer > 0. Above 1 it
   * requires sampling (`doSample` or a sampling parameter), no `seed`, and is refused for streaming.
   */
  bestOf?: number;
  /** Watermark the output (Kirchenbauer et al. 2023). */
  watermark?: boolean;
  /** Return generation details (finish reason, tokens, seed). Defaults to `true` in this client. */
  details?: boolean;
  /** Return the prompt tokens with their logprobs (`details.prefill`). Not available when streaming. */
  decoderInputDetails?: boolean;
  /** Return the `topNTokens` most likely tokens at each step; integer >= 0. */
  topNTokens?: number;
  /** Guided generation: constrain the output to a JSON Schema or a regular expression. */
  grammar?: Grammar;
  /** LoRA adapter to use, on servers that load several. */
  adapterId?: string;
}

/**
 * Why a generation stopped: `length` (`maxNewTokens` reached), `eos_token` (the model generated its end-of-sequence
 * token), `stop_sequence` (a member of `stop` was generated).
 */
export type FinishReason = 'length' | 'eos_token' | 'stop_sequence';

/** A prompt token (`details.prefill`). */
export interface InputToken {
  /** Token id in the model's vocabulary. */
  id: number;
  /** Token text. */
  text: string;
  /** Log probability; `undefined` for the first prompt token, whose logprob cannot be computed. */
  logprob?: number;
}

/** A generated token. */
export interface Token {
  /** Token id in the model's vocabulary. */
  id: number;
  /** Token text. */
  text: string;
  /** Log probability of the token. */
  logprob: number;
  /** Whether the token is special (end of sequence, ...); skip special tokens when concatenating texts. */
  special: boolean;
}

/** One of the other sequences generated for `bestOf` (`details.bestOfSequences`). */
export interface BestOfSequence {
  /** Generated text. */
  generatedText: string;
  /** Why the sequence stopped. */
  finishReason: FinishReason;
  /** Number of generated tokens. */
  generatedTokens: number;
  /** Sampling seed, when sampling was used. */
  seed?: number;
  /** Prompt tokens; empty unless `decoderInputDetails` was set. */
  prefill: InputToken[];
  /** Generated tokens. */
  tokens: Token[];
  /** The most likely tokens at each step, when `topNTokens` was set. */
  topTokens?: Token[][];
}

/** `generate` details, present when `details` is `true` (the default). */
export interface Details {
  /** Why the generation stopped. */
  finishReason: FinishReason;
  /** Number of generated tokens. */
  generatedTokens: number;
  /** Sampling seed, when sampling was used. */
  seed?: number;
  /** Prompt tokens; empty unless `decoderInputDetails` was set. */
  prefill: InputToken[];
  /** Generated tokens. */
  tokens: Token[];
  /** The most likely tokens at each step, when `topNTokens` was set. */
  topTokens?: Token[][];
  /** The other sequences, when `bestOf` > 1. */
  bestOfSequences?: BestOfSequence[];
}

/** What `generate` returns. */
export interface Response {
  /** Generated text (with the prompt in front when `returnFullText` was set). */
  generatedText: string;
  /** Generation details; `undefined` when `details` was `false` or the server sent none. */
  details?: Details;
}

/** Details of a stream, on its last event. */
export interface StreamDetails {
  /** Why the generation stopped. */
  finishReason: FinishReason;
  /** Number of generated tokens. */
  generatedTokens: number;
  /** Sampling seed, when sampling was used. */
  seed?: number;
  /** Number of prompt tokens, when the server reports it (TGI 2 and gen do). */
  inputLength?: number;
}

/** One event of `generateStream`: one generated token. */
export interface StreamResponse {
  /** Position of the token in the generation (1-based in TGI), when the server sends it. */
  index?: number;
  /** The generated token. */
  token: Token;
  /** The most likely tokens at this step, when `topNTokens` was set. */
  topTokens?: Token[];
  /** The complete generated text; only on the last event. */
  generatedText?: string;
  /** Generation details; only on the last event, when `details` is `true` (the default). */
  details?: StreamDetails;
}

/** A model served by Hugging Face's hosted Inference API with text-generation-inference. */
export interface DeployedModel {
  /** Model repository id, for example `bigscience/bloomz`. */
  modelId: string;
  /** Commit sha of the served revision. */
  sha: string;
}

/** A token of `tokenize`: its id, text and character span in the input (TGI's `SimpleToken`). */
export interface SimpleToken {
  /** Token id in the model's vocabulary. */
  id: number;
  /** Token text. */
  text: string;
  /** Start offset in the input. */
  start: number;
  /** End offset in the input (exclusive). */
  stop: number;
}

/**
 * What `info` returns: TGI's `/info` in camelCase (`model_id` -> `modelId`). Fields a server does not send are
 * `undefined`; fields this type does not name are kept, camelCased, under their own names.
 */
export interface Info {
  /** Model id (a Hub repository id or a local path). */
  modelId: string;
  /** Model revision. */
  modelSha?: string;
  /** Weights' data type, for example `torch.float16`. */
  modelDtype?: string;
  /** Device type, for example `cuda`. */
  modelDeviceType?: string;
  /** Pipeline tag, for example `text-generation`. */
  modelPipelineTag?: string;
  /** Requests served at once before the server answers 429 `overloaded`. */
  maxConcurrentRequests?: number;
  /** Largest allowed `bestOf`. */
  maxBestOf?: number;
  /** Largest number of `stop` sequences. */
  maxStopSequences?: number;
  /** Largest number of prompt tokens. */
  maxInputTokens?: number;
  /** Largest number of prompt plus generated tokens. */
  maxTotalTokens?: number;
  /** Largest number of inputs in one request. */
  maxClientBatchSize?: number;
  /** Router name. */
  router?: string;
  /** Server version. */
  version?: string;
  /** Server build sha. */
  sha?: string;
  /** Docker label of the server build. */
  dockerLabel?: string;
  /** Other fields, camelCased. */
  [key: string]: unknown;
}

/** Per-call options of every request method. */
export interface RequestOptions {
  /** Cancels the request (and a stream in progress); the method then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of {@link Client}. */
export interface ClientOptions {
  /** Headers sent with every request (for example `{ Authorization: 'Bearer ...' }`). */
  headers?: Record<string, string>;
  /**
   * Milliseconds to wait for the server before giving up with a {@link TimeoutError}: for the response (headers
   * and body) of `generate`, `tokenize`, `info` and `health`; for `generateStream`, for the response headers and
   * then between two chunks of the stream, so that a long generation is not cut while tokens keep coming.
   * Default 60 000; `0` or `Infinity` disables it.
   */
  timeout?: number;
  /** The `fetch` to use (default: the global one), for tests, proxies or instrumentation. */
  fetch?: typeof globalThis.fetch;
}

/** Options of {@link InferenceAPIClient}. */
export interface InferenceAPIClientOptions extends ClientOptions {
  /** Prefix of model URLs; the model id is appended. Default `https://api-inference.huggingface.co/models/`. */
  baseUrl?: string;
  /** Hugging Face access token, sent as `Authorization: Bearer <token>`. */
  token?: string;
}

/** Options of {@link deployedModels}. */
export interface DeployedModelsOptions extends ClientOptions {
  /**
   * Root of the hosted Inference API; the list is read from `{baseUrl}/framework/text-generation-inference`.
   * Default `https://api-inference.huggingface.co`.
   */
  baseUrl?: string;
  /** Hugging Face access token, sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Cancels the request. */
  signal?: AbortSignal;
}

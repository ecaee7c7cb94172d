/**
 * Sampling defaults the model ships with (`generation_config.json`), camelCase. A field is present only when the
 * file sets it; the engine applies them only where a request leaves the parameter out.
 */
export interface BackendGenerationDefaultsV1 {
  /** `do_sample`: false means greedy unless the request asks for sampling. */
  doSample?: boolean;
  /** `temperature`. */
  temperature?: number;
  /** `top_p`. */
  topP?: number;
  /** `top_k`. */
  topK?: number;
  /** `repetition_penalty`. */
  repetitionPenalty?: number;
  /** `max_new_tokens`. */
  maxNewTokens?: number;
}

/** What model a backend serves, as the engine and the server need to know it. */
export interface BackendModelV1 {
  /** Hugging Face architecture class, for example `LlamaForCausalLM` (`config.json` `architectures[0]`). */
  readonly architecture: string;
  /** Hugging Face `model_type`, for example `llama`, `mistral`, `qwen2`. */
  readonly modelType: string;
  /** Number of rows of the output embedding: every logits row has exactly this many entries. */
  readonly vocabSize: number;
  /**
   * Maximum length of a sequence in positions (tokens held in its cache). Appending past it throws
   * `PositionLimitError`. May be lower than the model's `max_position_embeddings` when the backend is configured so.
   */
  readonly maxPositions: number;
  /** Token ids that end generation (from `generation_config.json` when it has them, else `config.json`). */
  readonly eosTokenIds: readonly number[];
  /** Beginning-of-sequence token id, when the model has one. */
  readonly bosTokenId: number | undefined;
  /** Data type the backend computes in, for example `float32`. */
  readonly dtype: string;
  /** Number of decoder layers, when the backend runs a layered model. */
  readonly numLayers?: number;
  /** Width of the residual stream. */
  readonly hiddenSize?: number;
  /** Number of query heads. */
  readonly numAttentionHeads?: number;
  /** Number of key / value heads (fewer than query heads under grouped-query attention). */
  readonly numKeyValueHeads?: number;
  /** Size of one attention head. */
  readonly headDim?: number;
  /** Sampling defaults from `generation_config.json`. */
  readonly generationDefaults?: BackendGenerationDefaultsV1;
  /** Free-form, backend-specific facts (checkpoint dtype, rope scaling...). Not part of the contract. */
  readonly details?: Readonly<Record<string, unknown>>;
}

/** What a backend can do; the engine plans batches and features from this. */
export interface BackendCapabilitiesV1 {
  /** Most sequences one `doForward` call may name; more throws `BatchLimitError`. */
  readonly maxBatchSize: number;
  /** Where the computation runs, for example `cpu`, `cuda:0`, `wasm`. */
  readonly device: string;
  /** Whether `wantPromptLogits` is honoured (when false it yields an `unsupported-option` warning instead). */
  readonly promptLogits: boolean;
  /** Whether `doFork` is implemented. Must equal `typeof backend.doFork === 'function'`. */
  readonly fork: boolean;
  /**
   * Whether `doFork` takes `options.length` (fork a prefix of a sequence); absent means false. Engines use it for
   * prefix caching across requests and fall back to prefilling whole prompts without it. Added to v1 as an optional
   * capability (see docs/decisions/2026-12-06-prefix-fork.md).
   */
  readonly forkPrefix?: boolean;
  /**
   * Whether `doEmbed` is implemented (pooled final hidden states, for embeddings). Must equal
   * `typeof backend.doEmbed === 'function'`; absent means false. A backend that sets it also sets
   * `model.hiddenSize`, the length of every embedding.
   */
  readonly embeddings?: boolean;
  /**
   * Whether `doForward` writes next-token logits into a big enough `options.logitsBuffer` instead of fresh
   * arrays; absent means false (the option is then ignored). Added to v1 as an optional capability (see
   * docs/decisions/2026-12-07-logits-buffer.md).
   */
  readonly logitsBuffer?: boolean;
  /** Free-form, backend-specific facts (threads, execution provider...). Not part of the contract. */
  readonly details?: Readonly<Record<string, unknown>>;
}

/** A snapshot of the backend's live state, cheap to take; used by metrics and by the conformance suite. */
export interface BackendStatsV1 {
  /** Number of live sequences (created and not released). */
  readonly sequences: number;
  /** Sum of the lengths of the live sequences, in tokens. */
  readonly cachedTokens: number;
  /**
   * Bytes held for the key / value caches of live sequences, when the backend can tell. With every sequence
   * released it must return to the value it had before the first sequence was created.
   */
  readonly kvCacheBytes?: number;
}

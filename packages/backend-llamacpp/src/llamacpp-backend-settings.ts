/** Settings of `createLlamaCppBackend`. */
export interface LlamaCppBackendSettings {
  /** A GGUF file (llama.cpp's model format), for example one written by `@gen/model-kit`'s `writeGgufModel`. */
  modelPath: string;
  /** Most sequences per `doForward` call. Default 16. */
  maxBatchSize?: number;
  /**
   * Most sequences live at once (created and not released, across calls): llama.cpp's `n_seq_max`, one sequence
   * id each. At most `llama_max_parallel_sequences()` (256). Default `max(maxBatchSize, 64)`, capped at 256. A
   * call that would create more rejects with a `BackendError` and changes nothing.
   */
  maxSequences?: number;
  /**
   * Position limit per sequence, at most the model's `{arch}.context_length` (a larger value is clamped, with an
   * `unsupported-setting` warning). Default: the context length.
   */
  maxPositions?: number;
  /**
   * KV cells of the one unified cache all sequences share (llama.cpp's `n_ctx` with `kv_unified`), allocated up
   * front. Default `maxBatchSize × maxPositions`. A call that needs more free cells than there are rejects with
   * a `BackendError` and changes nothing; forks share their common prefix's cells.
   */
  contextSize?: number;
  /** Tokens per `llama_decode` call (`n_batch` = `n_ubatch`); longer batches are split. Default 512. */
  batchTokens?: number;
  /** Threads of a decode (`n_threads`, `n_threads_batch`). Default: one per physical core. */
  threads?: number;
  /**
   * Keep one ggml thread pool of `threads` threads for the backend's life, attached to its context
   * (`llama_attach_threadpool`, as llama.cpp's CLI tools do). Default `true`: without one, ggml starts and joins
   * `threads - 1` threads in every `llama_decode` (measured 3-5% of a 125M-parameter decode step on 2 cores; see
   * `docs/backends/llamacpp.md`). Ignored (with an `unsupported-setting` warning) when the CPU backend does not
   * export `ggml_threadpool_new`.
   */
  threadPool?: boolean;
  /**
   * How long the pool's idle threads spin-wait for the next decode before they sleep: ggml's polling level,
   * 0 to 100 (50 is llama.cpp's default: about 0.15 s of one core after each decode here). Default 0: they
   * sleep at once, leaving the cores to the event loop and V8's own threads between decodes (as fast here,
   * measured; see `docs/backends/llamacpp.md`). Only with `threadPool`.
   */
  threadPoll?: number;
  /**
   * Element type of the KV cache (`type_k`, `type_v`). Default `f16`, llama.cpp's own default; `f32` makes a
   * float32 model match a float32 reference within 1e-4.
   */
  kvCacheType?: 'f32' | 'f16';
  /** llama.cpp's flash attention (`flash_attn_type`). Default `off`. */
  flashAttention?: 'auto' | 'on' | 'off';
  /**
   * Where `llama_decode` runs: `main` (the calling thread: the event loop waits for each decode, as
   * backend-onnx's `direct` binding does by default) or `worker` (a koffi worker thread: the event loop keeps
   * serving, and an abort stops a decode at its next graph node). Default `main` (measured faster; see
   * `docs/backends/llamacpp.md`). The environment variable `GEN_LLAMACPP_DECODE_THREAD` sets the default.
   */
  decodeThread?: 'main' | 'worker';
}

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

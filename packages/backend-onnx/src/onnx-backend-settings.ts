/**
 * Which weight file of an onnx-community / Optimum model directory to load:
 *
 * | dtype   | file (under `onnx/`, or the directory root)     | weights                                        |
 * | ------- | ----------------------------------------------- | ---------------------------------------------- |
 * | `fp32`  | `model.onnx`                                    | float32                                        |
 * | `fp16`  | `model_fp16.onnx`                               | float16 (usually float16 KV caches and logits) |
 * | `int8`  | `model_quantized.onnx`, else `model_int8.onnx`  | 8-bit integer                                  |
 * | `q4`    | `model_q4.onnx`                                 | 4-bit blocks (`MatMulNBits`), float32 compute  |
 * | `q4f16` | `model_q4f16.onnx`                              | 4-bit blocks, float16 compute                  |
 */
export type OnnxModelDtype = 'fp32' | 'fp16' | 'int8' | 'q4' | 'q4f16';

/** How onnxruntime is called; see {@link OnnxBackendSettings.binding}. */
export type OnnxBinding = 'auto' | 'direct' | 'onnxruntime-node';

/** An onnxruntime execution provider by name. */
export type OnnxExecutionProviderName = 'cpu' | 'cuda' | 'webgpu';

/**
 * An execution provider: a name, or `{ name, deviceId }` to pick a GPU. `cuda` needs the CUDA build of
 * onnxruntime-node's provider libraries (see `docs/backends/onnx.md`); a provider that cannot be loaded is skipped
 * with an `unsupported-setting` warning when a later one in the list can run.
 */
export type OnnxExecutionProvider =
  OnnxExecutionProviderName | { readonly name: OnnxExecutionProviderName; readonly deviceId?: number };

/** Settings of `createOnnxBackend`. */
export interface OnnxBackendSettings {
  /**
   * A Hugging Face model directory with an ONNX export: `config.json` (llama, mistral, qwen2, qwen3, gemma2,
   * gemma3_text or phi3), optional `generation_config.json`, and `onnx/model*.onnx` (+ `*.onnx_data` external
   * weights) in the Optimum / onnx-community layout. Directories written by other tools are fine: graph inputs and
   * outputs are read from the model itself.
   */
  modelDir: string;
  /** Which file variant to load; see {@link OnnxModelDtype}. Default `fp32` (`onnx/model.onnx`). */
  dtype?: OnnxModelDtype;
  /**
   * An explicit `.onnx` file instead of the one `dtype` names: absolute, or relative to `modelDir` (for example
   * `onnx/decoder_model_merged.onnx`). `model.dtype` then reports the type of the graph's logits.
   */
  modelFile?: string;
  /** Threads of one operator (`intraOpNumThreads`). Default: onnxruntime's choice (one per physical core). */
  intraOpThreads?: number;
  /**
   * Whether onnxruntime's intra-op threads busy-wait for the next operator instead of sleeping
   * (`session.intra_op.allow_spinning`). Spinning shaves microseconds per operator on idle, dedicated cores, but
   * when the cores are shared (the Node.js event loop, other processes, several backends) spinning threads take CPU
   * time from the ones doing work and a decode step can take twice as long. Default `false`.
   */
  intraOpSpinning?: boolean;
  /**
   * How onnxruntime is called:
   *
   * - `direct`: onnxruntime's C API, through koffi (an optional dependency with prebuilt binaries), on the library
   *   onnxruntime-node installs. Outputs bound to caller buffers (the KV buffers of fused graphs) are written in
   *   place and nothing is copied back; CPU execution provider only.
   * - `onnxruntime-node`: onnxruntime-node's `InferenceSession`, which copies every output into a new JavaScript
   *   buffer after each run, bound ones included (about 0.5 ms per step at batch 1 and most of a batch-16 step on
   *   the `bench` model; see `docs/backends/onnx.md`).
   * - `auto` (the default): `direct` when koffi loads and every execution provider listed is `cpu`, else
   *   `onnxruntime-node`. The environment variable `GEN_ONNX_BINDING` (`direct`, `onnxruntime-node` or `auto`)
   *   sets what `auto` means for a process.
   *
   * Which one loaded, and why, is in `capabilities.details.binding` / `bindingReason`.
   */
  binding?: OnnxBinding;
  /**
   * With the `direct` binding, where runs execute: `main` (the calling thread, as onnxruntime-node does: the
   * event loop waits for the run; the fastest) or `worker` (a koffi worker thread: the event loop keeps serving
   * during a run, an abort stops a run at its next operator, and each run costs about 0.2 ms more). Default
   * `main`.
   */
  runThread?: 'main' | 'worker';
  /** Execution providers in order of preference. Default `['cpu']`. */
  executionProviders?: readonly OnnxExecutionProvider[];
  /** onnxruntime graph optimizations applied when the session is created. Default `all`. */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Where `present.*` outputs (the KV cache) should stay: `gpu-buffer` keeps them on the device between steps
   * with the WebGPU provider (onnxruntime-node honours it for WebGPU only; the CPU and CUDA providers always return
   * CPU tensors, and the setting is then reported as a warning). Logits are always read back. Default `cpu`.
   */
  preferredOutputLocation?: 'cpu' | 'gpu-buffer';
  /**
   * Fused graphs (`GroupQueryAttention` with a shared KV buffer; `@gen/model-kit`'s default export): slots per
   * sequence in the KV buffers. `grow` (the default) sizes a batch's buffers to its longest sequence plus up to 128
   * slots and grows them in steps of 128 (32 on the `onnxruntime-node` binding; each growth copies the caches once); a number allocates that many slots
   * up front (at most `max_position_embeddings`; a sequence that outgrows it still grows the buffers). With the
   * `onnxruntime-node` binding smaller is faster: it copies every output buffer back into JavaScript after each
   * run, the KV buffers included, so a step costs a copy of the whole buffer (see `docs/backends/onnx.md`); the
   * `direct` binding copies nothing. Ignored for standard graphs.
   */
  kvCapacity?: number | 'grow';
  /** Most sequences per `doForward` call. Default 32. */
  maxBatchSize?: number;
  /**
   * Position limit per sequence, at most the model's `max_position_embeddings` (a larger value is clamped, with
   * an `unsupported-setting` warning). Default: `max_position_embeddings`.
   */
  maxPositions?: number;
}

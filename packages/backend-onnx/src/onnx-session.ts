import { AbortError, BackendError } from '@gen/backend';
import type * as ort from 'onnxruntime-node';

/** Outputs to compute: names (onnxruntime allocates them), or a map to `null` or to a tensor to write into. */
export type SessionFetches = readonly string[] | Readonly<Record<string, ort.Tensor | null>>;

/**
 * What the backend needs of an onnxruntime session; onnxruntime-node's `InferenceSession` and the C API binding's
 * `DirectSession` both provide it.
 */
export interface OnnxSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  run(feeds: Readonly<Record<string, ort.Tensor>>, fetches?: SessionFetches): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
  /** Stops a run in progress, where the binding can (the C API binding can; onnxruntime-node cannot). */
  abort?(): void;
  /**
   * True when outputs bound to caller tensors are written in place and returned as they are (the C API binding);
   * onnxruntime-node copies them into new buffers after the run, so binding them there only adds work.
   */
  readonly bindsOutputsInPlace?: boolean;
}

/** Session settings both bindings take. */
export interface OnnxSessionOptions {
  readonly intraOpThreads?: number | undefined;
  readonly intraOpSpinning?: boolean | undefined;
  readonly graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all' | undefined;
}

/**
 * Runs `session` and turns a failure into a {@link BackendError} naming `file`. When `signal` aborts during the
 * run, a binding that can stop a run ({@link OnnxSession.abort}) is told to, and the call rejects with an
 * `AbortError`.
 *
 * @throws {AbortError} `signal` was aborted during the run.
 * @throws {BackendError} onnxruntime failed.
 */
export async function runSession(
  session: OnnxSession,
  feeds: Readonly<Record<string, ort.Tensor>>,
  fetches: SessionFetches,
  file: string,
  signal: AbortSignal | undefined,
): Promise<Record<string, ort.Tensor>> {
  const stop = session.abort === undefined ? undefined : () => session.abort!();
  if (stop !== undefined) signal?.addEventListener('abort', stop, { once: true });
  try {
    return await session.run(feeds, fetches);
  } catch (error) {
    AbortError.throwIfAborted(signal);
    const message = error instanceof Error ? error.message : String(error);
    throw new BackendError(`onnxruntime failed to run ${file}: ${message}`, { cause: error });
  } finally {
    if (stop !== undefined) signal?.removeEventListener('abort', stop);
  }
}

import { BackendError } from '@gen/backend';

/**
 * Why llama.cpp is not available in this process:
 * - `package-not-found`: the optional dependency `@node-llama-cpp/<platform>-<arch>` (the prebuilt libraries) is
 *   not installed, for example on a platform other than linux-x64, or its install failed;
 * - `koffi-not-found`: koffi (the foreign function interface) is not installed or has no binary here;
 * - `library-load-failed`: the shared libraries are there but did not load (the message carries the OS error,
 *   for example a missing `libstdc++` symbol), or ggml found no CPU backend for this processor.
 */
export type LlamaCppUnavailableReason = 'package-not-found' | 'koffi-not-found' | 'library-load-failed';

const marker = Symbol.for('gen.backend-llamacpp.error.unavailable');

/** llama.cpp's libraries cannot be used here; {@link reason} and the message say why. */
export class LlamaCppUnavailableError extends BackendError {
  protected readonly [marker] = true;
  readonly reason: LlamaCppUnavailableReason;

  constructor(options: { reason: LlamaCppUnavailableReason; message: string; cause?: unknown }) {
    super(options.message, { cause: options.cause });
    this.name = 'LlamaCppUnavailableError';
    this.reason = options.reason;
  }

  /** True when `error` is a {@link LlamaCppUnavailableError} from any copy of this package. */
  static override isInstance(error: unknown): error is LlamaCppUnavailableError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }
}

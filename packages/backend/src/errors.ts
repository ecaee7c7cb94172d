const baseMarker = Symbol.for('gen.backend.error');

function hasMarker(error: unknown, marker: symbol): boolean {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
}

/**
 * Base class of every error thrown by a gen backend or by `@gen/backend`'s model-directory reading.
 *
 * Use {@link BackendError.isInstance} (and the subclasses' `isInstance`) rather than `instanceof`: it also
 * recognises errors thrown by another installed copy of this package (the marker is a global `Symbol.for`).
 */
export class BackendError extends Error {
  protected readonly [baseMarker] = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackendError';
  }

  /** True when `error` is a {@link BackendError} (of any subclass) from any copy of this package. */
  static isInstance(error: unknown): error is BackendError {
    return hasMarker(error, baseMarker);
  }
}

/**
 * Why a model directory could not be loaded:
 * - `missing-file`: a file the directory must contain is absent (`config.json`, a shard named by the index...).
 * - `invalid-json`: a JSON file does not parse.
 * - `invalid-config`: `config.json` / `generation_config.json` / the shard index has a missing or bad field.
 * - `invalid-header`: a safetensors header is malformed (length, JSON, offsets that disagree with dtype × shape).
 * - `truncated`: a safetensors file is shorter than its header says.
 * - `unknown-dtype`: a safetensors dtype that is not in the safetensors format at all.
 * - `unsupported-dtype`: a valid dtype that cannot be converted to float32 (for example `I64`).
 * - `missing-tensor`: a tensor the architecture needs is not in the weights.
 * - `shape-mismatch`: a tensor has a different shape than the config implies.
 * - `unsupported-model`: see {@link UnsupportedModelError}.
 */
export type ModelLoadErrorReason =
  | 'missing-file'
  | 'invalid-json'
  | 'invalid-config'
  | 'invalid-header'
  | 'truncated'
  | 'unknown-dtype'
  | 'unsupported-dtype'
  | 'missing-tensor'
  | 'shape-mismatch'
  | 'unsupported-model';

const modelLoadMarker = Symbol.for('gen.backend.error.model-load');

/**
 * A model directory could not be read. The message always names the file and says what was expected there, so a
 * user can fix the directory without reading source code.
 */
export class ModelLoadError extends BackendError {
  protected readonly [modelLoadMarker] = true;
  /** Absolute or directory-relative path of the offending file (the directory itself for directory-level problems). */
  readonly file: string;
  /** What the loader expected to find, in words (for example `a tensor of shape [64, 256]`). */
  readonly expected: string;
  /** Machine-readable category; see {@link ModelLoadErrorReason}. */
  readonly reason: ModelLoadErrorReason;

  constructor(options: {
    file: string;
    expected: string;
    reason: ModelLoadErrorReason;
    message: string;
    cause?: unknown;
  }) {
    super(`${options.file}: ${options.message} (expected ${options.expected})`, { cause: options.cause });
    this.name = 'ModelLoadError';
    this.file = options.file;
    this.expected = options.expected;
    this.reason = options.reason;
  }

  /** True when `error` is a {@link ModelLoadError} (including {@link UnsupportedModelError}) from any copy. */
  static override isInstance(error: unknown): error is ModelLoadError {
    return hasMarker(error, modelLoadMarker);
  }
}

const unsupportedModelMarker = Symbol.for('gen.backend.error.unsupported-model');

/**
 * The model directory is well formed but describes something this code does not implement: a `model_type` other
 * than the supported ones, an activation other than `silu`, an unknown `rope_scaling` type, and so on.
 */
export class UnsupportedModelError extends ModelLoadError {
  protected readonly [unsupportedModelMarker] = true;
  /** The config field that holds the unsupported value, for example `model_type` or `rope_scaling.rope_type`. */
  readonly feature: string;
  /** The value found in the file. */
  readonly value: unknown;
  /** The values that are supported. */
  readonly supported: readonly string[];

  constructor(options: { file: string; feature: string; value: unknown; supported: readonly string[] }) {
    super({
      file: options.file,
      reason: 'unsupported-model',
      expected: `${options.feature} to be one of ${options.supported.map((s) => JSON.stringify(s)).join(', ')}`,
      message: `unsupported ${options.feature} ${JSON.stringify(options.value)}`,
    });
    this.name = 'UnsupportedModelError';
    this.feature = options.feature;
    this.value = options.value;
    this.supported = options.supported;
  }

  /** True when `error` is an {@link UnsupportedModelError} from any copy of this package. */
  static override isInstance(error: unknown): error is UnsupportedModelError {
    return hasMarker(error, unsupportedModelMarker);
  }
}

/**
 * Why a sequence id was rejected:
 * - `unknown`: the id names no live sequence (never created, or already released) where one is required
 *   (`doRelease`, the source of `doFork`, a `startPosition` above 0).
 * - `duplicate`: the same id appears twice in one `doForward` or `doRelease` call.
 * - `exists`: the target of `doFork` is already a live sequence.
 * - `position-mismatch`: the caller's `startPosition` differs from the number of tokens the backend holds.
 */
export type SequenceErrorReason = 'unknown' | 'duplicate' | 'exists' | 'position-mismatch';

const sequenceMarker = Symbol.for('gen.backend.error.sequence');

/** A sequence id was unknown, released, duplicated or out of step with the backend. This is a caller bug. */
export class SequenceError extends BackendError {
  protected readonly [sequenceMarker] = true;
  /** The offending id. */
  readonly sequenceId: string;
  /** Machine-readable category; see {@link SequenceErrorReason}. */
  readonly reason: SequenceErrorReason;

  constructor(options: { sequenceId: string; reason: SequenceErrorReason; message: string }) {
    super(options.message);
    this.name = 'SequenceError';
    this.sequenceId = options.sequenceId;
    this.reason = options.reason;
  }

  /** True when `error` is a {@link SequenceError} from any copy of this package. */
  static override isInstance(error: unknown): error is SequenceError {
    return hasMarker(error, sequenceMarker);
  }
}

const positionLimitMarker = Symbol.for('gen.backend.error.position-limit');

/**
 * Appending the tokens would take a sequence past the model's (or backend's) maximum number of positions.
 * Nothing is appended: the sequence keeps its previous length.
 */
export class PositionLimitError extends BackendError {
  protected readonly [positionLimitMarker] = true;
  /** The offending sequence. */
  readonly sequenceId: string;
  /** Length the sequence would have had after the call. */
  readonly requestedPositions: number;
  /** The limit, `model.maxPositions` of the backend. */
  readonly maxPositions: number;

  constructor(options: { sequenceId: string; requestedPositions: number; maxPositions: number }) {
    super(
      `sequence ${JSON.stringify(options.sequenceId)} would reach ${options.requestedPositions} positions, ` +
        `past the maximum of ${options.maxPositions}`,
    );
    this.name = 'PositionLimitError';
    this.sequenceId = options.sequenceId;
    this.requestedPositions = options.requestedPositions;
    this.maxPositions = options.maxPositions;
  }

  /** True when `error` is a {@link PositionLimitError} from any copy of this package. */
  static override isInstance(error: unknown): error is PositionLimitError {
    return hasMarker(error, positionLimitMarker);
  }
}

const batchLimitMarker = Symbol.for('gen.backend.error.batch-limit');

/** A `doForward` call named more sequences than `capabilities.maxBatchSize`. */
export class BatchLimitError extends BackendError {
  protected readonly [batchLimitMarker] = true;
  /** Number of sequences in the call. */
  readonly batchSize: number;
  /** The backend's `capabilities.maxBatchSize`. */
  readonly maxBatchSize: number;

  constructor(options: { batchSize: number; maxBatchSize: number }) {
    super(`batch of ${options.batchSize} sequences exceeds maxBatchSize ${options.maxBatchSize}`);
    this.name = 'BatchLimitError';
    this.batchSize = options.batchSize;
    this.maxBatchSize = options.maxBatchSize;
  }

  /** True when `error` is a {@link BatchLimitError} from any copy of this package. */
  static override isInstance(error: unknown): error is BatchLimitError {
    return hasMarker(error, batchLimitMarker);
  }
}

const invalidInputMarker = Symbol.for('gen.backend.error.invalid-input');

/**
 * A `doForward` input is malformed: an empty `tokens` list, a token id that is not an integer in
 * `[0, model.vocabSize)`, or an empty batch.
 */
export class InvalidInputError extends BackendError {
  protected readonly [invalidInputMarker] = true;
  /** The sequence whose input was rejected, when the problem belongs to one sequence. */
  readonly sequenceId: string | undefined;

  constructor(options: { message: string; sequenceId?: string }) {
    super(options.message);
    this.name = 'InvalidInputError';
    this.sequenceId = options.sequenceId;
  }

  /** True when `error` is an {@link InvalidInputError} from any copy of this package. */
  static override isInstance(error: unknown): error is InvalidInputError {
    return hasMarker(error, invalidInputMarker);
  }
}

const abortMarker = Symbol.for('gen.backend.error.abort');

/**
 * The call's `signal` was aborted before or while it ran. The backend is left exactly as before the call (no
 * sequence grew, no sequence was created) and stays usable. `name` is `'AbortError'`, like the DOM exception,
 * and `cause` is the signal's `reason`.
 */
export class AbortError extends BackendError {
  protected readonly [abortMarker] = true;

  constructor(options?: { message?: string; cause?: unknown }) {
    super(options?.message ?? 'the operation was aborted', { cause: options?.cause });
    this.name = 'AbortError';
  }

  /** Throws an {@link AbortError} (with the signal's reason as `cause`) when `signal` is aborted. */
  static throwIfAborted(signal: AbortSignal | undefined): void {
    if (signal?.aborted === true) throw new AbortError({ cause: signal.reason });
  }

  /** True when `error` is an {@link AbortError} from any copy of this package. */
  static override isInstance(error: unknown): error is AbortError {
    return hasMarker(error, abortMarker);
  }
}

const disposedMarker = Symbol.for('gen.backend.error.disposed');

/** A method other than `doDispose` was called after `doDispose`. */
export class BackendDisposedError extends BackendError {
  protected readonly [disposedMarker] = true;

  constructor(backendId: string) {
    super(`backend ${JSON.stringify(backendId)} has been disposed`);
    this.name = 'BackendDisposedError';
  }

  /** True when `error` is a {@link BackendDisposedError} from any copy of this package. */
  static override isInstance(error: unknown): error is BackendDisposedError {
    return hasMarker(error, disposedMarker);
  }
}

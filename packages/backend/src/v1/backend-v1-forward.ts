import type { BackendWarningV1 } from './backend-v1-warning.js';

/** One sequence of a `doForward` call. */
export interface BackendSequenceInputV1 {
  /**
   * Caller-chosen id. A new id creates a sequence; a live id appends to it. An id may appear only once per call.
   * After `doRelease` the id is free and names a new, empty sequence again.
   */
  readonly id: string;
  /**
   * Token ids to append, at least one; each an integer in `[0, model.vocabSize)`. A prefill passes the whole
   * prompt, a decode step passes one token; both are the same call.
   */
  readonly tokens: Int32Array | readonly number[];
  /**
   * Return logits for every appended position too (for prompt logprobs). Backends without
   * `capabilities.promptLogits` omit them and add an `unsupported-option` warning.
   */
  readonly wantPromptLogits?: boolean;
  /**
   * The number of tokens the caller believes the sequence already holds (0 for a new sequence). When given, the
   * backend checks it and throws `SequenceError` (`position-mismatch`, or `unknown` for a positive value on an id
   * that is not live) instead of silently creating or extending the wrong sequence. Recommended for engines.
   */
  readonly startPosition?: number;
}

/** Arguments of `BackendV1.doForward`. */
export interface BackendForwardOptionsV1 {
  /** The batch: at least one and at most `capabilities.maxBatchSize` sequences, ids unique. */
  readonly sequences: readonly BackendSequenceInputV1[];
  /**
   * Aborting rejects the call with `AbortError` (as soon as the backend notices: before it starts, and at least
   * between layers or sequences) and leaves every sequence as it was before the call.
   */
  readonly signal?: AbortSignal;
  /**
   * A caller-owned array for this call's next-token logits, so a decode loop need not allocate (and the garbage
   * collector free) `sequences.length × vocabSize` floats per step. A backend with `capabilities.logitsBuffer`
   * writes row `i` at `[i × vocabSize, (i + 1) × vocabSize)` when the array is at least
   * `sequences.length × vocabSize` long, and returns `logits` as a view of its leading part (rows as views of
   * that); other backends, and a shorter array, get fresh arrays as without it. The backend may write the array
   * whether or not the call succeeds, and never touches it after the call settles: pass one whose previous
   * contents you no longer read. `promptLogits` are always fresh arrays.
   */
  readonly logitsBuffer?: Float32Array;
}

/** Result for one input sequence, in input order. */
export interface BackendSequenceResultV1 {
  /** The input's id. */
  readonly id: string;
  /**
   * Next-token logits `[vocabSize]`: the distribution after the last appended token. A row view into
   * {@link BackendForwardResultV1.logits} (no copy).
   */
  readonly logits: Float32Array;
  /**
   * Present when `wantPromptLogits` was set and supported: `[tokens.length, vocabSize]` row-major in one array.
   * Row `i` is the distribution after appended token `i` (it predicts token `i + 1`; the last row equals `logits`).
   * The first token of a new sequence has no logits predicting it; its logprob is undefined by construction.
   */
  readonly promptLogits?: Float32Array;
  /** Length of the sequence after the call, in tokens. */
  readonly length: number;
}

/**
 * Result of `BackendV1.doForward`. All arrays are fresh and belong to the caller, which may modify them in place
 * (sampling processors do); the backend never touches them again. The one exception is a `logitsBuffer` the
 * caller passed and the backend used: then `logits` and the rows are views of the caller's array.
 */
export interface BackendForwardResultV1 {
  /** Next-token logits of the whole batch, `[sequences.length, vocabSize]` row-major; row `i` is input `i`. */
  readonly logits: Float32Array;
  /** Per-sequence results, in input order. */
  readonly sequences: readonly BackendSequenceResultV1[];
  /** Options that were not honoured for this call; empty when everything was. */
  readonly warnings: readonly BackendWarningV1[];
}

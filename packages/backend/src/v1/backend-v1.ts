import type { BackendEmbedOptionsV1 } from './backend-v1-embed.js';
import type { BackendForwardOptionsV1, BackendForwardResultV1 } from './backend-v1-forward.js';
import type { BackendCapabilitiesV1, BackendModelV1, BackendStatsV1 } from './backend-v1-model.js';
import type { BackendWarningV1 } from './backend-v1-warning.js';

/**
 * Version 1 of the contract between the gen engine and a forward-pass backend.
 *
 * A backend holds a model and a set of *sequences*, each a token history with its key / value cache, addressed by
 * caller-chosen string ids. The engine drives it with four methods whose names start with `do` (only the engine
 * calls them):
 *
 * - {@link BackendV1.doForward} appends tokens to a batch of sequences (creating new ones) and returns next-token
 *   logits for each; prefill and decode are the same call, and a batch may mix them.
 * - {@link BackendV1.doRelease} frees sequences (on finish, cancel or disconnect).
 * - {@link BackendV1.doFork} (optional) copies a sequence's cache to a new id, for `n` / `best_of` choices that
 *   share a prompt.
 * - {@link BackendV1.doDispose} frees everything.
 *
 * One optional method stands apart from the sequences: {@link BackendV1.doEmbed} returns pooled final hidden
 * states of whole inputs (for embeddings), without creating or touching any sequence.
 *
 * Guarantees every backend gives (checked by `@gen/testkit`'s conformance suite):
 * - Logits depend only on a sequence's own token history: not on batching, chunking of the prompt, forking, or
 *   what else is live (within the backend's numerical tolerance).
 * - A rejected call changes nothing: validation errors (`InvalidInputError`, `SequenceError`,
 *   `PositionLimitError`, `BatchLimitError`) and `AbortError` leave every sequence as it was.
 * - Overlapping calls are allowed and behave as if run one after another in call order.
 * - After `doDispose`, every other method rejects with `BackendDisposedError`.
 */
/** Options of {@link BackendV1.doFork}. */
export interface BackendForkOptionsV1 {
  /** Copy only the first `length` tokens (requires `capabilities.forkPrefix`). Default: all of them. */
  readonly length?: number;
}

export interface BackendV1 {
  /** Always `'v1'`; lets the engine support several versions side by side. */
  readonly specificationVersion: 'v1';
  /** Short id of the implementation, for example `js`, `onnx`, `tfjs`. Shown in logs and metrics. */
  readonly backendId: string;
  /** The model this backend serves. */
  readonly model: BackendModelV1;
  /** What this backend can do. */
  readonly capabilities: BackendCapabilitiesV1;
  /** Settings that were ignored or clamped when the backend was created; empty when none. */
  readonly warnings: readonly BackendWarningV1[];

  /**
   * Appends `tokens` to each sequence (creating it if its id is new) and returns its next-token logits, plus
   * prompt logits where asked.
   *
   * @throws {BatchLimitError} more than `capabilities.maxBatchSize` sequences.
   * @throws {InvalidInputError} an empty batch, empty `tokens`, or a token id outside `[0, vocabSize)`.
   * @throws {SequenceError} a duplicate id in the call, or a `startPosition` that does not match.
   * @throws {PositionLimitError} a sequence would grow past `model.maxPositions`.
   * @throws {AbortError} `signal` was aborted.
   */
  doForward(options: BackendForwardOptionsV1): Promise<BackendForwardResultV1>;

  /**
   * Frees the sequences and their caches. Every known id in `ids` is released even when the call rejects.
   *
   * @throws {SequenceError} an id that is not live (never created or already released), or appears twice.
   */
  doRelease(ids: readonly string[]): Promise<void>;

  /**
   * Makes `toId` a copy of `fromId` (same tokens, same cache); afterwards the two evolve independently. Present
   * exactly when `capabilities.fork` is true.
   *
   * With `options.length` (only when `capabilities.forkPrefix` is true), `toId` gets only the first `length`
   * tokens of `fromId` (`0 < length <= ` its length): the next call for `toId` continues at position `length`.
   * This is what prefix caching needs: a cached prompt shared by a new one up to some token.
   *
   * @throws {SequenceError} `fromId` is not live (`unknown`), `toId` is live (`exists`), or `length` is not an
   *   integer in `1..length of fromId` (`position-mismatch`).
   */
  doFork?(fromId: string, toId: string, options?: BackendForkOptionsV1): Promise<void>;

  /**
   * Runs each input through the model from position 0 and returns one vector per input, in input order: the final
   * hidden states (after the model's final norm, before `lm_head`), `[tokens, hiddenSize]`, pooled as
   * `options.pooling` says (mean over the positions, or the last position's). Each vector is a fresh
   * `Float32Array` of length `model.hiddenSize` that belongs to the caller. Present exactly when
   * `capabilities.embeddings` is true.
   *
   * Stateless: the call uses caches of its own and discards them. It creates no sequence, changes no live one,
   * leaves `stats()` as it was, and is ordered with the other calls like they are with each other. An input's
   * vector depends only on its own tokens and the pooling, not on the other inputs of the call (within the
   * backend's numerical tolerance). With `last` pooling it is the state `lm_head` turns into the next-token
   * logits that `doForward` returns after the same tokens.
   *
   * @throws {InvalidInputError} no inputs, an input with no tokens, a token id outside `[0, vocabSize)`, or a
   *   `pooling` other than `'mean'` and `'last'`.
   * @throws {BatchLimitError} more than `capabilities.maxBatchSize` inputs.
   * @throws {PositionLimitError} an input longer than `model.maxPositions`.
   * @throws {AbortError} `signal` was aborted.
   * @throws {BackendDisposedError} after `doDispose`.
   */
  doEmbed?(options: BackendEmbedOptionsV1): Promise<Float32Array[]>;

  /** A snapshot of the live state. Synchronous and cheap. */
  stats(): BackendStatsV1;

  /** Releases every sequence and all resources (weights, native sessions). Idempotent. */
  doDispose(): Promise<void>;
}

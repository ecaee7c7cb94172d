import { AbortError, BatchLimitError, InvalidInputError, PositionLimitError, SequenceError } from '../errors.js';
import type { BackendForwardOptionsV1 } from '../v1/index.js';

/** The limits {@link checkForwardInputs} checks a `doForward` call against. */
export interface ForwardInputLimits {
  /** `model.vocabSize`: token ids must be integers in `[0, vocabSize)`. */
  readonly vocabSize: number;
  /** `model.maxPositions`: no sequence may grow past it. */
  readonly maxPositions: number;
  /** `capabilities.maxBatchSize`: the most sequences per call. */
  readonly maxBatchSize: number;
}

/** One `doForward` input after {@link checkForwardInputs} accepted it. */
export interface CheckedSequenceInput {
  /** The input's id (unique in the call). */
  readonly id: string;
  /** A fresh copy of the tokens to append: at least one, each an integer in `[0, vocabSize)`. */
  readonly tokens: Int32Array;
  /** How many tokens the sequence holds before the call: 0 for a new sequence. */
  readonly start: number;
  /** Whether the input asked for prompt logits (`wantPromptLogits === true`). */
  readonly wantPromptLogits: boolean;
}

/**
 * Makes every check `BackendV1.doForward` requires before it changes anything, in this order: the signal, the
 * batch size, then for each input in order its id (a string, not seen before in the call), its tokens (at least
 * one, each an integer in `[0, vocabSize)`), its `startPosition` (when given, equal to the sequence's length) and
 * the position limit. It reads the sequences only through `lengthOf` and changes nothing, so a backend that calls
 * it first leaves every sequence as it was when it throws.
 *
 * @param options The `doForward` arguments.
 * @param limits The model's vocabulary size and position limit, and the backend's batch limit.
 * @param lengthOf The number of tokens a live sequence holds, or `undefined` when `id` is not live.
 * @returns One entry per input, in input order.
 * @throws {AbortError} `options.signal` is already aborted.
 * @throws {InvalidInputError} an empty batch, an id that is not a string, empty `tokens`, a token id that is not
 *   an integer in `[0, vocabSize)`, or a `logitsBuffer` that is not a `Float32Array` (checked last).
 * @throws {BatchLimitError} more than `maxBatchSize` sequences.
 * @throws {SequenceError} a duplicate id in the call (`duplicate`), a `startPosition` that differs from the live
 *   sequence's length (`position-mismatch`), or a `startPosition` other than 0 on an id that is not live (`unknown`).
 * @throws {PositionLimitError} a sequence would grow past `maxPositions`.
 */
export function checkForwardInputs(
  options: BackendForwardOptionsV1,
  limits: ForwardInputLimits,
  lengthOf: (id: string) => number | undefined,
): CheckedSequenceInput[] {
  AbortError.throwIfAborted(options.signal);
  const { vocabSize, maxPositions, maxBatchSize } = limits;
  const inputs = options.sequences;
  if (inputs.length === 0) throw new InvalidInputError({ message: 'doForward needs at least one sequence' });
  if (inputs.length > maxBatchSize) throw new BatchLimitError({ batchSize: inputs.length, maxBatchSize });

  // One input (a batch-1 decode step, the common case) cannot repeat an id: no set to build.
  const seen = inputs.length > 1 ? new Set<string>() : undefined;
  const checked: CheckedSequenceInput[] = [];
  for (const input of inputs) {
    const { id, tokens } = input;
    if (typeof id !== 'string') {
      throw new InvalidInputError({ message: `sequence id must be a string, got ${typeof id}` });
    }
    if (seen?.has(id) === true) {
      throw new SequenceError({
        sequenceId: id,
        reason: 'duplicate',
        message: `id ${JSON.stringify(id)} appears twice in one batch`,
      });
    }
    seen?.add(id);
    if (tokens.length === 0) {
      throw new InvalidInputError({
        sequenceId: id,
        message: `sequence ${JSON.stringify(id)} has no tokens to append`,
      });
    }
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]!;
      if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
        throw new InvalidInputError({
          sequenceId: id,
          message: `sequence ${JSON.stringify(id)}: token ${i} is ${token}, not an integer in [0, ${vocabSize})`,
        });
      }
    }
    const length = lengthOf(id);
    const start = length ?? 0;
    if (input.startPosition !== undefined && input.startPosition !== start) {
      throw length === undefined
        ? new SequenceError({
            sequenceId: id,
            reason: 'unknown',
            message: `sequence ${JSON.stringify(id)} is not live (never created or already released), but startPosition is ${input.startPosition}`,
          })
        : new SequenceError({
            sequenceId: id,
            reason: 'position-mismatch',
            message: `sequence ${JSON.stringify(id)} holds ${start} tokens, but startPosition is ${input.startPosition}`,
          });
    }
    if (start + tokens.length > maxPositions) {
      throw new PositionLimitError({ sequenceId: id, requestedPositions: start + tokens.length, maxPositions });
    }
    checked.push({ id, tokens: Int32Array.from(tokens), start, wantPromptLogits: input.wantPromptLogits === true });
  }
  if (options.logitsBuffer !== undefined && !(options.logitsBuffer instanceof Float32Array)) {
    throw new InvalidInputError({ message: 'logitsBuffer must be a Float32Array' });
  }
  return checked;
}

/**
 * The array a backend with `capabilities.logitsBuffer` writes a call's next-token logits into: the leading
 * `rows × vocabSize` elements of `options.logitsBuffer` when it is that long, a fresh zeroed array otherwise.
 *
 * @param options The `doForward` arguments (after {@link checkForwardInputs}).
 * @param rows The number of sequences in the call.
 * @param vocabSize `model.vocabSize`.
 */
export function forwardLogitsArray(options: BackendForwardOptionsV1, rows: number, vocabSize: number): Float32Array {
  const size = rows * vocabSize;
  const buffer = options.logitsBuffer;
  return buffer !== undefined && buffer.length >= size ? buffer.subarray(0, size) : new Float32Array(size);
}

/**
 * Does the work of `BackendV1.doRelease`: calls `release` once for each distinct id in `ids`, in order, then throws
 * the first problem found. Every live id is released even when the call throws, as the contract requires.
 *
 * @param ids The ids passed to `doRelease`.
 * @param release Frees the sequence `id` and returns `true`, or returns `false` when `id` is not live.
 * @throws {SequenceError} an id listed twice (`duplicate`) or not live (`unknown`); the first in `ids` order.
 */
export function releaseSequences(ids: readonly string[], release: (id: string) => boolean): void {
  const seen = new Set<string>();
  let problem: SequenceError | undefined;
  for (const id of ids) {
    if (seen.has(id)) {
      problem ??= new SequenceError({
        sequenceId: id,
        reason: 'duplicate',
        message: `id ${JSON.stringify(id)} is listed twice`,
      });
      continue;
    }
    seen.add(id);
    if (!release(id)) {
      problem ??= new SequenceError({
        sequenceId: id,
        reason: 'unknown',
        message: `cannot release sequence ${JSON.stringify(id)}: it is not live (never created or already released)`,
      });
    }
  }
  if (problem !== undefined) throw problem;
}

/**
 * Makes the checks of `BackendV1.doFork`: `fromId` must be live and `toId` must not be. Changes nothing.
 *
 * @param fromId The sequence to copy.
 * @param toId The id of the copy.
 * @param isLive Whether a sequence with this id is live.
 * @throws {SequenceError} `fromId` is not live (`unknown`), or `toId` is live (`exists`); checked in that order.
 */
/**
 * Checks `doFork`'s `options.length` against the source's length: an integer in `1..sourceLength`.
 *
 * @throws {SequenceError} `position-mismatch`.
 */
export function checkForkLength(fromId: string, length: number | undefined, sourceLength: number): number {
  if (length === undefined) return sourceLength;
  if (!Number.isInteger(length) || length < 1 || length > sourceLength) {
    throw new SequenceError({
      sequenceId: fromId,
      reason: 'position-mismatch',
      message: `cannot fork the first ${String(length)} tokens of ${JSON.stringify(fromId)}: it holds ${sourceLength} (give an integer in 1..${sourceLength})`,
    });
  }
  return length;
}

export function checkForkIds(fromId: string, toId: string, isLive: (id: string) => boolean): void {
  if (!isLive(fromId)) {
    throw new SequenceError({
      sequenceId: fromId,
      reason: 'unknown',
      message: `cannot fork sequence ${JSON.stringify(fromId)}: it is not live (never created or already released)`,
    });
  }
  if (isLive(toId)) {
    throw new SequenceError({
      sequenceId: toId,
      reason: 'exists',
      message: `cannot fork into ${JSON.stringify(toId)}: that sequence is live`,
    });
  }
}

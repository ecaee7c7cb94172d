import { AbortError, BatchLimitError, InvalidInputError, PositionLimitError } from '../errors.js';
import type { BackendEmbedOptionsV1 } from '../v1/index.js';

/** The limits {@link checkEmbedInputs} checks a `doEmbed` call against. */
export interface EmbedInputLimits {
  /** `model.vocabSize`: token ids must be integers in `[0, vocabSize)`. */
  readonly vocabSize: number;
  /** `model.maxPositions`: the longest input. */
  readonly maxPositions: number;
  /** `capabilities.maxBatchSize`: the most inputs per call. */
  readonly maxBatchSize: number;
}

/**
 * Makes every check `BackendV1.doEmbed` requires, in this order: the signal, the pooling, the number of inputs,
 * then for each input in order its tokens (at least one, each an integer in `[0, vocabSize)`) and its length (at
 * most `maxPositions`). Errors about one input carry its index as a string in `sequenceId`.
 *
 * @param options The `doEmbed` arguments.
 * @param limits The model's vocabulary size and position limit, and the backend's batch limit.
 * @returns A fresh copy of each input's tokens, in input order.
 * @throws {AbortError} `options.signal` is already aborted.
 * @throws {InvalidInputError} a `pooling` other than `mean` and `last`, no inputs, an input with no tokens, or a
 *   token id that is not an integer in `[0, vocabSize)`.
 * @throws {BatchLimitError} more than `maxBatchSize` inputs.
 * @throws {PositionLimitError} an input longer than `maxPositions`.
 */
export function checkEmbedInputs(options: BackendEmbedOptionsV1, limits: EmbedInputLimits): Int32Array[] {
  AbortError.throwIfAborted(options.signal);
  const { vocabSize, maxPositions, maxBatchSize } = limits;
  const pooling: unknown = options.pooling;
  if (pooling !== 'mean' && pooling !== 'last') {
    throw new InvalidInputError({ message: `pooling must be "mean" or "last", got ${JSON.stringify(pooling)}` });
  }
  const inputs = options.tokens;
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw new InvalidInputError({ message: 'doEmbed needs at least one input' });
  }
  if (inputs.length > maxBatchSize) throw new BatchLimitError({ batchSize: inputs.length, maxBatchSize });
  return inputs.map((tokens: ArrayLike<number>, index) => {
    const sequenceId = String(index);
    if (tokens.length === 0) throw new InvalidInputError({ sequenceId, message: `input ${index} has no tokens` });
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]!;
      if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
        throw new InvalidInputError({
          sequenceId,
          message: `input ${index}: token ${i} is ${token}, not an integer in [0, ${vocabSize})`,
        });
      }
    }
    if (tokens.length > maxPositions) {
      throw new PositionLimitError({ sequenceId, requestedPositions: tokens.length, maxPositions });
    }
    return Int32Array.from(tokens);
  });
}

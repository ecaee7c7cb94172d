import { describe, expect, it } from 'vitest';
import { AbortError, BatchLimitError, InvalidInputError, PositionLimitError } from '../errors.js';
import type { BackendEmbedOptionsV1 } from '../v1/index.js';
import { checkEmbedInputs } from './check-embed-inputs.js';

const limits = { vocabSize: 10, maxPositions: 4, maxBatchSize: 2 };
const check = (options: BackendEmbedOptionsV1) => checkEmbedInputs(options, limits);

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('checkEmbedInputs', () => {
  it('returns a copy of each input, in input order', () => {
    const first = [1, 2, 3];
    const checked = check({ tokens: [first, Int32Array.of(9)], pooling: 'mean' });
    expect(checked).toEqual([Int32Array.of(1, 2, 3), Int32Array.of(9)]);
    first[0] = 5;
    expect(checked[0]![0]).toBe(1);
  });

  it('refuses an aborted signal first, with the reason as cause', () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    const error = thrown(() => check({ tokens: [], pooling: 'bogus' as never, signal: controller.signal }));
    expect(AbortError.isInstance(error)).toBe(true);
    expect((error as AbortError).cause).toEqual(new Error('stop'));
  });

  it('refuses an unknown pooling, no inputs and too many inputs', () => {
    const pooling = thrown(() => check({ tokens: [[1]], pooling: 'max' as never }));
    expect(InvalidInputError.isInstance(pooling)).toBe(true);
    expect((pooling as Error).message).toBe('pooling must be "mean" or "last", got "max"');
    const none = thrown(() => check({ tokens: [], pooling: 'mean' }));
    expect(InvalidInputError.isInstance(none)).toBe(true);
    expect((none as InvalidInputError).sequenceId).toBeUndefined();
    const over = thrown(() => check({ tokens: [[1], [2], [3]], pooling: 'last' }));
    expect(BatchLimitError.isInstance(over)).toBe(true);
    expect(over).toMatchObject({ batchSize: 3, maxBatchSize: 2 });
  });

  it('names the offending input by its index', () => {
    for (const tokens of [[], [10], [-1], [0.5], [Number.NaN]]) {
      const error = thrown(() => check({ tokens: [[1], tokens], pooling: 'mean' }));
      expect(InvalidInputError.isInstance(error), JSON.stringify(tokens)).toBe(true);
      expect((error as InvalidInputError).sequenceId).toBe('1');
    }
    expect((thrown(() => check({ tokens: [[3, 10]], pooling: 'mean' })) as Error).message).toBe(
      'input 0: token 1 is 10, not an integer in [0, 10)',
    );
    const long = thrown(() => check({ tokens: [[1], [1, 2, 3, 4, 5]], pooling: 'last' }));
    expect(PositionLimitError.isInstance(long)).toBe(true);
    expect(long).toMatchObject({ sequenceId: '1', requestedPositions: 5, maxPositions: 4 });
    expect(check({ tokens: [[1, 2, 3, 4]], pooling: 'last' })).toHaveLength(1);
  });
});

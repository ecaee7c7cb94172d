import { describe, expect, it } from 'vitest';
import { AbortError, BatchLimitError, InvalidInputError, PositionLimitError, SequenceError } from '../errors.js';
import type { BackendForwardOptionsV1 } from '../v1/index.js';
import { checkForkIds, checkForwardInputs, forwardLogitsArray, releaseSequences } from './check-inputs.js';

const limits = { vocabSize: 10, maxPositions: 8, maxBatchSize: 2 };
/** Sequence `a` holds 3 tokens, `b` holds 6; every other id is not live. */
const lengths = new Map([
  ['a', 3],
  ['b', 6],
]);
const lengthOf = (id: string): number | undefined => lengths.get(id);
const check = (options: BackendForwardOptionsV1): ReturnType<typeof checkForwardInputs> =>
  checkForwardInputs(options, limits, lengthOf);

/** The error `run` throws (fails when it returns). */
function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('checkForwardInputs', () => {
  it('returns each input in input order with a copy of its tokens and its start position', () => {
    const tokens = [1, 2];
    const checked = check({
      sequences: [
        { id: 'new', tokens, startPosition: 0 },
        { id: 'a', tokens: Int32Array.of(9), wantPromptLogits: true },
      ],
    });
    expect(checked).toEqual([
      { id: 'new', tokens: Int32Array.of(1, 2), start: 0, wantPromptLogits: false },
      { id: 'a', tokens: Int32Array.of(9), start: 3, wantPromptLogits: true },
    ]);
    tokens[0] = 5;
    expect(checked[0]!.tokens[0]).toBe(1);
  });

  it('accepts a matching startPosition and a sequence that reaches exactly maxPositions', () => {
    expect(check({ sequences: [{ id: 'b', tokens: [1, 2], startPosition: 6 }] })[0]!.start).toBe(6);
  });

  it('throws AbortError first when the signal is already aborted', () => {
    const controller = new AbortController();
    controller.abort('stop');
    const error = thrown(() => check({ sequences: [], signal: controller.signal }));
    expect(AbortError.isInstance(error)).toBe(true);
    expect((error as AbortError).cause).toBe('stop');
  });

  it('rejects an empty batch with InvalidInputError', () => {
    const error = thrown(() => check({ sequences: [] }));
    expect(InvalidInputError.isInstance(error)).toBe(true);
    expect((error as Error).message).toBe('doForward needs at least one sequence');
  });

  it('rejects more than maxBatchSize sequences with BatchLimitError before looking at the inputs', () => {
    const error = thrown(() =>
      check({
        sequences: [
          { id: 'x', tokens: [] },
          { id: 'x', tokens: [] },
          { id: 'y', tokens: [1] },
        ],
      }),
    );
    expect(BatchLimitError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ batchSize: 3, maxBatchSize: 2 });
  });

  it('rejects an id that is not a string with InvalidInputError', () => {
    const error = thrown(() => check({ sequences: [{ id: 7 as unknown as string, tokens: [1] }] }));
    expect(InvalidInputError.isInstance(error)).toBe(true);
    expect((error as Error).message).toBe('sequence id must be a string, got number');
  });

  it('rejects a duplicate id with SequenceError duplicate, before checking its tokens', () => {
    const error = thrown(() =>
      check({
        sequences: [
          { id: 'x', tokens: [1] },
          { id: 'x', tokens: [] },
        ],
      }),
    );
    expect(SequenceError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ sequenceId: 'x', reason: 'duplicate', message: 'id "x" appears twice in one batch' });
  });

  it('rejects empty tokens with InvalidInputError naming the sequence', () => {
    const error = thrown(() => check({ sequences: [{ id: 'x', tokens: [] }] }));
    expect(InvalidInputError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ sequenceId: 'x', message: 'sequence "x" has no tokens to append' });
  });

  it.each([
    [-1, 'token 1 is -1'],
    [10, 'token 1 is 10'],
    [1.5, 'token 1 is 1.5'],
    [Number.NaN, 'token 1 is NaN'],
  ])('rejects token %s with InvalidInputError', (token, what) => {
    const error = thrown(() => check({ sequences: [{ id: 'x', tokens: [0, token] }] }));
    expect(InvalidInputError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      sequenceId: 'x',
      message: `sequence "x": ${what}, not an integer in [0, 10)`,
    });
  });

  it('rejects a startPosition that differs from a live sequence with SequenceError position-mismatch', () => {
    const error = thrown(() => check({ sequences: [{ id: 'a', tokens: [1], startPosition: 2 }] }));
    expect(SequenceError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      sequenceId: 'a',
      reason: 'position-mismatch',
      message: 'sequence "a" holds 3 tokens, but startPosition is 2',
    });
  });

  it('rejects a positive startPosition on an id that is not live with SequenceError unknown', () => {
    const error = thrown(() => check({ sequences: [{ id: 'gone', tokens: [1], startPosition: 4 }] }));
    expect(SequenceError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      sequenceId: 'gone',
      reason: 'unknown',
      message: 'sequence "gone" is not live (never created or already released), but startPosition is 4',
    });
  });

  it('rejects growing past maxPositions with PositionLimitError, after the startPosition check', () => {
    const error = thrown(() => check({ sequences: [{ id: 'b', tokens: [1, 2, 3] }] }));
    expect(PositionLimitError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ sequenceId: 'b', requestedPositions: 9, maxPositions: 8 });
    const mismatch = thrown(() => check({ sequences: [{ id: 'b', tokens: [1, 2, 3], startPosition: 0 }] }));
    expect(SequenceError.isInstance(mismatch)).toBe(true);
  });

  it('checks the inputs one after another: the first bad input decides the error', () => {
    const error = thrown(() =>
      check({
        sequences: [
          { id: 'b', tokens: [1, 2, 3] },
          { id: 'x', tokens: [] },
        ],
      }),
    );
    expect(PositionLimitError.isInstance(error)).toBe(true);
  });
});

describe('releaseSequences', () => {
  it('releases every distinct live id, in order', () => {
    const released: string[] = [];
    releaseSequences(['a', 'b'], (id) => released.push(id) > 0);
    expect(released).toEqual(['a', 'b']);
  });

  it('releases every live id and then throws the first problem: an unknown id', () => {
    const live = new Set(['a', 'b']);
    const error = thrown(() => releaseSequences(['a', 'gone', 'b', 'a'], (id) => live.delete(id)));
    expect(live.size).toBe(0);
    expect(SequenceError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      sequenceId: 'gone',
      reason: 'unknown',
      message: 'cannot release sequence "gone": it is not live (never created or already released)',
    });
  });

  it('throws SequenceError duplicate for an id listed twice, calling release once for it', () => {
    const calls: string[] = [];
    const error = thrown(() => releaseSequences(['a', 'a', 'gone'], (id) => calls.push(id) > 0 && id === 'a'));
    expect(calls).toEqual(['a', 'gone']);
    expect(error).toMatchObject({ sequenceId: 'a', reason: 'duplicate', message: 'id "a" is listed twice' });
  });
});

describe('logitsBuffer', () => {
  it('rejects a logitsBuffer that is not a Float32Array with InvalidInputError', () => {
    const options = { sequences: [{ id: 'a', tokens: [1] }], logitsBuffer: new Float64Array(8) as never };
    const error = thrown(() => checkForwardInputs(options, limits, () => undefined));
    expect(InvalidInputError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ message: 'logitsBuffer must be a Float32Array' });
  });

  it('forwardLogitsArray: the leading part of a long enough buffer, a fresh array otherwise', () => {
    const buffer = new Float32Array(12).fill(7);
    const sequences = [{ id: 'a', tokens: [1] }];
    const view = forwardLogitsArray({ sequences, logitsBuffer: buffer }, 2, 5);
    expect(view.buffer).toBe(buffer.buffer);
    expect(view.byteOffset).toBe(0);
    expect(view.length).toBe(10);
    const fresh = forwardLogitsArray({ sequences, logitsBuffer: buffer }, 3, 5);
    expect(fresh.buffer).not.toBe(buffer.buffer);
    expect(Array.from(fresh)).toEqual(new Array(15).fill(0));
    expect(forwardLogitsArray({ sequences }, 1, 4)).toEqual(new Float32Array(4));
  });
});

describe('checkForkIds', () => {
  const isLive = (id: string): boolean => id === 'a' || id === 'b';

  it('accepts a live source and a free target', () => {
    expect(() => checkForkIds('a', 'c', isLive)).not.toThrow();
  });

  it('rejects a source that is not live with SequenceError unknown (checked first)', () => {
    const error = thrown(() => checkForkIds('gone', 'b', isLive));
    expect(SequenceError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      sequenceId: 'gone',
      reason: 'unknown',
      message: 'cannot fork sequence "gone": it is not live (never created or already released)',
    });
  });

  it('rejects a live target with SequenceError exists', () => {
    const error = thrown(() => checkForkIds('a', 'b', isLive));
    expect(SequenceError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      sequenceId: 'b',
      reason: 'exists',
      message: 'cannot fork into "b": that sequence is live',
    });
  });
});

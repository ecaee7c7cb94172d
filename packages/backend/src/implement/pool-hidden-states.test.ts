import { describe, expect, it } from 'vitest';
import { poolHiddenStates } from './pool-hidden-states.js';

// Three inputs of 2, 1 and 3 rows of width 2.
const rows = Float32Array.of(1, 2, 3, 4, 5, 6, 0, 0, 1, 1, 2, -4);
const lengths = [2, 1, 3];

describe('poolHiddenStates', () => {
  it('mean averages each input’s rows', () => {
    expect(poolHiddenStates(rows, lengths, 2, 'mean').map((v) => [...v])).toEqual([
      [2, 3],
      [5, 6],
      [1, -1],
    ]);
  });

  it('last copies each input’s last row into a fresh array', () => {
    const pooled = poolHiddenStates(rows, lengths, 2, 'last');
    expect(pooled.map((v) => [...v])).toEqual([
      [3, 4],
      [5, 6],
      [2, -4],
    ]);
    expect(pooled[0]!.buffer).not.toBe(rows.buffer);
  });

  it('gives the same vector for a single row with either pooling', () => {
    const one = Float32Array.of(0.1, -0.3, 7);
    expect(poolHiddenStates(one, [1], 3, 'mean')).toEqual(poolHiddenStates(one, [1], 3, 'last'));
  });
});

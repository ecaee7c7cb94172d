import type { BackendEmbeddingPoolingV1 } from '../v1/index.js';

/**
 * Pools hidden-state rows into one vector per input, as `BackendV1.doEmbed` returns them: `rows` holds every
 * input's `[length, hiddenSize]` states back to back, in input order (`lengths[i]` rows for input `i`). `mean`
 * averages an input's rows (summed in float64), `last` copies its last row.
 *
 * @param rows The hidden states, row-major, `Σ lengths` rows of `hiddenSize`.
 * @param lengths Rows per input, each at least 1.
 * @param hiddenSize Width of a row.
 * @param pooling `mean` or `last`.
 * @returns One fresh `Float32Array` of `hiddenSize` per input.
 */
export function poolHiddenStates(
  rows: Float32Array,
  lengths: readonly number[],
  hiddenSize: number,
  pooling: BackendEmbeddingPoolingV1,
): Float32Array[] {
  const pooled: Float32Array[] = [];
  const sum = new Float64Array(hiddenSize);
  let row = 0;
  for (const length of lengths) {
    if (pooling === 'last') {
      const from = (row + length - 1) * hiddenSize;
      pooled.push(rows.slice(from, from + hiddenSize));
    } else {
      sum.fill(0);
      for (let r = row; r < row + length; r++) {
        for (let d = 0; d < hiddenSize; d++) sum[d] = sum[d]! + rows[r * hiddenSize + d]!;
      }
      const vector = new Float32Array(hiddenSize);
      for (let d = 0; d < hiddenSize; d++) vector[d] = sum[d]! / length;
      pooled.push(vector);
    }
    row += length;
  }
  return pooled;
}

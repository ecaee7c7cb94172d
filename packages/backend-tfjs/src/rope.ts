/**
 * Per-row multipliers that apply rotary embeddings to a whole `[rows, heads + 2 * kvHeads, headDim]` q/k/v block
 * as `out = x * cos + rotateHalf(x) * sin` (Hugging Face "rotate_half" layout: entry `i` pairs with
 * `i + headDim / 2`). Query heads get `cos * queryScale` / `sin * queryScale` (the attention's `1 / sqrt(headDim)`
 * folded in), key heads plain `cos` / `sin`, value heads `1` / `0` (left as they are). The angle
 * `position * invFreq` is rounded to float32 first, as transformers computes it.
 */
export function rotaryMultipliers(
  positions: ArrayLike<number>,
  inverse: Float32Array,
  heads: number,
  kvHeads: number,
  queryScale: number,
): { cos: Float32Array; sin: Float32Array } {
  const half = inverse.length;
  const headDim = 2 * half;
  const width = (heads + 2 * kvHeads) * headDim;
  const cos = new Float32Array(positions.length * width);
  const sin = new Float32Array(positions.length * width);
  const rowCos = new Float32Array(headDim);
  const rowSin = new Float32Array(headDim);
  for (let t = 0; t < positions.length; t++) {
    const p = positions[t]!;
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * inverse[i]!);
      rowCos[i] = rowCos[i + half] = Math.cos(angle);
      rowSin[i] = rowSin[i + half] = Math.sin(angle);
    }
    const base = t * width;
    for (let h = 0; h < heads + 2 * kvHeads; h++) {
      const at = base + h * headDim;
      if (h < heads) {
        for (let d = 0; d < headDim; d++) {
          cos[at + d] = rowCos[d]! * queryScale;
          sin[at + d] = rowSin[d]! * queryScale;
        }
      } else if (h < heads + kvHeads) {
        cos.set(rowCos, at);
        sin.set(rowSin, at);
      } else {
        cos.fill(1, at, at + headDim);
      }
    }
  }
  return { cos, sin };
}

/** The `[headDim, headDim]` matrix `R` with `x · R = rotateHalf(x) = [-x[half:], x[:half]]` (exact: one ±1 per column). */
export function rotateHalfMatrix(headDim: number): Float32Array {
  const half = headDim / 2;
  const matrix = new Float32Array(headDim * headDim);
  for (let j = 0; j < half; j++) {
    matrix[(j + half) * headDim + j] = -1;
    matrix[j * headDim + j + half] = 1;
  }
  return matrix;
}

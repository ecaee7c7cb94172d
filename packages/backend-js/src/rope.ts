/**
 * Fills `cos` / `sin` (`[positions.length, headDim / 2]`) for each position. The angle `position * invFreq` is
 * rounded to float32 first, as transformers computes it (`inv_freq.float() @ position_ids.float()`).
 */
export function rotaryTables(
  positions: Int32Array,
  count: number,
  inverse: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
): void {
  const half = inverse.length;
  for (let t = 0; t < count; t++) {
    const p = positions[t]!;
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * inverse[i]!);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
}

/**
 * Rotates `heads` heads of each row in place, in the Hugging Face "rotate_half" layout: entry `i` pairs with
 * `i + headDim / 2`, `x'[i] = x[i] cos - x[i + half] sin`, `x'[i + half] = x[i + half] cos + x[i] sin`.
 */
export function applyRotary(
  data: Float32Array,
  count: number,
  heads: number,
  headDim: number,
  cos: Float32Array,
  sin: Float32Array,
): void {
  const half = headDim / 2;
  const rowSize = heads * headDim;
  for (let t = 0; t < count; t++) {
    const table = t * half;
    for (let h = 0; h < heads; h++) {
      const base = t * rowSize + h * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[table + i]!;
        const s = sin[table + i]!;
        const x1 = data[base + i]!;
        const x2 = data[base + half + i]!;
        data[base + i] = x1 * c - x2 * s;
        data[base + half + i] = x2 * c + x1 * s;
      }
    }
  }
}

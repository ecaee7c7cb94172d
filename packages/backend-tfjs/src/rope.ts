/** How the rotary multipliers of one q/k/v row block are laid out and what is folded into them. */
export interface RotaryLayout {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Leading entries of each head that are rotated (`headDim` unless partial rotary); the rest pass through. */
  readonly rotaryDim: number;
  /** Factor on the query heads' multipliers: the attention's score scale, folded in. */
  readonly queryScale: number;
}

/** Consecutive rows at positions `start, start + 1, …` sharing one rotary embedding. */
export interface RotaryRun {
  readonly start: number;
  readonly count: number;
  /** `[rotaryDim / 2]` inverse frequencies. */
  readonly inverse: Float32Array;
  /** Multiplies the rotated entries' cos and sin (yarn / longrope; 1 otherwise). */
  readonly attentionFactor: number;
}

/**
 * Per-row multipliers that apply rotary embeddings to a whole `[rows, heads + 2 * kvHeads, headDim]` q/k/v block
 * as `out = x * cos + rotateHalf(x) * sin` (Hugging Face "rotate_half" layout within the first `rotaryDim` entries:
 * entry `i` pairs with `i + rotaryDim / 2`; later entries get cos 1, sin 0). Query heads get their multipliers
 * times `queryScale`; value heads `1` / `0` (left as they are). The angle
 * `position * invFreq` is rounded to float32 first and cos / sin of rotated entries are multiplied by the run's
 * attention factor, as transformers computes them. Rows are the runs' rows in order.
 */
export function rotaryMultipliers(
  runs: readonly RotaryRun[],
  layout: RotaryLayout,
): { cos: Float32Array; sin: Float32Array } {
  const { heads, kvHeads, headDim, rotaryDim, queryScale } = layout;
  const half = rotaryDim / 2;
  const width = (heads + 2 * kvHeads) * headDim;
  let rows = 0;
  for (const run of runs) rows += run.count;
  const cos = new Float32Array(rows * width);
  const sin = new Float32Array(rows * width);
  const rowCos = new Float32Array(headDim);
  const rowSin = new Float32Array(headDim);
  rowCos.fill(1, rotaryDim);
  let t = 0;
  for (const run of runs) {
    const { inverse, attentionFactor } = run;
    for (let j = 0; j < run.count; j++, t++) {
      const p = run.start + j;
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(p * inverse[i]!);
        rowCos[i] = rowCos[i + half] = Math.fround(Math.cos(angle)) * attentionFactor;
        rowSin[i] = rowSin[i + half] = Math.fround(Math.sin(angle)) * attentionFactor;
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
  }
  return { cos, sin };
}

/**
 * The `[headDim, headDim]` matrix `R` with `x · R = rotateHalf(x)`: `[-x[half:rotaryDim], x[:half], 0…]` over the
 * first `rotaryDim` entries (`half = rotaryDim / 2`), zero columns for the pass-through rest (exact: at most one ±1
 * per column).
 */
export function rotateHalfMatrix(headDim: number, rotaryDim = headDim): Float32Array {
  const half = rotaryDim / 2;
  const matrix = new Float32Array(headDim * headDim);
  for (let j = 0; j < half; j++) {
    matrix[(j + half) * headDim + j] = -1;
    matrix[j * headDim + j + half] = 1;
  }
  return matrix;
}

/**
 * Fast exp for the hot loops of sampling. `exp(d)` for `d <= 0` via a 2^(-i/32) table and a degree-4 polynomial
 * on the remainder (|r| < ln2/32): relative error below 1e-10, far under float32 resolution, about 3.5x faster
 * than `Math.exp` in V8.
 */

const STEPS_PER_LN2 = 32;
/** Below this, exp underflows float32 (torch gives 0 or a denormal; either is negligible in any sum). */
export const EXP_UNDERFLOW = -87;
const SCALE = STEPS_PER_LN2 / Math.LN2;
const STEP = Math.LN2 / STEPS_PER_LN2;
const TABLE = new Float64Array(Math.ceil(-EXP_UNDERFLOW * SCALE) + 2);
for (let i = 0; i < TABLE.length; i++) TABLE[i] = Math.pow(2, -i / STEPS_PER_LN2);

/** exp(d) for d <= 0 (returns 0 below {@link EXP_UNDERFLOW}); relative error < 1e-10. */
export function expNonPositive(d: number): number {
  if (!(d >= EXP_UNDERFLOW)) return 0;
  const n = (d * SCALE) | 0;
  const r = d - n * STEP;
  return TABLE[-n]! * (1 + r * (1 + r * (0.5 + r * (0.16666666666666666 + r * 0.041666666666666664))));
}

/** Largest value of `values[0..length)` (-Infinity when empty or all -Infinity; NaN is never the max). */
export function maxOf(values: Float32Array, length = values.length): number {
  let max = -Infinity;
  for (let i = 0; i < length; i++) {
    const v = values[i]!;
    if (v > max) max = v;
  }
  return max;
}

/**
 * `sum_i exp((values[i] - max) * scale)` over a whole row, with `scale = 1 / temperature`. Entries equal to
 * -Infinity contribute 0. `max` must be the row's maximum (so every exponent is <= 0).
 */
export function sumExpShifted(values: Float32Array, max: number, scale: number, length = values.length): number {
  let sum = 0;
  for (let i = 0; i < length; i++) {
    const d = (values[i]! - max) * scale;
    if (!(d >= EXP_UNDERFLOW)) continue;
    const n = (d * SCALE) | 0;
    const r = d - n * STEP;
    sum += TABLE[-n]! * (1 + r * (1 + r * (0.5 + r * (0.16666666666666666 + r * 0.041666666666666664))));
  }
  return sum;
}

/**
 * Float32 bounds of a predicate: the smallest or largest float32 value where a predicate that holds on one interval
 * of float32 values (and at a known witness) is true, found by bisection on the ordered bit patterns. Lets a
 * threshold computed in float64 on the JS side (min_p's `(s - max) * scale >= ln(min_p)`, typical_p's distance to
 * the entropy) become an exact float32 comparison for the SIMD kernels.
 */

const value32 = new Float32Array(1);
const bits32 = new Uint32Array(value32.buffer);

/** Order-preserving map from a float32 value (not NaN) to an unsigned 32-bit key. */
function keyOf(value: number): number {
  value32[0] = value;
  const bits = bits32[0]!;
  return bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
}

/** Inverse of {@link keyOf}. */
function valueOf(key: number): number {
  bits32[0] = key & 0x80000000 ? key & 0x7fffffff : ~key >>> 0;
  return value32[0]!;
}

/**
 * The smallest float32 value s (-Infinity allowed) with `holds(s)`, given that `holds(witness)` is true and that
 * the values where it holds form one interval.
 */
export function lowestFloat32(holds: (value: number) => boolean, witness: number): number {
  if (holds(-Infinity)) return -Infinity;
  let below = keyOf(-Infinity);
  let at = keyOf(witness);
  while (at - below > 1) {
    const middle = below + Math.floor((at - below) / 2);
    if (holds(valueOf(middle))) at = middle;
    else below = middle;
  }
  return valueOf(at);
}

/**
 * The largest float32 value s (+Infinity allowed) with `holds(s)`, given that `holds(witness)` is true and that
 * the values where it holds form one interval.
 */
export function highestFloat32(holds: (value: number) => boolean, witness: number): number {
  if (holds(Infinity)) return Infinity;
  let at = keyOf(witness);
  let above = keyOf(Infinity);
  while (above - at > 1) {
    const middle = at + Math.floor((above - at) / 2);
    if (holds(valueOf(middle))) at = middle;
    else above = middle;
  }
  return valueOf(at);
}

/**
 * Value of an IEEE 754 binary16 (half precision) number given its 16 bits.
 *
 * Exact for every input: normal numbers are `(1 + m / 1024) * 2^(e - 15)`, subnormals (`e = 0`) are
 * `m * 2^-24`, `±0` keeps its sign, `e = 31` is `±Infinity` (`m = 0`) or NaN.
 */
export function float16BitsToNumber(bits: number): number {
  const sign = (bits & 0x8000) !== 0 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : Number.NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

let float16Table: Float32Array | undefined;

/** All 65,536 half-precision values as float32 (256 KiB, built on first use); every one is exact in float32. */
function getFloat16Table(): Float32Array {
  if (float16Table === undefined) {
    float16Table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) float16Table[bits] = float16BitsToNumber(bits);
  }
  return float16Table;
}

/** Writes `source.length` half-precision values, converted, into `target` starting at `targetOffset`. */
export function convertFloat16ToFloat32(source: Uint16Array, target: Float32Array, targetOffset: number): void {
  const table = getFloat16Table();
  const n = source.length;
  for (let i = 0; i < n; i++) target[targetOffset + i] = table[source[i]!]!;
}

/**
 * Writes `source.length` bfloat16 values, converted, into `target` (a view of float32 bits) starting at
 * `targetOffset`. bfloat16 is the upper half of a float32, so the conversion is exact: `bits << 16`.
 */
export function convertBfloat16ToFloat32(source: Uint16Array, target: Uint32Array, targetOffset: number): void {
  const n = source.length;
  for (let i = 0; i < n; i++) target[targetOffset + i] = source[i]! << 16;
}

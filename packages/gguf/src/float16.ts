/**
 * IEEE half (fp16) and bfloat16 conversions, bit-exact with ggml's scalar code in `ggml-impl.h`
 * (`ggml_compute_fp32_to_fp16`, `ggml_compute_fp16_to_fp32`, `ggml_compute_fp32_to_bf16`,
 * `ggml_compute_bf16_to_fp32`).
 *
 * All conversions round to nearest, ties to even, keep subnormals and overflow to infinity. NaN handling follows
 * ggml: fp32 → fp16 maps every NaN to `sign | 0x7e00`; fp32 → bf16 keeps the top payload bits and sets the quiet bit.
 * The `*FromF32Bits` variants take the float's raw bits, so that the sign and payload of a NaN (which a JavaScript
 * `number` cannot carry reliably) are honoured exactly as in C.
 */

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Raw IEEE bits of the float32 nearest to `value`. */
export function f32Bits(value: number): number {
  scratchF32[0] = value;
  return scratchU32[0]!;
}

/** The float32 whose raw bits are `bits` (a NaN's payload is not guaranteed to survive as a JavaScript number). */
export function f32FromBits(bits: number): number {
  scratchU32[0] = bits;
  return scratchF32[0]!;
}

/** `0x1.0p+112f` and `0x1.0p-110f` of ggml's conversion. */
const SCALE_TO_INF = 2 ** 112;
const SCALE_TO_ZERO = 2 ** -110;

/**
 * fp16 bits of a float32 given by its raw bits — ggml's `ggml_compute_fp32_to_fp16`, step by step.
 *
 * The trick (from Maratyszcza's FP16 library): scaling `|f|` by 2^112 then 2^-110 lets the float32 adder do the
 * rounding to nearest even into the half's 10-bit mantissa; overflow lands on infinity through the same addition.
 */
export function f16FromF32Bits(bits: number): number {
  const w = bits >>> 0;
  let base = Math.fround(Math.fround(f32FromBits(w & 0x7fffffff) * SCALE_TO_INF) * SCALE_TO_ZERO);
  const shl1w = (w << 1) >>> 0;
  const sign = (w & 0x80000000) >>> 0;
  let bias = (shl1w & 0xff000000) >>> 0;
  if (bias < 0x71000000) bias = 0x71000000;
  base = Math.fround(f32FromBits(((bias >>> 1) + 0x07800000) >>> 0) + base);
  const baseBits = f32Bits(base);
  const expBits = (baseBits >>> 13) & 0x00007c00;
  const mantissaBits = baseBits & 0x00000fff;
  const nonsign = expBits + mantissaBits;
  return ((sign >>> 16) | (shl1w > 0xff000000 ? 0x7e00 : nonsign)) & 0xffff;
}

/** fp16 bits of `value` rounded to float32 first, then to half with ties to even (ggml's `GGML_FP32_TO_FP16`). */
export function f32ToF16Bits(value: number): number {
  return f16FromF32Bits(f32Bits(value));
}

/**
 * Raw float32 bits of an fp16 value, as ggml's `ggml_compute_fp16_to_fp32` produces them: exact for every finite
 * value and infinity; a NaN keeps its sign and payload (shifted into place) and gets the quiet bit.
 */
export function f32BitsFromF16Bits(half: number): number {
  const h = half & 0xffff;
  const sign = (h & 0x8000) << 16;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0x1f) {
    return (sign | 0x7f800000 | (mantissa === 0 ? 0 : 0x00400000 | (mantissa << 13))) >>> 0;
  }
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal half: normalise the mantissa into a float32 normal.
  let e = 113;
  let m = mantissa;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e -= 1;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/** The value of an fp16 bit pattern (ggml's `GGML_FP16_TO_FP32`); exact, NaN for every NaN pattern. */
export function f16BitsToF32(half: number): number {
  return f32FromBits(f32BitsFromF16Bits(half));
}

/** bf16 bits of a float32 given by its raw bits — ggml's `ggml_compute_fp32_to_bf16` (`GGML_FP32_TO_BF16`). */
export function bf16FromF32Bits(bits: number): number {
  const w = bits >>> 0;
  if ((w & 0x7fffffff) > 0x7f800000) return ((w >>> 16) | 64) & 0xffff; // NaN: force quiet
  return ((w + (0x7fff + ((w >>> 16) & 1))) / 0x10000) & 0xffff;
}

/** bf16 bits of `value` rounded to float32 first, then to bfloat16 with ties to even. */
export function f32ToBf16Bits(value: number): number {
  return bf16FromF32Bits(f32Bits(value));
}

/** The value of a bf16 bit pattern: the float32 with those 16 bits on top (ggml's `GGML_BF16_TO_FP32`). */
export function bf16BitsToF32(bits: number): number {
  return f32FromBits(((bits & 0xffff) << 16) >>> 0);
}

let f16Table: Uint32Array | undefined;

/** float32 bits of all 65,536 fp16 patterns, built on first use (256 KiB). */
export function f16ToF32BitsTable(): Uint32Array {
  if (f16Table === undefined) {
    const table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = f32BitsFromF16Bits(h);
    f16Table = table;
  }
  return f16Table;
}

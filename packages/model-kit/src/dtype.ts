/**
 * Weight storage types and the float conversions between them (round to nearest, ties to even, as PyTorch's
 * `tensor.to(torch.float16 | torch.bfloat16)`).
 */

/** Storage type of weights in `model.safetensors`. ONNX graphs always hold float32 weights. */
export type WeightDtype = 'float32' | 'float16' | 'bfloat16';

/** The safetensors `dtype` code of each {@link WeightDtype}. */
export const safetensorsDtypeCode = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' } as const;

/** Bytes per element of each {@link WeightDtype}. */
export const dtypeByteSize = { float32: 4, float16: 2, bfloat16: 2 } as const;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The IEEE binary16 bit pattern nearest to `value` (ties to even; overflow to infinity; NaN kept). */
export function float32ToFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200);
  const e = exponent - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++; // a carry into the exponent is correct
  return sign | half;
}

/** The value of the IEEE binary16 bit pattern `bits`. */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** The bfloat16 bit pattern nearest to `value` (ties to even; NaN becomes the quiet NaN 0x7fc0). */
export function float32ToBfloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The value of the bfloat16 bit pattern `bits`. */
export function bfloat16BitsToFloat32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/**
 * Rounds every value of `values` (in place) to the nearest value representable in `dtype`, so that float32 copies
 * of the weights (the ONNX graph, a reference forward) equal what the safetensors file holds.
 */
export function roundToDtype(values: Float32Array, dtype: WeightDtype): Float32Array {
  if (dtype === 'float16') {
    for (let i = 0; i < values.length; i++) values[i] = float16BitsToFloat32(float32ToFloat16Bits(values[i]!));
  } else if (dtype === 'bfloat16') {
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < bits.length; i++) {
      const x = bits[i]!;
      bits[i] = (x & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) << 16;
    }
  }
  return values;
}

/** Little-endian bytes of `values` stored as `dtype` (for float32, a view of `values` itself). */
export function encodeAsDtype(values: Float32Array, dtype: WeightDtype): Uint8Array {
  if (dtype === 'float32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint16Array(values.length);
  if (dtype === 'float16') {
    for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16Bits(values[i]!);
  } else {
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < bits.length; i++) {
      const x = bits[i]!;
      out[i] = (x & 0x7fffffff) > 0x7f800000 ? 0x7fc0 : ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
    }
  }
  return new Uint8Array(out.buffer);
}

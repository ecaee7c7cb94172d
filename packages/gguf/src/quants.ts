/**
 * ggml's block formats: dequantization as `dequantize_row_*` and quantization as `quantize_row_*_ref` in
 * `ggml/src/ggml-quants.c`, reproduced bit for bit.
 *
 * Every float operation of the C code is a float32 operation here: each `+ - * /` and `sqrtf` is computed in double
 * and rounded once with `Math.fround`, which gives exactly the correctly rounded float32 result. Expressions keep
 * C's evaluation order (`d * sc * q` is `(d * sc) * q`). The C code is assumed to be compiled without contracting
 * `a * b + c` into fused multiply-adds (`-ffp-contract=off`, or any x86-64 build of ggml-base without `-mfma`); a
 * build that fuses can differ in the last bit of a dequantized value and, rarely, in a quantized one.
 */

import { GgufError } from './errors.js';
import { bf16FromF32Bits, f16FromF32Bits, f16ToF32BitsTable, f32FromBits } from './float16.js';
import { GGML_TYPE, ggmlTypeInfo, type GgmlType } from './types.js';

const fr = Math.fround;

/** True when this machine stores typed arrays little-endian, as GGUF does. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** `GROUP_MAX_EPS` of ggml-quants.c (1e-15f). */
const GROUP_MAX_EPS = fr(1e-15);

/** Types {@link dequantize} converts. */
export const DEQUANTIZE_TYPES: readonly GgmlType[] = [
  GGML_TYPE.F32,
  GGML_TYPE.F16,
  GGML_TYPE.BF16,
  GGML_TYPE.Q4_0,
  GGML_TYPE.Q4_1,
  GGML_TYPE.Q5_0,
  GGML_TYPE.Q5_1,
  GGML_TYPE.Q8_0,
  GGML_TYPE.Q2_K,
  GGML_TYPE.Q3_K,
  GGML_TYPE.Q4_K,
  GGML_TYPE.Q5_K,
  GGML_TYPE.Q6_K,
  GGML_TYPE.Q8_K,
];

/** Types {@link quantize} produces. */
export const QUANTIZE_TYPES: readonly GgmlType[] = [
  GGML_TYPE.F32,
  GGML_TYPE.F16,
  GGML_TYPE.BF16,
  GGML_TYPE.Q4_0,
  GGML_TYPE.Q4_1,
  GGML_TYPE.Q5_0,
  GGML_TYPE.Q5_1,
  GGML_TYPE.Q8_0,
  GGML_TYPE.Q4_K,
  GGML_TYPE.Q5_K,
  GGML_TYPE.Q6_K,
];

// ---------------------------------------------------------------------------------------------------------------
// Helpers shared with the C code
// ---------------------------------------------------------------------------------------------------------------

let f16Bits: Uint32Array | undefined;

/** The float32 value of the little-endian fp16 at `bytes[offset]`. */
function readHalf(bytes: Uint8Array, offset: number): number {
  f16Bits ??= f16ToF32BitsTable();
  return f32FromBits(f16Bits[bytes[offset]! | (bytes[offset + 1]! << 8)]!);
}

/** Stores the fp16 of a float32 value little-endian at `bytes[offset]` (`GGML_FP32_TO_FP16`). */
function writeHalf(bytes: Uint8Array, offset: number, value: number): void {
  const bits = f16FromF32Bits(f32BitsOf(value));
  bytes[offset] = bits & 0xff;
  bytes[offset + 1] = bits >>> 8;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function f32BitsOf(value: number): number {
  scratchF32[0] = value;
  return scratchU32[0]!;
}

/**
 * ggml's `nearest_int`: round a float32 to the nearest integer, ties to even, by adding 1.5 * 2^23 and reading the
 * mantissa bits. Like the C code (whose range `assert` is compiled out in release builds) it returns the same
 * garbage for |x| > 4194303 that C returns.
 */
export function nearestInt(value: number): number {
  const shifted = fr(value + 12582912);
  if (Math.abs(value) <= 4194303) return shifted - 12582912;
  return (f32BitsOf(shifted) & 0x007fffff) - 0x00400000;
}

/** C's `roundf`: to nearest, ties away from zero. */
function roundAway(value: number): number {
  return value < 0 ? -Math.floor(-value + 0.5) : Math.floor(value + 0.5);
}

/** C's float → `int8_t` conversion (truncation toward zero, wrapped to 8 bits as x86 does). */
function truncInt8(value: number): number {
  return (Math.trunc(value) << 24) >> 24;
}

/** C's float → `uint8_t` conversion (truncation toward zero, wrapped to 8 bits). */
function truncUint8(value: number): number {
  return Math.trunc(value) & 0xff;
}

/** `get_scale_min_k4`: the j-th 6-bit scale and min of a Q4_K / Q5_K block's 12 packed scale bytes. */
function scaleMinK4(j: number, q: Uint8Array, base: number, out: Uint8Array): void {
  if (j < 4) {
    out[0] = q[base + j]! & 63;
    out[1] = q[base + j + 4]! & 63;
  } else {
    out[0] = (q[base + j + 4]! & 0xf) | ((q[base + j - 4]! >> 6) << 4);
    out[1] = (q[base + j + 4]! >> 4) | ((q[base + j]! >> 6) << 4);
  }
}

function toFloat32(values: Float32Array | readonly number[]): Float32Array {
  return values instanceof Float32Array ? values : Float32Array.from(values);
}

function blockCount(type: GgmlType, count: number, what: string): number {
  const info = ggmlTypeInfo(type);
  if (!Number.isSafeInteger(count) || count < 0 || count % info.blockSize !== 0) {
    throw new GgufError(
      'INVALID_LENGTH',
      `${what} ${info.name}: element count ${count} is not a multiple of the block size ${info.blockSize}`,
    );
  }
  return count / info.blockSize;
}

// ---------------------------------------------------------------------------------------------------------------
// Dequantization
// ---------------------------------------------------------------------------------------------------------------

/**
 * Converts `count` values of ggml type `type`, stored in `bytes`, to float32, exactly as ggml's `to_float`
 * (`dequantize_row_*`, `ggml_fp16_to_fp32_row`, `ggml_bf16_to_fp32_row`) does.
 *
 * `bytes` may be a view anywhere in a larger buffer (no alignment needed); extra bytes after the data are ignored.
 * Supported types are listed in {@link DEQUANTIZE_TYPES}.
 *
 * @throws {GgufError} `UNKNOWN_TENSOR_TYPE`, `UNSUPPORTED_TYPE`, or `INVALID_LENGTH` when `count` is not a multiple of
 *   the block size or `bytes` is too short.
 */
export function dequantize(type: number, bytes: Uint8Array, count: number): Float32Array {
  const info = ggmlTypeInfo(type);
  const nb = blockCount(info.type, count, 'dequantize');
  const need = nb * info.typeSize;
  if (bytes.length < need) {
    throw new GgufError(
      'INVALID_LENGTH',
      `dequantize ${info.name}: ${count} values need ${need} bytes, got ${bytes.length}`,
    );
  }
  const out = new Float32Array(count);
  switch (info.type) {
    case GGML_TYPE.F32:
      dequantizeF32(bytes, out);
      break;
    case GGML_TYPE.F16:
      dequantizeF16(bytes, out);
      break;
    case GGML_TYPE.BF16:
      dequantizeBf16(bytes, out);
      break;
    case GGML_TYPE.Q4_0:
      dequantizeQ4_0(bytes, out, nb);
      break;
    case GGML_TYPE.Q4_1:
      dequantizeQ4_1(bytes, out, nb);
      break;
    case GGML_TYPE.Q5_0:
      dequantizeQ5_0(bytes, out, nb);
      break;
    case GGML_TYPE.Q5_1:
      dequantizeQ5_1(bytes, out, nb);
      break;
    case GGML_TYPE.Q8_0:
      dequantizeQ8_0(bytes, out, nb);
      break;
    case GGML_TYPE.Q2_K:
      dequantizeQ2_K(bytes, out, nb);
      break;
    case GGML_TYPE.Q3_K:
      dequantizeQ3_K(bytes, out, nb);
      break;
    case GGML_TYPE.Q4_K:
      dequantizeQ4_K(bytes, out, nb);
      break;
    case GGML_TYPE.Q5_K:
      dequantizeQ5_K(bytes, out, nb);
      break;
    case GGML_TYPE.Q6_K:
      dequantizeQ6_K(bytes, out, nb);
      break;
    case GGML_TYPE.Q8_K:
      dequantizeQ8_K(bytes, out, nb);
      break;
    default:
      throw new GgufError('UNSUPPORTED_TYPE', `dequantize: ${info.name} is not supported`);
  }
  return out;
}

function dequantizeF32(bytes: Uint8Array, out: Float32Array): void {
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes.subarray(0, out.length * 4));
    return;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < out.length; i++) bits[i] = view.getUint32(i * 4, true);
}

function dequantizeF16(bytes: Uint8Array, out: Float32Array): void {
  const table = f16ToF32BitsTable();
  const bits = new Uint32Array(out.buffer); // copy bits, so NaN payloads survive
  for (let i = 0; i < out.length; i++) bits[i] = table[bytes[2 * i]! | (bytes[2 * i + 1]! << 8)]!;
}

function dequantizeBf16(bytes: Uint8Array, out: Float32Array): void {
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < out.length; i++) bits[i] = ((bytes[2 * i]! | (bytes[2 * i + 1]! << 8)) << 16) >>> 0;
}

/** block_q4_0: fp16 d, 16 bytes of nibbles; value j is (low nibble - 8) * d, value j + 16 the high nibble. */
function dequantizeQ4_0(x: Uint8Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 18;
    const d = readHalf(x, o);
    for (let j = 0; j < 16; j++) {
      const q = x[o + 2 + j]!;
      y[i * 32 + j] = fr(((q & 0x0f) - 8) * d);
      y[i * 32 + j + 16] = fr(((q >> 4) - 8) * d);
    }
  }
}

/** block_q4_1: fp16 d, fp16 m, 16 bytes of nibbles; value = q * d + m. */
function dequantizeQ4_1(x: Uint8Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 20;
    const d = readHalf(x, o);
    const m = readHalf(x, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = x[o + 4 + j]!;
      y[i * 32 + j] = fr(fr((q & 0x0f) * d) + m);
      y[i * 32 + j + 16] = fr(fr((q >> 4) * d) + m);
    }
  }
}

function readUint32(x: Uint8Array, o: number): number {
  return (x[o]! | (x[o + 1]! << 8) | (x[o + 2]! << 16) | (x[o + 3]! << 24)) >>> 0;
}

/** block_q5_0: fp16 d, 32 high bits (uint32 qh), 16 bytes of low nibbles; value = (q - 16) * d. */
function dequantizeQ5_0(x: Uint8Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 22;
    const d = readHalf(x, o);
    const qh = readUint32(x, o + 2);
    for (let j = 0; j < 16; j++) {
      const xh0 = ((qh >>> j) << 4) & 0x10;
      const xh1 = (qh >>> (j + 12)) & 0x10;
      const q = x[o + 6 + j]!;
      y[i * 32 + j] = fr((((q & 0x0f) | xh0) - 16) * d);
      y[i * 32 + j + 16] = fr((((q >> 4) | xh1) - 16) * d);
    }
  }
}

/** block_q5_1: fp16 d, fp16 m, uint32 qh, 16 bytes of low nibbles; value = q * d + m. */
function dequantizeQ5_1(x: Uint8Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 24;
    const d = readHalf(x, o);
    const m = readHalf(x, o + 2);
    const qh = readUint32(x, o + 4);
    for (let j = 0; j < 16; j++) {
      const xh0 = ((qh >>> j) << 4) & 0x10;
      const xh1 = (qh >>> (j + 12)) & 0x10;
      const q = x[o + 8 + j]!;
      y[i * 32 + j] = fr(fr(((q & 0x0f) | xh0) * d) + m);
      y[i * 32 + j + 16] = fr(fr(((q >> 4) | xh1) * d) + m);
    }
  }
}

/** block_q8_0: fp16 d, 32 int8 quants; value = q * d. */
function dequantizeQ8_0(x: Uint8Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 34;
    const d = readHalf(x, o);
    for (let j = 0; j < 32; j++) y[i * 32 + j] = fr(((x[o + 2 + j]! << 24) >> 24) * d);
  }
}

/** block_q2_K: 16 scale bytes (4-bit scale, 4-bit min), 64 bytes of 2-bit quants, fp16 d, fp16 dmin. */
function dequantizeQ2_K(x: Uint8Array, y: Float32Array, nb: number): void {
  let k = 0;
  for (let i = 0; i < nb; i++) {
    const o = i * 84;
    const d = readHalf(x, o + 80);
    const min = readHalf(x, o + 82);
    let q = o + 16;
    let is = 0;
    for (let n = 0; n < 256; n += 128) {
      let shift = 0;
      for (let j = 0; j < 4; j++) {
        for (let half = 0; half < 2; half++) {
          const sc = x[o + is++]!;
          const dl = fr(d * (sc & 0xf));
          const ml = fr(min * (sc >> 4));
          for (let l = 0; l < 16; l++) y[k++] = fr(fr(dl * ((x[q + half * 16 + l]! >> shift) & 3)) - ml);
        }
        shift += 2;
      }
      q += 32;
    }
  }
}

/** block_q3_K: 32 bytes of high bits, 64 bytes of 2-bit quants, 12 bytes of 6-bit scales, fp16 d. */
function dequantizeQ3_K(x: Uint8Array, y: Float32Array, nb: number): void {
  const kmask1 = 0x03030303;
  const kmask2 = 0x0f0f0f0f;
  const aux = new Uint32Array(4);
  const scales = new Int8Array(16);
  let k = 0;
  for (let i = 0; i < nb; i++) {
    const o = i * 110;
    const dAll = readHalf(x, o + 108);
    const a0 = readUint32(x, o + 96);
    const a1 = readUint32(x, o + 100);
    const tmp = readUint32(x, o + 104);
    aux[2] = ((a0 >>> 4) & kmask2) | (((tmp >>> 4) & kmask1) << 4);
    aux[3] = ((a1 >>> 4) & kmask2) | (((tmp >>> 6) & kmask1) << 4);
    aux[0] = (a0 & kmask2) | (((tmp >>> 0) & kmask1) << 4);
    aux[1] = (a1 & kmask2) | (((tmp >>> 2) & kmask1) << 4);
    for (let b = 0; b < 16; b++) scales[b] = (aux[b >> 2]! >>> (8 * (b & 3))) & 0xff;
    let q = o + 32;
    const hm = o;
    let m = 1;
    let is = 0;
    for (let n = 0; n < 256; n += 128) {
      let shift = 0;
      for (let j = 0; j < 4; j++) {
        for (let half = 0; half < 2; half++) {
          const dl = fr(dAll * (scales[is++]! - 32));
          for (let l = 0; l < 16; l++) {
            const idx = half * 16 + l;
            const value = ((x[q + idx]! >> shift) & 3) - ((x[hm + idx]! & m) !== 0 ? 0 : 4);
            y[k++] = fr(dl * value);
          }
        }
        shift += 2;
        m <<= 1;
      }
      q += 32;
    }
  }
}

/** block_q4_K: fp16 d, fp16 dmin, 12 bytes of packed 6-bit scales and mins, 128 bytes of nibbles. */
function dequantizeQ4_K(x: Uint8Array, y: Float32Array, nb: number): void {
  const sm = new Uint8Array(2);
  let k = 0;
  for (let i = 0; i < nb; i++) {
    const o = i * 144;
    const d = readHalf(x, o);
    const min = readHalf(x, o + 2);
    let q = o + 16;
    let is = 0;
    for (let j = 0; j < 256; j += 64) {
      scaleMinK4(is, x, o + 4, sm);
      const d1 = fr(d * sm[0]!);
      const m1 = fr(min * sm[1]!);
      scaleMinK4(is + 1, x, o + 4, sm);
      const d2 = fr(d * sm[0]!);
      const m2 = fr(min * sm[1]!);
      for (let l = 0; l < 32; l++) y[k++] = fr(fr(d1 * (x[q + l]! & 0xf)) - m1);
      for (let l = 0; l < 32; l++) y[k++] = fr(fr(d2 * (x[q + l]! >> 4)) - m2);
      q += 32;
      is += 2;
    }
  }
}

/** block_q5_K: fp16 d, fp16 dmin, 12 scale bytes, 32 bytes of high bits, 128 bytes of low nibbles. */
function dequantizeQ5_K(x: Uint8Array, y: Float32Array, nb: number): void {
  const sm = new Uint8Array(2);
  let k = 0;
  for (let i = 0; i < nb; i++) {
    const o = i * 176;
    const d = readHalf(x, o);
    const min = readHalf(x, o + 2);
    const qh = o + 16;
    let ql = o + 48;
    let is = 0;
    let u1 = 1;
    let u2 = 2;
    for (let j = 0; j < 256; j += 64) {
      scaleMinK4(is, x, o + 4, sm);
      const d1 = fr(d * sm[0]!);
      const m1 = fr(min * sm[1]!);
      scaleMinK4(is + 1, x, o + 4, sm);
      const d2 = fr(d * sm[0]!);
      const m2 = fr(min * sm[1]!);
      for (let l = 0; l < 32; l++) y[k++] = fr(fr(d1 * ((x[ql + l]! & 0xf) + (x[qh + l]! & u1 ? 16 : 0))) - m1);
      for (let l = 0; l < 32; l++) y[k++] = fr(fr(d2 * ((x[ql + l]! >> 4) + (x[qh + l]! & u2 ? 16 : 0))) - m2);
      ql += 32;
      is += 2;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

/** block_q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales, fp16 d. */
function dequantizeQ6_K(x: Uint8Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 210;
    const d = readHalf(x, o + 208);
    let ql = o;
    let qh = o + 128;
    let sc = o + 192;
    let yo = i * 256;
    for (let n = 0; n < 256; n += 128) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = x[qh + l]!;
        const q1 = ((x[ql + l]! & 0xf) | ((h & 3) << 4)) - 32;
        const q2 = ((x[ql + l + 32]! & 0xf) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((x[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((x[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
        y[yo + l] = fr(fr(d * int8(x[sc + is]!)) * q1);
        y[yo + l + 32] = fr(fr(d * int8(x[sc + is + 2]!)) * q2);
        y[yo + l + 64] = fr(fr(d * int8(x[sc + is + 4]!)) * q3);
        y[yo + l + 96] = fr(fr(d * int8(x[sc + is + 6]!)) * q4);
      }
      yo += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

/** block_q8_K: float32 d, 256 int8 quants, 16 int16 sums (unused here); value = d * q. */
function dequantizeQ8_K(x: Uint8Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 292;
    const d = f32FromBits(readUint32(x, o));
    for (let j = 0; j < 256; j++) y[i * 256 + j] = fr(d * int8(x[o + 4 + j]!));
  }
}

function int8(byte: number): number {
  return (byte << 24) >> 24;
}

// ---------------------------------------------------------------------------------------------------------------
// Quantization
// ---------------------------------------------------------------------------------------------------------------

/**
 * Converts float32 values to ggml type `type` exactly as ggml's reference code does: `quantize_row_q4_0_ref`,
 * `quantize_row_q8_0_ref`, ..., `quantize_row_q4_K_ref` (what `llama-quantize` uses without an importance
 * matrix), `ggml_fp32_to_fp16_row` and `ggml_fp32_to_bf16_row_ref`. Supported types are in {@link QUANTIZE_TYPES}.
 *
 * For F16 and BF16 the raw bits of a `Float32Array` are converted, so NaN signs and payloads are treated as in C.
 * Inputs with NaN or infinity in a quantized block give whatever the C code gives on x86-64 (C leaves some of those
 * conversions undefined); don't rely on it.
 *
 * @throws {GgufError} `UNKNOWN_TENSOR_TYPE`, `UNSUPPORTED_TYPE`, or `INVALID_LENGTH` when the value count is not a
 *   multiple of the block size.
 */
export function quantize(type: number, values: Float32Array | readonly number[]): Uint8Array {
  const info = ggmlTypeInfo(type);
  const x = toFloat32(values);
  const nb = blockCount(info.type, x.length, 'quantize');
  const out = new Uint8Array(nb * info.typeSize);
  switch (info.type) {
    case GGML_TYPE.F32:
      quantizeF32(x, out);
      break;
    case GGML_TYPE.F16:
      quantizeF16(x, out);
      break;
    case GGML_TYPE.BF16:
      quantizeBf16(x, out);
      break;
    case GGML_TYPE.Q4_0:
      quantizeQ4_0(x, out, nb);
      break;
    case GGML_TYPE.Q4_1:
      quantizeQ4_1(x, out, nb);
      break;
    case GGML_TYPE.Q5_0:
      quantizeQ5_0(x, out, nb);
      break;
    case GGML_TYPE.Q5_1:
      quantizeQ5_1(x, out, nb);
      break;
    case GGML_TYPE.Q8_0:
      quantizeQ8_0(x, out, nb);
      break;
    case GGML_TYPE.Q4_K:
      quantizeQ4_K(x, out, nb);
      break;
    case GGML_TYPE.Q5_K:
      quantizeQ5_K(x, out, nb);
      break;
    case GGML_TYPE.Q6_K:
      quantizeQ6_K(x, out, nb);
      break;
    default:
      throw new GgufError('UNSUPPORTED_TYPE', `quantize: ${info.name} is not supported`);
  }
  return out;
}

function rawBits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

function quantizeF32(x: Float32Array, out: Uint8Array): void {
  if (LITTLE_ENDIAN) {
    out.set(new Uint8Array(x.buffer, x.byteOffset, x.length * 4));
    return;
  }
  const view = new DataView(out.buffer);
  const bits = rawBits(x);
  for (let i = 0; i < x.length; i++) view.setUint32(i * 4, bits[i]!, true);
}

function quantizeF16(x: Float32Array, out: Uint8Array): void {
  const bits = rawBits(x);
  for (let i = 0; i < x.length; i++) {
    const h = f16FromF32Bits(bits[i]!);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
}

function quantizeBf16(x: Float32Array, out: Uint8Array): void {
  const bits = rawBits(x);
  for (let i = 0; i < x.length; i++) {
    const h = bf16FromF32Bits(bits[i]!);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
}

/**
 * `quantize_row_q4_0_ref`: the value of largest magnitude (the first one, on ties) sets `d = max / -8`, so it maps to
 * quant 0 exactly; quants are `min(15, (int8)(x / d + 8.5))`. The float32 `d` (not its fp16) is used for `1 / d`.
 */
function quantizeQ4_0(x: Float32Array, y: Uint8Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const xo = i * 32;
    const o = i * 18;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[xo + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -8);
    const id = d ? fr(1 / d) : 0;
    writeHalf(y, o, d);
    for (let j = 0; j < 16; j++) {
      const x0 = fr(x[xo + j]! * id);
      const x1 = fr(x[xo + 16 + j]! * id);
      const xi0 = Math.min(15, truncInt8(fr(x0 + 8.5)));
      const xi1 = Math.min(15, truncInt8(fr(x1 + 8.5)));
      y[o + 2 + j] = (xi0 | (xi1 << 4)) & 0xff;
    }
  }
}

/** `quantize_row_q4_1_ref`: `d = (max - min) / 15`, `m = min`, quants `min(15, (int8)((x - min) / d + 0.5))`. */
function quantizeQ4_1(x: Float32Array, y: Uint8Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const xo = i * 32;
    const o = i * 20;
    let min = 3.4028234663852886e38;
    let max = -3.4028234663852886e38;
    for (let j = 0; j < 32; j++) {
      const v = x[xo + j]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const d = fr(fr(max - min) / 15);
    const id = d ? fr(1 / d) : 0;
    writeHalf(y, o, d);
    writeHalf(y, o + 2, min);
    for (let j = 0; j < 16; j++) {
      const x0 = fr(fr(x[xo + j]! - min) * id);
      const x1 = fr(fr(x[xo + 16 + j]! - min) * id);
      const xi0 = Math.min(15, truncInt8(fr(x0 + 0.5)));
      const xi1 = Math.min(15, truncInt8(fr(x1 + 0.5)));
      y[o + 4 + j] = (xi0 | (xi1 << 4)) & 0xff;
    }
  }
}

function writeUint32(y: Uint8Array, o: number, value: number): void {
  y[o] = value & 0xff;
  y[o + 1] = (value >>> 8) & 0xff;
  y[o + 2] = (value >>> 16) & 0xff;
  y[o + 3] = (value >>> 24) & 0xff;
}

/** `quantize_row_q5_0_ref`: like Q4_0 with `d = max / -16`, 5-bit quants `min(31, (int8)(x / d + 16.5))`. */
function quantizeQ5_0(x: Float32Array, y: Uint8Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const xo = i * 32;
    const o = i * 22;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[xo + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -16);
    const id = d ? fr(1 / d) : 0;
    writeHalf(y, o, d);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const x0 = fr(x[xo + j]! * id);
      const x1 = fr(x[xo + 16 + j]! * id);
      const xi0 = Math.min(31, truncInt8(fr(x0 + 16.5))) & 0xff;
      const xi1 = Math.min(31, truncInt8(fr(x1 + 16.5))) & 0xff;
      y[o + 6 + j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
      qh |= ((xi0 & 0x10) >>> 4) << j;
      qh |= ((xi1 & 0x10) >>> 4) << (j + 16);
    }
    writeUint32(y, o + 2, qh >>> 0);
  }
}

/** `quantize_row_q5_1_ref`: like Q4_1 with `d = (max - min) / 31` and `(uint8)((x - min) / d + 0.5)`. */
function quantizeQ5_1(x: Float32Array, y: Uint8Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const xo = i * 32;
    const o = i * 24;
    let min = 3.4028234663852886e38;
    let max = -3.4028234663852886e38;
    for (let j = 0; j < 32; j++) {
      const v = x[xo + j]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const d = fr(fr(max - min) / 31);
    const id = d ? fr(1 / d) : 0;
    writeHalf(y, o, d);
    writeHalf(y, o + 2, min);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const x0 = fr(fr(x[xo + j]! - min) * id);
      const x1 = fr(fr(x[xo + 16 + j]! - min) * id);
      const xi0 = truncUint8(fr(x0 + 0.5));
      const xi1 = truncUint8(fr(x1 + 0.5));
      y[o + 8 + j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
      qh |= ((xi0 & 0x10) >>> 4) << j;
      qh |= ((xi1 & 0x10) >>> 4) << (j + 16);
    }
    writeUint32(y, o + 4, qh >>> 0);
  }
}

/**
 * `quantize_row_q8_0_ref`: `d = amax / 127`, quants `roundf(x / d)` (ties away from zero), computed with the float32
 * `id = 1 / d`; `d` is then stored as fp16.
 */
function quantizeQ8_0(x: Float32Array, y: Uint8Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const xo = i * 32;
    const o = i * 34;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[xo + j]!));
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    writeHalf(y, o, d);
    for (let j = 0; j < 32; j++) y[o + 2 + j] = truncInt8(roundAway(fr(x[xo + j]! * id))) & 0xff;
  }
}

/**
 * `make_qkx2_quants`: fits `x ≈ scale * L + min` (min ≤ 0) with L in [0, nmax], trying `nstep + 1` candidate scales
 * and keeping the one with the least weighted squared (or absolute) error. Returns the scale; `-min` goes to
 * `mins[minIndex]`.
 */
function makeQkx2Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  weights: Float32Array,
  L: Uint8Array,
  mins: Float32Array,
  minIndex: number,
  Laux: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
  useMad: boolean,
): number {
  let min = x[0]!;
  let max = x[0]!;
  let sumW = weights[0]!;
  let sumX = fr(sumW * x[0]!);
  for (let i = 1; i < n; i++) {
    const xi = x[i]!;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const w = weights[i]!;
    sumW = fr(sumW + w);
    sumX = fr(sumX + fr(w * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, 0, n);
    mins[minIndex] = -min;
    return 0;
  }
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = nearestInt(fr(iscale * fr(x[i]! - min)));
    L[i] = Math.max(0, Math.min(nmax, l));
    let diff = fr(fr(fr(scale * L[i]!) + min) - x[i]!);
    diff = useMad ? Math.abs(diff) : fr(diff * diff);
    bestError = fr(bestError + fr(weights[i]! * diff));
  }
  if (nstep < 1) {
    mins[minIndex] = -min;
    return scale;
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[i]! - min)))));
      Laux[i] = l;
      const wl = fr(weights[i]! * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * x[i]!));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        let diff = fr(fr(fr(thisScale * Laux[i]!) + thisMin) - x[i]!);
        diff = useMad ? Math.abs(diff) : fr(diff * diff);
        curError = fr(curError + fr(weights[i]! * diff));
      }
      if (curError < bestError) {
        L.set(Laux.subarray(0, n));
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  mins[minIndex] = -min;
  return scale;
}

/**
 * Shared body of `quantize_row_q4_K_ref` and `quantize_row_q5_K_ref`: 8 sub-blocks of 32 values, each fitted by
 * {@link makeQkx2Quants}; their scales and mins are quantized to 6 bits against the block's largest, stored with
 * fp16 `d` / `dmin`, and every value is re-quantized against the stored (rounded) scales.
 */
function quantizeKBlocks(
  x: Float32Array,
  nb: number,
  nmax: number,
  rmin: number,
  nstep: number,
  emit: (blockIndex: number, L: Uint8Array, scaleBytes: Uint8Array, d: number, dmin: number) => void,
): void {
  const L = new Uint8Array(256);
  const Laux = new Uint8Array(32);
  const weights = new Float32Array(32);
  const mins = new Float32Array(8);
  const scales = new Float32Array(8);
  const packed = new Uint8Array(12);
  const sm = new Uint8Array(2);
  const rdelta = fr(0.1);
  for (let i = 0; i < nb; i++) {
    const xb = x.subarray(i * 256, i * 256 + 256);
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < 8; j++) {
      const xs = xb.subarray(32 * j, 32 * j + 32);
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(xs[l]! * xs[l]!));
      const avX = fr(Math.sqrt(fr(sumX2 / 32)));
      for (let l = 0; l < 32; l++) weights[l] = fr(avX + Math.abs(xs[l]!));
      const ls = L.subarray(32 * j, 32 * j + 32);
      scales[j] = makeQkx2Quants(32, nmax, xs, weights, ls, mins, j, Laux, rmin, rdelta, nstep, false);
      if (scales[j]! > maxScale) maxScale = scales[j]!;
      if (mins[j]! > maxMin) maxMin = mins[j]!;
    }
    const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
    packed.fill(0);
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(fr(invScale * scales[j]!)) & 0xff);
      const lm = Math.min(63, nearestInt(fr(invMin * mins[j]!)) & 0xff);
      if (j < 4) {
        packed[j] = ls;
        packed[j + 4] = lm;
      } else {
        packed[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        packed[j - 4]! |= (ls >> 4) << 6;
        packed[j]! |= (lm >> 4) << 6;
      }
    }
    const dBits = f16FromF32Bits(f32BitsOf(fr(maxScale / 63)));
    const dminBits = f16FromF32Bits(f32BitsOf(fr(maxMin / 63)));
    const dStored = f32FromBits(f16ToF32BitsTable()[dBits]!);
    const dminStored = f32FromBits(f16ToF32BitsTable()[dminBits]!);
    for (let j = 0; j < 8; j++) {
      scaleMinK4(j, packed, 0, sm);
      const d = fr(dStored * sm[0]!);
      if (!d) continue;
      const dm = fr(dminStored * sm[1]!);
      for (let ii = 0; ii < 32; ii++) {
        const l = nearestInt(fr(fr(xb[32 * j + ii]! + dm) / d));
        L[32 * j + ii] = Math.max(0, Math.min(nmax, l));
      }
    }
    emit(i, L, packed, dBits, dminBits);
  }
}

/** `quantize_row_q4_K_ref` (`make_qkx2_quants(32, 15, ..., -1, 0.1, 20)` per sub-block). */
function quantizeQ4_K(x: Float32Array, y: Uint8Array, nb: number): void {
  quantizeKBlocks(x, nb, 15, -1, 20, (i, L, packed, dBits, dminBits) => {
    const o = i * 144;
    y[o] = dBits & 0xff;
    y[o + 1] = dBits >>> 8;
    y[o + 2] = dminBits & 0xff;
    y[o + 3] = dminBits >>> 8;
    y.set(packed, o + 4);
    let q = o + 16;
    for (let j = 0; j < 256; j += 64) {
      for (let l = 0; l < 32; l++) y[q + l] = L[j + l]! | (L[j + l + 32]! << 4);
      q += 32;
    }
  });
}

/** `quantize_row_q5_K_ref` (`make_qkx2_quants(32, 31, ..., -0.5, 0.1, 15)` per sub-block). */
function quantizeQ5_K(x: Float32Array, y: Uint8Array, nb: number): void {
  quantizeKBlocks(x, nb, 31, -0.5, 15, (i, L, packed, dBits, dminBits) => {
    const o = i * 176;
    y[o] = dBits & 0xff;
    y[o + 1] = dBits >>> 8;
    y[o + 2] = dminBits & 0xff;
    y[o + 3] = dminBits >>> 8;
    y.set(packed, o + 4);
    const qh = o + 16;
    let ql = o + 48;
    let m1 = 1;
    let m2 = 2;
    for (let n = 0; n < 256; n += 64) {
      for (let j = 0; j < 32; j++) {
        let l1 = L[n + j]!;
        if (l1 > 15) {
          l1 -= 16;
          y[qh + j]! |= m1;
        }
        let l2 = L[n + j + 32]!;
        if (l2 > 15) {
          l2 -= 16;
          y[qh + j]! |= m2;
        }
        y[ql + j] = l1 | (l2 << 4);
      }
      m1 <<= 2;
      m2 <<= 2;
      ql += 32;
    }
  });
}

/**
 * `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw = NULL)`: symmetric fit `x ≈ scale * (L - nmax)` weighted by
 * `x²`, trying 18 scales around `-nmax / max`. Returns the scale.
 */
function makeQxQuants(n: number, nmax: number, x: Float32Array, L: Int8Array): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i]!);
    if (ax > amax) {
      amax = ax;
      max = x[i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = fr(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[i]!;
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * xi))));
    L[i] = l + nmax;
    const w = fr(xi * xi);
    sumlx = fr(sumlx + fr(fr(w * xi) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  let scale = suml2 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  const tenth = fr(0.1);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(tenth * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[i]!;
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * xi))));
      const w = fr(xi * xi);
      sumlx = fr(sumlx + fr(fr(w * xi) * l));
      suml2 = fr(suml2 + fr(fr(w * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) {
        L[i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * x[i]!))));
      }
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

/**
 * `quantize_row_q6_K_ref`: 16 sub-blocks of 16 values fitted by {@link makeQxQuants} with nmax 32; their scales are
 * stored as int8 against `d = max_scale / -128` (fp16), then every value is re-quantized to 6 bits.
 */
function quantizeQ6_K(x: Float32Array, y: Uint8Array, nb: number): void {
  const L = new Int8Array(256);
  const scales = new Float32Array(16);
  const table = f16ToF32BitsTable();
  for (let i = 0; i < nb; i++) {
    const xb = x.subarray(i * 256, i * 256 + 256);
    const o = i * 210;
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      const scale = makeQxQuants(16, 32, xb.subarray(16 * ib, 16 * ib + 16), L.subarray(16 * ib, 16 * ib + 16));
      scales[ib] = scale;
      const absScale = Math.abs(scale);
      if (absScale > maxAbsScale) {
        maxAbsScale = absScale;
        maxScale = scale;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) continue; // the block stays all zero, d = +0
    const iscale = fr(-128 / maxScale);
    const dBits = f16FromF32Bits(f32BitsOf(fr(1 / iscale)));
    y[o + 208] = dBits & 0xff;
    y[o + 209] = dBits >>> 8;
    const dStored = f32FromBits(table[dBits]!);
    for (let ib = 0; ib < 16; ib++) {
      y[o + 192 + ib] = Math.min(127, nearestInt(fr(iscale * scales[ib]!))) & 0xff;
    }
    for (let j = 0; j < 16; j++) {
      const d = fr(dStored * int8(y[o + 192 + j]!));
      if (!d) continue;
      for (let ii = 0; ii < 16; ii++) {
        const l = Math.max(-32, Math.min(31, nearestInt(fr(xb[16 * j + ii]! / d))));
        L[16 * j + ii] = l + 32;
      }
    }
    let ql = o;
    let qh = o + 128;
    for (let j = 0; j < 256; j += 128) {
      for (let l = 0; l < 32; l++) {
        const a = L[j + l]!;
        const b = L[j + l + 32]!;
        const c = L[j + l + 64]!;
        const e = L[j + l + 96]!;
        y[ql + l] = (a & 0xf) | ((c & 0xf) << 4);
        y[ql + l + 32] = (b & 0xf) | ((e & 0xf) << 4);
        y[qh + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
      }
      ql += 64;
      qh += 32;
    }
  }
}

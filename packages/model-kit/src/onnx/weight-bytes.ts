import { float32ToFloat16Bits } from '../dtype.js';

/** The bytes of a typed array (a view, not a copy). */
export function bytesOf(values: ArrayBufferView): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** Float32 values rounded to float16 bits (nearest, ties to even). */
export function toFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16Bits(values[i]!);
  return out;
}

/**
 * A lazily computed value read by `consumers` lazy initializers (a quantized weight's codes and scales): computed
 * on the first read and dropped after the last, so only one weight is held at a time while writing.
 */
export function sharedOnce<T>(make: () => Promise<T>, consumers: number): () => Promise<T> {
  let pending: Promise<T> | undefined;
  let left = consumers;
  return async () => {
    pending ??= make();
    const value = await pending;
    if (--left === 0) pending = undefined;
    return value;
  };
}

/** `[rows, cols]` row-major -> `[cols, rows]`, in cache-friendly tiles. */
export function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const tile = 32;
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = Math.min(rows, r0 + tile);
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const c1 = Math.min(cols, c0 + tile);
      for (let r = r0; r < r1; r++) {
        const rowOffset = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = values[rowOffset + c]!;
      }
    }
  }
  return out;
}

/**
 * Weight quantization for the published ONNX variants, from float32 weights, in TypeScript.
 *
 * - {@link quantizeBlockwise}: `MatMulNBits` (onnxruntime `com.microsoft` contrib operator) block-wise 4- or 8-bit
 *   weights, in exactly the layout onnxruntime expects: `B` uint8 `[N, blocksPerColumn, blobSize]` where
 *   `blobSize = blockSize * bits / 8` and, within a blob, element `2i` is the low nibble and `2i + 1` the high
 *   nibble of byte `i` (4-bit); `scales` `[N * blocksPerColumn]`; optional `zero_points` uint8, packed the same
 *   way per column (`[N * ceil(blocksPerColumn * bits / 8)]`), defaulting to `2^(bits-1)` when absent. A weight
 *   `[N, K]` (PyTorch `[out, in]`) dequantizes as `w[n, k] = (q[n, k] - zp[n, k / blockSize]) *
 *   scale[n, k / blockSize]`; the last block of a column is zero-padded when `K` is not a multiple of `blockSize`.
 * - {@link quantizePerChannelInt8}: symmetric int8 per output channel, for `MatMulInteger` / Gather.
 */

/** Block-wise quantized weights for `MatMulNBits`. */
export interface BlockQuantized {
  /** Output features (rows of the PyTorch weight). */
  readonly n: number;
  /** Input features. */
  readonly k: number;
  readonly bits: 4 | 8;
  readonly blockSize: number;
  readonly blocksPerColumn: number;
  /** `[n, blocksPerColumn, blockSize * bits / 8]`. */
  readonly packed: Uint8Array;
  /** `[n * blocksPerColumn]`. */
  readonly scales: Float32Array;
  /** Packed zero points (asymmetric quantization only). */
  readonly zeroPoints: Uint8Array | undefined;
}

/**
 * Quantizes a row-major `[n, k]` weight block-wise for `MatMulNBits`.
 *
 * Symmetric (the default, as onnxruntime's `MatMulNBitsQuantizer` with `is_symmetric=True`): per block, the
 * element of largest magnitude `m` maps to the lowest code: `scale = m / -2^(bits-1)`, `q = clamp(round(w / scale)
 * + 2^(bits-1), 0, 2^bits - 1)`, and no zero points are stored. Asymmetric: the block's range (widened to include
 * 0) is spread over all codes, `scale = (max - min) / (2^bits - 1)`, `zp = round(-min / scale)`.
 */
export function quantizeBlockwise(
  weight: Float32Array,
  n: number,
  k: number,
  options: { bits: 4 | 8; blockSize: number; symmetric?: boolean },
): BlockQuantized {
  const { bits, blockSize } = options;
  const symmetric = options.symmetric ?? true;
  if (weight.length !== n * k) throw new RangeError(`weight has ${weight.length} values, expected ${n} x ${k}`);
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) {
    throw new RangeError(`blockSize must be a power of two >= 16, got ${blockSize}`);
  }
  const blocksPerColumn = Math.ceil(k / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const levels = 2 ** bits - 1;
  const middle = 2 ** (bits - 1);
  const packed = new Uint8Array(n * blocksPerColumn * blobSize);
  const scales = new Float32Array(n * blocksPerColumn);
  const zeroPointBytesPerColumn = Math.ceil((blocksPerColumn * bits) / 8);
  const zeroPoints = symmetric ? undefined : new Uint8Array(n * zeroPointBytesPerColumn);
  const codes = new Uint8Array(blockSize);
  for (let row = 0; row < n; row++) {
    for (let block = 0; block < blocksPerColumn; block++) {
      const from = row * k + block * blockSize;
      const count = Math.min(blockSize, k - block * blockSize);
      let scale: number;
      let zeroPoint: number;
      if (symmetric) {
        let extreme = 0;
        for (let i = 0; i < count; i++)
          if (Math.abs(weight[from + i]!) > Math.abs(extreme)) extreme = weight[from + i]!;
        scale = Math.fround(extreme / -middle);
        zeroPoint = middle;
      } else {
        let min = 0;
        let max = 0;
        for (let i = 0; i < count; i++) {
          min = Math.min(min, weight[from + i]!);
          max = Math.max(max, weight[from + i]!);
        }
        scale = Math.fround((max - min) / levels);
        zeroPoint = scale === 0 ? middle : Math.min(levels, Math.max(0, Math.round(-min / scale)));
      }
      const inverse = scale === 0 ? 0 : 1 / scale;
      codes.fill(zeroPoint);
      for (let i = 0; i < count; i++) {
        codes[i] = Math.min(levels, Math.max(0, Math.round(weight[from + i]! * inverse) + zeroPoint));
      }
      scales[row * blocksPerColumn + block] = scale;
      const blob = (row * blocksPerColumn + block) * blobSize;
      if (bits === 8) packed.set(codes, blob);
      else for (let i = 0; i < blobSize; i++) packed[blob + i] = codes[2 * i]! | (codes[2 * i + 1]! << 4);
      if (zeroPoints !== undefined) {
        const base = row * zeroPointBytesPerColumn;
        if (bits === 8) zeroPoints[base + block] = zeroPoint;
        else zeroPoints[base + (block >> 1)]! |= zeroPoint << ((block & 1) * 4);
      }
    }
  }
  return { n, k, bits, blockSize, blocksPerColumn, packed, scales, zeroPoints };
}

/** The float32 `[n, k]` weight that {@link BlockQuantized} represents (what `MatMulNBits` multiplies by). */
export function dequantizeBlockwise(q: BlockQuantized): Float32Array {
  const { n, k, bits, blockSize, blocksPerColumn } = q;
  const blobSize = (blockSize * bits) / 8;
  const zeroPointBytesPerColumn = Math.ceil((blocksPerColumn * bits) / 8);
  const out = new Float32Array(n * k);
  for (let row = 0; row < n; row++) {
    for (let i = 0; i < k; i++) {
      const block = Math.floor(i / blockSize);
      const within = i % blockSize;
      const blob = (row * blocksPerColumn + block) * blobSize;
      const code = bits === 8 ? q.packed[blob + within]! : (q.packed[blob + (within >> 1)]! >> ((within & 1) * 4)) & 15;
      let zeroPoint = 2 ** (bits - 1);
      if (q.zeroPoints !== undefined) {
        const byte = q.zeroPoints[row * zeroPointBytesPerColumn + (bits === 8 ? block : block >> 1)]!;
        zeroPoint = bits === 8 ? byte : (byte >> ((block & 1) * 4)) & 15;
      }
      out[row * k + i] = Math.fround((code - zeroPoint) * q.scales[row * blocksPerColumn + block]!);
    }
  }
  return out;
}

/** Symmetric per-row int8 quantization of a row-major `[rows, cols]` matrix. */
export interface Int8Quantized {
  readonly rows: number;
  readonly cols: number;
  /** `[rows, cols]`, values in [-127, 127]. */
  readonly values: Int8Array;
  /** `[rows]`: `w[r, c] = values[r, c] * scales[r]`. */
  readonly scales: Float32Array;
}

/** Quantizes each row of a `[rows, cols]` matrix to int8 with its own scale `max|row| / 127`. */
export function quantizePerChannelInt8(weight: Float32Array, rows: number, cols: number): Int8Quantized {
  const values = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = 0;
    for (let c = 0; c < cols; c++) max = Math.max(max, Math.abs(weight[r * cols + c]!));
    const scale = Math.fround(max / 127);
    const inverse = scale === 0 ? 0 : 1 / scale;
    scales[r] = scale;
    for (let c = 0; c < cols; c++) values[r * cols + c] = Math.round(weight[r * cols + c]! * inverse);
  }
  return { rows, cols, values, scales };
}

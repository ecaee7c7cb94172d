import { GgufError } from './errors.js';

/**
 * ggml's tensor types (`enum ggml_type` in `ggml/include/ggml.h`), by their numbers as stored in GGUF files.
 *
 * Numbers 4, 5 (Q4_2, Q4_3), 31–33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) and 36–38 (IQ4_NL_4_4, ...) were removed from
 * ggml and are not valid in GGUF files; they are deliberately absent.
 */
export const GGML_TYPE = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
  NVFP4: 40,
  Q1_0: 41,
} as const;

/** Name of a ggml type, as in {@link GGML_TYPE} (`'Q4_K'`, `'F16'`, ...). */
export type GgmlTypeName = keyof typeof GGML_TYPE;

/** A ggml type number that this package knows (a value of {@link GGML_TYPE}). */
export type GgmlType = (typeof GGML_TYPE)[GgmlTypeName];

/** Geometry of one ggml type: how many values one block holds and how many bytes it takes. */
export interface GgmlTypeInfo {
  /** The type's number. */
  readonly type: GgmlType;
  /** The type's name, as in {@link GGML_TYPE}. */
  readonly name: GgmlTypeName;
  /** Values per block (`ggml_blck_size`): 1 for plain types, 32 for Q8_0, 256 for the K-quants. */
  readonly blockSize: number;
  /** Bytes per block (`ggml_type_size`). */
  readonly typeSize: number;
  /** True for block-quantized types (`ggml_is_quantized`). */
  readonly quantized: boolean;
}

const QK_K = 256;

/** [name, block size, bytes per block] of every known type; the byte counts follow `ggml-common.h`'s structs. */
const GEOMETRY: readonly (readonly [GgmlTypeName, number, number])[] = [
  ['F32', 1, 4],
  ['F16', 1, 2],
  ['Q4_0', 32, 2 + 16],
  ['Q4_1', 32, 2 + 2 + 16],
  ['Q5_0', 32, 2 + 4 + 16],
  ['Q5_1', 32, 2 + 2 + 4 + 16],
  ['Q8_0', 32, 2 + 32],
  ['Q8_1', 32, 2 + 2 + 32],
  ['Q2_K', QK_K, QK_K / 16 + QK_K / 4 + 2 + 2],
  ['Q3_K', QK_K, QK_K / 8 + QK_K / 4 + 12 + 2],
  ['Q4_K', QK_K, 2 + 2 + 12 + QK_K / 2],
  ['Q5_K', QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2],
  ['Q6_K', QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2],
  ['Q8_K', QK_K, 4 + QK_K + (QK_K / 16) * 2],
  ['IQ2_XXS', QK_K, 2 + (QK_K / 8) * 2],
  ['IQ2_XS', QK_K, 2 + (QK_K / 8) * 2 + QK_K / 32],
  ['IQ3_XXS', QK_K, 2 + (3 * QK_K) / 8],
  ['IQ1_S', QK_K, 2 + QK_K / 8 + QK_K / 16],
  ['IQ4_NL', 32, 2 + 16],
  ['IQ3_S', QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64],
  ['IQ2_S', QK_K, 2 + QK_K / 4 + QK_K / 16],
  ['IQ4_XS', QK_K, 2 + 2 + QK_K / 64 + QK_K / 2],
  ['I8', 1, 1],
  ['I16', 1, 2],
  ['I32', 1, 4],
  ['I64', 1, 8],
  ['F64', 1, 8],
  ['IQ1_M', QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32],
  ['BF16', 1, 2],
  ['TQ1_0', QK_K, 2 + QK_K / 64 + (QK_K - (4 * QK_K) / 64) / 5],
  ['TQ2_0', QK_K, 2 + QK_K / 4],
  ['MXFP4', 32, 1 + 16],
  ['NVFP4', 64, 4 + 32],
  ['Q1_0', 128, 2 + 16],
];

const PLAIN = new Set<GgmlTypeName>(['F32', 'F16', 'BF16', 'F64', 'I8', 'I16', 'I32', 'I64']);

const INFO = new Map<number, GgmlTypeInfo>(
  GEOMETRY.map(([name, blockSize, typeSize]) => [
    GGML_TYPE[name],
    Object.freeze({ type: GGML_TYPE[name], name, blockSize, typeSize, quantized: !PLAIN.has(name) }),
  ]),
);

/** True when `type` is a ggml type number this package knows. */
export function isGgmlType(type: number): type is GgmlType {
  return INFO.has(type);
}

/**
 * Block size, bytes per block and name of a ggml type.
 *
 * @throws {GgufError} `UNKNOWN_TENSOR_TYPE` for a number that is not in {@link GGML_TYPE}.
 */
export function ggmlTypeInfo(type: number): GgmlTypeInfo {
  const info = INFO.get(type);
  if (info === undefined) throw new GgufError('UNKNOWN_TENSOR_TYPE', `unknown ggml type ${type}`);
  return info;
}

/** Name of a ggml type (`'Q4_K'`), or `undefined` for an unknown number. */
export function ggmlTypeName(type: number): GgmlTypeName | undefined {
  return INFO.get(type)?.name;
}

/**
 * Number of values in a tensor of the given shape (the product of its dimensions; 1 for `[]`).
 *
 * @throws {GgufError} `INVALID_SHAPE` for a negative or non-integer dimension, more than 4 dimensions, or a count
 *   above `Number.MAX_SAFE_INTEGER`.
 */
export function elementCount(shape: readonly number[]): number {
  if (shape.length > MAX_DIMS) {
    throw new GgufError('INVALID_SHAPE', `a tensor has at most ${MAX_DIMS} dimensions, got ${shape.length}`);
  }
  let count = 1;
  for (const dim of shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw new GgufError('INVALID_SHAPE', `invalid dimension ${dim} in shape [${shape.join(', ')}]`);
    }
    count *= dim;
    if (!Number.isSafeInteger(count)) {
      throw new GgufError('INVALID_SHAPE', `shape [${shape.join(', ')}] has too many elements`);
    }
  }
  return count;
}

/** Most dimensions a ggml tensor can have (`GGML_MAX_DIMS`). */
export const MAX_DIMS = 4;

/**
 * Bytes of a tensor of `type` and `shape` (ggml order, `ne[0]` first), as `ggml_nbytes` computes for a contiguous
 * tensor: `elements / blockSize * typeSize`.
 *
 * @throws {GgufError} `UNKNOWN_TENSOR_TYPE` for an unknown type; `INVALID_SHAPE` when `shape[0]` is not a multiple
 *   of the block size or the shape itself is invalid.
 */
export function tensorByteLength(type: number, shape: readonly number[]): number {
  const info = ggmlTypeInfo(type);
  const count = elementCount(shape);
  const rowLength = shape.length === 0 ? 1 : shape[0]!;
  if (rowLength % info.blockSize !== 0) {
    throw new GgufError(
      'INVALID_SHAPE',
      `first dimension ${rowLength} of a ${info.name} tensor is not a multiple of its block size ${info.blockSize}`,
    );
  }
  return (count / info.blockSize) * info.typeSize;
}

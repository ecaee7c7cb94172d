const marker = Symbol.for('gen.gguf.error');

/**
 * Machine-readable reason of a {@link GgufError}.
 *
 * - `BAD_MAGIC`: the file does not start with the four bytes `GGUF`.
 * - `UNSUPPORTED_VERSION`: a GGUF version other than 2 or 3 (version 1, a big-endian file, or a future version).
 * - `TRUNCATED`: the header, metadata or tensor infos end before the bytes they announce.
 * - `UNKNOWN_TENSOR_TYPE`: a tensor's ggml type is not one this package knows (see `GGML_TYPE`).
 * - `UNKNOWN_VALUE_TYPE`: a metadata value type outside GGUF's 13 value types.
 * - `DUPLICATE_KEY`: the same metadata key twice.
 * - `DUPLICATE_TENSOR`: the same tensor name twice.
 * - `INVALID_ALIGNMENT`: `general.alignment` (or the writer's `alignment`) is not a power of two `uint32`.
 * - `INVALID_SHAPE`: more than 4 dimensions, a negative or non-integer dimension, a first dimension that is not a
 *   multiple of the type's block size, or an element count past `Number.MAX_SAFE_INTEGER`.
 * - `INVALID_VALUE`: a metadata value that does not fit its declared type (a bool byte other than 0 or 1, an
 *   out-of-range integer given to the writer, ...).
 * - `INVALID_STRING`: a string that is not valid UTF-8.
 * - `INVALID_TENSOR_NAME`: a tensor name of 64 UTF-8 bytes or more (ggml's `GGML_MAX_NAME`), given to the writer.
 * - `MISALIGNED_TENSOR`: a tensor whose data offset is not a multiple of the file's alignment (or, with
 *   `strict`, not where ggml expects it).
 * - `TENSOR_OUT_OF_RANGE`: a tensor whose data runs past the end of the file (often a file cut short).
 * - `VALUE_OUT_OF_RANGE`: a 64-bit count, length or offset too large to address from JavaScript.
 * - `TENSOR_NOT_FOUND`: {@link GgufFile.tensorData} asked for a name the file lacks.
 * - `DATA_NOT_LOADED`: tensor data asked of a file read with `metadataOnly`.
 * - `TYPE_MISMATCH`: a typed accessor (`getString`, `getNumber`, ...) found a value of another type.
 * - `UNSUPPORTED_TYPE`: `quantize` / `dequantize` of a ggml type this package does not convert.
 * - `INVALID_LENGTH`: an element count that is not a multiple of the block size, or too few bytes for it.
 * - `FILE_TOO_LARGE`: a file larger than one `Uint8Array` can hold (read it with `metadataOnly`).
 */
export type GgufErrorCode =
  | 'BAD_MAGIC'
  | 'UNSUPPORTED_VERSION'
  | 'TRUNCATED'
  | 'UNKNOWN_TENSOR_TYPE'
  | 'UNKNOWN_VALUE_TYPE'
  | 'DUPLICATE_KEY'
  | 'DUPLICATE_TENSOR'
  | 'INVALID_ALIGNMENT'
  | 'INVALID_SHAPE'
  | 'INVALID_VALUE'
  | 'INVALID_STRING'
  | 'INVALID_TENSOR_NAME'
  | 'MISALIGNED_TENSOR'
  | 'TENSOR_OUT_OF_RANGE'
  | 'VALUE_OUT_OF_RANGE'
  | 'TENSOR_NOT_FOUND'
  | 'DATA_NOT_LOADED'
  | 'TYPE_MISMATCH'
  | 'UNSUPPORTED_TYPE'
  | 'INVALID_LENGTH'
  | 'FILE_TOO_LARGE';

/**
 * The one error class thrown by `@gen/gguf`; `code` says what went wrong.
 *
 * Use {@link GgufError.isInstance} rather than `instanceof`: it also recognises errors thrown by another installed
 * copy of this package (the marker is a global `Symbol.for`).
 */
export class GgufError extends Error {
  readonly [marker] = true;
  /** What went wrong, for programs. */
  readonly code: GgufErrorCode;
  /** Byte offset in the file where the problem was found, when it is about a position in a file. */
  readonly offset: number | undefined;

  constructor(code: GgufErrorCode, message: string, options?: { offset?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GgufError';
    this.code = code;
    this.offset = options?.offset;
  }

  /** True when `error` is a {@link GgufError} from any copy of this package (optionally with the given code). */
  static isInstance(error: unknown, code?: GgufErrorCode): error is GgufError {
    if (typeof error !== 'object' || error === null || (error as Record<symbol, unknown>)[marker] !== true) {
      return false;
    }
    return code === undefined || (error as GgufError).code === code;
  }
}

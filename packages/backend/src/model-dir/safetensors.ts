import { open, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { ModelLoadError } from '../errors.js';
import { errorMessage, isJsonObject, isNotFound } from './json-file.js';
import { convertBfloat16ToFloat32, convertFloat16ToFloat32 } from './float16.js';

/** Bytes per element of every dtype of the safetensors format (sub-byte float formats are not supported). */
const dtypeSizes: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
  C64: 8,
};

/** Dtypes that {@link SafetensorsFile.readFloat32} converts. */
export const FLOAT_DTYPES = ['F32', 'F16', 'BF16', 'F64'] as const;

/** The safetensors limit on the JSON header, 100 MB. */
const maxHeaderBytes = 100_000_000;
/** Conversion chunk for non-F32 tensors: the extra memory a read needs beyond its Float32Array result. */
const chunkBytes = 4 << 20;
/** Largest single `read()` (Node limits one read to 2 GiB). */
const maxReadBytes = 1 << 30;
const littleEndian = endianness() === 'LE';

/** One tensor in a safetensors header. */
export interface TensorInfo {
  /** Tensor name, for example `model.layers.0.self_attn.q_proj.weight`. */
  readonly name: string;
  /** safetensors dtype, for example `BF16`. */
  readonly dtype: string;
  /** Shape, outermost first (row-major); `[]` for a scalar. */
  readonly shape: readonly number[];
  /** The file that holds it. */
  readonly file: string;
  /** Absolute byte offset of its data in the file. */
  readonly byteOffset: number;
  /** Byte length of its data (`product(shape) * dtype size`). */
  readonly byteLength: number;
}

/** Options of a tensor read. */
export interface ReadTensorOptions {
  /** When given, the tensor must have exactly this shape, else `ModelLoadError` (`shape-mismatch`). */
  readonly shape?: readonly number[];
}

/**
 * An open `.safetensors` file. Tensors are read on demand through a file handle, straight into their result
 * arrays: an F32 tensor costs its own size and nothing more, an F16 / BF16 one its float32 size plus a 4 MiB
 * conversion buffer. Nothing is memory-mapped and the whole file is never held in memory.
 */
export interface SafetensorsFile {
  /** Path of the file. */
  readonly file: string;
  /** Tensors by name, in header order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** The header's `__metadata__` (string values), `{}` when absent. */
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * Reads a tensor as float32 (F32 as is; F16, BF16 and F64 converted; F16 subnormals, infinities and NaN kept).
   *
   * @throws {ModelLoadError} `missing-tensor`, `shape-mismatch`, `unsupported-dtype` (an integer dtype), or
   *   `truncated` when the file shrank after it was opened.
   */
  readFloat32(name: string, options?: ReadTensorOptions): Promise<Float32Array>;
  /** Closes the file handle. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens a safetensors file and validates its header: the 8-byte little-endian header length, the JSON, every
 * dtype, shape and `data_offsets` entry (offsets must agree with dtype × shape and lie inside the file).
 *
 * @throws {ModelLoadError} `missing-file`, `truncated`, `invalid-header` or `unknown-dtype`, naming the file.
 */
export async function openSafetensors(file: string): Promise<SafetensorsFile> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    throw new ModelLoadError({
      file,
      reason: 'missing-file',
      expected: 'a safetensors weights file',
      message: isNotFound(error) ? 'file not found' : `cannot open file (${errorMessage(error)})`,
      cause: error,
    });
  }
  try {
    const { size } = await handle.stat();
    const { tensors, metadata } = await readHeader(handle, file, size);
    return new OpenSafetensorsFile(file, handle, tensors, metadata);
  } catch (error) {
    await handle.close();
    throw error;
  }
}

async function readHeader(
  handle: FileHandle,
  file: string,
  size: number,
): Promise<{ tensors: Map<string, TensorInfo>; metadata: Record<string, string> }> {
  const expectedFormat = 'a safetensors file: 8-byte little-endian header length, JSON header, tensor data';
  if (size < 8) {
    throw new ModelLoadError({
      file,
      reason: 'truncated',
      expected: expectedFormat,
      message: `file is only ${size} bytes`,
    });
  }
  const lengthBytes = new Uint8Array(8);
  await readFully(handle, file, lengthBytes, 0);
  const headerLength = Number(new DataView(lengthBytes.buffer).getBigUint64(0, true));
  if (headerLength > maxHeaderBytes) {
    throw new ModelLoadError({
      file,
      reason: 'invalid-header',
      expected: `a header length of at most ${maxHeaderBytes} bytes (${expectedFormat})`,
      message: `header length is ${headerLength}`,
    });
  }
  if (8 + headerLength > size) {
    throw new ModelLoadError({
      file,
      reason: 'truncated',
      expected: `at least ${8 + headerLength} bytes to hold the ${headerLength}-byte header`,
      message: `file is only ${size} bytes`,
    });
  }
  const headerBytes = new Uint8Array(headerLength);
  await readFully(handle, file, headerBytes, 8);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (error) {
    throw new ModelLoadError({
      file,
      reason: 'invalid-header',
      expected: 'a UTF-8 JSON object as header',
      message: `header does not parse (${errorMessage(error)})`,
      cause: error,
    });
  }
  if (!isJsonObject(header)) {
    throw new ModelLoadError({
      file,
      reason: 'invalid-header',
      expected: 'a JSON object as header',
      message: 'header is not an object',
    });
  }

  const dataStart = 8 + headerLength;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isJsonObject(entry)) {
        throw new ModelLoadError({
          file,
          reason: 'invalid-header',
          expected: '`__metadata__` to map strings to strings',
          message: '`__metadata__` is not an object',
        });
      }
      metadata = Object.fromEntries(Object.entries(entry).map(([k, v]) => [k, String(v)]));
      continue;
    }
    tensors.set(name, parseEntry(file, name, entry, dataStart, size));
  }
  return { tensors, metadata };
}

function parseEntry(file: string, name: string, entry: unknown, dataStart: number, size: number): TensorInfo {
  const expectedEntry = `header entry "${name}" to be {dtype, shape, data_offsets: [begin, end]}`;
  const invalid = (message: string, expected = expectedEntry): never => {
    throw new ModelLoadError({ file, reason: 'invalid-header', expected, message: `tensor "${name}": ${message}` });
  };
  if (!isJsonObject(entry)) return invalid('entry is not an object');
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string') return invalid('dtype is not a string');
  const elementSize = dtypeSizes[dtype];
  if (elementSize === undefined) {
    throw new ModelLoadError({
      file,
      reason: 'unknown-dtype',
      expected: `a safetensors dtype (${Object.keys(dtypeSizes).join(', ')})`,
      message: `tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`,
    });
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    return invalid('shape is not a list of non-negative integers');
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
  ) {
    return invalid('data_offsets is not [begin, end]');
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) return invalid(`data_offsets [${begin}, ${end}] end before begin`);
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const byteLength = elements * elementSize;
  if (end - begin !== byteLength) {
    invalid(
      `data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${byteLength}`,
      `data_offsets to span product(shape) * ${elementSize} bytes (header/shape mismatch)`,
    );
  }
  if (dataStart + end > size) {
    throw new ModelLoadError({
      file,
      reason: 'truncated',
      expected: `at least ${dataStart + end} bytes (tensor "${name}" ends at data offset ${end})`,
      message: `file is only ${size} bytes`,
    });
  }
  return { name, dtype, shape: shape as number[], file, byteOffset: dataStart + begin, byteLength };
}

async function readFully(handle: FileHandle, file: string, target: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const length = Math.min(target.length - done, maxReadBytes);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) {
      throw new ModelLoadError({
        file,
        reason: 'truncated',
        expected: `at least ${position + target.length} bytes`,
        message: `file ended at byte ${position + done}`,
      });
    }
    done += bytesRead;
  }
}

class OpenSafetensorsFile implements SafetensorsFile {
  readonly file: string;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  private handle: FileHandle | undefined;

  constructor(
    file: string,
    handle: FileHandle,
    tensors: ReadonlyMap<string, TensorInfo>,
    metadata: Record<string, string>,
  ) {
    this.file = file;
    this.handle = handle;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  async readFloat32(name: string, options?: ReadTensorOptions): Promise<Float32Array> {
    const info = this.tensors.get(name);
    if (info === undefined) {
      throw new ModelLoadError({
        file: this.file,
        reason: 'missing-tensor',
        expected: `a tensor named "${name}"`,
        message: `tensor "${name}" is not in this file`,
      });
    }
    if (options?.shape !== undefined && !sameShape(options.shape, info.shape)) {
      throw new ModelLoadError({
        file: this.file,
        reason: 'shape-mismatch',
        expected: `"${name}" of shape ${JSON.stringify(options.shape)}`,
        message: `tensor "${name}" has shape ${JSON.stringify(info.shape)}`,
      });
    }
    const handle = this.handle;
    if (handle === undefined) throw new Error(`${this.file} is closed`);
    const elements = info.shape.reduce((a, b) => a * b, 1);
    const result = new Float32Array(elements);
    const bytes = new Uint8Array(result.buffer);
    switch (info.dtype) {
      case 'F32':
        await readFully(handle, this.file, bytes, info.byteOffset);
        if (!littleEndian) swapBytes(bytes, 4);
        return result;
      case 'F16':
      case 'BF16': {
        const bits = new Uint32Array(result.buffer);
        await this.readChunks(handle, info, 2, (chunk, start) => {
          if (!littleEndian) swapBytes(chunk, 2);
          const halves = new Uint16Array(chunk.buffer, chunk.byteOffset, chunk.length / 2);
          if (info.dtype === 'F16') convertFloat16ToFloat32(halves, result, start);
          else convertBfloat16ToFloat32(halves, bits, start);
        });
        return result;
      }
      case 'F64':
        await this.readChunks(handle, info, 8, (chunk, start) => {
          if (!littleEndian) swapBytes(chunk, 8);
          const doubles = new Float64Array(chunk.buffer, chunk.byteOffset, chunk.length / 8);
          result.set(doubles, start);
        });
        return result;
      default:
        throw new ModelLoadError({
          file: this.file,
          reason: 'unsupported-dtype',
          expected: `"${name}" in one of ${FLOAT_DTYPES.join(', ')}`,
          message: `tensor "${name}" has dtype ${info.dtype}, which is not a floating-point weight`,
        });
    }
  }

  /** Streams a tensor's bytes in aligned chunks; `convert(chunk, firstElement)` consumes each. */
  private async readChunks(
    handle: FileHandle,
    info: TensorInfo,
    elementSize: number,
    convert: (chunk: Uint8Array, firstElement: number) => void,
  ): Promise<void> {
    const scratch = new Uint8Array(new ArrayBuffer(Math.min(chunkBytes, info.byteLength)));
    for (let done = 0; done < info.byteLength; done += scratch.length) {
      const chunk = scratch.subarray(0, Math.min(scratch.length, info.byteLength - done));
      await readFully(handle, this.file, chunk, info.byteOffset + done);
      convert(chunk, done / elementSize);
    }
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function swapBytes(bytes: Uint8Array, width: number): void {
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

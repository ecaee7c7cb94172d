import { GgufError } from './errors.js';
import { GGUF_VALUE_TYPE, type GgufArrayValue, type GgufValue, type GgufValueTypeName } from './metadata.js';
import { dequantize } from './quants.js';
import { MAX_DIMS, ggmlTypeInfo, isGgmlType, type GgmlType } from './types.js';

/** The four bytes every GGUF file starts with: `GGUF`. */
export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32

/** Version {@link writeGguf} writes. Version 2 (same layout) is read too; version 1 (32-bit counts) is not. */
export const GGUF_VERSION = 3;

/** Alignment of the data section and of every tensor when `general.alignment` is absent. */
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata key that overrides the alignment (a `uint32` power of two). */
export const GGUF_KEY_ALIGNMENT = 'general.alignment';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** One tensor described in a GGUF file's header. */
export interface GgufTensorInfo {
  /** Tensor name, for example `blk.0.attn_q.weight`. */
  readonly name: string;
  /**
   * Dimensions in ggml order: `shape[0]` (`ne[0]`) is the fastest-varying, contiguous one. This is the reverse of
   * the row-major shape PyTorch or NumPy would show: a `[rows, cols]` matrix is stored as `[cols, rows]`.
   */
  readonly shape: readonly number[];
  /** ggml type of the data (a {@link GGML_TYPE} value). */
  readonly type: GgmlType;
  /** Offset of the data, relative to the start of the data section ({@link GgufFile.dataOffset}). */
  readonly offset: number;
  /** Bytes of data (`ggml_nbytes`). */
  readonly byteLength: number;
  /** Number of values (the product of `shape`). */
  readonly elementCount: number;
}

/** A parsed GGUF file: header, metadata and tensor infos; tensor data stays in the original bytes. */
export interface GgufFile {
  /** GGUF version of the file (2 or 3). */
  readonly version: number;
  /** Metadata in file order, with typed values. */
  readonly metadata: Map<string, GgufValue>;
  /** Tensor infos in file order. */
  readonly tensors: readonly GgufTensorInfo[];
  /** Alignment of the data section and of each tensor (`general.alignment`, default 32). */
  readonly alignment: number;
  /** Absolute offset of the data section in the file. */
  readonly dataOffset: number;
  /** Size of the whole file in bytes. */
  readonly byteLength: number;
  /** The tensor info of `name`, or `undefined`. */
  tensor(name: string): GgufTensorInfo | undefined;
  /**
   * The raw bytes of tensor `name`: a view into the file's bytes, not a copy.
   *
   * @throws {GgufError} `TENSOR_NOT_FOUND`; `DATA_NOT_LOADED` for a file read with `metadataOnly`.
   */
  tensorData(name: string): Uint8Array;
}

/** Options of {@link readGguf}. */
export interface ReadGgufOptions {
  /**
   * Also demand ggml's exact layout, as llama.cpp's loader does: tensors stored in header order, each at the end of
   * the previous one padded to the alignment. Default `false`: any aligned, in-range offsets are accepted.
   */
  readonly strict?: boolean;
  /** What to do with a string that is not valid UTF-8: `'error'` (default, `INVALID_STRING`) or `'replace'` (U+FFFD). */
  readonly invalidUtf8?: 'error' | 'replace';
}

/**
 * Parses a GGUF file held in memory. Header, metadata and tensor infos are read eagerly; tensor data is not copied:
 * {@link GgufFile.tensorData} returns views into `bytes`. Versions 2 and 3 are read.
 *
 * @throws {GgufError} `BAD_MAGIC`, `UNSUPPORTED_VERSION`, `TRUNCATED`, `UNKNOWN_VALUE_TYPE`, `UNKNOWN_TENSOR_TYPE`,
 *   `DUPLICATE_KEY`, `DUPLICATE_TENSOR`, `INVALID_ALIGNMENT`, `INVALID_SHAPE`, `INVALID_VALUE`, `INVALID_STRING`,
 *   `MISALIGNED_TENSOR`, `TENSOR_OUT_OF_RANGE` or `VALUE_OUT_OF_RANGE`.
 */
export function readGguf(bytes: Uint8Array, options: ReadGgufOptions = {}): GgufFile {
  return parseGguf(bytes, bytes.length, options);
}

/**
 * Parses the first `bytes.length` bytes of a file of `fileLength` bytes. Range checks use `fileLength`; data past
 * `bytes` is reported as `DATA_NOT_LOADED` by `tensorData`. A header that does not fit in `bytes` throws
 * `TRUNCATED`.
 *
 * @internal used by `readGgufFile`'s `metadataOnly` mode.
 */
export function parseGguf(bytes: Uint8Array, fileLength: number, options: ReadGgufOptions = {}): GgufFile {
  const reader = new Reader(bytes, options.invalidUtf8 === 'replace');

  // Header: magic, version, tensor count, metadata count.
  const magic = [0x47, 0x47, 0x55, 0x46];
  for (let i = 0; i < Math.min(4, bytes.length); i++) {
    if (bytes[i] !== magic[i]) {
      throw new GgufError('BAD_MAGIC', 'not a GGUF file: it does not start with "GGUF"', { offset: 0 });
    }
  }
  reader.need(4, 'the magic');
  reader.pos = 4;
  const version = reader.u32('the version');
  if (version !== 2 && version !== 3) {
    const why =
      version !== 0 && (version & 0xffff) === 0
        ? `a big-endian file (version bytes ${version.toString(16)}), which is not supported`
        : version === 1
          ? 'GGUF version 1 (32-bit counts), which is not supported'
          : `GGUF version ${version}; versions 2 and 3 are supported`;
    throw new GgufError('UNSUPPORTED_VERSION', `unsupported GGUF file: ${why}`, { offset: 4 });
  }
  const tensorCount = reader.count('the tensor count');
  const kvCount = reader.count('the metadata count');

  // Metadata key-value pairs.
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const at = reader.pos;
    const key = reader.string('a metadata key');
    if (metadata.has(key)) {
      throw new GgufError('DUPLICATE_KEY', `duplicate metadata key '${key}'`, { offset: at });
    }
    const type = reader.u32(`the type of metadata '${key}'`);
    metadata.set(key, reader.value(type, key));
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignmentValue = metadata.get(GGUF_KEY_ALIGNMENT);
  if (alignmentValue !== undefined) {
    if (alignmentValue.type !== 'uint32' || !isPowerOfTwo(alignmentValue.value)) {
      throw new GgufError(
        'INVALID_ALIGNMENT',
        `${GGUF_KEY_ALIGNMENT} must be a uint32 power of two, got ${describe(alignmentValue)}`,
      );
    }
    alignment = alignmentValue.value;
  }

  // Tensor infos.
  const tensors: GgufTensorInfo[] = [];
  const byName = new Map<string, GgufTensorInfo>();
  for (let i = 0; i < tensorCount; i++) {
    const at = reader.pos;
    const name = reader.string('a tensor name');
    if (byName.has(name)) throw new GgufError('DUPLICATE_TENSOR', `duplicate tensor '${name}'`, { offset: at });
    const nDims = reader.u32(`the dimension count of tensor '${name}'`);
    if (nDims > MAX_DIMS) {
      throw new GgufError(
        'INVALID_SHAPE',
        `tensor '${name}' has ${nDims} dimensions; at most ${MAX_DIMS} are allowed`,
        {
          offset: at,
        },
      );
    }
    const shape: number[] = [];
    let elementCount = 1;
    for (let d = 0; d < nDims; d++) {
      const dim = reader.i64(`a dimension of tensor '${name}'`);
      if (dim < 0n || dim > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new GgufError('INVALID_SHAPE', `tensor '${name}' has invalid dimension ${dim}`, { offset: at });
      }
      shape.push(Number(dim));
      elementCount *= Number(dim);
      if (!Number.isSafeInteger(elementCount)) {
        throw new GgufError('INVALID_SHAPE', `tensor '${name}' has too many elements`, { offset: at });
      }
    }
    const typeNumber = reader.u32(`the type of tensor '${name}'`);
    if (!isGgmlType(typeNumber)) {
      throw new GgufError('UNKNOWN_TENSOR_TYPE', `tensor '${name}' has unknown ggml type ${typeNumber}`, {
        offset: at,
      });
    }
    const info = ggmlTypeInfo(typeNumber);
    const rowLength = nDims === 0 ? 1 : shape[0]!;
    if (rowLength % info.blockSize !== 0) {
      throw new GgufError(
        'INVALID_SHAPE',
        `tensor '${name}': first dimension ${rowLength} is not a multiple of the ${info.name} block size ${info.blockSize}`,
        { offset: at },
      );
    }
    const offset = reader.count(`the data offset of tensor '${name}'`);
    const tensor: GgufTensorInfo = {
      name,
      shape,
      type: typeNumber,
      offset,
      byteLength: (elementCount / info.blockSize) * info.typeSize,
      elementCount,
    };
    tensors.push(tensor);
    byName.set(name, tensor);
  }

  const dataOffset = alignUp(reader.pos, alignment);

  // Tensor data placement.
  let expected = 0;
  for (const tensor of tensors) {
    if (tensor.offset % alignment !== 0) {
      throw new GgufError(
        'MISALIGNED_TENSOR',
        `tensor '${tensor.name}' has data offset ${tensor.offset}, not a multiple of the alignment ${alignment}`,
      );
    }
    if (options.strict && tensor.offset !== expected) {
      throw new GgufError(
        'MISALIGNED_TENSOR',
        `tensor '${tensor.name}' has data offset ${tensor.offset}; ggml expects ${expected} (tensors in header order, padded to ${alignment})`,
      );
    }
    expected = tensor.offset + alignUp(tensor.byteLength, alignment);
    const end = dataOffset + tensor.offset + tensor.byteLength;
    if (end > fileLength) {
      throw new GgufError(
        'TENSOR_OUT_OF_RANGE',
        `tensor '${tensor.name}' ends at byte ${end}, past the end of the file (${fileLength} bytes); the file may be truncated`,
      );
    }
  }

  return {
    version,
    metadata,
    tensors,
    alignment,
    dataOffset,
    byteLength: fileLength,
    tensor: (name) => byName.get(name),
    tensorData(name) {
      const tensor = byName.get(name);
      if (tensor === undefined) throw new GgufError('TENSOR_NOT_FOUND', `no tensor named '${name}'`);
      const start = dataOffset + tensor.offset;
      const end = start + tensor.byteLength;
      if (end > bytes.length) {
        throw new GgufError(
          'DATA_NOT_LOADED',
          `the data of tensor '${name}' was not loaded (file read with metadataOnly); use readGgufTensorData`,
        );
      }
      return bytes.subarray(start, end);
    },
  };
}

/**
 * The values of tensor `name` as float32, dequantized from its ggml type (see `dequantize` for the types).
 *
 * @throws {GgufError} `TENSOR_NOT_FOUND`, `UNSUPPORTED_TYPE`, `DATA_NOT_LOADED`.
 */
export function dequantizeTensor(file: GgufFile, name: string): Float32Array {
  const tensor = file.tensor(name);
  if (tensor === undefined) throw new GgufError('TENSOR_NOT_FOUND', `no tensor named '${name}'`);
  return dequantize(tensor.type, file.tensorData(name), tensor.elementCount);
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** `n` rounded up to a multiple of `alignment`. */
export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

function describe(value: GgufValue): string {
  return value.type === 'array' ? `an array of ${value.itemType}` : `${value.type} ${String(value.value)}`;
}

/** Value type names indexed by their numbers. */
const VALUE_TYPE_NAMES: readonly (GgufValueTypeName | undefined)[] = (() => {
  const names: (GgufValueTypeName | undefined)[] = [];
  for (const [name, number] of Object.entries(GGUF_VALUE_TYPE)) names[number] = name as GgufValueTypeName;
  return names;
})();

const ITEM_SIZES: Partial<Record<GgufValueTypeName, number>> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  bool: 1,
  uint64: 8,
  int64: 8,
  float64: 8,
};

/** Little-endian cursor over the file bytes, throwing `TRUNCATED` past the end. */
class Reader {
  pos = 0;
  private readonly view: DataView;
  private readonly decoder: { decode(input: Uint8Array): string };

  constructor(
    private readonly bytes: Uint8Array,
    replaceInvalidUtf8: boolean,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.decoder = new TextDecoder('utf-8', { fatal: !replaceInvalidUtf8, ignoreBOM: true });
  }

  need(n: number, what: string): void {
    if (this.pos + n > this.bytes.length) {
      throw new GgufError('TRUNCATED', `file truncated while reading ${what} at byte ${this.pos}`, {
        offset: this.pos,
      });
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++]!;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64(what: string): bigint {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  i64(what: string): bigint {
    this.need(8, what);
    const v = this.view.getBigInt64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A uint64 count, length or offset, as a safe `number`. */
  count(what: string): number {
    const at = this.pos;
    const v = this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new GgufError('VALUE_OUT_OF_RANGE', `${what} (${v}) at byte ${at} is too large`, { offset: at });
    }
    return Number(v);
  }

  string(what: string): string {
    const at = this.pos;
    const length = this.count(`the length of ${what}`);
    this.need(length, what);
    const start = this.pos;
    this.pos += length;
    return this.decode(start, length, what, at);
  }

  private decode(start: number, length: number, what: string, at: number): string {
    const bytes = this.bytes;
    let ascii = length <= 64;
    for (let i = start; ascii && i < start + length; i++) if (bytes[i]! >= 0x80) ascii = false;
    if (ascii) return String.fromCharCode(...bytes.subarray(start, start + length));
    try {
      return this.decoder.decode(bytes.subarray(start, start + length));
    } catch (error) {
      throw new GgufError('INVALID_STRING', `${what} at byte ${at} is not valid UTF-8`, { offset: at, cause: error });
    }
  }

  value(type: number, key: string): GgufValue {
    const name = VALUE_TYPE_NAMES[type];
    if (name === undefined) throw this.unknownType(type, key);
    const what = `the value of metadata '${key}'`;
    switch (name) {
      case 'uint8':
        return { type: name, value: this.u8(what) };
      case 'int8':
        this.need(1, what);
        return { type: name, value: this.view.getInt8(this.pos++) };
      case 'uint16':
        this.need(2, what);
        this.pos += 2;
        return { type: name, value: this.view.getUint16(this.pos - 2, true) };
      case 'int16':
        this.need(2, what);
        this.pos += 2;
        return { type: name, value: this.view.getInt16(this.pos - 2, true) };
      case 'uint32':
        return { type: name, value: this.u32(what) };
      case 'int32':
        this.need(4, what);
        this.pos += 4;
        return { type: name, value: this.view.getInt32(this.pos - 4, true) };
      case 'float32':
        this.need(4, what);
        this.pos += 4;
        return { type: name, value: this.view.getFloat32(this.pos - 4, true) };
      case 'float64':
        this.need(8, what);
        this.pos += 8;
        return { type: name, value: this.view.getFloat64(this.pos - 8, true) };
      case 'uint64':
        return { type: name, value: this.u64(what) };
      case 'int64':
        return { type: name, value: this.i64(what) };
      case 'bool':
        return { type: name, value: this.bool(what) };
      case 'string':
        return { type: name, value: this.string(what) };
      case 'array':
        return this.array(key);
    }
  }

  private unknownType(type: number, key: string): GgufError {
    return new GgufError('UNKNOWN_VALUE_TYPE', `metadata '${key}' has unknown value type ${type}`, {
      offset: this.pos - 4,
    });
  }

  /** A bool byte: any non-zero byte is true, as in llama.cpp's reader. */
  private bool(what: string): boolean {
    return this.u8(what) !== 0;
  }

  private array(key: string): GgufArrayValue {
    const itemTypeNumber = this.u32(`the item type of metadata '${key}'`);
    const itemType = VALUE_TYPE_NAMES[itemTypeNumber];
    if (itemType === undefined) throw this.unknownType(itemTypeNumber, key);
    const n = this.count(`the length of metadata array '${key}'`);
    const what = `the items of metadata '${key}'`;
    const size = ITEM_SIZES[itemType];
    if (size !== undefined) this.need(n * size, what);
    else this.need(n * 8, what); // strings and arrays start with an 8-byte length each
    switch (itemType) {
      case 'string': {
        const items: string[] = new Array<string>(n);
        for (let i = 0; i < n; i++) items[i] = this.string(`item ${i} of metadata '${key}'`);
        return { type: 'array', itemType, value: items };
      }
      case 'array': {
        const items: GgufArrayValue[] = new Array<GgufArrayValue>(n);
        // Each item of an array of arrays is a whole array value: item type, length, items.
        for (let i = 0; i < n; i++) items[i] = this.array(`${key}[${i}]`);
        return { type: 'array', itemType, value: items };
      }
      case 'bool': {
        const items: boolean[] = new Array<boolean>(n);
        for (let i = 0; i < n; i++) items[i] = this.bool(what);
        return { type: 'array', itemType, value: items };
      }
      default:
        return this.numericArray(itemType, n);
    }
  }

  private numericArray(itemType: Exclude<GgufValueTypeName, 'string' | 'array' | 'bool'>, n: number): GgufArrayValue {
    const size = ITEM_SIZES[itemType]!;
    const start = this.pos;
    this.pos += n * size;
    const raw = this.bytes.slice(start, start + n * size); // an aligned copy
    if (LITTLE_ENDIAN) {
      const buffer = raw.buffer;
      switch (itemType) {
        case 'uint8':
          return { type: 'array', itemType, value: raw };
        case 'int8':
          return { type: 'array', itemType, value: new Int8Array(buffer) };
        case 'uint16':
          return { type: 'array', itemType, value: new Uint16Array(buffer) };
        case 'int16':
          return { type: 'array', itemType, value: new Int16Array(buffer) };
        case 'uint32':
          return { type: 'array', itemType, value: new Uint32Array(buffer) };
        case 'int32':
          return { type: 'array', itemType, value: new Int32Array(buffer) };
        case 'float32':
          return { type: 'array', itemType, value: new Float32Array(buffer) };
        case 'float64':
          return { type: 'array', itemType, value: new Float64Array(buffer) };
        case 'uint64':
          return { type: 'array', itemType, value: new BigUint64Array(buffer) };
        case 'int64':
          return { type: 'array', itemType, value: new BigInt64Array(buffer) };
      }
    }
    const view = new DataView(raw.buffer);
    const fill = <T extends { [i: number]: number | bigint }>(target: T, get: (o: number) => number | bigint): T => {
      for (let i = 0; i < n; i++) (target as Record<number, number | bigint>)[i] = get(i * size);
      return target;
    };
    switch (itemType) {
      case 'uint8':
        return { type: 'array', itemType, value: raw };
      case 'int8':
        return { type: 'array', itemType, value: new Int8Array(raw.buffer) };
      case 'uint16':
        return { type: 'array', itemType, value: fill(new Uint16Array(n), (o) => view.getUint16(o, true)) };
      case 'int16':
        return { type: 'array', itemType, value: fill(new Int16Array(n), (o) => view.getInt16(o, true)) };
      case 'uint32':
        return { type: 'array', itemType, value: fill(new Uint32Array(n), (o) => view.getUint32(o, true)) };
      case 'int32':
        return { type: 'array', itemType, value: fill(new Int32Array(n), (o) => view.getInt32(o, true)) };
      case 'float32':
        return { type: 'array', itemType, value: fill(new Float32Array(n), (o) => view.getFloat32(o, true)) };
      case 'float64':
        return { type: 'array', itemType, value: fill(new Float64Array(n), (o) => view.getFloat64(o, true)) };
      case 'uint64':
        return { type: 'array', itemType, value: fill(new BigUint64Array(n), (o) => view.getBigUint64(o, true)) };
      case 'int64':
        return { type: 'array', itemType, value: fill(new BigInt64Array(n), (o) => view.getBigInt64(o, true)) };
    }
  }
}

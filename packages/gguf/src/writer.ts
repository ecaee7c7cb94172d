import { GgufError } from './errors.js';
import { GGUF_VALUE_TYPE, type GgufArrayValue, type GgufValue } from './metadata.js';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_KEY_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, alignUp } from './reader.js';
import { MAX_DIMS, ggmlTypeInfo, tensorByteLength } from './types.js';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Longest tensor name ggml accepts, in UTF-8 bytes (`GGML_MAX_NAME - 1`). */
export const MAX_TENSOR_NAME_BYTES = 63;

/** One tensor to write. */
export interface GgufTensorInput {
  /** Tensor name (at most 63 UTF-8 bytes, as ggml requires). */
  readonly name: string;
  /** Dimensions in ggml order, `ne[0]` (the contiguous one) first: 1 to 4 of them. */
  readonly shape: readonly number[];
  /** ggml type of `data` (a `GGML_TYPE` value). */
  readonly type: number;
  /**
   * The tensor's bytes, exactly `tensorByteLength(type, shape)` of them: for example `quantize(type, values)`. Any
   * typed array is taken as its raw bytes (little-endian on every platform Node.js runs on but s390x).
   */
  readonly data: ArrayBufferView;
}

/** What {@link writeGguf} writes. */
export interface GgufWriteInput {
  /**
   * Metadata in the order to write it: a `Map`, an array of `[key, value]` pairs, or a plain object. Values are
   * built with `kv` (`kv.uint32(8)`, `kv.array('string', tokens)`, ...).
   */
  readonly metadata?:
    ReadonlyMap<string, GgufValue> | Iterable<readonly [string, GgufValue]> | Record<string, GgufValue>;
  /** Tensors in the order to write them; their data is laid out in the same order. */
  readonly tensors?: readonly GgufTensorInput[];
  /**
   * Alignment of the data section and of each tensor, a power of two (default: `general.alignment` from
   * `metadata`, else 32). A value other than 32 is recorded as `general.alignment` (uint32) when the metadata lacks
   * it; when the metadata has it, the two must agree.
   */
  readonly alignment?: number;
  /** GGUF version to write: 3 (default) or 2, which has the same layout. */
  readonly version?: 2 | 3;
}

/**
 * Serialises a GGUF file: header (magic `GGUF`, version, tensor and metadata counts as uint64), metadata key-value
 * pairs, tensor infos (name, dimension count, dimensions, type, offset), zero padding to the alignment, then each
 * tensor's data at an aligned offset, each followed by zero padding to the alignment — byte for byte what ggml's
 * `gguf_write_to_file` writes for the same content.
 *
 * @throws {GgufError} `DUPLICATE_KEY`, `DUPLICATE_TENSOR`, `INVALID_VALUE`, `UNKNOWN_VALUE_TYPE`,
 *   `INVALID_ALIGNMENT`, `INVALID_TENSOR_NAME`, `INVALID_SHAPE`, `UNKNOWN_TENSOR_TYPE`, `INVALID_LENGTH`.
 */
export function writeGguf(input: GgufWriteInput): Uint8Array {
  const entries = metadataEntries(input.metadata);
  const alignment = resolveAlignment(entries, input.alignment);
  const version = input.version ?? GGUF_VERSION;
  if (version !== 2 && version !== 3)
    throw new GgufError('UNSUPPORTED_VERSION', `cannot write GGUF version ${version}`);

  const tensors = input.tensors ?? [];
  const sink = new Sink();
  sink.u32(GGUF_MAGIC);
  sink.u32(version);
  sink.u64(BigInt(tensors.length));
  sink.u64(BigInt(entries.length));
  for (const [key, value] of entries) {
    sink.string(key);
    writeValue(sink, value, key, true);
  }

  const names = new Set<string>();
  const placements: { data: Uint8Array; offset: number }[] = [];
  let offset = 0;
  for (const tensor of tensors) {
    const { name, shape, type } = tensor;
    if (typeof name !== 'string' || utf8Length(name) > MAX_TENSOR_NAME_BYTES) {
      throw new GgufError('INVALID_TENSOR_NAME', `tensor name '${name}' is longer than ${MAX_TENSOR_NAME_BYTES} bytes`);
    }
    if (names.has(name)) throw new GgufError('DUPLICATE_TENSOR', `duplicate tensor '${name}'`);
    names.add(name);
    if (shape.length < 1 || shape.length > MAX_DIMS) {
      throw new GgufError(
        'INVALID_SHAPE',
        `tensor '${name}' must have 1 to ${MAX_DIMS} dimensions, got ${shape.length}`,
      );
    }
    ggmlTypeInfo(type);
    const byteLength = tensorByteLength(type, shape);
    const data = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    if (data.length !== byteLength) {
      throw new GgufError(
        'INVALID_LENGTH',
        `tensor '${name}' of type ${ggmlTypeInfo(type).name} and shape [${shape.join(', ')}] needs ${byteLength} bytes, got ${data.length}`,
      );
    }
    sink.string(name);
    sink.u32(shape.length);
    for (const dim of shape) sink.u64(BigInt(dim));
    sink.u32(type);
    sink.u64(BigInt(offset));
    placements.push({ data, offset });
    offset += alignUp(byteLength, alignment);
  }

  const dataOffset = alignUp(sink.length, alignment);
  const out = new Uint8Array(dataOffset + offset);
  out.set(sink.bytes());
  for (const placement of placements) out.set(placement.data, dataOffset + placement.offset);
  return out;
}

function metadataEntries(metadata: GgufWriteInput['metadata']): (readonly [string, GgufValue])[] {
  if (metadata === undefined) return [];
  const iterable =
    metadata instanceof Map || Symbol.iterator in metadata
      ? (metadata as Iterable<readonly [string, GgufValue]>)
      : Object.entries(metadata as Record<string, GgufValue>);
  const entries: (readonly [string, GgufValue])[] = [];
  const seen = new Set<string>();
  for (const [key, value] of iterable) {
    if (typeof key !== 'string')
      throw new GgufError('INVALID_VALUE', `metadata keys must be strings, got ${String(key)}`);
    if (seen.has(key)) throw new GgufError('DUPLICATE_KEY', `duplicate metadata key '${key}'`);
    seen.add(key);
    entries.push([key, value]);
  }
  return entries;
}

function resolveAlignment(entries: (readonly [string, GgufValue])[], requested: number | undefined): number {
  const index = entries.findIndex(([key]) => key === GGUF_KEY_ALIGNMENT);
  const stored = index === -1 ? undefined : entries[index]![1];
  if (stored !== undefined && (stored.type !== 'uint32' || !isPowerOfTwo(stored.value))) {
    throw new GgufError('INVALID_ALIGNMENT', `${GGUF_KEY_ALIGNMENT} must be a uint32 power of two`);
  }
  if (requested !== undefined && (!isPowerOfTwo(requested) || requested > 0xffffffff)) {
    throw new GgufError('INVALID_ALIGNMENT', `alignment must be a power of two, got ${requested}`);
  }
  if (stored !== undefined && requested !== undefined && stored.value !== requested) {
    throw new GgufError(
      'INVALID_ALIGNMENT',
      `alignment ${requested} disagrees with ${GGUF_KEY_ALIGNMENT} = ${String(stored.value)} in the metadata`,
    );
  }
  if (stored !== undefined) return stored.value as number;
  const alignment = requested ?? GGUF_DEFAULT_ALIGNMENT;
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) entries.push([GGUF_KEY_ALIGNMENT, { type: 'uint32', value: alignment }]);
  return alignment;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && n <= 0x80000000 && (n & (n - 1)) === 0;
}

const INTEGER_RANGES = {
  uint8: [0, 0xff],
  int8: [-0x80, 0x7f],
  uint16: [0, 0xffff],
  int16: [-0x8000, 0x7fff],
  uint32: [0, 0xffffffff],
  int32: [-0x80000000, 0x7fffffff],
} as const;

const TYPED_ARRAY_OF = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
  uint64: BigUint64Array,
  int64: BigInt64Array,
} as const;

/** The raw `value` field of a value that failed its type check, for messages. */
function raw(value: unknown): string {
  return String((value as { value: unknown }).value);
}

function invalid(key: string, message: string): GgufError {
  return new GgufError('INVALID_VALUE', `metadata '${key}': ${message}`);
}

/** Writes a value; `withType` also writes its uint32 type tag (omitted for the items of an array). */
function writeValue(sink: Sink, value: GgufValue, key: string, withType: boolean): void {
  if (typeof value !== 'object' || value === null || !(value.type in GGUF_VALUE_TYPE)) {
    throw new GgufError('UNKNOWN_VALUE_TYPE', `metadata '${key}' is not a typed GGUF value (build it with kv)`);
  }
  if (withType) sink.u32(GGUF_VALUE_TYPE[value.type]);
  switch (value.type) {
    case 'uint8':
    case 'int8':
    case 'uint16':
    case 'int16':
    case 'uint32':
    case 'int32': {
      const [lo, hi] = INTEGER_RANGES[value.type];
      if (!Number.isInteger(value.value) || value.value < lo || value.value > hi) {
        throw invalid(key, `${String(value.value)} is not a ${value.type}`);
      }
      sink.integer(value.type, value.value);
      return;
    }
    case 'float32':
    case 'float64':
      if (typeof value.value !== 'number') throw invalid(key, `${raw(value)} is not a number`);
      if (value.type === 'float32') sink.f32(value.value);
      else sink.f64(value.value);
      return;
    case 'uint64':
    case 'int64': {
      const v = value.value;
      const ok =
        typeof v === 'bigint' &&
        (value.type === 'uint64' ? v >= 0n && v < 1n << 64n : v >= -(1n << 63n) && v < 1n << 63n);
      if (!ok) throw invalid(key, `${String(v)} is not a ${value.type} (use a bigint)`);
      if (value.type === 'uint64') sink.u64(v);
      else sink.i64(v);
      return;
    }
    case 'bool':
      if (typeof value.value !== 'boolean') throw invalid(key, `${raw(value)} is not a boolean`);
      sink.u8(value.value ? 1 : 0);
      return;
    case 'string':
      if (typeof value.value !== 'string') throw invalid(key, `${raw(value)} is not a string`);
      sink.string(value.value);
      return;
    case 'array':
      writeArray(sink, value, key);
      return;
  }
}

function writeArray(sink: Sink, value: GgufArrayValue, key: string): void {
  const itemType = value.itemType;
  if (!(itemType in GGUF_VALUE_TYPE)) {
    throw new GgufError('UNKNOWN_VALUE_TYPE', `metadata '${key}' has unknown item type '${String(itemType)}'`);
  }
  sink.u32(GGUF_VALUE_TYPE[itemType]);
  switch (value.itemType) {
    case 'string':
    case 'bool':
    case 'array': {
      const items = value.value;
      if (!Array.isArray(items)) throw invalid(key, `the items of an array of ${itemType} must be an array`);
      sink.u64(BigInt(items.length));
      if (value.itemType === 'string') {
        for (const item of value.value) {
          if (typeof item !== 'string') throw invalid(key, `${String(item)} is not a string`);
          sink.string(item);
        }
      } else if (value.itemType === 'bool') {
        for (const item of value.value) {
          if (typeof item !== 'boolean') throw invalid(key, `${String(item)} is not a boolean`);
          sink.u8(item ? 1 : 0);
        }
      } else {
        value.value.forEach((item, i) => {
          if (typeof item !== 'object' || item === null || item.type !== 'array') {
            throw invalid(key, `item ${i} of an array of arrays is not an array value`);
          }
          writeArray(sink, item, `${key}[${i}]`);
        });
      }
      return;
    }
    default: {
      const Ctor = TYPED_ARRAY_OF[value.itemType];
      if (!(value.value instanceof Ctor)) {
        throw invalid(key, `the items of an array of ${itemType} must be a ${Ctor.name} (kv.array converts)`);
      }
      sink.u64(BigInt(value.value.length));
      sink.typedArray(value.value);
    }
  }
}

const encoder = new TextEncoder();

function utf8Length(s: string): number {
  return encoder.encode(s).length;
}

/** A growable little-endian byte buffer. */
class Sink {
  private buffer = new Uint8Array(4096);
  private view = new DataView(this.buffer.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    let capacity = this.buffer.length * 2;
    while (capacity < this.length + n) capacity *= 2;
    const next = new Uint8Array(capacity);
    next.set(this.buffer.subarray(0, this.length));
    this.buffer = next;
    this.view = new DataView(next.buffer);
  }

  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }

  u8(v: number): void {
    this.reserve(1);
    this.buffer[this.length++] = v;
  }

  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }

  u64(v: bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, v, true);
    this.length += 8;
  }

  i64(v: bigint): void {
    this.reserve(8);
    this.view.setBigInt64(this.length, v, true);
    this.length += 8;
  }

  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }

  f64(v: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }

  integer(type: keyof typeof INTEGER_RANGES, v: number): void {
    switch (type) {
      case 'uint8':
      case 'int8':
        this.u8(v & 0xff);
        return;
      case 'uint16':
      case 'int16':
        this.reserve(2);
        this.view.setUint16(this.length, v & 0xffff, true);
        this.length += 2;
        return;
      case 'uint32':
      case 'int32':
        this.u32(v >>> 0);
        return;
    }
  }

  /** A uint64 byte length then the UTF-8 bytes (no terminator). */
  string(s: string): void {
    this.reserve(8 + s.length * 3);
    const { written } = encoder.encodeInto(s, this.buffer.subarray(this.length + 8));
    this.view.setBigUint64(this.length, BigInt(written), true);
    this.length += 8 + written;
  }

  typedArray(items: Exclude<ArrayBufferView, DataView>): void {
    const size = (items as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    this.reserve(items.byteLength);
    const view = this.view;
    const n = items.byteLength / size;
    if (LITTLE_ENDIAN || size === 1) {
      this.buffer.set(new Uint8Array(items.buffer, items.byteOffset, items.byteLength), this.length);
    } else if (items instanceof Float32Array) {
      for (let i = 0; i < n; i++) view.setFloat32(this.length + 4 * i, items[i]!, true);
    } else if (items instanceof Float64Array) {
      for (let i = 0; i < n; i++) view.setFloat64(this.length + 8 * i, items[i]!, true);
    } else if (items instanceof BigUint64Array || items instanceof BigInt64Array) {
      for (let i = 0; i < n; i++) view.setBigUint64(this.length + 8 * i, BigInt.asUintN(64, items[i]!), true);
    } else {
      const ints = items as Uint16Array | Int16Array | Uint32Array | Int32Array;
      for (let i = 0; i < n; i++) {
        if (size === 2) view.setUint16(this.length + 2 * i, ints[i]! & 0xffff, true);
        else view.setUint32(this.length + 4 * i, ints[i]! >>> 0, true);
      }
    }
    this.length += items.byteLength;
  }
}

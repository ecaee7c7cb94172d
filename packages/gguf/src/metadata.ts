import { GgufError } from './errors.js';

/**
 * GGUF's metadata value types (`enum gguf_type` in `ggml/include/gguf.h`; `GGUFValueType` in gguf-py), by their
 * numbers as stored in files.
 */
export const GGUF_VALUE_TYPE = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

/** Name of a GGUF metadata value type. */
export type GgufValueTypeName = keyof typeof GGUF_VALUE_TYPE;

/** Value types held in a JavaScript `number`. */
export type GgufNumberTypeName = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';

/** Value types held in a `bigint`. */
export type GgufBigIntTypeName = 'uint64' | 'int64';

/** A metadata value that is not an array. */
export type GgufScalarValue =
  | { readonly type: GgufNumberTypeName; readonly value: number }
  | { readonly type: GgufBigIntTypeName; readonly value: bigint }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string };

/** How the items of an array of each item type are held. Numeric arrays are typed arrays (cheap for big vocabularies). */
export interface GgufArrayItems {
  uint8: Uint8Array;
  int8: Int8Array;
  uint16: Uint16Array;
  int16: Int16Array;
  uint32: Uint32Array;
  int32: Int32Array;
  float32: Float32Array;
  float64: Float64Array;
  uint64: BigUint64Array;
  int64: BigInt64Array;
  bool: boolean[];
  string: string[];
  array: GgufArrayValue[];
}

/**
 * A metadata array: `itemType` says what its items are, `value` holds them. Arrays of arrays are allowed by the GGUF
 * spec (and read and written here), but llama.cpp's own reader rejects them.
 */
export type GgufArrayValue = {
  [K in keyof GgufArrayItems]: { readonly type: 'array'; readonly itemType: K; readonly value: GgufArrayItems[K] };
}[keyof GgufArrayItems];

/** A typed GGUF metadata value. Build them with {@link kv}. */
export type GgufValue = GgufScalarValue | GgufArrayValue;

/** What {@link kv.array} accepts for each item type (plain arrays are converted to the typed arrays). */
export interface GgufArrayInput {
  uint8: Uint8Array | readonly number[];
  int8: Int8Array | readonly number[];
  uint16: Uint16Array | readonly number[];
  int16: Int16Array | readonly number[];
  uint32: Uint32Array | readonly number[];
  int32: Int32Array | readonly number[];
  float32: Float32Array | readonly number[];
  float64: Float64Array | readonly number[];
  uint64: BigUint64Array | readonly (bigint | number)[];
  int64: BigInt64Array | readonly (bigint | number)[];
  bool: readonly boolean[];
  string: readonly string[];
  array: readonly GgufArrayValue[];
}

const TYPED_ARRAYS = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
} as const;

/**
 * Constructors of typed metadata values: `kv.uint32(4096)`, `kv.string('llama')`, `kv.array('string', tokens)`,
 * `kv.array('float32', scores)`. Values are checked when written ({@link writeGguf}), not here.
 */
export const kv = {
  uint8: (value: number): GgufScalarValue => ({ type: 'uint8', value }),
  int8: (value: number): GgufScalarValue => ({ type: 'int8', value }),
  uint16: (value: number): GgufScalarValue => ({ type: 'uint16', value }),
  int16: (value: number): GgufScalarValue => ({ type: 'int16', value }),
  uint32: (value: number): GgufScalarValue => ({ type: 'uint32', value }),
  int32: (value: number): GgufScalarValue => ({ type: 'int32', value }),
  float32: (value: number): GgufScalarValue => ({ type: 'float32', value }),
  float64: (value: number): GgufScalarValue => ({ type: 'float64', value }),
  uint64: (value: bigint | number): GgufScalarValue => ({ type: 'uint64', value: BigInt(value) }),
  int64: (value: bigint | number): GgufScalarValue => ({ type: 'int64', value: BigInt(value) }),
  bool: (value: boolean): GgufScalarValue => ({ type: 'bool', value }),
  string: (value: string): GgufScalarValue => ({ type: 'string', value }),
  /** An array of `itemType` items; plain number arrays become the matching typed array. */
  array<K extends keyof GgufArrayItems>(itemType: K, items: GgufArrayInput[K]): GgufArrayValue {
    return { type: 'array', itemType, value: toItems(itemType, items) } as GgufArrayValue;
  },
};

function toItems<K extends keyof GgufArrayItems>(itemType: K, items: GgufArrayInput[K]): GgufArrayItems[K] {
  if (itemType === 'uint64') {
    return (
      items instanceof BigUint64Array ? items : BigUint64Array.from(items as readonly (bigint | number)[], BigInt)
    ) as GgufArrayItems[K];
  }
  if (itemType === 'int64') {
    return (
      items instanceof BigInt64Array ? items : BigInt64Array.from(items as readonly (bigint | number)[], BigInt)
    ) as GgufArrayItems[K];
  }
  if (itemType === 'bool' || itemType === 'string' || itemType === 'array') {
    return [...(items as readonly unknown[])] as GgufArrayItems[K];
  }
  const Ctor = TYPED_ARRAYS[itemType as keyof typeof TYPED_ARRAYS];
  if (Ctor === undefined) throw new GgufError('UNKNOWN_VALUE_TYPE', `unknown GGUF value type '${String(itemType)}'`);
  return (items instanceof Ctor ? items : Ctor.from(items as readonly number[])) as GgufArrayItems[K];
}

/** Anything holding metadata: a {@link GgufFile} or the metadata map itself. */
export type MetadataSource = { readonly metadata: ReadonlyMap<string, GgufValue> } | ReadonlyMap<string, GgufValue>;

function lookup(source: MetadataSource, key: string): GgufValue | undefined {
  const map = 'metadata' in source ? source.metadata : source;
  return map.get(key);
}

function mismatch(key: string, wanted: string, value: GgufValue): GgufError {
  const got = value.type === 'array' ? `array of ${value.itemType}` : value.type;
  return new GgufError('TYPE_MISMATCH', `metadata '${key}' is ${got}, not ${wanted}`);
}

/**
 * The string value of `key`, or `undefined` when the key is absent.
 *
 * @throws {GgufError} `TYPE_MISMATCH` when the key holds another type.
 */
export function getString(source: MetadataSource, key: string): string | undefined {
  const value = lookup(source, key);
  if (value === undefined) return undefined;
  if (value.type !== 'string') throw mismatch(key, 'string', value);
  return value.value;
}

/**
 * The numeric value of `key` as a `number`, whatever its integer or float type, or `undefined` when absent.
 * 64-bit integers are converted when they are safe integers.
 *
 * @throws {GgufError} `TYPE_MISMATCH` for a non-numeric value; `VALUE_OUT_OF_RANGE` for a 64-bit integer beyond
 *   `Number.MAX_SAFE_INTEGER`.
 */
export function getNumber(source: MetadataSource, key: string): number | undefined {
  const value = lookup(source, key);
  if (value === undefined) return undefined;
  if (value.type === 'uint64' || value.type === 'int64') {
    const n = Number(value.value);
    if (!Number.isSafeInteger(n)) {
      throw new GgufError('VALUE_OUT_OF_RANGE', `metadata '${key}' = ${value.value} is not a safe integer`);
    }
    return n;
  }
  if (value.type === 'array' || typeof value.value !== 'number') throw mismatch(key, 'a number', value);
  return value.value;
}

/**
 * The integer value of `key` as a `bigint` (any integer type), or `undefined` when absent.
 *
 * @throws {GgufError} `TYPE_MISMATCH` for a float, bool, string or array.
 */
export function getBigInt(source: MetadataSource, key: string): bigint | undefined {
  const value = lookup(source, key);
  if (value === undefined) return undefined;
  if (value.type === 'uint64' || value.type === 'int64') return value.value;
  if (
    value.type === 'array' ||
    value.type === 'float32' ||
    value.type === 'float64' ||
    typeof value.value !== 'number'
  ) {
    throw mismatch(key, 'an integer', value);
  }
  return BigInt(value.value);
}

/**
 * The bool value of `key`, or `undefined` when absent.
 *
 * @throws {GgufError} `TYPE_MISMATCH` when the key holds another type.
 */
export function getBoolean(source: MetadataSource, key: string): boolean | undefined {
  const value = lookup(source, key);
  if (value === undefined) return undefined;
  if (value.type !== 'bool') throw mismatch(key, 'bool', value);
  return value.value;
}

/**
 * The array value of `key` (optionally checked to hold `itemType` items), or `undefined` when absent.
 *
 * @throws {GgufError} `TYPE_MISMATCH` when the key holds a scalar or an array of another item type.
 */
export function getArray<K extends keyof GgufArrayItems>(
  source: MetadataSource,
  key: string,
  itemType: K,
): GgufArrayItems[K] | undefined;
export function getArray(source: MetadataSource, key: string): GgufArrayValue | undefined;
export function getArray(
  source: MetadataSource,
  key: string,
  itemType?: keyof GgufArrayItems,
): GgufArrayValue | GgufArrayItems[keyof GgufArrayItems] | undefined {
  const value = lookup(source, key);
  if (value === undefined) return undefined;
  if (value.type !== 'array') throw mismatch(key, itemType === undefined ? 'an array' : `array of ${itemType}`, value);
  if (itemType === undefined) return value;
  if (value.itemType !== itemType) throw mismatch(key, `array of ${itemType}`, value);
  return value.value;
}

/**
 * A numeric array of `key` as plain numbers, whatever its numeric item type (64-bit items must be safe integers), or
 * `undefined` when absent. Handy for `tokenizer.ggml.token_type` or `tokenizer.ggml.scores`.
 *
 * @throws {GgufError} `TYPE_MISMATCH` for a scalar or a non-numeric array; `VALUE_OUT_OF_RANGE` for a 64-bit item
 *   beyond `Number.MAX_SAFE_INTEGER`.
 */
export function getNumberArray(source: MetadataSource, key: string): number[] | undefined {
  const value = getArray(source, key);
  if (value === undefined) return undefined;
  if (value.itemType === 'uint64' || value.itemType === 'int64') {
    return Array.from(value.value as ArrayLike<bigint>, (item) => {
      const n = Number(item);
      if (!Number.isSafeInteger(n)) {
        throw new GgufError('VALUE_OUT_OF_RANGE', `metadata '${key}' holds ${item}, not a safe integer`);
      }
      return n;
    });
  }
  if (value.itemType === 'bool' || value.itemType === 'string' || value.itemType === 'array') {
    throw mismatch(key, 'a numeric array', value);
  }
  return Array.from(value.value);
}

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { GgufError, type GgufErrorCode } from './errors.js';
import { readGgufFile, readGgufTensorData } from './file.js';
import {
  getArray,
  getBigInt,
  getBoolean,
  getNumber,
  getNumberArray,
  getString,
  kv,
  type GgufValue,
} from './metadata.js';
import { dequantize, quantize } from './quants.js';
import { dequantizeTensor, readGguf } from './reader.js';
import { GGML_TYPE, tensorByteLength } from './types.js';
import { writeGguf } from './writer.js';

function errorCode(f: () => unknown): GgufErrorCode | 'none' | 'other' {
  try {
    f();
  } catch (error) {
    return GgufError.isInstance(error) ? error.code : 'other';
  }
  return 'none';
}

const everyType: [string, GgufValue][] = [
  ['t.u8', kv.uint8(255)],
  ['t.i8', kv.int8(-128)],
  ['t.u16', kv.uint16(65535)],
  ['t.i16', kv.int16(-32768)],
  ['t.u32', kv.uint32(4294967295)],
  ['t.i32', kv.int32(-2147483648)],
  ['t.f32', kv.float32(0.1)],
  ['t.f64', kv.float64(0.1)],
  ['t.u64', kv.uint64(18446744073709551615n)],
  ['t.i64', kv.int64(-9223372036854775808n)],
  ['t.bool.true', kv.bool(true)],
  ['t.bool.false', kv.bool(false)],
  ['t.str', kv.string('héllo, 世界 🦙')],
  ['t.str.empty', kv.string('')],
  ['t.arr.u8', kv.array('uint8', [0, 1, 255])],
  ['t.arr.i8', kv.array('int8', [-1, 127])],
  ['t.arr.u16', kv.array('uint16', [1, 65535])],
  ['t.arr.i16', kv.array('int16', [-2, 3])],
  ['t.arr.u32', kv.array('uint32', [7, 4294967295])],
  ['t.arr.i32', kv.array('int32', [-7, 0, 1, 2])],
  ['t.arr.f32', kv.array('float32', [0.5, -1.25, 1e-8])],
  ['t.arr.f64', kv.array('float64', [Math.PI])],
  ['t.arr.u64', kv.array('uint64', [0n, 2n ** 64n - 1n])],
  ['t.arr.i64', kv.array('int64', [-(2n ** 63n), 5])],
  ['t.arr.bool', kv.array('bool', [true, false, true])],
  ['t.arr.str', kv.array('string', ['a', '', 'ü', '<0x0A>'])],
  ['t.arr.empty', kv.array('string', [])],
  [
    't.arr.nested',
    kv.array('array', [kv.array('string', ['x', 'y']), kv.array('string', []), kv.array('int32', [1, 2, 3])]),
  ],
  ['t.arr.deep', kv.array('array', [kv.array('array', [kv.array('string', ['deep'])])])],
];

function sampleTensors() {
  const q8 = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 2);
  return [
    { name: 'token_embd.weight', shape: [32, 2], type: GGML_TYPE.Q8_0, data: quantize(GGML_TYPE.Q8_0, q8) },
    { name: 'output_norm.weight', shape: [3], type: GGML_TYPE.F32, data: Float32Array.from([1, 2, 3]) },
    { name: 'blk.0.ffn.weight', shape: [256, 1, 1], type: GGML_TYPE.Q4_K, data: new Uint8Array(144).fill(7) },
    { name: 'half', shape: [5], type: GGML_TYPE.F16, data: quantize(GGML_TYPE.F16, [1, 2, 3, 4, 5]) },
  ];
}

describe('writeGguf / readGguf round trip', () => {
  it('keeps metadata of every value type, nested arrays included, in order', () => {
    const bytes = writeGguf({ metadata: everyType });
    const file = readGguf(bytes);
    expect(file.version).toBe(3);
    expect([...file.metadata.keys()]).toEqual(everyType.map(([key]) => key));
    for (const [key, value] of everyType) {
      const read = file.metadata.get(key)!;
      if (value.type === 'float32') {
        expect(read).toEqual({ type: 'float32', value: Math.fround(value.value) });
      } else {
        expect(read).toEqual(value);
      }
    }
    expect(file.tensors).toEqual([]);
    // no tensors: the file is the padded header
    expect(bytes.length % 32).toBe(0);
    expect(file.dataOffset).toBe(bytes.length);
  });

  it('writes tensor infos and aligned data, and reads views into the same buffer', () => {
    const tensors = sampleTensors();
    const bytes = writeGguf({ metadata: { 'general.architecture': kv.string('llama') }, tensors });
    const file = readGguf(bytes, { strict: true });
    expect(file.alignment).toBe(32);
    expect(file.dataOffset % 32).toBe(0);
    expect(file.tensors.map((t) => [t.name, t.shape, t.type])).toEqual(tensors.map((t) => [t.name, t.shape, t.type]));
    let expectedOffset = 0;
    for (const [i, info] of file.tensors.entries()) {
      expect(info.offset).toBe(expectedOffset);
      expect(info.byteLength).toBe(tensorByteLength(info.type, info.shape));
      expectedOffset += Math.ceil(info.byteLength / 32) * 32;
      const data = file.tensorData(info.name);
      expect(data.buffer).toBe(bytes.buffer); // a view, not a copy
      const input = tensors[i]!.data;
      expect(Array.from(data)).toEqual(Array.from(new Uint8Array(input.buffer, input.byteOffset, input.byteLength)));
    }
    expect(bytes.length).toBe(file.dataOffset + expectedOffset);
    expect(Array.from(dequantizeTensor(file, 'output_norm.weight'))).toEqual([1, 2, 3]);
    expect(Array.from(dequantizeTensor(file, 'half'))).toEqual([1, 2, 3, 4, 5]);
    const q8 = dequantizeTensor(file, 'token_embd.weight');
    expect(q8).toEqual(dequantize(GGML_TYPE.Q8_0, tensors[0]!.data as Uint8Array, 64));
    expect(file.tensor('nope')).toBeUndefined();
    expect(errorCode(() => file.tensorData('nope'))).toBe('TENSOR_NOT_FOUND');
  });

  it('honours a custom alignment and records it as general.alignment', () => {
    for (const alignment of [1, 8, 64, 4096]) {
      const bytes = writeGguf({ tensors: sampleTensors(), alignment });
      const file = readGguf(bytes, { strict: true });
      expect(file.alignment).toBe(alignment);
      expect(getNumber(file, 'general.alignment')).toBe(alignment === 32 ? undefined : alignment);
      expect(file.dataOffset % alignment).toBe(0);
      for (const t of file.tensors) expect(t.offset % alignment).toBe(0);
    }
    // taken from the metadata when given there
    const fromMetadata = readGguf(
      writeGguf({ metadata: { 'general.alignment': kv.uint32(128) }, tensors: sampleTensors() }),
    );
    expect(fromMetadata.alignment).toBe(128);
    expect(errorCode(() => writeGguf({ alignment: 48 }))).toBe('INVALID_ALIGNMENT');
    expect(errorCode(() => writeGguf({ metadata: { 'general.alignment': kv.uint32(64) }, alignment: 32 }))).toBe(
      'INVALID_ALIGNMENT',
    );
    expect(errorCode(() => writeGguf({ metadata: { 'general.alignment': kv.uint64(64) } }))).toBe('INVALID_ALIGNMENT');
  });

  it('produces exactly the documented byte layout', () => {
    const data = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    const bytes = writeGguf({
      metadata: [['a', kv.uint8(9)]],
      tensors: [{ name: 't', shape: [4], type: GGML_TYPE.F16, data }],
    });
    const expected = [
      ...[0x47, 0x47, 0x55, 0x46], // "GGUF"
      ...[3, 0, 0, 0], // version
      ...[1, 0, 0, 0, 0, 0, 0, 0], // tensor count
      ...[1, 0, 0, 0, 0, 0, 0, 0], // kv count
      ...[1, 0, 0, 0, 0, 0, 0, 0, 0x61], // key "a"
      ...[0, 0, 0, 0, 9], // uint8 9
      ...[1, 0, 0, 0, 0, 0, 0, 0, 0x74], // name "t"
      ...[1, 0, 0, 0], // n_dims
      ...[4, 0, 0, 0, 0, 0, 0, 0], // ne[0]
      ...[1, 0, 0, 0], // F16
      ...[0, 0, 0, 0, 0, 0, 0, 0], // offset
    ];
    // the header is 71 bytes: zero padding to 96, then the 8 data bytes, zero padded to 32
    expect(expected.length).toBe(71);
    expect(bytes.length).toBe(96 + 32);
    expect(Array.from(bytes.subarray(0, 71))).toEqual(expected);
    expect(Array.from(bytes.subarray(71, 96)).every((b) => b === 0)).toBe(true);
    expect(Array.from(bytes.subarray(96, 104))).toEqual(Array.from(data));
    expect(Array.from(bytes.subarray(104)).every((b) => b === 0)).toBe(true);
  });

  it('reads version 2 files', () => {
    const bytes = writeGguf({ metadata: everyType.slice(0, 3), tensors: sampleTensors(), version: 2 });
    expect(bytes[4]).toBe(2);
    const file = readGguf(bytes);
    expect(file.version).toBe(2);
    expect(file.tensors.length).toBe(4);
  });

  it('reads from a view that does not start at byte 0 of its buffer', () => {
    const bytes = writeGguf({ metadata: everyType, tensors: sampleTensors() });
    const padded = new Uint8Array(bytes.length + 3);
    padded.set(bytes, 3);
    const file = readGguf(padded.subarray(3));
    expect(file.metadata.get('t.arr.f32')).toEqual(everyType.find(([k]) => k === 't.arr.f32')![1]);
    expect(Array.from(dequantizeTensor(file, 'output_norm.weight'))).toEqual([1, 2, 3]);
  });
});

describe('typed accessors', () => {
  const file = readGguf(writeGguf({ metadata: everyType }));

  it('return typed values or undefined', () => {
    expect(getString(file, 't.str')).toBe('héllo, 世界 🦙');
    expect(getString(file.metadata, 'missing')).toBeUndefined();
    expect(getNumber(file, 't.u32')).toBe(4294967295);
    expect(getNumber(file, 't.i8')).toBe(-128);
    expect(getNumber(file, 't.f64')).toBe(0.1);
    expect(getBigInt(file, 't.u64')).toBe(18446744073709551615n);
    expect(getBigInt(file, 't.i16')).toBe(-32768n);
    expect(getBoolean(file, 't.bool.true')).toBe(true);
    expect(getArray(file, 't.arr.str', 'string')).toEqual(['a', '', 'ü', '<0x0A>']);
    expect(getArray(file, 't.arr.f32', 'float32')).toBeInstanceOf(Float32Array);
    expect(getArray(file, 't.arr.nested')?.itemType).toBe('array');
    expect(getNumberArray(file, 't.arr.i32')).toEqual([-7, 0, 1, 2]);
    expect(getNumberArray(file, 't.arr.missing')).toBeUndefined();
  });

  it('throw TYPE_MISMATCH or VALUE_OUT_OF_RANGE', () => {
    expect(errorCode(() => getString(file, 't.u8'))).toBe('TYPE_MISMATCH');
    expect(errorCode(() => getNumber(file, 't.str'))).toBe('TYPE_MISMATCH');
    expect(errorCode(() => getNumber(file, 't.arr.u8'))).toBe('TYPE_MISMATCH');
    expect(errorCode(() => getNumber(file, 't.u64'))).toBe('VALUE_OUT_OF_RANGE');
    expect(errorCode(() => getBoolean(file, 't.u8'))).toBe('TYPE_MISMATCH');
    expect(errorCode(() => getBigInt(file, 't.f32'))).toBe('TYPE_MISMATCH');
    expect(errorCode(() => getArray(file, 't.arr.str', 'int32'))).toBe('TYPE_MISMATCH');
    expect(errorCode(() => getArray(file, 't.str'))).toBe('TYPE_MISMATCH');
    expect(errorCode(() => getNumberArray(file, 't.arr.str'))).toBe('TYPE_MISMATCH');
    expect(errorCode(() => getNumberArray(file, 't.arr.i64'))).toBe('VALUE_OUT_OF_RANGE');
  });
});

describe('reading errors', () => {
  const bytes = writeGguf({ metadata: everyType, tensors: sampleTensors() });
  const file = readGguf(bytes);

  it('BAD_MAGIC', () => {
    const bad = bytes.slice();
    bad[0] = 0x47 ^ 0x20;
    expect(errorCode(() => readGguf(bad))).toBe('BAD_MAGIC');
    expect(errorCode(() => readGguf(new TextEncoder().encode('PK\x03\x04 not gguf')))).toBe('BAD_MAGIC');
  });

  it('UNSUPPORTED_VERSION for version 1, future versions and big-endian files', () => {
    for (const version of [
      [1, 0, 0, 0],
      [4, 0, 0, 0],
      [0, 0, 0, 3],
      [0, 0, 0, 0],
    ]) {
      const bad = bytes.slice();
      bad.set(version, 4);
      expect(errorCode(() => readGguf(bad))).toBe('UNSUPPORTED_VERSION');
    }
  });

  it('TRUNCATED for every cut inside the header, TENSOR_OUT_OF_RANGE for cuts inside the data', () => {
    for (let length = 0; length < bytes.length; length++) {
      const code = errorCode(() => readGguf(bytes.subarray(0, length)));
      if (length < file.dataOffset - 31) {
        // (the header proper ends somewhere in the last 31 bytes before dataOffset)
        expect(code).toBe('TRUNCATED');
      } else {
        expect(['TRUNCATED', 'TENSOR_OUT_OF_RANGE', 'none']).toContain(code);
      }
    }
    const lastTensor = file.tensors.at(-1)!;
    const end = file.dataOffset + lastTensor.offset + lastTensor.byteLength;
    expect(errorCode(() => readGguf(bytes.subarray(0, end - 1)))).toBe('TENSOR_OUT_OF_RANGE');
    expect(errorCode(() => readGguf(bytes.subarray(0, end)))).toBe('none');
    expect(errorCode(() => readGguf(bytes.subarray(0, file.dataOffset)))).toBe('TENSOR_OUT_OF_RANGE');
  });

  /** Offset of the `n`-th tensor info's type field in a file written by writeGguf. */
  function tensorTypeOffset(name: string): number {
    const needle = new TextEncoder().encode(name);
    for (let i = 0; i < bytes.length; i++) {
      if (needle.every((b, j) => bytes[i + j] === b)) {
        const nDims = bytes[i + needle.length]!;
        return i + needle.length + 4 + 8 * nDims;
      }
    }
    throw new Error('not found');
  }

  it('UNKNOWN_TENSOR_TYPE and UNKNOWN_VALUE_TYPE', () => {
    for (const type of [4, 5, 31, 99]) {
      const bad = bytes.slice();
      bad[tensorTypeOffset('output_norm.weight')] = type;
      expect(errorCode(() => readGguf(bad))).toBe('UNKNOWN_TENSOR_TYPE');
    }
    const bad = readableKv('x', 13);
    expect(errorCode(() => readGguf(bad))).toBe('UNKNOWN_VALUE_TYPE');
  });

  /** A file with one key whose value type number is patched to `type`. */
  function readableKv(key: string, type: number): Uint8Array {
    const b = writeGguf({ metadata: { [key]: kv.uint32(1) } });
    b[24 + 8 + key.length] = type;
    return b;
  }

  it('DUPLICATE_KEY and DUPLICATE_TENSOR', () => {
    const dupKey = writeGguf({ metadata: { ab: kv.uint8(1), ac: kv.uint8(2) } });
    dupKey[24 + 8 + 2 + 5 + 8 + 1] = 0x62; // "ac" -> "ab"
    expect(errorCode(() => readGguf(dupKey))).toBe('DUPLICATE_KEY');
    const dupTensor = writeGguf({
      tensors: [
        { name: 'w1', shape: [1], type: GGML_TYPE.F32, data: new Float32Array(1) },
        { name: 'w2', shape: [1], type: GGML_TYPE.F32, data: new Float32Array(1) },
      ],
    });
    dupTensor[24 + 8 + 2 + 4 + 8 + 4 + 8 + 8 + 1] = 0x31; // "w2" -> "w1"
    expect(errorCode(() => readGguf(dupTensor))).toBe('DUPLICATE_TENSOR');
  });

  it('MISALIGNED_TENSOR, and strict mode checks ggml’s exact layout', () => {
    const offsetAt = tensorTypeOffset('half') + 4;
    const bad = bytes.slice();
    bad[offsetAt] = bad[offsetAt]! + 4;
    expect(errorCode(() => readGguf(bad))).toBe('MISALIGNED_TENSOR');
    const moved = bytes.slice();
    moved[offsetAt] = moved[offsetAt]! - 32; // aligned but overlapping the previous tensor: accepted unless strict
    expect(errorCode(() => readGguf(moved))).toBe('none');
    expect(errorCode(() => readGguf(moved, { strict: true }))).toBe('MISALIGNED_TENSOR');
  });

  it('INVALID_SHAPE and INVALID_STRING', () => {
    const badDims = bytes.slice();
    badDims[tensorTypeOffset('half') - 12] = 5; // n_dims = 5
    expect(errorCode(() => readGguf(badDims))).toBe('INVALID_SHAPE');
    const badRow = bytes.slice();
    badRow[tensorTypeOffset('token_embd.weight') - 16] = 33; // ne[0] = 33, not a multiple of 32
    expect(errorCode(() => readGguf(badRow))).toBe('INVALID_SHAPE');
    const badUtf8 = writeGguf({ metadata: { k: kv.string('abcdef\u00e9abcdefabcdef') } });
    badUtf8[24 + 8 + 1 + 4 + 8 + 6] = 0xff;
    expect(errorCode(() => readGguf(badUtf8))).toBe('INVALID_STRING');
    expect(readGguf(badUtf8, { invalidUtf8: 'replace' }).metadata.get('k')?.value).toContain('\ufffd');
  });
});

describe('writing errors', () => {
  const t = { name: 'w', shape: [32], type: GGML_TYPE.Q8_0, data: new Uint8Array(34) };
  it('reports bad input with typed errors', () => {
    expect(errorCode(() => writeGguf({ tensors: [t, t] }))).toBe('DUPLICATE_TENSOR');
    expect(
      errorCode(() =>
        writeGguf({
          metadata: [
            ['a', kv.uint8(1)],
            ['a', kv.uint8(2)],
          ],
        }),
      ),
    ).toBe('DUPLICATE_KEY');
    expect(errorCode(() => writeGguf({ tensors: [{ ...t, data: new Uint8Array(33) }] }))).toBe('INVALID_LENGTH');
    expect(errorCode(() => writeGguf({ tensors: [{ ...t, shape: [16, 2] }] }))).toBe('INVALID_SHAPE');
    expect(errorCode(() => writeGguf({ tensors: [{ ...t, shape: [32, 1, 1, 1, 1] }] }))).toBe('INVALID_SHAPE');
    expect(errorCode(() => writeGguf({ tensors: [{ ...t, type: 4 }] }))).toBe('UNKNOWN_TENSOR_TYPE');
    expect(errorCode(() => writeGguf({ tensors: [{ ...t, name: 'x'.repeat(64) }] }))).toBe('INVALID_TENSOR_NAME');
    expect(errorCode(() => writeGguf({ metadata: { a: kv.uint8(256) } }))).toBe('INVALID_VALUE');
    expect(errorCode(() => writeGguf({ metadata: { a: kv.int32(1.5) } }))).toBe('INVALID_VALUE');
    expect(errorCode(() => writeGguf({ metadata: { a: kv.uint64(-1) } }))).toBe('INVALID_VALUE');
    expect(errorCode(() => writeGguf({ metadata: { a: { type: 'nope', value: 1 } as unknown as GgufValue } }))).toBe(
      'UNKNOWN_VALUE_TYPE',
    );
  });
});

describe('readGgufFile', () => {
  it('reads whole files, or only the header with metadataOnly plus one tensor at a time', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'gguf-test-'));
    try {
      const big = Float32Array.from({ length: 300_000 }, (_, i) => i);
      const tokens = Array.from({ length: 50_000 }, (_, i) => `token-${i}`);
      const bytes = writeGguf({
        metadata: { 'tokenizer.ggml.tokens': kv.array('string', tokens) },
        tensors: [
          { name: 'big', shape: [300_000], type: GGML_TYPE.F32, data: big },
          { name: 'small', shape: [2], type: GGML_TYPE.F32, data: Float32Array.from([7, 8]) },
        ],
      });
      const file = path.join(dir, 'model.gguf');
      await writeFile(file, bytes);

      const whole = await readGgufFile(file);
      expect(dequantizeTensor(whole, 'big')).toEqual(big);

      const header = await readGgufFile(file, { metadataOnly: true });
      expect(getArray(header, 'tokenizer.ggml.tokens', 'string')?.length).toBe(50_000);
      expect(header.byteLength).toBe(bytes.length);
      expect(errorCode(() => header.tensorData('big'))).toBe('DATA_NOT_LOADED');
      const small = await readGgufTensorData(file, header, 'small');
      expect(Array.from(dequantize(GGML_TYPE.F32, small, 2))).toEqual([7, 8]);

      await writeFile(file, bytes.subarray(0, 100));
      await expect(readGgufFile(file, { metadataOnly: true })).rejects.toMatchObject({ code: 'TRUNCATED' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeAsDtype } from './dtype.js';
import { ModelDirectoryError } from './errors.js';
import { openSafetensorsCheckpoint, readSafetensorsHeader, writeSafetensors } from './safetensors.js';

const tensor = (name: string, values: number[], shape: number[], dtype: 'F32' | 'F16' | 'BF16' = 'F32') => {
  const kind = ({ F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const)[dtype];
  const bytes = encodeAsDtype(Float32Array.from(values), kind);
  return { name, dtype, shape, byteLength: bytes.byteLength, produce: () => bytes };
};

/** A safetensors file the way a third-party writer might lay it out: any order, no padding, no metadata. */
function rawSafetensors(entries: Array<{ name: string; dtype: string; shape: number[]; bytes: Uint8Array }>) {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.byteLength] };
    offset += e.bytes.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header));
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([size, json, ...entries.map((e) => Buffer.from(e.bytes))]);
}

describe('writeSafetensors', () => {
  it('writes the safetensors layout: sorted names, metadata first, header padded to 8 bytes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mk-st-'));
    const path = join(dir, 'model.safetensors');
    const size = await writeSafetensors(
      path,
      [tensor('b.weight', [1, 2, 3, 4, 5, 6], [2, 3]), tensor('a.bias', [7, 8], [2])],
      { metadata: { format: 'pt' } },
    );
    const bytes = await readFile(path);
    expect(bytes.length).toBe(size);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect((8 + headerLength) % 8).toBe(0);
    const headerText = bytes.subarray(8, 8 + headerLength).toString();
    expect(headerText.trimEnd()).toBe(
      '{"__metadata__":{"format":"pt"},"a.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
        '"b.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[8,32]}}',
    );
    expect(bytes.readFloatLE(8 + headerLength)).toBe(7);
    expect(bytes.readFloatLE(8 + headerLength + 8)).toBe(1);
  });

  it('rejects a producer that returns the wrong number of bytes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mk-st-'));
    const bad = { ...tensor('x', [1, 2], [2]), byteLength: 12 };
    await expect(writeSafetensors(join(dir, 'x.safetensors'), [bad])).rejects.toThrow(/produced 8 bytes/);
  });
});

describe('openSafetensorsCheckpoint', () => {
  it('reads F32, F16 and BF16 tensors from a foreign layout (unpadded header, any order, no metadata)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mk-st-'));
    await writeFile(
      join(dir, 'model.safetensors'),
      rawSafetensors([
        { name: 'z', dtype: 'BF16', shape: [2], bytes: encodeAsDtype(Float32Array.of(1.5, -2), 'bfloat16') },
        { name: 'a', dtype: 'F16', shape: [3], bytes: encodeAsDtype(Float32Array.of(0.5, 65504, -1e-7), 'float16') },
        { name: 'm', dtype: 'F32', shape: [1, 1], bytes: encodeAsDtype(Float32Array.of(0.1), 'float32') },
      ]),
    );
    const checkpoint = await openSafetensorsCheckpoint(dir);
    expect(checkpoint.dtype).toBe('mixed');
    expect([...(await checkpoint.readFloat32('z'))]).toEqual([1.5, -2]);
    const half = await checkpoint.readFloat32('a');
    expect(half[0]).toBe(0.5);
    expect(half[1]).toBe(65504);
    expect(half[2]).toBeCloseTo(-1.1920928955078125e-7, 12); // the nearest float16 subnormal
    expect(await checkpoint.readFloat32('m')).toEqual(Float32Array.of(0.1));
    await expect(checkpoint.readFloat32('missing')).rejects.toSatisfy(ModelDirectoryError.isInstance);
  });

  it('follows model.safetensors.index.json across shards', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mk-st-'));
    await writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), [tensor('a', [1], [1], 'BF16')]);
    await writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), [tensor('b', [2, 3], [2], 'BF16')]);
    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({
        metadata: { total_size: 6 },
        weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' },
      }),
    );
    const checkpoint = await openSafetensorsCheckpoint(dir);
    expect(checkpoint.dtype).toBe('bfloat16');
    expect([...checkpoint.tensors.keys()].sort()).toEqual(['a', 'b']);
    expect([...(await checkpoint.readFloat32('b'))]).toEqual([2, 3]);
  });

  it('rejects truncated files and inconsistent headers with ModelDirectoryError', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mk-st-'));
    const good = rawSafetensors([
      { name: 'w', dtype: 'F32', shape: [4], bytes: encodeAsDtype(Float32Array.of(1, 2, 3, 4), 'float32') },
    ]);
    const cases: Array<[string, Buffer]> = [
      ['short.safetensors', good.subarray(0, 5)],
      ['truncated.safetensors', good.subarray(0, good.length - 1)],
      ['json.safetensors', Buffer.concat([good.subarray(0, 8), Buffer.from('{'.padEnd(good.length - 8))])],
      [
        'shape.safetensors',
        rawSafetensors([
          { name: 'w', dtype: 'F32', shape: [5], bytes: encodeAsDtype(Float32Array.of(1, 2, 3, 4), 'float32') },
        ]),
      ],
    ];
    for (const [name, bytes] of cases) {
      await writeFile(join(dir, name), bytes);
      await expect(readSafetensorsHeader(join(dir, name)), name).rejects.toSatisfy(ModelDirectoryError.isInstance);
    }
    await expect(openSafetensorsCheckpoint(join(dir, 'nowhere'))).rejects.toThrow(/Cannot open safetensors file/);
  });
});

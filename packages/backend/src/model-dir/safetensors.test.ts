import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelLoadError } from '../errors.js';
import { encodeSafetensors, float32Bytes, uint16Bytes, type RawTensor } from '../testing/encode-safetensors.js';
import { openSafetensors } from './safetensors.js';

let dir: string;
let counter = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'gen-safetensors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeBytes(bytes: Uint8Array): Promise<string> {
  const file = path.join(dir, `file-${counter++}.safetensors`);
  await writeFile(file, bytes);
  return file;
}

async function loadError(promise: Promise<unknown>): Promise<ModelLoadError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!ModelLoadError.isInstance(error)) throw new Error(`expected a ModelLoadError, got ${String(error)}`);
  return error;
}

function bf16Bits(value: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, value);
  return view.getUint32(0) >>> 16;
}

describe('openSafetensors', () => {
  it('reads F32, F16, BF16 and F64 tensors as float32, with metadata', async () => {
    const tensors: RawTensor[] = [
      { name: 'a', dtype: 'F32', shape: [2, 3], bytes: float32Bytes([1, 2, 3, -4.5, 1e-30, 6]) },
      { name: 'half', dtype: 'F16', shape: [5], bytes: uint16Bytes([0x3c00, 0xc000, 0x0001, 0x7c00, 0x8000]) },
      { name: 'brain', dtype: 'BF16', shape: [1, 3], bytes: uint16Bytes([bf16Bits(1.5), bf16Bits(-3), 0x7f80]) },
      { name: 'double', dtype: 'F64', shape: [2], bytes: new Uint8Array(Float64Array.of(0.1, -2).buffer) },
      { name: 'scalar', dtype: 'F32', shape: [], bytes: float32Bytes([7]) },
    ];
    const file = await openSafetensors(await writeBytes(encodeSafetensors(tensors, { format: 'pt' })));
    try {
      expect(file.metadata).toEqual({ format: 'pt' });
      expect([...file.tensors.keys()]).toEqual(['a', 'half', 'brain', 'double', 'scalar']);
      expect(file.tensors.get('brain')).toMatchObject({ dtype: 'BF16', shape: [1, 3], byteLength: 6 });
      expect([...(await file.readFloat32('a', { shape: [2, 3] }))]).toEqual([1, 2, 3, -4.5, Math.fround(1e-30), 6]);
      const half = await file.readFloat32('half');
      expect([...half]).toEqual([1, -2, 2 ** -24, Infinity, -0]);
      expect(Object.is(half[4], -0)).toBe(true);
      expect([...(await file.readFloat32('brain'))]).toEqual([1.5, -3, Infinity]);
      expect([...(await file.readFloat32('double'))]).toEqual([Math.fround(0.1), -2]);
      expect([...(await file.readFloat32('scalar', { shape: [] }))]).toEqual([7]);
    } finally {
      await file.close();
      await file.close();
    }
  });

  it('converts tensors larger than the 4 MiB conversion chunk', async () => {
    const n = 3_000_001;
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i++) bits[i] = (i * 7919) & 0x7bff;
    const file = await openSafetensors(
      await writeBytes(
        encodeSafetensors([
          { name: 'pad', dtype: 'U8', shape: [3], bytes: Uint8Array.of(1, 2, 3) },
          { name: 'big', dtype: 'F16', shape: [n], bytes: new Uint8Array(bits.buffer) },
        ]),
      ),
    );
    try {
      const values = await file.readFloat32('big');
      expect(values.length).toBe(n);
      for (const i of [0, 1, 2_097_151, 2_097_152, 2_097_153, n - 1]) {
        const h = bits[i]!;
        const expected = h >> 10 === 0 ? (h & 0x3ff) * 2 ** -24 : (1 + (h & 0x3ff) / 1024) * 2 ** ((h >> 10) - 15);
        expect(values[i], `element ${i}`).toBe(Math.fround(expected));
      }
    } finally {
      await file.close();
    }
  });

  it('reports a missing file', async () => {
    const error = await loadError(openSafetensors(path.join(dir, 'nope.safetensors')));
    expect(error.reason).toBe('missing-file');
    expect(error.message).toContain('nope.safetensors');
  });

  it('reports files too short for the length prefix or the header', async () => {
    expect((await loadError(openSafetensors(await writeBytes(Uint8Array.of(1, 2, 3))))).reason).toBe('truncated');
    const good = encodeSafetensors([{ name: 'a', dtype: 'F32', shape: [4], bytes: float32Bytes([1, 2, 3, 4]) }]);
    const error = await loadError(openSafetensors(await writeBytes(good.subarray(0, 20))));
    expect(error.reason).toBe('truncated');
    expect(error.message).toMatch(/file is only 20 bytes/);
  });

  it('reports truncated tensor data, naming the tensor and the size needed', async () => {
    const good = encodeSafetensors([
      { name: 'a', dtype: 'F32', shape: [4], bytes: float32Bytes([1, 2, 3, 4]) },
      { name: 'b', dtype: 'F32', shape: [4], bytes: float32Bytes([1, 2, 3, 4]) },
    ]);
    const file = await writeBytes(good.subarray(0, good.length - 3));
    const error = await loadError(openSafetensors(file));
    expect(error.reason).toBe('truncated');
    expect(error.file).toBe(file);
    expect(error.message).toContain('"b"');
    expect(error.message).toContain(`at least ${good.length} bytes`);
  });

  it('rejects an absurd header length and a header that is not JSON', async () => {
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
    expect((await loadError(openSafetensors(await writeBytes(huge)))).reason).toBe('invalid-header');
    const text = new TextEncoder().encode('{"a": nope}');
    const bad = new Uint8Array(8 + text.length);
    new DataView(bad.buffer).setBigUint64(0, BigInt(text.length), true);
    bad.set(text, 8);
    const error = await loadError(openSafetensors(await writeBytes(bad)));
    expect(error.reason).toBe('invalid-header');
    expect(error.message).toContain('does not parse');
  });

  it('rejects an unknown dtype', async () => {
    const bytes = encodeSafetensors([{ name: 'w', dtype: 'F12', shape: [2], bytes: new Uint8Array(3) }]);
    const error = await loadError(openSafetensors(await writeBytes(bytes)));
    expect(error.reason).toBe('unknown-dtype');
    expect(error.message).toContain('"F12"');
    expect(error.expected).toContain('BF16');
  });

  it('rejects offsets that disagree with dtype and shape (header/shape mismatch)', async () => {
    const bytes = encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [2, 3], bytes: float32Bytes([1, 2, 3, 4]) }]);
    const error = await loadError(openSafetensors(await writeBytes(bytes)));
    expect(error.reason).toBe('invalid-header');
    expect(error.message).toContain('"w"');
    expect(error.message).toContain('needs 24');
    const malformed = encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [-1], bytes: new Uint8Array(0) }]);
    expect((await loadError(openSafetensors(await writeBytes(malformed)))).reason).toBe('invalid-header');
  });

  it('reports a missing tensor, a shape mismatch on read, and non-float dtypes', async () => {
    const file = await openSafetensors(
      await writeBytes(
        encodeSafetensors([
          { name: 'w', dtype: 'F32', shape: [2, 2], bytes: float32Bytes([1, 2, 3, 4]) },
          { name: 'ids', dtype: 'I64', shape: [1], bytes: new Uint8Array(8) },
        ]),
      ),
    );
    try {
      const missing = await loadError(file.readFloat32('v'));
      expect(missing.reason).toBe('missing-tensor');
      expect(missing.file).toBe(file.file);
      const shape = await loadError(file.readFloat32('w', { shape: [4] }));
      expect(shape.reason).toBe('shape-mismatch');
      expect(shape.message).toContain('[2,2]');
      expect(shape.expected).toContain('[4]');
      const dtype = await loadError(file.readFloat32('ids'));
      expect(dtype.reason).toBe('unsupported-dtype');
      expect(dtype.message).toContain('I64');
    } finally {
      await file.close();
    }
  });
});

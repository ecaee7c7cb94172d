import { open, readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { float16BitsToFloat32, type WeightDtype } from './dtype.js';
import { ModelDirectoryError } from './errors.js';
import { writeAll } from './files.js';

if (endianness() !== 'LE')
  throw new Error('@gen/model-kit needs a little-endian machine (safetensors and ONNX are LE)');

/** One tensor of a safetensors file to be written; `produce` is called once, when its bytes are due. */
export interface SafetensorsEntry {
  name: string;
  /** safetensors dtype code, for example `F32`, `F16`, `BF16`. */
  dtype: string;
  shape: readonly number[];
  byteLength: number;
  produce: () => Uint8Array | Promise<Uint8Array>;
}

/**
 * The layout safetensors' `serialize` gives: tensors ordered by name (within one dtype), the JSON header with
 * `__metadata__` first, then each tensor in that order, padded with spaces to a multiple of 8 bytes.
 */
export function safetensorsLayout(
  entries: readonly SafetensorsEntry[],
  metadata: Record<string, string> | undefined,
): { header: Uint8Array; ordered: SafetensorsEntry[]; fileSize: number } {
  const ordered = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const headerObject: Record<string, unknown> = {};
  if (metadata !== undefined) headerObject['__metadata__'] = metadata;
  let offset = 0;
  for (const entry of ordered) {
    headerObject[entry.name] = {
      dtype: entry.dtype,
      shape: entry.shape,
      data_offsets: [offset, offset + entry.byteLength],
    };
    offset += entry.byteLength;
  }
  let json = JSON.stringify(headerObject);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const jsonBytes = Buffer.from(json, 'utf8');
  const header = new Uint8Array(8 + jsonBytes.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  header.set(jsonBytes, 8);
  return { header, ordered, fileSize: header.length + offset };
}

/**
 * Streams a safetensors file: the header, then each tensor's bytes as its `produce` returns them, so only one
 * tensor is in memory at a time. `onBytes` is told the running byte count.
 */
export async function writeSafetensors(
  path: string,
  entries: readonly SafetensorsEntry[],
  options: { metadata?: Record<string, string>; onBytes?: (written: number, total: number) => void } = {},
): Promise<number> {
  const { header, ordered, fileSize } = safetensorsLayout(entries, options.metadata);
  const file = await open(path, 'w');
  try {
    await writeAll(file, header);
    let written = header.length;
    options.onBytes?.(written, fileSize);
    for (const entry of ordered) {
      const bytes = await entry.produce();
      if (bytes.byteLength !== entry.byteLength) {
        throw new Error(`tensor ${entry.name}: produced ${bytes.byteLength} bytes, expected ${entry.byteLength}`);
      }
      await writeAll(file, bytes);
      written += bytes.byteLength;
      options.onBytes?.(written, fileSize);
    }
  } finally {
    await file.close();
  }
  return fileSize;
}

/** Where one tensor lies in a safetensors checkpoint. */
export interface TensorLocation {
  file: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offset of the data in `file`. */
  offset: number;
  byteLength: number;
}

/** The tensors of a checkpoint (one file, or the shards an index names), readable one by one as float32. */
export interface SafetensorsCheckpoint {
  tensors: ReadonlyMap<string, TensorLocation>;
  /** Reads tensor `name` converted to float32 (from F32, F16, BF16 or F64). */
  readFloat32(name: string): Promise<Float32Array>;
  /** The checkpoint's `torch_dtype` equivalent when every floating tensor shares one dtype. */
  dtype: WeightDtype | 'mixed';
}

const elementSize: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };

/** Parses the header of one safetensors file and checks every tensor lies inside the file. */
export async function readSafetensorsHeader(path: string): Promise<Map<string, TensorLocation>> {
  const file = await open(path, 'r').catch((cause: unknown) => {
    throw new ModelDirectoryError({ path, message: 'Cannot open safetensors file', cause });
  });
  try {
    const { size } = await file.stat();
    const prefix = Buffer.alloc(8);
    if (size < 8 || (await file.read(prefix, 0, 8, 0)).bytesRead !== 8) {
      throw new ModelDirectoryError({ path, message: 'Not a safetensors file: shorter than its 8-byte header size' });
    }
    const headerSize = Number(prefix.readBigUInt64LE(0));
    if (headerSize > 100_000_000 || 8 + headerSize > size) {
      throw new ModelDirectoryError({
        path,
        message: `Bad safetensors header size ${headerSize} (file ${size} bytes)`,
      });
    }
    const headerBytes = Buffer.alloc(headerSize);
    await file.read(headerBytes, 0, headerSize, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBytes.toString('utf8')) as Record<string, unknown>;
    } catch (cause) {
      throw new ModelDirectoryError({ path, message: 'The safetensors header is not valid JSON', cause });
    }
    const dataStart = 8 + headerSize;
    const tensors = new Map<string, TensorLocation>();
    for (const [name, info] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const {
        dtype,
        shape,
        data_offsets: offsets,
      } = info as { dtype: string; shape: number[]; data_offsets: number[] };
      const [begin, end] = offsets ?? [];
      const count = Array.isArray(shape) ? shape.reduce((a, b) => a * b, 1) : NaN;
      if (typeof begin !== 'number' || typeof end !== 'number' || end < begin || dataStart + end > size) {
        throw new ModelDirectoryError({ path, message: `Tensor ${name} lies outside the file` });
      }
      const bytesPer = elementSize[dtype];
      if (bytesPer !== undefined && count * bytesPer !== end - begin) {
        throw new ModelDirectoryError({
          path,
          message: `Tensor ${name}: ${end - begin} bytes do not hold shape [${shape.join(', ')}] of ${dtype}`,
        });
      }
      tensors.set(name, { file: path, dtype, shape, offset: dataStart + begin, byteLength: end - begin });
    }
    return tensors;
  } finally {
    await file.close();
  }
}

/**
 * Opens the safetensors checkpoint of a model directory: `model.safetensors`, or the shards listed in
 * `model.safetensors.index.json` (`weight_map`: tensor name -> shard file).
 */
export async function openSafetensorsCheckpoint(dir: string): Promise<SafetensorsCheckpoint> {
  const indexPath = join(dir, 'model.safetensors.index.json');
  let files: string[];
  const index = await readFile(indexPath, 'utf8').catch(() => undefined);
  if (index !== undefined) {
    let weightMap: Record<string, string>;
    try {
      weightMap = (JSON.parse(index) as { weight_map: Record<string, string> }).weight_map;
    } catch (cause) {
      throw new ModelDirectoryError({ path: indexPath, message: 'Invalid JSON', cause });
    }
    if (typeof weightMap !== 'object' || weightMap === null) {
      throw new ModelDirectoryError({ path: indexPath, message: 'No weight_map object' });
    }
    files = [...new Set(Object.values(weightMap))].sort();
  } else {
    files = ['model.safetensors'];
  }
  const tensors = new Map<string, TensorLocation>();
  for (const file of files) {
    for (const [name, location] of await readSafetensorsHeader(join(dir, file))) tensors.set(name, location);
  }
  const dtypes = new Set([...tensors.values()].map((t) => t.dtype).filter((d) => d in elementSize));
  const only = dtypes.size === 1 ? [...dtypes][0] : undefined;
  const dtype = only === 'F32' ? 'float32' : only === 'F16' ? 'float16' : only === 'BF16' ? 'bfloat16' : 'mixed';
  return {
    tensors,
    dtype,
    async readFloat32(name) {
      const location = tensors.get(name);
      if (location === undefined) {
        throw new ModelDirectoryError({ path: dir, message: `Tensor ${name} is missing from the checkpoint` });
      }
      return readTensorAsFloat32(location, name);
    },
  };
}

async function readTensorAsFloat32(location: TensorLocation, name: string): Promise<Float32Array> {
  const bytesPer = elementSize[location.dtype];
  if (bytesPer === undefined) {
    throw new ModelDirectoryError({
      path: location.file,
      message: `Tensor ${name} has dtype ${location.dtype}; expected F32, F16, BF16 or F64`,
    });
  }
  const count = location.byteLength / bytesPer;
  // Read into an aligned buffer of the element's size so typed-array views need no copy.
  const buffer = new ArrayBuffer(location.byteLength);
  const bytes = new Uint8Array(buffer);
  const file = await open(location.file, 'r');
  try {
    let done = 0;
    while (done < location.byteLength) {
      const { bytesRead } = await file.read(bytes, done, location.byteLength - done, location.offset + done);
      if (bytesRead === 0) throw new ModelDirectoryError({ path: location.file, message: `Truncated tensor ${name}` });
      done += bytesRead;
    }
  } finally {
    await file.close();
  }
  switch (location.dtype) {
    case 'F32':
      return new Float32Array(buffer);
    case 'F64':
      return Float32Array.from(new Float64Array(buffer));
    case 'F16': {
      const bits = new Uint16Array(buffer);
      const out = new Float32Array(count);
      const table = float16Table();
      for (let i = 0; i < count; i++) out[i] = table[bits[i]!]!;
      return out;
    }
    default: {
      const bits = new Uint16Array(buffer);
      const out = new Float32Array(count);
      const wide = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) wide[i] = bits[i]! << 16;
      return out;
    }
  }
}

let float16Values: Float32Array | undefined;

/** All 65,536 float16 values, indexed by bit pattern. */
function float16Table(): Float32Array {
  if (float16Values === undefined) {
    float16Values = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) float16Values[bits] = float16BitsToFloat32(bits);
  }
  return float16Values;
}

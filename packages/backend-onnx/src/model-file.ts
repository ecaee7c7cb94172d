import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ModelLoadError } from '@gen/backend';
import type { OnnxModelDtype } from './onnx-backend-settings.js';

/** The file names each dtype may use, in order of preference (transformers.js / onnx-community conventions). */
export const dtypeFileNames: Readonly<Record<OnnxModelDtype, readonly string[]>> = {
  fp32: ['model.onnx'],
  fp16: ['model_fp16.onnx'],
  int8: ['model_quantized.onnx', 'model_int8.onnx'],
  q4: ['model_q4.onnx'],
  q4f16: ['model_q4f16.onnx'],
};

/** Where the ONNX files of a model directory are looked for: `onnx/` first (Optimum layout), then the root. */
const searchDirs = ['onnx', '.'];

/** The chosen model file. */
export interface ModelFile {
  /** Absolute path of the `.onnx` file. */
  readonly path: string;
  /** Path relative to the model directory, for reports. */
  readonly relativePath: string;
  /** The dtype asked for, or `undefined` for an explicit `modelFile`. */
  readonly dtype: OnnxModelDtype | undefined;
  /** Size of the graph file plus its external data files, in bytes. */
  readonly bytes: number;
}

/**
 * Finds the `.onnx` file for `dtype` (or the explicit `modelFile`) in `modelDir`.
 *
 * @throws {ModelLoadError} (`missing-file`) when it does not exist; the message lists the `.onnx` files that do.
 */
export async function resolveModelFile(
  modelDir: string,
  dtype: OnnxModelDtype,
  modelFile: string | undefined,
): Promise<ModelFile> {
  if (modelFile !== undefined) {
    const file = path.resolve(modelDir, modelFile);
    if (!(await isFile(file))) {
      throw new ModelLoadError({
        file,
        reason: 'missing-file',
        expected: `an ONNX model file (modelFile ${JSON.stringify(modelFile)}); ${await describeAvailable(modelDir)}`,
        message: 'file not found',
      });
    }
    return { path: file, relativePath: path.relative(modelDir, file), dtype: undefined, bytes: await modelBytes(file) };
  }
  const names = dtypeFileNames[dtype];
  if (names === undefined) {
    throw new RangeError(`dtype must be one of ${Object.keys(dtypeFileNames).join(', ')}, got ${String(dtype)}`);
  }
  for (const dir of searchDirs) {
    for (const name of names) {
      const file = path.resolve(modelDir, dir, name);
      if (await isFile(file)) {
        return { path: file, relativePath: path.relative(modelDir, file), dtype, bytes: await modelBytes(file) };
      }
    }
  }
  throw new ModelLoadError({
    file: path.join(modelDir, 'onnx', names[0]!),
    reason: 'missing-file',
    expected: `the ${dtype} variant (${names.map((n) => `onnx/${n}`).join(' or ')}); ${await describeAvailable(modelDir)}`,
    message: `no ${dtype} ONNX model in the directory`,
  });
}

/** "available: onnx/model.onnx (fp32), onnx/model_q4.onnx (q4)" or "the directory has no .onnx file". */
async function describeAvailable(modelDir: string): Promise<string> {
  const found: string[] = [];
  for (const dir of searchDirs) {
    let entries: string[];
    try {
      entries = await readdir(path.join(modelDir, dir));
    } catch {
      continue;
    }
    for (const name of entries.filter((n) => n.endsWith('.onnx')).sort()) {
      const dtype = (Object.keys(dtypeFileNames) as OnnxModelDtype[]).find((d) => dtypeFileNames[d].includes(name));
      found.push(`${path.join(dir, name)}${dtype === undefined ? '' : ` (dtype ${dtype})`}`);
    }
  }
  return found.length === 0 ? 'the directory has no .onnx file' : `available: ${found.join(', ')}`;
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Bytes of the graph file and of the external data files beside it (`<name>.onnx_data`, `<name>.onnx_data_1`...). */
async function modelBytes(file: string): Promise<number> {
  let bytes = (await stat(file)).size;
  const dir = path.dirname(file);
  const base = path.basename(file);
  for (const name of await readdir(dir)) {
    if (name === `${base}_data` || name.startsWith(`${base}_data_`)) bytes += (await stat(path.join(dir, name))).size;
  }
  return bytes;
}

/**
 * Whether the graph file contains `needle` (an operator type such as `GroupQueryAttention`), scanning the bytes of
 * the `.onnx` file in 16 MiB chunks (external weights are not read). Operator types are plain strings in the
 * protobuf, so a hit means the graph almost surely uses it; a weight that happens to hold the same bytes would only
 * make the backend more conservative.
 */
export async function graphMentions(file: string, needle: string): Promise<boolean> {
  const pattern = Buffer.from(needle, 'utf8');
  const handle = await open(file, 'r');
  try {
    const chunk = Buffer.alloc(16 * 1024 * 1024 + pattern.length);
    let carried = 0;
    let position = 0;
    for (;;) {
      const { bytesRead } = await handle.read(chunk, carried, chunk.length - carried, position);
      if (bytesRead === 0) return false;
      const filled = carried + bytesRead;
      if (chunk.subarray(0, filled).indexOf(pattern) >= 0) return true;
      position += bytesRead;
      carried = Math.min(pattern.length - 1, filled);
      chunk.copy(chunk, 0, filled - carried, filled);
    }
  } finally {
    await handle.close();
  }
}

import type { FileHandle } from 'node:fs/promises';
import { GgufError } from './errors.js';
import { parseGguf, type GgufFile, type ReadGgufOptions } from './reader.js';

/** Options of {@link readGgufFile}. */
export interface ReadGgufFileOptions extends ReadGgufOptions {
  /**
   * Read only the header, metadata and tensor infos (growing the read until they fit), not the tensor data:
   * `tensorData` then throws `DATA_NOT_LOADED` and {@link readGgufTensorData} reads one tensor. Use it for
   * tokenizers, model inspection, and files larger than one `Uint8Array` can hold (4 GiB on Node.js 20).
   */
  readonly metadataOnly?: boolean;
}

/**
 * Reads and parses a GGUF file from disk (Node.js only; `node:fs` is loaded on first call).
 *
 * Without `metadataOnly`, the whole file is read into memory at once and `tensorData` returns views into it; this
 * fails with `FILE_TOO_LARGE` for files larger than the biggest `Uint8Array` (`buffer.constants.MAX_LENGTH`, 4 GiB
 * on Node.js 20). Memory-mapping is not available from plain Node.js; for big files use `metadataOnly` and
 * {@link readGgufTensorData}.
 *
 * @throws {GgufError} as `readGguf`, and `FILE_TOO_LARGE`.
 */
export async function readGgufFile(path: string, options: ReadGgufFileOptions = {}): Promise<GgufFile> {
  const fs = await import('node:fs/promises');
  const { constants } = await import('node:buffer');
  const handle = await fs.open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (!options.metadataOnly) {
      if (size > constants.MAX_LENGTH) {
        throw new GgufError(
          'FILE_TOO_LARGE',
          `${path} has ${size} bytes, more than one buffer can hold; read it with { metadataOnly: true }`,
        );
      }
      const bytes = await readRange(handle, 0, size);
      return parseGguf(bytes, size, options);
    }
    let chunk = Math.min(size, 1 << 20);
    for (;;) {
      const bytes = await readRange(handle, 0, chunk);
      try {
        return parseGguf(bytes, size, options);
      } catch (error) {
        if (!GgufError.isInstance(error, 'TRUNCATED') || chunk >= size) throw error;
        chunk = Math.min(size, Math.min(constants.MAX_LENGTH, chunk * 4));
      }
    }
  } finally {
    await handle.close();
  }
}

/**
 * Reads the data of one tensor of a GGUF file from disk, given the file's parsed header (for example from
 * `readGgufFile(path, { metadataOnly: true })`). Offsets past 4 GiB are fine.
 *
 * @throws {GgufError} `TENSOR_NOT_FOUND`, `TENSOR_OUT_OF_RANGE` when the file is shorter than the header says.
 */
export async function readGgufTensorData(path: string, file: GgufFile, name: string): Promise<Uint8Array> {
  const tensor = file.tensor(name);
  if (tensor === undefined) throw new GgufError('TENSOR_NOT_FOUND', `no tensor named '${name}'`);
  const fs = await import('node:fs/promises');
  const handle = await fs.open(path, 'r');
  try {
    const bytes = await readRange(handle, file.dataOffset + tensor.offset, tensor.byteLength);
    if (bytes.length !== tensor.byteLength) {
      throw new GgufError('TENSOR_OUT_OF_RANGE', `tensor '${name}' runs past the end of ${path}`);
    }
    return bytes;
  } finally {
    await handle.close();
  }
}

/** Reads up to `length` bytes at `position` into a fresh `Uint8Array` (shorter only at the end of the file). */
async function readRange(handle: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const chunk = Math.min(length - done, 1 << 30);
    const { bytesRead } = await handle.read(bytes, done, chunk, position + done);
    if (bytesRead === 0) return bytes.subarray(0, done);
    done += bytesRead;
  }
  return bytes;
}

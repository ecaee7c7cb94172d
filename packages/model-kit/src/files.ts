import type { FileHandle } from 'node:fs/promises';

/** Writes all of `bytes` at the current position (`FileHandle.write` may write less than asked). */
export async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) done += (await file.write(bytes, done, bytes.byteLength - done)).bytesWritten;
}

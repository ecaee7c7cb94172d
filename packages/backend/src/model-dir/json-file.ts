import { readFile } from 'node:fs/promises';
import { ModelLoadError } from '../errors.js';

/**
 * Reads and parses a JSON file. Returns `undefined` for a missing file when `optional`; otherwise a missing file
 * or bad JSON is a {@link ModelLoadError} naming the file and `expected`.
 */
export async function readJsonFile(file: string, options: { expected: string; optional?: boolean }): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (isNotFound(error)) {
      if (options.optional === true) return undefined;
      throw new ModelLoadError({
        file,
        reason: 'missing-file',
        expected: options.expected,
        message: 'file not found',
        cause: error,
      });
    }
    throw new ModelLoadError({
      file,
      reason: 'missing-file',
      expected: options.expected,
      message: `cannot read file (${errorMessage(error)})`,
      cause: error,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ModelLoadError({
      file,
      reason: 'invalid-json',
      expected: options.expected,
      message: `invalid JSON (${errorMessage(error)})`,
      cause: error,
    });
  }
}

/** True for a Node.js "no such file" error. */
export function isNotFound(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'ENOENT';
}

/** The message of an unknown thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** True for a plain JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

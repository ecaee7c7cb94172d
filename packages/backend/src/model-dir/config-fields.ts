import { ModelLoadError } from '../errors.js';
import { isJsonObject } from './json-file.js';

/**
 * Typed access to the fields of a parsed JSON config file. Every failure is a {@link ModelLoadError}
 * (`invalid-config`) that names the file, the field and what was expected. `null` counts as absent, as in
 * transformers.
 */
export class ConfigFields {
  readonly file: string;
  readonly prefix: string;
  private readonly values: Record<string, unknown>;

  constructor(file: string, json: unknown, options?: { prefix?: string; expected?: string }) {
    this.file = file;
    this.prefix = options?.prefix ?? '';
    if (!isJsonObject(json)) {
      throw new ModelLoadError({
        file,
        reason: 'invalid-config',
        expected: options?.expected ?? 'a JSON object',
        message: `${this.prefix === '' ? 'top level' : `\`${this.prefix.slice(0, -1)}\``} is ${describe(json)}`,
      });
    }
    this.values = json;
  }

  /** True when the field is present and not null. */
  has(name: string): boolean {
    return this.values[name] !== undefined && this.values[name] !== null;
  }

  /** True when the key exists, even with a `null` value. */
  isPresent(name: string): boolean {
    return Object.hasOwn(this.values, name);
  }

  /** The raw value (undefined when absent or null). */
  raw(name: string): unknown {
    const value = this.values[name];
    return value === null ? undefined : value;
  }

  /** Fails with a message about field `name`. */
  fail(name: string, expected: string, found: unknown = this.raw(name)): never {
    throw new ModelLoadError({
      file: this.file,
      reason: 'invalid-config',
      expected: `\`${this.prefix}${name}\` to be ${expected}`,
      message: `bad \`${this.prefix}${name}\`: ${describe(found)}`,
    });
  }

  /** A positive integer; `fallback` when absent (absent without fallback is an error). */
  positiveInteger(name: string, fallback?: number): number {
    const value = this.raw(name);
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) this.fail(name, 'a positive integer');
    return value;
  }

  /** A positive integer, or undefined when absent. */
  optionalPositiveInteger(name: string): number | undefined {
    return this.has(name) ? this.positiveInteger(name) : undefined;
  }

  /** A non-negative integer, or undefined when absent. */
  optionalTokenId(name: string): number | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (!isTokenId(value)) this.fail(name, 'a non-negative integer token id');
    return value;
  }

  /** A token id or a list of token ids; `[]` when absent. */
  tokenIdList(name: string): number[] {
    const value = this.raw(name);
    if (value === undefined) return [];
    if (isTokenId(value)) return [value];
    if (Array.isArray(value) && value.every(isTokenId)) return [...value];
    return this.fail(name, 'a token id or a list of token ids');
  }

  /** A finite number strictly above 0. */
  positiveNumber(name: string, fallback?: number): number {
    const value = this.raw(name);
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) this.fail(name, 'a positive number');
    return value;
  }

  /** A finite number, or undefined when absent. */
  optionalNumber(name: string): number | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value)) this.fail(name, 'a finite number');
    return value;
  }

  /** A boolean; `fallback` when absent. */
  boolean(name: string, fallback: boolean): boolean {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') this.fail(name, 'true or false');
    return value;
  }

  /** A boolean, or undefined when absent. */
  optionalBoolean(name: string): boolean | undefined {
    return this.has(name) ? this.boolean(name, false) : undefined;
  }

  /** A string, or undefined when absent. */
  optionalString(name: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (typeof value !== 'string') this.fail(name, 'a string');
    return value;
  }

  /** A nested object as {@link ConfigFields}, or undefined when absent. */
  optionalObject(name: string): ConfigFields | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (!isJsonObject(value)) this.fail(name, 'an object');
    return new ConfigFields(this.file, value, { prefix: `${this.prefix}${name}.` });
  }
}

function isTokenId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/** Short printable form of a JSON value for error messages. */
export function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 60)}...` : text;
}

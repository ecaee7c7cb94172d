const marker = 'gen.sampling.error';
const symbol = Symbol.for(marker);

/**
 * Base class of every error thrown by `@gen/sampling`.
 *
 * Use {@link SamplingError.isInstance} rather than `instanceof`: it also recognises errors thrown by another
 * installed copy of this package (the marker is a global `Symbol.for`).
 */
export class SamplingError extends Error {
  readonly [symbol] = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SamplingError';
  }

  /** True when `error` is a {@link SamplingError} from any copy of this package. */
  static isInstance(error: unknown): error is SamplingError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[symbol] === true;
  }
}

const parameterMarker = Symbol.for('gen.sampling.error.invalid-parameter');

/**
 * A sampling parameter has a bad value: wrong type, NaN, infinite or out of its range.
 *
 * `message` follows TGI's validation wording where TGI has one (for example "`temperature` must be strictly
 * positive"), `parameter` names the wire field (snake_case, as the client sent it), `allowed` describes the range.
 */
export class InvalidParameterError extends SamplingError {
  readonly [parameterMarker] = true;
  /** The wire name of the parameter, for example `top_p`. */
  readonly parameter: string;
  /** The value that was rejected. */
  readonly value: unknown;
  /** Human-readable allowed range, for example `(0, 1]`. */
  readonly allowed: string;

  constructor(options: { parameter: string; value: unknown; allowed: string; message?: string }) {
    super(
      options.message ?? `\`${options.parameter}\` must be ${options.allowed}. Given: ${describeValue(options.value)}`,
    );
    this.name = 'InvalidParameterError';
    this.parameter = options.parameter;
    this.value = options.value;
    this.allowed = options.allowed;
  }

  /** True when `error` is an {@link InvalidParameterError} from any copy of this package. */
  static override isInstance(error: unknown): error is InvalidParameterError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[parameterMarker] === true;
  }
}

/** Short printable form of a rejected value, for error messages. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) {
    return String(value);
  }
  if (Array.isArray(value)) return `array of length ${value.length}`;
  return typeof value;
}

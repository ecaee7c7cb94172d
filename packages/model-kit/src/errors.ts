const symbol = Symbol.for('gen.model-kit.error');

/**
 * Base class of every error thrown by `@gen/model-kit`.
 *
 * Use {@link ModelKitError.isInstance} rather than `instanceof`: it also recognises errors thrown by another
 * installed copy of this package (the marker is a global `Symbol.for`).
 */
export class ModelKitError extends Error {
  protected readonly [symbol] = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelKitError';
  }

  /** True when `error` is a {@link ModelKitError} from any copy of this package. */
  static isInstance(error: unknown): error is ModelKitError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[symbol] === true;
  }
}

const invalidConfigMarker = Symbol.for('gen.model-kit.error.invalid-model-config');

/**
 * A model configuration (a preset override, an options object or a `config.json` being exported) is inconsistent
 * or uses something this package does not support, for example `hidden_size` not divisible by
 * `num_attention_heads`, or a `rope_scaling` type without an ONNX formulation here.
 */
export class InvalidModelConfigError extends ModelKitError {
  protected readonly [invalidConfigMarker] = true;
  /** The field at fault, as written in `config.json` (snake_case) or in the options (camelCase). */
  readonly field: string;

  constructor(options: { field: string; message: string; cause?: unknown }) {
    super(options.message, { cause: options.cause });
    this.name = 'InvalidModelConfigError';
    this.field = options.field;
  }

  /** True when `error` is an {@link InvalidModelConfigError} from any copy of this package. */
  static override isInstance(error: unknown): error is InvalidModelConfigError {
    return (
      typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[invalidConfigMarker] === true
    );
  }
}

const modelDirMarker = Symbol.for('gen.model-kit.error.model-directory');

/**
 * A model directory or one of its files cannot be read: a missing `config.json`, a malformed safetensors header,
 * a tensor missing from the checkpoint or with an unexpected shape or dtype.
 */
export class ModelDirectoryError extends ModelKitError {
  protected readonly [modelDirMarker] = true;
  /** The file at fault (absolute or as given). */
  readonly path: string;

  constructor(options: { path: string; message: string; cause?: unknown }) {
    super(`${options.message} (${options.path})`, { cause: options.cause });
    this.name = 'ModelDirectoryError';
    this.path = options.path;
  }

  /** True when `error` is a {@link ModelDirectoryError} from any copy of this package. */
  static override isInstance(error: unknown): error is ModelDirectoryError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[modelDirMarker] === true;
  }
}

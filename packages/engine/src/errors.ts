const engineMarker = Symbol.for('gen.engine.error');

/** Kinds of engine errors, matching TGI's `error_type` values where TGI has one. */
export type EngineErrorType =
  'validation' | 'overloaded' | 'generation' | 'incomplete_generation' | 'cancelled' | 'shutdown';

/**
 * Base class of every error the engine raises. `type` says what kind it is (TGI's `error_type`), so a server can
 * map errors to HTTP statuses in one place. Use {@link EngineError.isInstance} (works across package copies).
 */
export class EngineError extends Error {
  readonly [engineMarker] = true;
  /** The kind of error, as TGI's `error_type`. */
  readonly type: EngineErrorType;

  constructor(type: EngineErrorType, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineError';
    this.type = type;
  }

  /** True when `error` is an {@link EngineError} from any copy of this package. */
  static isInstance(error: unknown): error is EngineError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[engineMarker] === true;
  }
}

/**
 * A request is invalid (TGI: status 422, `error_type: "validation"`). Raised synchronously by `generate`, before
 * anything is streamed. `parameter` names the wire field when one is at fault.
 */
export class EngineValidationError extends EngineError {
  /** The wire name of the offending field, when there is one (for example `max_new_tokens`). */
  readonly parameter: string | undefined;

  constructor(message: string, parameter?: string, options?: { cause?: unknown }) {
    super('validation', message, options);
    this.name = 'EngineValidationError';
    this.parameter = parameter;
  }
}

/** Too many requests are in flight (TGI: status 429, `error_type: "overloaded"`). Nothing was admitted. */
export class OverloadedError extends EngineError {
  constructor(message = 'Model is overloaded') {
    super('overloaded', message);
    this.name = 'OverloadedError';
  }
}

/** The backend failed while running this request (TGI: status 424, `error_type: "generation"`). */
export class GenerationError extends EngineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('generation', message, options);
    this.name = 'GenerationError';
  }
}

/** The request was cancelled (its signal aborted, or its stream was closed by the consumer). */
export class CancelledError extends EngineError {
  constructor(message = 'Request was cancelled', options?: { cause?: unknown }) {
    super('cancelled', message, options);
    this.name = 'CancelledError';
  }
}

/** The engine is shutting down or was disposed and does not accept new requests. */
export class ShutdownError extends EngineError {
  constructor(message = 'Engine is shutting down') {
    super('shutdown', message);
    this.name = 'ShutdownError';
  }
}

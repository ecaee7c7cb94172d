const clientMarker = Symbol.for('gen.client.error');

function hasMarker(error: unknown, marker: symbol): boolean {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
}

/** What every {@link ClientError} constructor accepts besides the message. */
export interface ClientErrorOptions {
  /** HTTP status of the response that carried the error; `undefined` when there was no response. */
  status?: number;
  /** The server's `error_type` (TGI) or `type` (OpenAI envelope), or the client's own kind for local errors. */
  errorType?: string;
  /** The parsed error body, kept for debugging. */
  payload?: unknown;
  /** The underlying error (a network failure, an abort). */
  cause?: unknown;
}

/**
 * Base class of every error thrown by `@gen/client`.
 *
 * Use the static `isInstance` of a class rather than `instanceof`: it also recognises errors thrown by another
 * installed copy of this package (each class has a global `Symbol.for` marker).
 */
export class ClientError extends Error {
  readonly [clientMarker] = true;
  /**
   * HTTP status of the response that carried the error. An error sent inside a 200 event stream has status 200;
   * errors raised by the client itself (validation, timeout, connection) have `undefined`.
   */
  readonly status: number | undefined;
  /**
   * TGI's `error_type` (`validation`, `overloaded`, `generation`, `incomplete_generation`, ...) or the `type` of an
   * OpenAI error envelope, as the server sent it; for errors raised by the client itself, `validation`, `timeout`
   * or `connection`. `undefined` when the server sent none.
   */
  readonly errorType: string | undefined;
  /** The parsed error body (JSON value, or the text when it was not JSON); `undefined` for local errors. */
  readonly payload: unknown;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ClientError';
    this.status = options.status;
    this.errorType = options.errorType;
    this.payload = options.payload;
  }

  /** True when `error` is a {@link ClientError} from any copy of this package. */
  static isInstance(error: unknown): error is ClientError {
    return hasMarker(error, clientMarker);
  }
}

const validationMarker = Symbol.for('gen.client.error.validation');

/**
 * The request is invalid: raised by the client before sending anything (TGI's wording, for example "`temperature`
 * must be strictly positive"), or by the server (HTTP 422 or `error_type: "validation"`).
 */
export class ValidationError extends ClientError {
  readonly [validationMarker] = true;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, { errorType: 'validation', ...options });
    this.name = 'ValidationError';
  }

  /** True when `error` is a {@link ValidationError} from any copy of this package. */
  static override isInstance(error: unknown): error is ValidationError {
    return hasMarker(error, validationMarker);
  }
}

const generationMarker = Symbol.for('gen.client.error.generation');

/** The model failed while generating (TGI `error_type: "generation"`, HTTP 424). */
export class GenerationError extends ClientError {
  readonly [generationMarker] = true;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, options);
    this.name = 'GenerationError';
  }

  /** True when `error` is a {@link GenerationError} from any copy of this package. */
  static override isInstance(error: unknown): error is GenerationError {
    return hasMarker(error, generationMarker);
  }
}

const overloadedMarker = Symbol.for('gen.client.error.overloaded');

/** The server has too many requests in flight (TGI `error_type: "overloaded"`, HTTP 429). Retry later. */
export class OverloadedError extends ClientError {
  readonly [overloadedMarker] = true;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, options);
    this.name = 'OverloadedError';
  }

  /** True when `error` is an {@link OverloadedError} from any copy of this package. */
  static override isInstance(error: unknown): error is OverloadedError {
    return hasMarker(error, overloadedMarker);
  }
}

const incompleteMarker = Symbol.for('gen.client.error.incomplete-generation');

/** The generation stopped before its end on the server (TGI `error_type: "incomplete_generation"`). */
export class IncompleteGenerationError extends ClientError {
  readonly [incompleteMarker] = true;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, options);
    this.name = 'IncompleteGenerationError';
  }

  /** True when `error` is an {@link IncompleteGenerationError} from any copy of this package. */
  static override isInstance(error: unknown): error is IncompleteGenerationError {
    return hasMarker(error, incompleteMarker);
  }
}

const badRequestMarker = Symbol.for('gen.client.error.bad-request');

/** HTTP 400 without a known `error_type` (Hugging Face's hosted API, OpenAI-style servers). */
export class BadRequestError extends ClientError {
  readonly [badRequestMarker] = true;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, options);
    this.name = 'BadRequestError';
  }

  /** True when `error` is a {@link BadRequestError} from any copy of this package. */
  static override isInstance(error: unknown): error is BadRequestError {
    return hasMarker(error, badRequestMarker);
  }
}

const shardNotReadyMarker = Symbol.for('gen.client.error.shard-not-ready');

/** HTTP 403 without a known `error_type`: the hosted API's model shards are not ready. */
export class ShardNotReadyError extends ClientError {
  readonly [shardNotReadyMarker] = true;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, options);
    this.name = 'ShardNotReadyError';
  }

  /** True when `error` is a {@link ShardNotReadyError} from any copy of this package. */
  static override isInstance(error: unknown): error is ShardNotReadyError {
    return hasMarker(error, shardNotReadyMarker);
  }
}

const shardTimeoutMarker = Symbol.for('gen.client.error.shard-timeout');

/** HTTP 504 without a known `error_type`: the hosted API's model did not answer in time. */
export class ShardTimeoutError extends ClientError {
  readonly [shardTimeoutMarker] = true;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, options);
    this.name = 'ShardTimeoutError';
  }

  /** True when `error` is a {@link ShardTimeoutError} from any copy of this package. */
  static override isInstance(error: unknown): error is ShardTimeoutError {
    return hasMarker(error, shardTimeoutMarker);
  }
}

const notFoundMarker = Symbol.for('gen.client.error.not-found');

/** HTTP 404 without a known `error_type`: wrong base URL, unknown route or unknown model. */
export class NotFoundError extends ClientError {
  readonly [notFoundMarker] = true;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, options);
    this.name = 'NotFoundError';
  }

  /** True when `error` is a {@link NotFoundError} from any copy of this package. */
  static override isInstance(error: unknown): error is NotFoundError {
    return hasMarker(error, notFoundMarker);
  }
}

const rateLimitMarker = Symbol.for('gen.client.error.rate-limit-exceeded');

/** HTTP 429 without TGI's `overloaded` type: a rate limit of Hugging Face's hosted API or of a proxy. */
export class RateLimitExceededError extends ClientError {
  readonly [rateLimitMarker] = true;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, options);
    this.name = 'RateLimitExceededError';
  }

  /** True when `error` is a {@link RateLimitExceededError} from any copy of this package. */
  static override isInstance(error: unknown): error is RateLimitExceededError {
    return hasMarker(error, rateLimitMarker);
  }
}

const notSupportedMarker = Symbol.for('gen.client.error.not-supported');

/**
 * The endpoint does not serve the model with text-generation-inference: a streaming request was answered with
 * plain JSON instead of Server-Sent Events (what the hosted API does for models it runs with another framework).
 */
export class NotSupportedError extends ClientError {
  readonly [notSupportedMarker] = true;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, { errorType: 'not_supported', ...options });
    this.name = 'NotSupportedError';
  }

  /** True when `error` is a {@link NotSupportedError} from any copy of this package. */
  static override isInstance(error: unknown): error is NotSupportedError {
    return hasMarker(error, notSupportedMarker);
  }
}

const unknownMarker = Symbol.for('gen.client.error.unknown');

/** Any other error status, or a successful response the client could not read (not JSON, unexpected shape). */
export class UnknownError extends ClientError {
  readonly [unknownMarker] = true;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, options);
    this.name = 'UnknownError';
  }

  /** True when `error` is an {@link UnknownError} from any copy of this package. */
  static override isInstance(error: unknown): error is UnknownError {
    return hasMarker(error, unknownMarker);
  }
}

const timeoutMarker = Symbol.for('gen.client.error.timeout');

/**
 * The server sent nothing for `timeout` milliseconds: no response headers (every method), no complete body
 * (`generate`, `tokenize`, `info`, `health`), or no bytes between two parts of a stream (`generateStream`; keep-alive
 * comments count). The request is aborted. `errorType` is `"timeout"`.
 */
export class TimeoutError extends ClientError {
  readonly [timeoutMarker] = true;
  /** The timeout that fired, in milliseconds. */
  readonly timeout: number;

  constructor(message: string, options: ClientErrorOptions & { timeout: number }) {
    super(message, { errorType: 'timeout', ...options });
    this.name = 'TimeoutError';
    this.timeout = options.timeout;
  }

  /** True when `error` is a {@link TimeoutError} from any copy of this package. */
  static override isInstance(error: unknown): error is TimeoutError {
    return hasMarker(error, timeoutMarker);
  }
}

const connectionMarker = Symbol.for('gen.client.error.connection');

/**
 * The request did not get a complete HTTP response: the connection was refused or reset, DNS failed, CORS blocked
 * it, or the body stopped in the middle. `cause` holds the error `fetch` or the stream reader threw;
 * `errorType` is `"connection"`.
 */
export class ConnectionError extends ClientError {
  readonly [connectionMarker] = true;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, { errorType: 'connection', ...options });
    this.name = 'ConnectionError';
  }

  /** True when `error` is a {@link ConnectionError} from any copy of this package. */
  static override isInstance(error: unknown): error is ConnectionError {
    return hasMarker(error, connectionMarker);
  }
}

/**
 * Maps an error response to its class, like `text_generation.errors.parse_error`:
 * first TGI's `error_type` (`generation`, `incomplete_generation`, `overloaded`, `validation`), then the status
 * (400 bad request, 403 shard not ready, 404 not found, 422 validation, 424 generation, 429 rate limit, 504 shard
 * timeout), else {@link UnknownError}. Accepts TGI's `{error, error_type}`, OpenAI's
 * `{error: {message, type, code}}` (whose `code` or `type` may carry a TGI type) and non-JSON bodies.
 */
export function parseError(status: number, payload: unknown, fallbackMessage = `HTTP ${status}`): ClientError {
  const { message, errorType, candidates } = readErrorBody(payload, fallbackMessage);
  const options: ClientErrorOptions = { status, errorType, payload };
  for (const type of candidates) {
    switch (type) {
      case 'generation':
        return new GenerationError(message, options);
      case 'incomplete_generation':
        return new IncompleteGenerationError(message, options);
      case 'overloaded':
        return new OverloadedError(message, options);
      case 'validation':
        return new ValidationError(message, options);
    }
  }
  switch (status) {
    case 400:
      return new BadRequestError(message, options);
    case 403:
      return new ShardNotReadyError(message, options);
    case 404:
      return new NotFoundError(message, options);
    case 422:
      return new ValidationError(message, options);
    case 424:
      return new GenerationError(message, options);
    case 429:
      return new RateLimitExceededError(message, options);
    case 504:
      return new ShardTimeoutError(message, options);
  }
  return new UnknownError(message, options);
}

/** Whether a parsed event or body is an error envelope (TGI's or OpenAI's) rather than a result. */
export function isErrorPayload(payload: unknown): boolean {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return false;
  const error = (payload as Record<string, unknown>)['error'];
  return typeof error === 'string' || (typeof error === 'object' && error !== null);
}

function readErrorBody(
  payload: unknown,
  fallbackMessage: string,
): { message: string; errorType: string | undefined; candidates: string[] } {
  if (typeof payload === 'string') {
    const text = payload.trim();
    return { message: text === '' ? fallbackMessage : truncate(text), errorType: undefined, candidates: [] };
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    return { message: fallbackMessage, errorType: undefined, candidates: [] };
  }
  const body = payload as Record<string, unknown>;
  const error = body['error'];
  if (typeof error === 'object' && error !== null && !Array.isArray(error)) {
    // OpenAI envelope; gen puts TGI's error_type in `code`.
    const envelope = error as Record<string, unknown>;
    const message = typeof envelope['message'] === 'string' ? envelope['message'] : fallbackMessage;
    const type = typeof envelope['type'] === 'string' ? envelope['type'] : undefined;
    const code = typeof envelope['code'] === 'string' ? envelope['code'] : undefined;
    return { message, errorType: type ?? code, candidates: [code, type].filter((x): x is string => x !== undefined) };
  }
  const message = typeof error === 'string' ? error : typeof body['message'] === 'string' ? body['message'] : null;
  const errorType = typeof body['error_type'] === 'string' ? body['error_type'] : undefined;
  return {
    message: message ?? fallbackMessage,
    errorType,
    candidates: errorType === undefined ? [] : [errorType],
  };
}

function truncate(text: string): string {
  return text.length > 500 ? `${text.slice(0, 500)}...` : text;
}

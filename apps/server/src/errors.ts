import { EngineError } from '@gen/engine';
import { InvalidParameterError } from '@gen/sampling';
import { ChatTemplateError, TokenizerError } from '@gen/tokenizer';

/** Which API family a route belongs to; each has its own error envelope. */
export type ApiFamily = 'tgi' | 'openai';

/**
 * An error with everything both envelopes need. Routes throw it for wire-level problems; {@link toHttpError}
 * converts every other error here, in one place.
 */
export class HttpError extends Error {
  constructor(
    /** HTTP status. */
    readonly status: number,
    message: string,
    /** TGI's `error_type` (validation, overloaded, generation, ...). */
    readonly errorType: string,
    /** The offending request field, when there is one (OpenAI's `param`). */
    readonly param: string | null = null,
    /** OpenAI's machine-readable `code`. */
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** A request field is invalid: TGI 422 `validation`, OpenAI 400 `invalid_request_error`. */
export function validationError(message: string, param: string | null = null): HttpError {
  return new HttpError(422, message, 'validation', param);
}

const ENGINE_STATUS: Record<string, number> = {
  validation: 422,
  overloaded: 429,
  generation: 424,
  incomplete_generation: 424,
  cancelled: 499,
  shutdown: 503,
};

/** Maps any error to an {@link HttpError} (status, TGI error_type, param). Unknown errors become 500 `internal`. */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (EngineError.isInstance(error)) {
    const status = ENGINE_STATUS[error.type] ?? 500;
    const param = 'parameter' in error && typeof error.parameter === 'string' ? error.parameter : null;
    const type = error.type === 'shutdown' ? 'unhealthy' : error.type;
    return new HttpError(status, error.message, type, param);
  }
  if (InvalidParameterError.isInstance(error)) return new HttpError(422, error.message, 'validation', error.parameter);
  if (ChatTemplateError.isInstance(error)) return new HttpError(422, error.message, 'template_error', 'messages');
  if (TokenizerError.isInstance(error)) return new HttpError(422, error.message, 'validation');
  const fastifyCode = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  const statusCode =
    typeof error === 'object' && error !== null ? (error as { statusCode?: unknown }).statusCode : undefined;
  if (fastifyCode === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new HttpError(413, 'Request body is too large', 'validation', null, 'payload_too_large');
  }
  if (fastifyCode === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new HttpError(415, 'Unsupported content type: send application/json', 'validation');
  }
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    // Malformed JSON, empty bodies and the like: the client's mistake, never a 5xx.
    const message = error instanceof Error ? error.message : 'Bad request';
    return new HttpError(statusCode === 422 ? 422 : 400, `Failed to parse the request body: ${message}`, 'validation');
  }
  const message = error instanceof Error ? error.message : String(error);
  return new HttpError(500, `Internal error: ${message}`, 'internal');
}

const OPENAI_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'invalid_request_error',
  404: 'invalid_request_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  422: 'invalid_request_error',
  429: 'rate_limit_error',
  499: 'invalid_request_error',
  503: 'server_error',
};

/** The status and JSON body of an error in the family's envelope. */
export function errorBody(family: ApiFamily, error: HttpError): { status: number; body: unknown } {
  if (family === 'tgi') return { status: error.status, body: { error: error.message, error_type: error.errorType } };
  // OpenAI answers invalid requests with 400, not 422.
  const status = error.status === 422 ? 400 : error.status;
  return {
    status,
    body: {
      error: {
        message: error.message,
        type: OPENAI_TYPES[status] ?? 'server_error',
        param: error.param,
        code: error.code ?? (error.status === 422 ? error.errorType : null),
      },
    },
  };
}

/** Deepest JSON nesting a request may have (serde_json, behind TGI, stops at 128). */
export const MAX_JSON_DEPTH = 64;

/**
 * A 400 error when `value` nests arrays / objects deeper than `maxDepth` (checked without recursion). Deep values
 * would otherwise overflow the stack of whatever walks them later (chat templates, cloning).
 */
export function nestingError(value: unknown, what: string, maxDepth = MAX_JSON_DEPTH): HttpError | undefined {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== 'object' || item === null) continue;
    if (depth >= maxDepth) {
      return new HttpError(400, `${what} is nested too deeply (more than ${maxDepth} levels)`, 'validation');
    }
    for (const child of Array.isArray(item) ? item : Object.values(item)) stack.push([child, depth + 1]);
  }
  return undefined;
}

/** The family of a URL path: `/v1/...` and Together's `/inference` speak OpenAI's envelope, the rest TGI's. */
export function familyOf(url: string): ApiFamily {
  return url.startsWith('/v1/') || url === '/v1' || url.startsWith('/inference') ? 'openai' : 'tgi';
}

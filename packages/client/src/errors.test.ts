import { describe, expect, it } from 'vitest';
import {
  BadRequestError,
  ClientError,
  ConnectionError,
  GenerationError,
  IncompleteGenerationError,
  NotFoundError,
  NotSupportedError,
  OverloadedError,
  RateLimitExceededError,
  ShardNotReadyError,
  ShardTimeoutError,
  TimeoutError,
  UnknownError,
  ValidationError,
  isErrorPayload,
  parseError,
} from './errors.js';

type ErrorClass = { new (...args: never[]): ClientError; isInstance(error: unknown): boolean; name: string };

describe('parseError', () => {
  // The table of text_generation/errors.py (error_type first, then the status), plus 422 and 424 by status.
  it.each<[number, unknown, ErrorClass]>([
    [424, { error: 'Request failed during generation', error_type: 'generation' }, GenerationError],
    [500, { error: 'Incomplete generation', error_type: 'incomplete_generation' }, IncompleteGenerationError],
    [429, { error: 'Model is overloaded', error_type: 'overloaded' }, OverloadedError],
    [422, { error: '`temperature` must be strictly positive', error_type: 'validation' }, ValidationError],
    [200, { error: 'Request failed during generation', error_type: 'generation' }, GenerationError],
    [400, { error: 'Authorization header is correct, but the token seems invalid' }, BadRequestError],
    [403, { error: 'Model is loading' }, ShardNotReadyError],
    [404, { error: 'Model bigscience/nope does not exist' }, NotFoundError],
    [422, 'Failed to deserialize the JSON body into the target type', ValidationError],
    [424, { error: 'shard failed' }, GenerationError],
    [429, { error: 'Rate limit reached. Please log in or use your apiToken' }, RateLimitExceededError],
    [504, { error: 'Model timed out' }, ShardTimeoutError],
    [500, { error: 'Internal error', error_type: 'internal' }, UnknownError],
    [503, { error: 'unhealthy', error_type: 'healthcheck' }, UnknownError],
    [502, '<html>Bad Gateway</html>', UnknownError],
  ])('maps %i %j to %o', (status, payload, expected) => {
    const error = parseError(status, payload);
    expect(error).toBeInstanceOf(expected);
    expect(expected.isInstance(error)).toBe(true);
    expect(ClientError.isInstance(error)).toBe(true);
    expect(error.name).toBe(expected.name);
    expect(error.status).toBe(status);
    expect(error.payload).toEqual(payload);
  });

  it('keeps the message and the error_type', () => {
    const error = parseError(422, { error: '`top_p` must be > 0.0 and < 1.0', error_type: 'validation' });
    expect(error.message).toBe('`top_p` must be > 0.0 and < 1.0');
    expect(error.errorType).toBe('validation');
  });

  it('reads the OpenAI envelope, using a TGI type in `code` or `type` when there is one', () => {
    const gen = parseError(400, {
      error: {
        message: '`temperature` must be strictly positive',
        type: 'invalid_request_error',
        param: 'temperature',
        code: 'validation',
      },
    });
    expect(gen).toBeInstanceOf(ValidationError);
    expect(gen.message).toBe('`temperature` must be strictly positive');
    expect(gen.errorType).toBe('invalid_request_error');

    const openai = parseError(429, { error: { message: 'Rate limit reached', type: 'rate_limit_error', code: null } });
    expect(openai).toBeInstanceOf(RateLimitExceededError);
    expect(openai.message).toBe('Rate limit reached');

    expect(parseError(404, { error: { message: 'no such model', type: 'invalid_request_error' } })).toBeInstanceOf(
      NotFoundError,
    );
  });

  it('falls back to the status line for bodies without a message', () => {
    expect(parseError(500, undefined, 'HTTP 500 Internal Server Error').message).toBe('HTTP 500 Internal Server Error');
    expect(parseError(500, '  ').message).toBe('HTTP 500');
    expect(parseError(500, { detail: 'x' }).message).toBe('HTTP 500');
    expect(parseError(500, 'x'.repeat(600)).message).toHaveLength(503);
  });
});

describe('error classes', () => {
  it('are all ClientErrors and recognise only their own kind', () => {
    const errors: Array<[ClientError, ErrorClass]> = [
      [new ValidationError('v'), ValidationError],
      [new GenerationError('g'), GenerationError],
      [new OverloadedError('o'), OverloadedError],
      [new IncompleteGenerationError('i'), IncompleteGenerationError],
      [new BadRequestError('b'), BadRequestError],
      [new ShardNotReadyError('s'), ShardNotReadyError],
      [new ShardTimeoutError('t'), ShardTimeoutError],
      [new NotFoundError('n'), NotFoundError],
      [new RateLimitExceededError('r'), RateLimitExceededError],
      [new NotSupportedError('n'), NotSupportedError],
      [new UnknownError('u'), UnknownError],
      [new TimeoutError('t', { timeout: 5 }), TimeoutError],
      [new ConnectionError('c'), ConnectionError],
    ];
    for (const [error, own] of errors) {
      expect(error).toBeInstanceOf(Error);
      expect(ClientError.isInstance(error)).toBe(true);
      for (const [, other] of errors) expect(other.isInstance(error)).toBe(other === own);
    }
    expect(ClientError.isInstance(new Error('x'))).toBe(false);
    expect(ValidationError.isInstance(null)).toBe(false);
  });

  it('recognises errors from another copy of the package by their global markers', () => {
    const foreign = Object.assign(new Error('from elsewhere'), {
      [Symbol.for('gen.client.error')]: true,
      [Symbol.for('gen.client.error.overloaded')]: true,
    });
    expect(ClientError.isInstance(foreign)).toBe(true);
    expect(OverloadedError.isInstance(foreign)).toBe(true);
    expect(ValidationError.isInstance(foreign)).toBe(false);
  });

  it('give local errors their own errorType and keep causes', () => {
    const cause = new Error('ECONNREFUSED');
    expect(new ConnectionError('c', { cause }).cause).toBe(cause);
    expect(new ConnectionError('c').errorType).toBe('connection');
    expect(new TimeoutError('t', { timeout: 10 }).errorType).toBe('timeout');
    expect(new TimeoutError('t', { timeout: 10 }).timeout).toBe(10);
    expect(new NotSupportedError('n').errorType).toBe('not_supported');
    expect(new ValidationError('v', { status: 422, errorType: 'validation' }).status).toBe(422);
  });
});

describe('isErrorPayload', () => {
  it('tells error envelopes from results', () => {
    expect(isErrorPayload({ error: 'x', error_type: 'generation' })).toBe(true);
    expect(isErrorPayload({ error: { message: 'x' } })).toBe(true);
    expect(isErrorPayload({ token: {}, generated_text: null })).toBe(false);
    expect(isErrorPayload([{ generated_text: 'x' }])).toBe(false);
    expect(isErrorPayload({ error: null })).toBe(false);
  });
});

import { ValidationError } from './errors.js';
import type { Parameters } from './types.js';

// 2^64 - 1 is not a double: it rounds to 2^64, so that value must pass.
const MAX_SEED = 2 ** 64;

function fail(message: string): never {
  throw new ValidationError(message);
}

function finite(value: unknown, wireName: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(`\`${wireName}\` must be a finite number`);
  return value;
}

function integer(value: unknown, wireName: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) fail(`\`${wireName}\` must be an integer`);
  return value;
}

function boolean(value: unknown, wireName: string): void {
  if (typeof value !== 'boolean') fail(`\`${wireName}\` must be a boolean`);
}

/**
 * Checks a request before it is sent, like the Python client's `Parameters` and `Request` validators, with TGI's
 * messages. Ranges follow the most permissive server the client talks to (gen accepts `top_p` and `typical_p` of
 * 1.0, TGI does not and answers 422), so the client never refuses what a server would accept.
 */
export function validateRequest(inputs: unknown, parameters: Parameters | undefined, stream: boolean): void {
  if (typeof inputs !== 'string') fail('`inputs` must be a string');
  if (inputs === '') fail('`inputs` cannot be empty');
  if (parameters === undefined) return;
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) {
    fail('`parameters` must be an object');
  }
  const p = parameters;

  for (const [name, wireName] of [
    ['doSample', 'do_sample'],
    ['returnFullText', 'return_full_text'],
    ['watermark', 'watermark'],
    ['details', 'details'],
    ['decoderInputDetails', 'decoder_input_details'],
  ] as const) {
    if (p[name] !== undefined) boolean(p[name], wireName);
  }

  if (p.maxNewTokens !== undefined && integer(p.maxNewTokens, 'max_new_tokens') <= 0) {
    fail('`max_new_tokens` must be strictly positive');
  }
  if (p.repetitionPenalty !== undefined && finite(p.repetitionPenalty, 'repetition_penalty') <= 0) {
    fail('`repetition_penalty` must be strictly positive');
  }
  if (p.frequencyPenalty !== undefined) {
    const value = finite(p.frequencyPenalty, 'frequency_penalty');
    if (value < -2 || value > 2) fail('`frequency_penalty` must be >= -2.0 and <= 2.0');
  }
  if (p.seed !== undefined) {
    const seed = integer(p.seed, 'seed');
    if (seed < 0) fail('`seed` must be positive');
    if (seed > MAX_SEED) fail('`seed` must be <= 18446744073709551615');
  }
  if (p.temperature !== undefined && finite(p.temperature, 'temperature') <= 0) {
    fail('`temperature` must be strictly positive');
  }
  if (p.topK !== undefined && integer(p.topK, 'top_k') <= 0) fail('`top_k` must be strictly positive');
  if (p.topP !== undefined) {
    const value = finite(p.topP, 'top_p');
    if (value <= 0 || value > 1) fail('`top_p` must be > 0.0 and <= 1.0');
  }
  if (p.truncate !== undefined && integer(p.truncate, 'truncate') <= 0) fail('`truncate` must be strictly positive');
  if (p.typicalP !== undefined) {
    const value = finite(p.typicalP, 'typical_p');
    if (value <= 0 || value > 1) fail('`typical_p` must be > 0.0 and <= 1.0');
  }
  if (p.topNTokens !== undefined && integer(p.topNTokens, 'top_n_tokens') < 0) {
    fail('`top_n_tokens` must be >= 0');
  }
  if (p.stop !== undefined) {
    if (!Array.isArray(p.stop) || !p.stop.every((item) => typeof item === 'string')) {
      fail('`stop` must be an array of strings');
    }
  }
  if (p.grammar !== undefined) {
    const grammar: unknown = p.grammar;
    if (typeof grammar !== 'object' || grammar === null) fail('`grammar` must be an object `{ type, value }`');
    const { type, value } = grammar as { type?: unknown; value?: unknown };
    if (type !== 'json' && type !== 'regex') fail('`grammar.type` must be "json" or "regex"');
    if (type === 'regex' && typeof value !== 'string') fail('`grammar.value` must be a string for a regex grammar');
    if (type === 'json' && (typeof value !== 'object' || value === null) && typeof value !== 'string') {
      fail('`grammar.value` must be a JSON Schema (an object or its text) for a json grammar');
    }
  }
  if (p.adapterId !== undefined && typeof p.adapterId !== 'string') fail('`adapter_id` must be a string');

  if (p.bestOf !== undefined) {
    const bestOf = integer(p.bestOf, 'best_of');
    if (bestOf <= 0) fail('`best_of` must be strictly positive');
    if (bestOf > 1) {
      if (p.seed !== undefined) fail('`seed` must not be set when `best_of` is > 1');
      const sampling =
        p.doSample === true ||
        p.temperature !== undefined ||
        p.topK !== undefined ||
        p.topP !== undefined ||
        p.typicalP !== undefined;
      if (!sampling) fail('you must use sampling when `best_of` is > 1');
      if (stream) fail('`best_of` != 1 is not supported when streaming tokens');
    }
  }
  if (stream && p.decoderInputDetails === true) {
    fail('`decoder_input_details` == true is not supported when streaming tokens');
  }
}

import { describe, expect, it } from 'vitest';
import { ValidationError } from './errors.js';
import type { Parameters } from './types.js';
import { validateRequest } from './validation.js';

function message(parameters: Parameters, stream = false, inputs: unknown = 'Hello'): string | undefined {
  try {
    validateRequest(inputs, parameters, stream);
    return undefined;
  } catch (error) {
    expect(ValidationError.isInstance(error)).toBe(true);
    return (error as ValidationError).message;
  }
}

describe('validateRequest', () => {
  it('accepts an empty parameter set and every boundary a server accepts', () => {
    expect(message({})).toBeUndefined();
    expect(
      message({
        topP: 1,
        typicalP: 1,
        frequencyPenalty: -2,
        seed: 0,
        topNTokens: 0,
        temperature: 1e-6,
        maxNewTokens: 1,
        stop: [],
        grammar: { type: 'json', value: '{"type":"object"}' },
      }),
    ).toBeUndefined();
    expect(message({ frequencyPenalty: 2, seed: Number('18446744073709551615') })).toBeUndefined();
    expect(message({ bestOf: 2, doSample: true })).toBeUndefined();
    expect(message({ bestOf: 2, topK: 5 })).toBeUndefined();
    expect(message({ bestOf: 1, seed: 1 }, true)).toBeUndefined();
  });

  it.each<[string, unknown, Parameters, boolean?]>([
    ['`inputs` cannot be empty', '', {}],
    ['`inputs` must be a string', 42, {}],
    ['`temperature` must be strictly positive', 'x', { temperature: 0 }],
    ['`temperature` must be a finite number', 'x', { temperature: Number.NaN }],
    ['`top_p` must be > 0.0 and <= 1.0', 'x', { topP: 0 }],
    ['`top_p` must be > 0.0 and <= 1.0', 'x', { topP: 1.01 }],
    ['`typical_p` must be > 0.0 and <= 1.0', 'x', { typicalP: 0 }],
    ['`top_k` must be strictly positive', 'x', { topK: 0 }],
    ['`top_k` must be an integer', 'x', { topK: 1.5 }],
    ['`max_new_tokens` must be strictly positive', 'x', { maxNewTokens: 0 }],
    ['`repetition_penalty` must be strictly positive', 'x', { repetitionPenalty: 0 }],
    ['`frequency_penalty` must be >= -2.0 and <= 2.0', 'x', { frequencyPenalty: 2.5 }],
    ['`seed` must be positive', 'x', { seed: -1 }],
    ['`seed` must be an integer', 'x', { seed: 0.5 }],
    ['`truncate` must be strictly positive', 'x', { truncate: 0 }],
    ['`top_n_tokens` must be >= 0', 'x', { topNTokens: -1 }],
    ['`stop` must be an array of strings', 'x', { stop: 'User:' as unknown as string[] }],
    ['`do_sample` must be a boolean', 'x', { doSample: 'yes' as unknown as boolean }],
    ['`grammar.type` must be "json" or "regex"', 'x', { grammar: { type: 'xml', value: '' } as never }],
    ['`grammar.value` must be a string for a regex grammar', 'x', { grammar: { type: 'regex', value: 1 } as never }],
    ['`best_of` must be strictly positive', 'x', { bestOf: 0 }],
    ['you must use sampling when `best_of` is > 1', 'x', { bestOf: 2 }],
    ['`seed` must not be set when `best_of` is > 1', 'x', { bestOf: 2, doSample: true, seed: 1 }],
    ['`best_of` != 1 is not supported when streaming tokens', 'x', { bestOf: 2, doSample: true }, true],
    [
      '`decoder_input_details` == true is not supported when streaming tokens',
      'x',
      { decoderInputDetails: true },
      true,
    ],
  ])('refuses with "%s"', (expected, inputs, parameters, stream = false) => {
    expect(message(parameters, stream, inputs)).toBe(expected);
  });

  it('refuses parameters that are not an object', () => {
    expect(message('nope' as unknown as Parameters)).toBe('`parameters` must be an object');
  });

  it('marks client-side errors as validation errors without a status', () => {
    try {
      validateRequest('x', { temperature: -1 }, false);
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).status).toBeUndefined();
      expect((error as ValidationError).errorType).toBe('validation');
    }
  });
});

import { describe, expect, it } from 'vitest';
import { InvalidParameterError } from './errors.js';
import { normalizeSamplingParameters, type SamplingParameters } from './parameters.js';

const limits = { vocabSize: 100, maxTopNTokens: 5 };

/** [parameters, wire name of the offending field, expected message fragment] */
const invalid: [unknown, string, string][] = [
  [{ temperature: 0 }, 'temperature', '`temperature` must be strictly positive'],
  [{ temperature: -1 }, 'temperature', 'strictly positive'],
  [{ temperature: Number.NaN }, 'temperature', 'strictly positive'],
  [{ temperature: Infinity }, 'temperature', 'strictly positive'],
  [{ temperature: '0.5' }, 'temperature', 'Given: "0.5"'],
  [{ topK: -1 }, 'top_k', '`top_k` must be a non-negative integer'],
  [{ topK: 1.5 }, 'top_k', 'non-negative integer'],
  [{ topK: Number.NaN }, 'top_k', 'non-negative integer'],
  [{ topK: true }, 'top_k', 'non-negative integer'],
  [{ topP: 0 }, 'top_p', '`top_p` must be > 0.0 and <= 1.0'],
  [{ topP: 1.0001 }, 'top_p', '`top_p` must be > 0.0 and <= 1.0'],
  [{ topP: -0.5 }, 'top_p', '> 0.0'],
  [{ topP: Number.NaN }, 'top_p', '> 0.0'],
  [{ topP: null as unknown as number, typicalP: 0 }, 'typical_p', '`typical_p` must be > 0.0 and <= 1.0'],
  [{ typicalP: 2 }, 'typical_p', '<= 1.0'],
  [{ minP: -0.1 }, 'min_p', '`min_p` must be >= 0.0 and <= 1.0'],
  [{ minP: 1.5 }, 'min_p', '<= 1.0'],
  [{ repetitionPenalty: 0 }, 'repetition_penalty', '`repetition_penalty` must be strictly positive'],
  [{ repetitionPenalty: -2 }, 'repetition_penalty', 'strictly positive'],
  [{ repetitionPenalty: Infinity }, 'repetition_penalty', 'strictly positive'],
  [{ frequencyPenalty: 2.5 }, 'frequency_penalty', '`frequency_penalty` must be >= -2.0 and <= 2.0'],
  [{ frequencyPenalty: -3 }, 'frequency_penalty', '>= -2.0'],
  [{ presencePenalty: 2.01 }, 'presence_penalty', '`presence_penalty` must be >= -2.0 and <= 2.0'],
  [{ presencePenalty: 'high' }, 'presence_penalty', '>= -2.0'],
  [{ logitBias: { 5: 101 } }, 'logit_bias', '[-100, 100]'],
  [{ logitBias: { 5: Number.NaN } }, 'logit_bias', '[-100, 100]'],
  [{ logitBias: { abc: 1 } }, 'logit_bias', 'token ids must be integers in [0, 99]. Given: "abc"'],
  [{ logitBias: { 100: 1 } }, 'logit_bias', 'token ids must be integers in [0, 99]'],
  [{ logitBias: { '-1': 1 } }, 'logit_bias', 'token ids'],
  [{ logitBias: [1, 2] }, 'logit_bias', 'must be an object'],
  [{ noRepeatNgramSize: -1 }, 'no_repeat_ngram_size', 'integer in [0, 1024]'],
  [{ noRepeatNgramSize: 2.5 }, 'no_repeat_ngram_size', 'integer'],
  [{ minNewTokens: -3 }, 'min_new_tokens', 'non-negative integer'],
  [{ suppressTokens: [1, 200] }, 'suppress_tokens', 'token ids must be integers in [0, 99]'],
  [{ suppressTokens: 'a' }, 'suppress_tokens', 'must be an array'],
  [{ allowedTokens: [] }, 'allowed_tokens', 'must not be empty'],
  [{ allowedTokens: [0.5] }, 'allowed_tokens', 'token ids'],
  [{ watermark: 'yes' }, 'watermark', 'must be a boolean'],
  [{ watermark: { gamma: 1 } }, 'watermark.gamma', '> 0.0 and < 1.0'],
  [{ watermark: { delta: -1 } }, 'watermark.delta', '>= 0'],
  [{ seed: -1 }, 'seed', '`seed` must be an integer in [0, 18446744073709551615]'],
  [{ seed: 1.5 }, 'seed', 'integer'],
  [{ seed: 2 ** 65 }, 'seed', 'integer'],
  [{ seed: '42' }, 'seed', 'integer'],
  [{ topNTokens: 6 }, 'top_n_tokens', '`top_n_tokens` must be >= 0 and <= 5'],
  [{ topNTokens: -1 }, 'top_n_tokens', '<= 5'],
  [{ doSample: 'true' }, 'do_sample', '`do_sample` must be a boolean'],
  [{ order: ['top_k', 'bogus'] }, 'samplers', 'stages must be one of'],
  [{ order: ['top_k', 'top_k'] }, 'samplers', 'twice'],
  [{ order: 'top_k' }, 'samplers', 'must be an array'],
  [{ topP: 0.5, order: ['top_k'] }, 'samplers', '`top_p` is set but not listed in `samplers`'],
  [null, 'parameters', 'must be an object'],
];

describe('parameter validation', () => {
  for (const [parameters, field, message] of invalid) {
    it(`rejects ${JSON.stringify(parameters)} naming ${field}`, () => {
      let error: unknown;
      try {
        normalizeSamplingParameters(parameters as SamplingParameters, limits);
      } catch (caught) {
        error = caught;
      }
      expect(InvalidParameterError.isInstance(error), String(error)).toBe(true);
      const invalidError = error as InvalidParameterError;
      expect(invalidError.parameter).toBe(field);
      expect(invalidError.message).toContain(message);
      expect(invalidError.allowed.length).toBeGreaterThan(0);
    });
  }

  it('fills neutral defaults and stays greedy', () => {
    const normalized = normalizeSamplingParameters({}, limits);
    expect(normalized).toMatchObject({
      doSample: false,
      temperature: 1,
      topK: 0,
      topP: 1,
      typicalP: 1,
      minP: 0,
      repetitionPenalty: 1,
      frequencyPenalty: 0,
      presencePenalty: 0,
      noRepeatNgramSize: 0,
      topNTokens: 0,
      order: [],
    });
    expect(normalized.seed).toBeUndefined();
    expect(normalized.watermark).toBeUndefined();
  });

  it('accepts top_p = 1.0 and typical_p = 1.0 as "off", and null as absent', () => {
    const normalized = normalizeSamplingParameters(
      { topP: 1, typicalP: 1, temperature: null as unknown as number },
      limits,
    );
    expect(normalized.order).toEqual([]);
    expect(normalized.doSample).toBe(false);
  });

  it('keeps only the active stages, in the requested order', () => {
    expect(normalizeSamplingParameters({ topK: 5, temperature: 0.5, minP: 0.1 }, limits).order).toEqual([
      'temperature',
      'top_k',
      'min_p',
    ]);
    expect(
      normalizeSamplingParameters(
        { topK: 5, temperature: 0.5, order: ['top_k', 'min_p', 'temperature', 'top_p'] },
        limits,
      ).order,
    ).toEqual(['top_k', 'temperature']);
  });

  it('parses logit_bias keys and drops zero biases; accepts seeds up to 2^64 - 1 and watermark settings', () => {
    const normalized = normalizeSamplingParameters(
      {
        logitBias: { '7': -100, 8: 0, 9: 2.5 },
        seed: JSON.parse('18446744073709551615') as number,
        watermark: { gamma: 0.25 },
      },
      limits,
    );
    expect([...normalized.logitBias]).toEqual([
      [7, -100],
      [9, 2.5],
    ]);
    expect(normalized.seed).toBe(2 ** 64);
    expect(normalized.watermark).toEqual({ gamma: 0.25, delta: 2 });
    expect(normalizeSamplingParameters({ logitBias: new Map([[3, 1]]) }, limits).logitBias.get(3)).toBe(1);
  });
});

import { describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import { EmbeddingBody } from '../schemas/embeddings.js';
import { declaredFields } from '../schemas/check.js';
import { checkEmbeddingLimits, checkEmbeddingTokens, encodeEmbedding, parseEmbeddingRequest } from './embeddings.js';

function refusal(run: () => unknown): HttpError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(HttpError);
    return error as HttpError;
  }
  throw new Error('expected a refusal');
}

describe('parseEmbeddingRequest', () => {
  it('takes the four input shapes of OpenAI, with defaults float and mean', () => {
    expect(parseEmbeddingRequest({ input: 'hi', model: 'm' })).toEqual({
      inputs: ['hi'],
      model: 'm',
      encodingFormat: 'float',
      dimensions: undefined,
      pooling: 'mean',
    });
    expect(parseEmbeddingRequest({ input: ['a', 'b'] }).inputs).toEqual(['a', 'b']);
    expect(parseEmbeddingRequest({ input: [1, 2, 3] }).inputs).toEqual([[1, 2, 3]]);
    expect(parseEmbeddingRequest({ input: [[1], [2, 0]] }).inputs).toEqual([[1], [2, 0]]);
    const all = parseEmbeddingRequest({
      input: 'x',
      encoding_format: 'base64',
      dimensions: 64,
      pooling: 'last',
      user: 'someone',
    });
    expect(all).toMatchObject({ encodingFormat: 'base64', dimensions: 64, pooling: 'last' });
    // Null is absent, as on the other OpenAI routes.
    expect(
      parseEmbeddingRequest({ input: 'x', encoding_format: null, dimensions: null, user: null, pooling: null }),
    ).toMatchObject({ encodingFormat: 'float', dimensions: undefined, pooling: 'mean' });
  });

  it('refuses unknown fields with OpenAI wording, and exports the accepted ones', () => {
    expect(declaredFields(EmbeddingBody)).toEqual([
      'input',
      'model',
      'encoding_format',
      'dimensions',
      'user',
      'pooling',
    ]);
    const error = refusal(() => parseEmbeddingRequest({ input: 'x', truncate: true }));
    expect(error.message).toBe('Unrecognized request argument supplied: truncate');
    expect(error.param).toBe('truncate');
  });

  it('refuses empty, missing and malformed inputs, naming the position', () => {
    const cases: [unknown, string][] = [
      [undefined, '`input` is required'],
      [null, '`input` is required'],
      ['', '`input` must not be an empty string'],
      [[], '`input` must not be an empty array'],
      [['a', ''], '`input[1]` must not be an empty string'],
      [[[1], []], '`input[1]` must not be an empty array'],
      [[1, -2], '`input[1]` must be a token id (an integer >= 0). Given: -2'],
      [[[1, 2.5]], '`input[0][1]` must be a token id (an integer >= 0). Given: 2.5'],
      [[['a']], '`input[0][0]` must be a token id (an integer >= 0). Given: "a"'],
      [['a', [1]], 'not a mix of them'],
      [42, '`input` must be a string, an array of strings'],
      [{ text: 'a' }, '`input` must be a string, an array of strings'],
    ];
    for (const [input, message] of cases) {
      const error = refusal(() => parseEmbeddingRequest(input === undefined ? {} : { input }));
      expect(error.message, JSON.stringify(input)).toContain(message);
      expect(error.param).toBe('input');
      expect(error.status).toBe(422); // 400 in OpenAI's envelope
    }
  });

  it('refuses bad optional fields', () => {
    expect(refusal(() => parseEmbeddingRequest({ input: 'x', encoding_format: 'fp16' })).message).toBe(
      '`encoding_format` must be "float" or "base64". Given: "fp16"',
    );
    expect(refusal(() => parseEmbeddingRequest({ input: 'x', dimensions: 0 })).param).toBe('dimensions');
    expect(refusal(() => parseEmbeddingRequest({ input: 'x', dimensions: '8' })).param).toBe('dimensions');
    expect(refusal(() => parseEmbeddingRequest({ input: 'x', pooling: 'max' })).message).toBe(
      '`pooling` must be "mean" or "last". Given: "max"',
    );
    expect(refusal(() => parseEmbeddingRequest({ input: 'x', model: 3 })).param).toBe('model');
    expect(refusal(() => parseEmbeddingRequest({ input: 'x', user: {} })).param).toBe('user');
    expect(refusal(() => parseEmbeddingRequest(['x'])).message).toBe('request body must be a JSON object');
  });
});

describe('checkEmbeddingLimits and checkEmbeddingTokens', () => {
  const request = parseEmbeddingRequest({ input: ['a', 'b', 'c'], dimensions: 8 });

  it('refuse too many inputs and a dimensions other than the hidden size', () => {
    checkEmbeddingLimits(request, { maxInputs: 3, hiddenSize: 8 });
    expect(refusal(() => checkEmbeddingLimits(request, { maxInputs: 2, hiddenSize: 8 })).message).toBe(
      '`input` supports up to 2 inputs per request. Given: 3',
    );
    const dimensions = refusal(() => checkEmbeddingLimits(request, { maxInputs: 3, hiddenSize: 16 }));
    expect(dimensions.message).toContain("`dimensions` 8 is not supported: this model's embeddings have 16");
    expect(dimensions.param).toBe('dimensions');
  });

  it('refuse ids outside the vocabulary and inputs past the context length, without truncating', () => {
    const limits = { vocabSize: 10, maxPositions: 3 };
    checkEmbeddingTokens([[9, 0, 1]], limits);
    expect(refusal(() => checkEmbeddingTokens([[1], [2, 10]], limits)).message).toBe(
      '`input[1]`: token id 10 is out of range (the vocabulary has 10 tokens)',
    );
    expect(refusal(() => checkEmbeddingTokens([[1, 2, 3, 4]], limits)).message).toBe(
      "This model's maximum context length is 3 tokens, however `input` has 4 tokens. Please reduce the length of the input",
    );
  });
});

describe('encodeEmbedding', () => {
  it('writes floats as numbers or as base64 of little-endian float32 bytes', () => {
    const vector = Float32Array.of(1, -0.5, 0.1);
    expect(encodeEmbedding(vector, 'float')).toEqual([1, -0.5, Math.fround(0.1)]);
    const bytes = Buffer.from(encodeEmbedding(vector, 'base64') as string, 'base64');
    expect(bytes.length).toBe(12);
    expect([0, 4, 8].map((offset) => bytes.readFloatLE(offset))).toEqual(Array.from(vector));
  });
});

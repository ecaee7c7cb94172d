import { describe, expect, it } from 'vitest';
import type { Parameters } from './types.js';
import {
  WireFormatError,
  camelCase,
  readDeployedModels,
  readInfo,
  readResponse,
  readStreamResponse,
  readTokens,
  toWireParameters,
} from './wire.js';

describe('toWireParameters', () => {
  it('maps every camelCase parameter to its snake_case wire name', () => {
    const parameters: Required<Parameters> = {
      doSample: true,
      maxNewTokens: 12,
      repetitionPenalty: 1.1,
      frequencyPenalty: 0.5,
      returnFullText: true,
      stop: ['\n\n', 'User:'],
      seed: 42,
      temperature: 0.7,
      topK: 40,
      topP: 0.9,
      truncate: 512,
      typicalP: 0.95,
      bestOf: 2,
      watermark: true,
      details: false,
      decoderInputDetails: true,
      topNTokens: 3,
      grammar: { type: 'json', value: { type: 'object', properties: { a: { type: 'string' } } } },
      adapterId: 'my-lora',
    };
    expect(toWireParameters(parameters)).toEqual({
      do_sample: true,
      max_new_tokens: 12,
      repetition_penalty: 1.1,
      frequency_penalty: 0.5,
      return_full_text: true,
      stop: ['\n\n', 'User:'],
      seed: 42,
      temperature: 0.7,
      top_k: 40,
      top_p: 0.9,
      truncate: 512,
      typical_p: 0.95,
      best_of: 2,
      watermark: true,
      details: false,
      decoder_input_details: true,
      top_n_tokens: 3,
      grammar: { type: 'json', value: { type: 'object', properties: { a: { type: 'string' } } } },
      adapter_id: 'my-lora',
    });
  });

  it('leaves out undefined fields and asks for details by default', () => {
    expect(toWireParameters()).toEqual({ details: true });
    expect(toWireParameters({ maxNewTokens: 5, seed: undefined })).toEqual({ details: true, max_new_tokens: 5 });
    expect(JSON.stringify(toWireParameters({ grammar: { type: 'regex', value: '\\d+' } }))).toBe(
      '{"details":true,"grammar":{"type":"regex","value":"\\\\d+"}}',
    );
  });
});

const TOKEN = { id: 5, text: ' hi', logprob: -0.5, special: false };
const EOS = { id: 2, text: '</s>', logprob: -0.01, special: true };

describe('readResponse', () => {
  it('maps a full /generate answer back to camelCase', () => {
    const wire = {
      generated_text: ' hi',
      details: {
        finish_reason: 'eos_token',
        generated_tokens: 2,
        seed: 7,
        prefill: [
          { id: 1, text: '<s>', logprob: null },
          { id: 9, text: 'Hello', logprob: -3.5 },
        ],
        tokens: [TOKEN, EOS],
        top_tokens: [[TOKEN], [EOS, TOKEN]],
        best_of_sequences: [
          {
            generated_text: ' ho',
            finish_reason: 'length',
            generated_tokens: 1,
            seed: 8,
            prefill: [],
            tokens: [{ id: 6, text: ' ho', logprob: -1, special: false }],
          },
        ],
      },
    };
    expect(readResponse(wire)).toEqual({
      generatedText: ' hi',
      details: {
        finishReason: 'eos_token',
        generatedTokens: 2,
        seed: 7,
        prefill: [
          { id: 1, text: '<s>' },
          { id: 9, text: 'Hello', logprob: -3.5 },
        ],
        tokens: [TOKEN, EOS],
        topTokens: [[TOKEN], [EOS, TOKEN]],
        bestOfSequences: [
          {
            generatedText: ' ho',
            finishReason: 'length',
            generatedTokens: 1,
            seed: 8,
            prefill: [],
            tokens: [{ id: 6, text: ' ho', logprob: -1, special: false }],
          },
        ],
      },
    });
  });

  it('accepts the one-element array of POST / and answers without details', () => {
    expect(readResponse([{ generated_text: 'x' }])).toEqual({ generatedText: 'x' });
    expect(readResponse({ generated_text: 'x', details: null })).toEqual({ generatedText: 'x' });
  });

  it('leaves a null seed out and reads a null logprob (-inf in serde_json) as -Infinity', () => {
    const response = readResponse({
      generated_text: 'x',
      details: {
        finish_reason: 'length',
        generated_tokens: 1,
        seed: null,
        prefill: [],
        tokens: [{ ...TOKEN, logprob: null }],
      },
    });
    expect(response.details).toEqual({
      finishReason: 'length',
      generatedTokens: 1,
      prefill: [],
      tokens: [{ ...TOKEN, logprob: -Infinity }],
    });
    expect(response.details && 'seed' in response.details).toBe(false);
  });

  it('rejects shapes that are not a generation', () => {
    expect(() => readResponse({ text: 'x' })).toThrow(WireFormatError);
    expect(() => readResponse([])).toThrow(WireFormatError);
    expect(() => readResponse('x')).toThrow(WireFormatError);
    expect(() => readResponse({ generated_text: 'x', details: { finish_reason: 'length' } })).toThrow(
      /generated_tokens/,
    );
  });
});

describe('readStreamResponse', () => {
  it('maps an intermediate TGI event', () => {
    expect(readStreamResponse({ index: 1, token: TOKEN, generated_text: null, details: null })).toEqual({
      index: 1,
      token: TOKEN,
    });
  });

  it('maps the last event with top tokens and details', () => {
    expect(
      readStreamResponse({
        index: 2,
        token: EOS,
        top_tokens: [EOS, TOKEN],
        generated_text: ' hi',
        details: { finish_reason: 'eos_token', generated_tokens: 2, seed: null, input_length: 4 },
      }),
    ).toEqual({
      index: 2,
      token: EOS,
      topTokens: [EOS, TOKEN],
      generatedText: ' hi',
      details: { finishReason: 'eos_token', generatedTokens: 2, inputLength: 4 },
    });
  });

  it('reads the older event shape without index and input_length', () => {
    expect(
      readStreamResponse({
        token: TOKEN,
        generated_text: ' hi',
        details: { finish_reason: 'stop_sequence', generated_tokens: 1, seed: 3 },
      }),
    ).toEqual({
      token: TOKEN,
      generatedText: ' hi',
      details: { finishReason: 'stop_sequence', generatedTokens: 1, seed: 3 },
    });
  });
});

describe('other readers', () => {
  it('reads /tokenize', () => {
    expect(readTokens([{ id: 1, text: '', start: 0, stop: 0 }])).toEqual([{ id: 1, text: '', start: 0, stop: 0 }]);
    expect(() => readTokens({})).toThrow(WireFormatError);
  });

  it('camelCases /info and drops nulls', () => {
    expect(readInfo({ model_id: 'm', max_input_tokens: 10, docker_label: null, max_best_of: 2 })).toEqual({
      modelId: 'm',
      maxInputTokens: 10,
      maxBestOf: 2,
    });
    expect(() => readInfo({})).toThrow(WireFormatError);
    expect(camelCase('max_client_batch_size')).toBe('maxClientBatchSize');
  });

  it('reads deployed models', () => {
    expect(readDeployedModels([{ model_id: 'a/b', sha: 'c' }])).toEqual([{ modelId: 'a/b', sha: 'c' }]);
  });
});

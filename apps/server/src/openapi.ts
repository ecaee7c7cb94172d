/** JSON schema helpers for the OpenAPI document. */
const string = { type: 'string' };
const integer = { type: 'integer' };
const number = { type: 'number' };
const boolean = { type: 'boolean' };
const nullable = (schema: object) => ({ ...schema, nullable: true });
const array = (items: object) => ({ type: 'array', items });
const object = (properties: Record<string, object>, required: string[] = []) => ({
  type: 'object',
  properties,
  required,
});
const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

const tgiParameters = object({
  do_sample: boolean,
  max_new_tokens: nullable(integer),
  repetition_penalty: nullable(number),
  frequency_penalty: nullable(number),
  presence_penalty: nullable(number),
  return_full_text: nullable(boolean),
  stop: array(string),
  seed: nullable(integer),
  temperature: nullable(number),
  top_k: nullable(integer),
  top_p: nullable(number),
  min_p: nullable(number),
  truncate: nullable(integer),
  typical_p: nullable(number),
  best_of: nullable(integer),
  watermark: boolean,
  details: boolean,
  decoder_input_details: boolean,
  top_n_tokens: nullable(integer),
  logit_bias: nullable({ type: 'object', additionalProperties: number }),
  no_repeat_ngram_size: nullable(integer),
  min_new_tokens: nullable(integer),
  stop_token_ids: nullable(array(integer)),
  ignore_eos: nullable(boolean),
  raw_logprobs: nullable(boolean),
  samplers: nullable(array({ type: 'string', enum: ['temperature', 'top_k', 'top_p', 'min_p', 'typical_p'] })),
});

const token = object({ id: integer, text: string, logprob: number, special: boolean, raw_logprob: number });
const tgiError = object({ error: string, error_type: string }, ['error', 'error_type']);
const openAiError = object({
  error: object({ message: string, type: string, param: nullable(string), code: nullable(string) }),
});
const tgiErrors = {
  '422': { description: 'Invalid request', ...json(tgiError) },
  '429': { description: 'Too many requests in flight', ...json(tgiError) },
  '424': { description: 'The model failed while generating', ...json(tgiError) },
  '503': { description: 'The model is loading', ...json(tgiError) },
};
const openAiErrors = {
  '400': { description: 'Invalid request', ...json(openAiError) },
  '429': { description: 'Too many requests in flight', ...json(openAiError) },
  '503': { description: 'The model is loading', ...json(openAiError) },
};
const sse = { description: 'Server-Sent Events', content: { 'text/event-stream': { schema: string } } };

/** The OpenAPI 3 document of every route. */
export function openApiDocument(version: string) {
  return {
    openapi: '3.0.3',
    info: {
      title: 'gen',
      version,
      description: 'Text generation with the APIs of Hugging Face TGI, OpenAI and Together.',
      license: { name: 'Apache-2.0' },
    },
    paths: {
      '/generate': {
        post: {
          tags: ['TGI'],
          summary: 'Generate text (TGI)',
          requestBody: json(object({ inputs: string, parameters: ref('Parameters') }, ['inputs'])),
          responses: { '200': { description: 'Generated text', ...json(ref('GenerateResponse')) }, ...tgiErrors },
        },
      },
      '/generate_stream': {
        post: {
          tags: ['TGI'],
          summary: 'Generate text as a stream of tokens (TGI, Server-Sent Events)',
          requestBody: json(object({ inputs: string, parameters: ref('Parameters') }, ['inputs'])),
          responses: { '200': sse, ...tgiErrors },
        },
      },
      '/': {
        post: {
          tags: ['TGI'],
          summary: 'Generate (TGI compat route): an array response, or a stream when `stream` is true',
          requestBody: json(object({ inputs: string, parameters: ref('Parameters'), stream: boolean }, ['inputs'])),
          responses: {
            '200': { description: 'An array with one response, or a stream', ...json(array(ref('GenerateResponse'))) },
            ...tgiErrors,
          },
        },
      },
      '/tokenize': {
        post: {
          tags: ['TGI'],
          summary: 'Tokenize a text, with character offsets',
          requestBody: json(
            object({ inputs: string, parameters: object({ add_special_tokens: boolean }) }, ['inputs']),
          ),
          responses: {
            '200': {
              description: 'Tokens',
              ...json(array(object({ id: integer, text: string, start: integer, stop: integer }))),
            },
            ...tgiErrors,
          },
        },
      },
      '/detokenize': {
        post: {
          tags: ['TGI'],
          summary: 'Decode token ids to text',
          requestBody: json(object({ ids: array(integer), skip_special_tokens: boolean }, ['ids'])),
          responses: { '200': { description: 'Text', ...json(object({ text: string })) }, ...tgiErrors },
        },
      },
      '/watermark/detect': {
        post: {
          tags: ['TGI'],
          summary: 'Detect the TGI / Kirchenbauer watermark in a text or token ids',
          requestBody: json(
            object({
              text: string,
              ids: array(integer),
              gamma: number,
              z_threshold: number,
              ignore_repeated_bigrams: boolean,
              prefix_token: integer,
            }),
          ),
          responses: {
            '200': {
              description: 'Detection',
              ...json(
                object({
                  z_score: number,
                  p_value: number,
                  green_fraction: number,
                  green_tokens: integer,
                  scored_tokens: integer,
                  prediction: boolean,
                  verdict: string,
                }),
              ),
            },
            ...tgiErrors,
          },
        },
      },
      '/info': {
        get: {
          tags: ['TGI'],
          summary: 'Model and server limits',
          responses: { '200': { description: 'Info', ...json({ type: 'object' }) }, '503': tgiErrors['503'] },
        },
      },
      '/health': {
        get: {
          tags: ['TGI'],
          summary: '200 when the model is ready, 503 while loading',
          responses: { '200': { description: 'Ready' }, '503': tgiErrors['503'] },
        },
      },
      '/metrics': {
        get: {
          tags: ['TGI'],
          summary: 'Prometheus metrics (TGI names)',
          responses: { '200': { description: 'Metrics', content: { 'text/plain': { schema: string } } } },
        },
      },
      '/v1/chat/completions': {
        post: {
          tags: ['OpenAI'],
          summary: 'Chat completion (OpenAI), streaming or not',
          requestBody: json(
            object(
              {
                model: string,
                messages: array(object({ role: string, content: nullable(string) }, ['role'])),
                max_tokens: nullable(integer),
                max_completion_tokens: nullable(integer),
                temperature: nullable(number),
                top_p: nullable(number),
                n: nullable(integer),
                stop: { oneOf: [string, array(string)] },
                seed: nullable(integer),
                presence_penalty: nullable(number),
                frequency_penalty: nullable(number),
                logit_bias: nullable({ type: 'object', additionalProperties: number }),
                logprobs: nullable(boolean),
                top_logprobs: nullable(integer),
                stream: nullable(boolean),
                stream_options: nullable(object({ include_usage: boolean })),
                response_format: nullable(object({ type: string })),
                tools: nullable(array({ type: 'object' })),
                user: nullable(string),
                top_k: nullable(integer),
                min_p: nullable(number),
                repetition_penalty: nullable(number),
              },
              ['messages'],
            ),
          ),
          responses: {
            '200': { description: 'A chat.completion, or chat.completion.chunk events', ...json({ type: 'object' }) },
            ...openAiErrors,
          },
        },
      },
      '/v1/completions': {
        post: {
          tags: ['OpenAI'],
          summary: 'Text completion (OpenAI legacy), streaming or not',
          requestBody: json(
            object(
              {
                model: string,
                prompt: { oneOf: [string, array(string), array(integer), array(array(integer))] },
                max_tokens: nullable(integer),
                temperature: nullable(number),
                top_p: nullable(number),
                n: nullable(integer),
                best_of: nullable(integer),
                echo: nullable(boolean),
                logprobs: nullable(integer),
                stop: { oneOf: [string, array(string)] },
                seed: nullable(integer),
                stream: nullable(boolean),
              },
              ['prompt'],
            ),
          ),
          responses: { '200': { description: 'A text_completion', ...json({ type: 'object' }) }, ...openAiErrors },
        },
      },
      '/v1/models': {
        get: {
          tags: ['OpenAI'],
          summary: 'The served model',
          responses: { '200': { description: 'Model list', ...json({ type: 'object' }) } },
        },
      },
      '/inference': {
        post: {
          tags: ['Together'],
          summary: "Together's inference API",
          requestBody: json(
            object(
              {
                model: string,
                prompt: string,
                max_tokens: integer,
                temperature: number,
                top_p: number,
                top_k: integer,
                repetition_penalty: number,
                stop: { oneOf: [string, array(string)] },
                logprobs: integer,
              },
              ['prompt'],
            ),
          ),
          responses: { '200': { description: 'Output', ...json({ type: 'object' }) }, ...openAiErrors },
        },
      },
    },
    components: {
      schemas: {
        Parameters: tgiParameters,
        Token: token,
        GenerateResponse: object(
          {
            generated_text: string,
            details: nullable(
              object({
                finish_reason: { type: 'string', enum: ['length', 'eos_token', 'stop_sequence'] },
                generated_tokens: integer,
                seed: nullable(integer),
                prefill: array(object({ id: integer, text: string, logprob: nullable(number) })),
                tokens: array(ref('Token')),
                top_tokens: array(array(ref('Token'))),
                best_of_sequences: array({ type: 'object' }),
              }),
            ),
          },
          ['generated_text'],
        ),
      },
    },
  };
}

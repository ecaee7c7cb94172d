import { Type, type TSchema } from '@sinclair/typebox';
import { EmbeddingBody } from './embeddings.js';
import { ChatBody, CompletionBody } from './openai.js';
import { CompatGenerateBody, DetokenizeBody, GenerateBody, TokenizeBody, WatermarkDetectBody } from './tgi.js';
import { InferenceBody } from './together.js';

const { Array: ArrayOf, Boolean, Integer, Null, Number, Object, Optional, String, Union, Literal } = Type;

/**
 * The route schemas: request bodies (the same schemas the parsers check) and response shapes. `@fastify/swagger`
 * builds the OpenAPI document from them; request bodies are checked by each route's parser (so the 503 while the
 * model loads comes first, and errors keep their family's wording), so Fastify's own validation is off.
 */
const nullable = <T extends TSchema>(schema: T) => Union([schema, Null()]);

const TgiError = Object(
  { error: String(), error_type: String() },
  { description: 'TGI’s error body: `error_type` is validation, overloaded, generation, unhealthy, timeout...' },
);
const OpenAiError = Object(
  { error: Object({ message: String(), type: String(), param: nullable(String()), code: nullable(String()) }) },
  { description: 'OpenAI’s error body.' },
);
const Token = Object({
  id: Integer(),
  text: String(),
  logprob: nullable(Number()),
  special: Boolean(),
  raw_logprob: Optional(Number()),
});
const Details = Object({
  finish_reason: Union([Literal('length'), Literal('eos_token'), Literal('stop_sequence')]),
  generated_tokens: Integer(),
  seed: nullable(Integer()),
  prefill: ArrayOf(Object({ id: Integer(), text: String(), logprob: nullable(Number()) })),
  tokens: ArrayOf(Token),
  top_tokens: Optional(ArrayOf(ArrayOf(Token))),
  best_of_sequences: Optional(ArrayOf(Object({ generated_text: String() }, { additionalProperties: true }))),
});
const GenerateResponse = Object({ generated_text: String(), details: Optional(Details) });
const StreamEvent = Object(
  {
    index: Integer(),
    token: Token,
    top_tokens: ArrayOf(Token),
    generated_text: nullable(String()),
    details: nullable(Object({}, { additionalProperties: true })),
  },
  { description: 'One `data:` event per token; the last carries `generated_text` (and `details` when asked).' },
);
const anyObject = (description: string) => Object({}, { additionalProperties: true, description });

const json = (schema: TSchema, description: string) => ({ description, content: { 'application/json': { schema } } });
const events = (schema: TSchema, description: string) => ({
  description,
  content: { 'text/event-stream': { schema } },
});

const tgiErrors = {
  415: json(TgiError, 'The request does not declare a JSON body'),
  422: json(TgiError, 'Invalid request'),
  424: json(TgiError, 'The model failed while generating'),
  429: json(TgiError, 'Too many requests in flight'),
  503: json(TgiError, 'The model is loading, or the server is shutting down'),
  504: json(TgiError, 'The request timed out'),
};
const openAiErrors = {
  400: json(OpenAiError, 'Invalid request (unknown fields included)'),
  429: json(OpenAiError, 'Too many requests in flight'),
  503: json(OpenAiError, 'The model is loading, or the server is shutting down'),
  504: json(OpenAiError, 'The request timed out'),
};

/** A route's Fastify schema: documentation (tags, summary), its body and its responses. */
export interface RouteSchema {
  tags: string[];
  summary: string;
  description?: string;
  body?: TSchema;
  response: Record<number, unknown>;
  hide?: boolean;
}

/** Every route's schema, by `METHOD path`. */
export const ROUTE_SCHEMAS = {
  'POST /generate': {
    tags: ['TGI'],
    summary: 'Generate text (TGI)',
    body: GenerateBody,
    response: { 200: json(GenerateResponse, 'The generated text, and `details` when asked'), ...tgiErrors },
  },
  'POST /generate_stream': {
    tags: ['TGI'],
    summary: 'Generate text as a stream of tokens (TGI, Server-Sent Events)',
    body: GenerateBody,
    response: { 200: events(StreamEvent, 'One event per token'), ...tgiErrors },
  },
  'POST /': {
    tags: ['TGI'],
    summary: 'Generate (TGI compat route): an array with one response, or a stream when `stream` is true',
    body: CompatGenerateBody,
    response: { 200: json(ArrayOf(GenerateResponse), 'An array with one response (or a stream)'), ...tgiErrors },
  },
  'POST /tokenize': {
    tags: ['TGI'],
    summary: 'Tokenize a text, with character offsets',
    body: TokenizeBody,
    response: {
      200: json(ArrayOf(Object({ id: Integer(), text: String(), start: Integer(), stop: Integer() })), 'Tokens'),
      422: tgiErrors[422],
    },
  },
  'POST /detokenize': {
    tags: ['TGI'],
    summary: 'Decode token ids to text (gen extra)',
    body: DetokenizeBody,
    response: { 200: json(Object({ text: String() }), 'The text'), 422: tgiErrors[422] },
  },
  'POST /watermark/detect': {
    tags: ['TGI'],
    summary: 'Detect the TGI / Kirchenbauer watermark in a text or token ids (gen extra)',
    body: WatermarkDetectBody,
    response: {
      200: json(
        Object({
          z_score: Number(),
          p_value: Number(),
          green_fraction: Number(),
          green_tokens: Integer(),
          scored_tokens: Integer(),
          prediction: Boolean(),
          verdict: String(),
        }),
        'The detection',
      ),
      422: tgiErrors[422],
    },
  },
  'GET /info': {
    tags: ['TGI'],
    summary: 'Model and server limits',
    response: { 200: json(anyObject('TGI’s `Info`'), 'Info'), 503: tgiErrors[503] },
  },
  'GET /health': {
    tags: ['TGI'],
    summary: '200 when the model is ready, 503 while loading',
    response: { 200: json(Object({}), 'Ready'), 503: tgiErrors[503] },
  },
  'GET /metrics': {
    tags: ['TGI'],
    summary: 'Prometheus metrics (TGI’s names)',
    response: { 200: { description: 'Metrics', content: { 'text/plain': { schema: String() } } } },
  },
  'POST /v1/chat/completions': {
    tags: ['OpenAI'],
    summary: 'Chat completion (OpenAI), streaming or not',
    body: ChatBody,
    response: {
      200: {
        description: 'A `chat.completion`, or `chat.completion.chunk` events when streaming',
        content: {
          'application/json': { schema: anyObject('chat.completion') },
          'text/event-stream': { schema: anyObject('chat.completion.chunk') },
        },
      },
      ...openAiErrors,
    },
  },
  'POST /v1/completions': {
    tags: ['OpenAI'],
    summary: 'Text completion (OpenAI legacy), streaming or not',
    body: CompletionBody,
    response: {
      200: {
        description: 'A `text_completion`, or `text_completion` events when streaming',
        content: {
          'application/json': { schema: anyObject('text_completion') },
          'text/event-stream': { schema: anyObject('text_completion') },
        },
      },
      ...openAiErrors,
    },
  },
  'POST /v1/embeddings': {
    tags: ['OpenAI'],
    summary: 'Embeddings (OpenAI): pooled final hidden states of the served model',
    body: EmbeddingBody,
    response: {
      200: json(
        Object({
          object: Literal('list'),
          data: ArrayOf(
            Object({
              object: Literal('embedding'),
              index: Integer(),
              embedding: Union([ArrayOf(Number()), String()], { description: 'Floats, or base64 float32' }),
            }),
          ),
          model: String(),
          usage: Object({ prompt_tokens: Integer(), total_tokens: Integer() }),
        }),
        'One vector per input, in order',
      ),
      ...openAiErrors,
    },
  },
  'GET /v1/models': {
    tags: ['OpenAI'],
    summary: 'The served model',
    response: { 200: json(anyObject('A model list'), 'Model list') },
  },
  'POST /inference': {
    tags: ['Together'],
    summary: 'Together’s inference API, streaming (`stream_tokens`) or not',
    body: InferenceBody,
    response: {
      200: {
        description: 'The output, or one event per token when `stream_tokens` is true',
        content: {
          'application/json': { schema: anyObject('Together’s output') },
          'text/event-stream': { schema: anyObject('Together’s stream event') },
        },
      },
      ...openAiErrors,
    },
  },
} satisfies Record<string, RouteSchema>;

/** Schema of routes left out of the document (the document itself, the UI). */
export const HIDDEN: RouteSchema = { tags: [], summary: '', response: {}, hide: true };

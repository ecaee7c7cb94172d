import { Type } from '@sinclair/typebox';
import { closedBody, compileBodyCheck, field, fieldsWithStatus, openBody, required } from './check.js';

const { Array: ArrayOf, Boolean, Integer, Number, Object, Record, String, Union, Unknown } = Type;

/** OpenAI's `top_logprobs` maximum. */
export const MAX_TOP_LOGPROBS = 20;

/**
 * Fields both OpenAI generation routes read: OpenAI's sampling fields, vLLM's extras, and the fields OpenAI clients
 * send for features of OpenAI's own service (accepted and ignored, each with its reason).
 */
const common = {
  model: field(String(), {
    description: 'One model is served, under `--model-id`: any name is accepted.',
    status: 'ignored',
  }),
  temperature: field(Number({ minimum: 0 }), {
    description: 'Softmax temperature; 0 is greedy. Default 1 (sampling on), as OpenAI.',
  }),
  top_p: field(Number(), { description: 'Nucleus sampling mass, in (0, 1].' }),
  top_k: field(Integer({ minimum: -1 }), {
    description: 'Keep the k most likely tokens; 0 or -1 is off (vLLM extra).',
  }),
  min_p: field(Number(), { description: 'Min-p sampling threshold, in [0, 1] (vLLM extra).' }),
  typical_p: field(Number(), { description: 'Typical-p sampling mass, in (0, 1) (vLLM extra).' }),
  max_tokens: field(Integer({ minimum: 1 }), { description: 'Most tokens to generate.' }),
  max_completion_tokens: field(Integer({ minimum: 1 }), {
    description: 'Most tokens to generate (OpenAI’s newer name; wins over `max_tokens`).',
  }),
  stop: field(Union([String(), ArrayOf(String())]), { description: 'Up to `max_stop_sequences` stop sequences.' }),
  seed: field(Integer(), { description: 'Sampling seed: the same seed and parameters give the same output.' }),
  presence_penalty: field(Number(), { description: 'Presence penalty, in [-2, 2].' }),
  frequency_penalty: field(Number(), { description: 'Frequency penalty, in [-2, 2].' }),
  repetition_penalty: field(Number(), { description: 'CTRL repetition penalty, > 0 (vLLM extra).' }),
  logit_bias: field(Record(String(), Number()), {
    description: 'Token id -> bias added to its logit, in [-100, 100].',
  }),
  min_tokens: field(Integer({ minimum: 0 }), {
    description: 'EOS and stop token ids are suppressed before this many tokens (vLLM extra).',
  }),
  ignore_eos: field(Boolean(), { description: 'Keep generating past EOS (vLLM extra; for benchmarks).' }),
  stop_token_ids: field(ArrayOf(Integer()), { description: 'Token ids that end generation (vLLM extra).' }),
  n: field(Integer({ minimum: 1 }), {
    description: 'Choices per prompt (at most `max_n`); they share the prompt’s cache.',
  }),
  stream: field(Boolean(), { description: 'Stream Server-Sent Events, `data: [DONE]` last.' }),
  stream_options: field(
    closedBody(
      {
        include_usage: field(Boolean(), { description: 'Send a last chunk with `usage` and no choices.' }),
        include_obfuscation: field(Boolean(), {
          description: 'OpenAI pads chunks against a network side channel; local streams are not padded.',
          status: 'ignored',
        }),
      },
      'Streaming options.',
    ),
    { description: 'Streaming options (only with `stream: true`).' },
  ),
  response_format: field(
    openBody(
      {
        type: required(String(), {
          description: 'text, json_object, json_schema (OpenAI); json, regex (TGI grammar shapes).',
        }),
        json_schema: field(
          openBody(
            {
              name: required(String(), { description: 'The schema’s name, ^[a-zA-Z0-9_-]{1,64}$.' }),
              schema: field(Unknown(), { description: 'The JSON Schema the output follows (enforced).' }),
              strict: field(Boolean(), { description: 'Always enforced here, strict or not.' }),
              description: field(String(), { description: 'What the output is for.', status: 'ignored' }),
            },
            'OpenAI’s JSON Schema response format.',
          ),
          { description: 'With type json_schema: the schema.' },
        ),
        value: field(Unknown(), {
          description: 'TGI shapes: the JSON Schema (json, json_object) or the regular expression (regex).',
        }),
      },
      'Output format.',
    ),
    {
      description:
        'Constrains the output: any JSON object, a JSON Schema (see docs/structured-output.md for the keywords), or a regex.',
    },
  ),
  guided_json: field(Unknown(), {
    description:
      'vLLM extra: a JSON Schema (object or JSON text) the output follows, as `response_format` json_schema.',
  }),
  guided_regex: field(String(), { description: 'vLLM extra: a regular expression the whole output matches.' }),
  guided_choice: field(ArrayOf(String(), { minItems: 1 }), {
    description: 'vLLM extra: the output is exactly one of these strings.',
  }),
  guided_grammar: field(String(), {
    description: 'vLLM extra: an EBNF / Lark grammar; not supported (use a JSON Schema or a regex): refused.',
    status: 'refused',
  }),
  guided_decoding_backend: field(String(), {
    description: 'vLLM extra: which constrained decoder to use; there is one here.',
    status: 'ignored',
  }),
  user: field(String(), {
    description: 'End-user id for OpenAI’s abuse monitoring: no local meaning.',
    status: 'ignored',
  }),
  safety_identifier: field(String(), {
    description: 'End-user id for OpenAI’s abuse monitoring: no local meaning.',
    status: 'ignored',
  }),
  store: field(Boolean(), { description: 'OpenAI’s stored completions: nothing is stored here.', status: 'ignored' }),
  metadata: field(Record(String(), Unknown()), {
    description: 'Tags for OpenAI’s stored completions: nothing is stored here.',
    status: 'ignored',
  }),
  service_tier: field(String(), { description: 'OpenAI’s fleet routing: one local tier.', status: 'ignored' }),
  prompt_cache_key: field(String(), {
    description: 'OpenAI’s cache-routing hint: there is one local cache.',
    status: 'ignored',
  }),
};

/** A chat message: `content` a string, an array of content parts (text parts are joined), or null. */
const message = openBody(
  {
    role: required(String(), { description: 'system, user, assistant or tool (whatever the chat template knows).' }),
    content: field(Union([String(), ArrayOf(Object({}))]), {
      description: 'A string, or content parts (`{type: "text", text}`; other part types are refused).',
      expected: 'a string or an array of content parts',
    }),
  },
  'A chat message; other fields (name, tool_calls, tool_call_id) reach the chat template as they are.',
);

/** `/v1/chat/completions`. */
export const ChatBody = closedBody(
  {
    ...common,
    messages: required(ArrayOf(message, { minItems: 1 }), {
      description: 'The conversation, rendered with the model’s chat template.',
    }),
    logprobs: field(Boolean(), { description: 'Return the chosen tokens’ logprobs.' }),
    top_logprobs: field(Integer({ minimum: 0, maximum: MAX_TOP_LOGPROBS }), {
      description: 'Also the n most likely tokens per step (needs `logprobs`).',
    }),
    tools: field(ArrayOf(Object({})), {
      description: 'Functions the model may call (`{type: "function", function: {name, description, parameters}}`).',
    }),
    tool_choice: field(Union([String(), Object({})]), {
      description:
        '"auto" (default with tools), "none", "required", or {"type": "function", "function": {"name"}}; required and named calls are enforced by a constraint.',
    }),
    parallel_tool_calls: field(Boolean(), {
      description: 'Allow several calls in one turn (default true); false enforces one call.',
    }),
    tool_prompt: field(String(), {
      description: 'Text before the tools when the chat template does not render them (TGI extra).',
    }),
    chat_template_kwargs: field(Record(String(), Unknown()), {
      description:
        'Extra variables for the chat template, e.g. `{"enable_thinking": false}` for Qwen3 (vLLM / SGLang extra).',
    }),
  },
  'An OpenAI chat completion request.',
);

/** `/v1/completions`. */
export const CompletionBody = closedBody(
  {
    ...common,
    prompt: required(
      Union([
        String(),
        ArrayOf(Integer(), { minItems: 1 }),
        ArrayOf(Union([String(), ArrayOf(Integer(), { minItems: 1 })]), { minItems: 1 }),
      ]),
      {
        description: 'A prompt, several (at most `max_client_batch_size`), or token ids.',
        expected: 'a string, an array of strings, or token ids',
      },
    ),
    suffix: field(String(), {
      description: 'Insertion (fill-in-the-middle) is not served: refused.',
      status: 'refused',
    }),
    best_of: field(Integer({ minimum: 1 }), { description: 'Generate this many per prompt, return the best `n`.' }),
    echo: field(Boolean(), { description: 'Prepend the prompt to each choice’s text (and its logprobs).' }),
    logprobs: field(Integer({ minimum: 0, maximum: 5 }), { description: 'Logprobs of the chosen and top n tokens.' }),
  },
  'An OpenAI (legacy) completion request.',
);

/** The compiled checks of the OpenAI bodies. */
export const checkChatBody = compileBodyCheck(ChatBody);
export const checkCompletionBody = compileBodyCheck(CompletionBody);

/** Fields OpenAI clients send that have no effect here (docs/server.md says why). */
export const OPENAI_IGNORED_FIELDS: readonly string[] = fieldsWithStatus(ChatBody, 'ignored');

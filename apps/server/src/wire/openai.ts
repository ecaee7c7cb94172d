import type { ChoiceResult, FinishReason, GeneratedToken, GenerationParameters } from '@gen/engine';
import type { ChatMessage } from '@gen/tokenizer';
import { validationError } from '../errors.js';
import { asObject } from './tgi.js';

/** The sampling-related fields shared by chat and completions requests. */
export interface OpenAiCommon {
  parameters: GenerationParameters;
  stream: boolean;
  includeUsage: boolean;
  /** Requested `n` (choices returned per prompt). */
  n: number;
}

/** `/v1/chat/completions` after the wire-level checks. */
export interface OpenAiChatRequest extends OpenAiCommon {
  messages: ChatMessage[];
  tools: Record<string, unknown>[] | undefined;
  logprobs: boolean;
  topLogprobs: number;
}

/** `/v1/completions` after the wire-level checks. */
export interface OpenAiCompletionRequest extends OpenAiCommon {
  prompts: (string | number[])[];
  echo: boolean;
  /** Legacy `logprobs`: number of top logprobs per token, or undefined for none. */
  logprobs: number | undefined;
}

function optionalNumber(body: Record<string, unknown>, name: string): number | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw validationError(`\`${name}\` must be a number`, name);
  return value;
}

function optionalInteger(
  body: Record<string, unknown>,
  name: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const value = optionalNumber(body, name);
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `between ${min} and ${max}`;
    throw validationError(`\`${name}\` must be an integer ${range}. Given: ${value}`, name);
  }
  return value;
}

function optionalBoolean(body: Record<string, unknown>, name: string): boolean | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw validationError(`\`${name}\` must be a boolean`, name);
  return value;
}

function stopList(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value as string[];
  throw validationError('`stop` must be a string or an array of strings', 'stop');
}

/** Fields both OpenAI generation routes read: OpenAI's sampling fields and vLLM's extras. */
const COMMON_FIELDS = [
  'model',
  'temperature',
  'top_p',
  'top_k',
  'min_p',
  'typical_p',
  'max_tokens',
  'max_completion_tokens',
  'stop',
  'seed',
  'presence_penalty',
  'frequency_penalty',
  'repetition_penalty',
  'logit_bias',
  'min_tokens',
  'ignore_eos',
  'stop_token_ids',
  'n',
  'stream',
  'stream_options',
  'response_format',
] as const;

/**
 * Fields OpenAI clients send that have no effect on a local server, accepted and ignored (docs/server.md says why):
 * `user` / `safety_identifier` (abuse tracking), `store` / `metadata` (stored completions), `service_tier`,
 * `prompt_cache_key` (routing hints of OpenAI's fleet).
 */
export const OPENAI_IGNORED_FIELDS: readonly string[] = [
  'user',
  'safety_identifier',
  'store',
  'metadata',
  'service_tier',
  'prompt_cache_key',
];

/** Every field `/v1/chat/completions` accepts (read or ignored). */
export const CHAT_FIELDS: readonly string[] = [
  ...COMMON_FIELDS,
  'messages',
  'logprobs',
  'top_logprobs',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  ...OPENAI_IGNORED_FIELDS,
];

/** Every field `/v1/completions` accepts (read or ignored). */
export const COMPLETION_FIELDS: readonly string[] = [
  ...COMMON_FIELDS,
  'prompt',
  'suffix',
  'best_of',
  'echo',
  'logprobs',
  ...OPENAI_IGNORED_FIELDS,
];

/** Refuses the first field not in `accepted`, with OpenAI's wording (a 400 `invalid_request_error`). */
export function refuseUnknownFields(body: Record<string, unknown>, accepted: readonly string[]): void {
  for (const name of Object.keys(body)) {
    if (!accepted.includes(name)) throw validationError(`Unrecognized request argument supplied: ${name}`, name);
  }
}

/**
 * The sampling parameters of an OpenAI request. `temperature: 0` means greedy (the warpers are left out);
 * otherwise sampling is on, as OpenAI's default temperature is 1. vLLM-style extras (top_k, min_p,
 * repetition_penalty, ...) are honoured too.
 */
function commonParameters(body: Record<string, unknown>, defaultMaxTokens: number | undefined): OpenAiCommon {
  const parameters: GenerationParameters = {};
  const temperature = optionalNumber(body, 'temperature');
  if (temperature !== undefined && temperature < 0) {
    throw validationError(`\`temperature\` must be >= 0. Given: ${temperature}`, 'temperature');
  }
  const greedy = temperature === 0;
  if (!greedy) {
    parameters.doSample = true;
    if (temperature !== undefined && temperature !== 1) parameters.temperature = temperature;
    const topP = optionalNumber(body, 'top_p');
    if (topP !== undefined) parameters.topP = topP;
    const topK = optionalInteger(body, 'top_k', -1);
    if (topK !== undefined && topK > 0) parameters.topK = topK;
    const minP = optionalNumber(body, 'min_p');
    if (minP !== undefined) parameters.minP = minP;
    const typicalP = optionalNumber(body, 'typical_p');
    if (typicalP !== undefined) parameters.typicalP = typicalP;
  }
  const maxTokens =
    optionalInteger(body, 'max_completion_tokens', 1) ?? optionalInteger(body, 'max_tokens', 1) ?? defaultMaxTokens;
  if (maxTokens !== undefined) parameters.maxNewTokens = maxTokens;
  const stop = stopList(body['stop']);
  if (stop !== undefined) parameters.stop = stop;
  const seed = body['seed'];
  if (seed !== undefined && seed !== null) parameters.seed = seed as number;
  const presence = optionalNumber(body, 'presence_penalty');
  if (presence !== undefined) parameters.presencePenalty = presence;
  const frequency = optionalNumber(body, 'frequency_penalty');
  if (frequency !== undefined) parameters.frequencyPenalty = frequency;
  const repetition = optionalNumber(body, 'repetition_penalty');
  if (repetition !== undefined) parameters.repetitionPenalty = repetition;
  if (body['logit_bias'] !== undefined && body['logit_bias'] !== null) {
    parameters.logitBias = asObject(body['logit_bias'], 'logit_bias') as Record<string, number>;
  }
  const minTokens = optionalInteger(body, 'min_tokens', 0);
  if (minTokens !== undefined) parameters.minNewTokens = minTokens;
  const ignoreEos = optionalBoolean(body, 'ignore_eos');
  if (ignoreEos !== undefined) parameters.ignoreEos = ignoreEos;
  if (body['stop_token_ids'] !== undefined && body['stop_token_ids'] !== null)
    parameters.stopTokenIds = body['stop_token_ids'] as number[];
  const n = optionalInteger(body, 'n', 1) ?? 1;
  if (n > 1) parameters.n = n;
  const stream = optionalBoolean(body, 'stream') ?? false;
  let includeUsage = false;
  if (body['stream_options'] !== undefined && body['stream_options'] !== null) {
    if (!stream) throw validationError('`stream_options` is only allowed when `stream` is true', 'stream_options');
    includeUsage = optionalBoolean(asObject(body['stream_options'], 'stream_options'), 'include_usage') ?? false;
  }
  const format = body['response_format'];
  if (format !== undefined && format !== null) {
    const type = asObject(format, 'response_format')['type'];
    if (type !== 'text') {
      throw validationError(
        `\`response_format\` type ${JSON.stringify(type)} is not supported by this server (only "text")`,
        'response_format',
      );
    }
  }
  return { parameters, stream, includeUsage, n };
}

/** Parses a `/v1/chat/completions` body. */
export function parseChatRequest(body: unknown, maxTopLogprobs: number): OpenAiChatRequest {
  const object = asObject(body, 'request body');
  refuseUnknownFields(object, CHAT_FIELDS);
  const messages = object['messages'];
  if (!Array.isArray(messages) || messages.length === 0) {
    throw validationError('`messages` must be a non-empty array', 'messages');
  }
  for (const [index, message] of messages.entries()) {
    const m = asObject(message, `messages[${index}]`);
    if (typeof m['role'] !== 'string')
      throw validationError(`\`messages[${index}].role\` must be a string`, 'messages');
    const content = m['content'];
    if (content !== undefined && content !== null && typeof content !== 'string' && !Array.isArray(content)) {
      throw validationError(`\`messages[${index}].content\` must be a string or an array of content parts`, 'messages');
    }
  }
  const common = commonParameters(object, undefined);
  const logprobs = optionalBoolean(object, 'logprobs') ?? false;
  const topLogprobs = optionalInteger(object, 'top_logprobs', 0, maxTopLogprobs) ?? 0;
  if (topLogprobs > 0 && !logprobs) {
    throw validationError('`top_logprobs` requires `logprobs` to be true', 'top_logprobs');
  }
  if (logprobs) common.parameters.details = true;
  if (topLogprobs > 0) common.parameters.topNTokens = topLogprobs;
  let tools: Record<string, unknown>[] | undefined;
  if (object['tools'] !== undefined && object['tools'] !== null) {
    if (!Array.isArray(object['tools'])) throw validationError('`tools` must be an array', 'tools');
    tools = object['tools'].map((tool) => asObject(tool, 'tools'));
  }
  // Tools reach the chat template; the output is not parsed into tool calls yet, so only the choices that need no
  // constraint on the output are taken: `auto` (the default), and `none`, which leaves the tools out of the prompt.
  const toolChoice = object['tool_choice'];
  if (toolChoice !== undefined && toolChoice !== null && toolChoice !== 'auto') {
    if (toolChoice === 'none') tools = undefined;
    else {
      throw validationError(
        `\`tool_choice\` ${JSON.stringify(toolChoice)} is not supported by this server (only "auto" and "none")`,
        'tool_choice',
      );
    }
  }
  const parallel = optionalBoolean(object, 'parallel_tool_calls');
  if (parallel === false) {
    throw validationError(
      '`parallel_tool_calls: false` is not supported by this server: tool calls are not parsed from the output',
      'parallel_tool_calls',
    );
  }
  return { ...common, messages: messages as ChatMessage[], tools, logprobs, topLogprobs };
}

/** Parses a `/v1/completions` body. */
export function parseCompletionRequest(body: unknown): OpenAiCompletionRequest {
  const object = asObject(body, 'request body');
  refuseUnknownFields(object, COMPLETION_FIELDS);
  if (object['suffix'] !== undefined && object['suffix'] !== null) {
    throw validationError('`suffix` (insertion) is not supported by this server', 'suffix');
  }
  const prompt = object['prompt'];
  let prompts: (string | number[])[];
  if (typeof prompt === 'string') prompts = [prompt];
  else if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((p) => typeof p === 'number'))
    prompts = [prompt as number[]];
  else if (
    Array.isArray(prompt) &&
    prompt.length > 0 &&
    prompt.every((p) => typeof p === 'string' || (Array.isArray(p) && p.every((id) => typeof id === 'number')))
  ) {
    prompts = prompt as (string | number[])[];
  } else {
    throw validationError('`prompt` must be a string, an array of strings, or token ids', 'prompt');
  }
  const common = commonParameters(object, 16);
  const bestOf = optionalInteger(object, 'best_of', 1);
  if (bestOf !== undefined && bestOf > 1) {
    if (bestOf < common.n) throw validationError('`best_of` must be >= `n`', 'best_of');
    if (common.stream) throw validationError('`best_of` > 1 is not supported when streaming', 'best_of');
    common.parameters.bestOf = bestOf;
  }
  const echo = optionalBoolean(object, 'echo') ?? false;
  const logprobs = optionalInteger(object, 'logprobs', 0, 5);
  if (logprobs !== undefined) {
    common.parameters.details = true;
    if (logprobs > 0) common.parameters.topNTokens = logprobs;
    if (echo) common.parameters.decoderInputDetails = true;
  }
  return { ...common, prompts, echo, logprobs };
}

/** OpenAI's finish reason: stop sequences and EOS are both `stop`. */
export function openAiFinishReason(reason: FinishReason): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
}

const encoder = new TextEncoder();

function logprobEntry(token: GeneratedToken) {
  return { token: token.text, logprob: token.logprob, bytes: Array.from(encoder.encode(token.text)) };
}

/** Chat `logprobs.content` entries for generated tokens (special tokens such as EOS are left out, as the content is). */
export function chatLogprobs(tokens: readonly GeneratedToken[], topTokens: readonly GeneratedToken[][] | undefined) {
  const content = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.special) continue;
    content.push({ ...logprobEntry(token), top_logprobs: (topTokens?.[i] ?? []).map(logprobEntry) });
  }
  return { content };
}

/** Legacy completions `logprobs` object. */
export function completionLogprobs(
  tokens: readonly { text: string; logprob: number | null; top?: readonly GeneratedToken[] }[],
  offset: number,
) {
  const result = {
    tokens: [] as string[],
    token_logprobs: [] as (number | null)[],
    top_logprobs: [] as (Record<string, number> | null)[],
    text_offset: [] as number[],
  };
  let position = offset;
  for (const token of tokens) {
    result.tokens.push(token.text);
    result.token_logprobs.push(token.logprob);
    result.top_logprobs.push(
      token.top === undefined ? null : Object.fromEntries(token.top.map((t) => [t.text, t.logprob])),
    );
    result.text_offset.push(position);
    position += token.text.length;
  }
  return result;
}

/** Choices of a completions / chat response, best first when `best_of` picked among more than `n`. */
export function pickChoices(choices: readonly ChoiceResult[], n: number): ChoiceResult[] {
  if (choices.length <= n) return [...choices];
  return [...choices].sort((a, b) => b.logprobSum - a.logprobSum).slice(0, n);
}

import type { ChoiceResult, FinishReason, GeneratedToken, GenerationParameters, PrefillToken } from '@gen/engine';
import type { ChatMessage } from '@gen/tokenizer';
import { choiceGrammar, literalGrammar, type Grammar } from '@gen/structured';
import type { Static } from '@sinclair/typebox';
import { nestingError, validationError } from '../errors.js';
import { checkChatBody, checkCompletionBody, type ChatBody, type CompletionBody } from '../schemas/openai.js';
import { formatGrammar, patternGrammar, schemaGrammar } from '../tools/grammars.js';
import { parseToolChoice, parseTools, type ToolChoice, type ToolDefinition } from '../tools/tools-request.js';

/** The sampling-related fields shared by chat and completions requests. */
export interface OpenAiCommon {
  parameters: GenerationParameters;
  stream: boolean;
  includeUsage: boolean;
  /** Requested `n` (choices returned per prompt). */
  n: number;
  /** The language `response_format` asks for (JSON, a JSON Schema, a regex); undefined for plain text. */
  responseGrammar: Grammar | undefined;
}

/** `/v1/chat/completions` after the wire-level checks. */
export interface OpenAiChatRequest extends OpenAiCommon {
  messages: ChatMessage[];
  /** `tools` as sent, for the chat template; undefined with `tool_choice: "none"` or no tools. */
  templateTools: Record<string, unknown>[] | undefined;
  /** The checked tools; undefined without tools. */
  tools: ToolDefinition[] | undefined;
  toolChoice: ToolChoice;
  /** Whether several calls may be made in one turn (`parallel_tool_calls`, default true). */
  parallelToolCalls: boolean;
  /** TGI's `tool_prompt`: the text before the tools when the chat template does not render them. */
  toolPrompt: string | undefined;
  logprobs: boolean;
  topLogprobs: number;
  /** `chat_template_kwargs`: extra variables for the chat template (empty when not given). */
  templateKwargs: Record<string, unknown>;
}

/** `/v1/completions` after the wire-level checks. */
export interface OpenAiCompletionRequest extends OpenAiCommon {
  prompts: (string | number[])[];
  echo: boolean;
  /** Legacy `logprobs`: number of top logprobs per token, or undefined for none. */
  logprobs: number | undefined;
}

export { OPENAI_IGNORED_FIELDS } from '../schemas/openai.js';

type ChatBodyType = Static<typeof ChatBody>;
type CompletionBodyType = Static<typeof CompletionBody>;
type CommonBody = ChatBodyType | CompletionBodyType;

/** Null and absent are the same on the wire. */
function present<T>(value: T | null | undefined): value is T {
  return value !== undefined && value !== null;
}

/**
 * The sampling parameters of a checked OpenAI request. `temperature: 0` means greedy (the warpers are left out);
 * otherwise sampling is on, as OpenAI's default temperature is 1. vLLM-style extras (top_k, min_p,
 * repetition_penalty, ...) are honoured too. Ranges of generation parameters are the engine's to check.
 */
function commonParameters(body: CommonBody, defaultMaxTokens: number | undefined): OpenAiCommon {
  const parameters: GenerationParameters = {};
  const temperature = body.temperature ?? undefined;
  if (temperature !== 0) {
    parameters.doSample = true;
    if (temperature !== undefined && temperature !== 1) parameters.temperature = temperature;
    if (present(body.top_p)) parameters.topP = body.top_p;
    if (present(body.top_k) && body.top_k > 0) parameters.topK = body.top_k;
    if (present(body.min_p)) parameters.minP = body.min_p;
    if (present(body.typical_p)) parameters.typicalP = body.typical_p;
  }
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? defaultMaxTokens;
  if (maxTokens !== undefined) parameters.maxNewTokens = maxTokens;
  if (present(body.stop)) parameters.stop = typeof body.stop === 'string' ? [body.stop] : body.stop;
  if (present(body.seed)) parameters.seed = body.seed;
  if (present(body.presence_penalty)) parameters.presencePenalty = body.presence_penalty;
  if (present(body.frequency_penalty)) parameters.frequencyPenalty = body.frequency_penalty;
  if (present(body.repetition_penalty)) parameters.repetitionPenalty = body.repetition_penalty;
  if (present(body.logit_bias)) parameters.logitBias = body.logit_bias;
  if (present(body.min_tokens)) parameters.minNewTokens = body.min_tokens;
  if (present(body.ignore_eos)) parameters.ignoreEos = body.ignore_eos;
  if (present(body.stop_token_ids)) parameters.stopTokenIds = body.stop_token_ids;
  const n = body.n ?? 1;
  if (n > 1) parameters.n = n;
  const stream = body.stream ?? false;
  let includeUsage = false;
  if (present(body.stream_options)) {
    if (!stream) throw validationError('`stream_options` is only allowed when `stream` is true', 'stream_options');
    includeUsage = body.stream_options.include_usage ?? false;
  }
  const responseGrammar = guidedGrammar(body) ?? formatGrammar(body.response_format ?? undefined, 'response_format');
  return { parameters, stream, includeUsage, n, responseGrammar };
}

/** vLLM's `guided_*` extras as a grammar (at most one of them, and not with a JSON / regex `response_format`). */
function guidedGrammar(body: CommonBody): Grammar | undefined {
  if (present(body.guided_grammar)) {
    throw validationError(
      '`guided_grammar` (EBNF / Lark grammars) is not supported by this server: give a JSON Schema (`guided_json`, `response_format`) or a regular expression (`guided_regex`)',
      'guided_grammar',
    );
  }
  const given = (['guided_json', 'guided_regex', 'guided_choice'] as const).filter((key) => present(body[key]));
  if (given.length === 0) return undefined;
  const responseType = present(body.response_format) ? body.response_format.type : 'text';
  if (given.length > 1 || responseType !== 'text') {
    const fields = [...given, ...(responseType !== 'text' ? ['response_format'] : [])];
    throw validationError(`Give one output constraint, not ${fields.map((f) => `\`${f}\``).join(' and ')}`, given[0]!);
  }
  const key = given[0]!;
  if (key === 'guided_json') return schemaGrammar(body.guided_json, key, key);
  if (key === 'guided_regex') return patternGrammar(body.guided_regex, key, key);
  return choiceGrammar(body.guided_choice!.map((choice) => literalGrammar(choice)));
}

/** Parses a `/v1/chat/completions` body (checked against {@link ChatBody} here, so any value may be passed). */
export function parseChatRequest(body: unknown): OpenAiChatRequest {
  const checked = checkChatBody(body);
  const common = commonParameters(checked, undefined);
  const logprobs = checked.logprobs ?? false;
  const topLogprobs = checked.top_logprobs ?? 0;
  if (topLogprobs > 0 && !logprobs) {
    throw validationError('`top_logprobs` requires `logprobs` to be true', 'top_logprobs');
  }
  if (logprobs) common.parameters.details = true;
  // Token logprobs cost a log-sum-exp over the vocabulary per greedy step: only when the response reports them.
  else common.parameters.logprobs = false;
  if (topLogprobs > 0) common.parameters.topNTokens = topLogprobs;
  const rawTools =
    checked.tools === undefined || checked.tools === null || checked.tools.length === 0 ? undefined : checked.tools;
  const tools = rawTools === undefined ? undefined : parseTools(rawTools);
  const toolChoice = parseToolChoice(checked.tool_choice, tools);
  const parallelToolCalls = checked.parallel_tool_calls ?? true;
  const toolPrompt = checked.tool_prompt ?? undefined;
  const templateKwargs = checked.chat_template_kwargs ?? {};
  for (const key of RESERVED_TEMPLATE_VARIABLES) {
    if (key in templateKwargs) {
      throw validationError(
        `\`chat_template_kwargs\` cannot set \`${key}\`: the server sets it from the request`,
        'chat_template_kwargs',
      );
    }
  }
  const tooDeep = nestingError(templateKwargs, '`chat_template_kwargs`');
  if (tooDeep !== undefined) throw tooDeep;
  return {
    ...common,
    messages: checked.messages as ChatMessage[],
    templateTools: toolChoice.mode === 'none' ? undefined : rawTools,
    tools: toolChoice.mode === 'none' ? undefined : tools,
    toolChoice,
    parallelToolCalls,
    toolPrompt,
    logprobs,
    topLogprobs,
    templateKwargs,
  };
}

/** Template variables the server sets itself, which `chat_template_kwargs` may not replace. */
const RESERVED_TEMPLATE_VARIABLES = ['messages', 'tools', 'documents', 'add_generation_prompt'] as const;

/** Parses a `/v1/completions` body (checked against {@link CompletionBody} here). */
export function parseCompletionRequest(body: unknown): OpenAiCompletionRequest {
  const checked = checkCompletionBody(body);
  if (present(checked.suffix)) {
    throw validationError('`suffix` (insertion) is not supported by this server', 'suffix');
  }
  const prompt = checked.prompt;
  const prompts: (string | number[])[] =
    typeof prompt === 'string'
      ? [prompt]
      : prompt.every((p) => typeof p === 'number')
        ? [prompt as number[]]
        : (prompt as (string | number[])[]);
  const common = commonParameters(checked, 16);
  const bestOf = checked.best_of ?? undefined;
  if (bestOf !== undefined && bestOf > 1) {
    if (bestOf < common.n) throw validationError('`best_of` must be >= `n`', 'best_of');
    if (common.stream) throw validationError('`best_of` > 1 is not supported when streaming', 'best_of');
    common.parameters.bestOf = bestOf;
  }
  const echo = checked.echo ?? false;
  const logprobs = checked.logprobs ?? undefined;
  if (logprobs !== undefined) {
    common.parameters.details = true;
    if (logprobs > 0) common.parameters.topNTokens = logprobs;
    if (echo) common.parameters.decoderInputDetails = true;
  } else {
    // Not reported (best_of ranking keeps them: the engine computes them whenever best_of > 1).
    common.parameters.logprobs = false;
  }
  return { ...common, prompts, echo, logprobs };
}

/** OpenAI's finish reason: stop sequences and EOS are both `stop`; a turn that ended in tool calls is `tool_calls`. */
export function openAiFinishReason(reason: FinishReason, toolCalls = false): 'stop' | 'length' | 'tool_calls' {
  if (reason === 'length') return 'length';
  return toolCalls ? 'tool_calls' : 'stop';
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

/**
 * Prompt tokens for echoed logprobs, aligned with the echoed text: special tokens the tokenizer added in front of
 * a text prompt (BOS) are not part of that text, so they are left out (else every `text_offset` would be off by
 * their length).
 */
export function echoedPrefill(
  prefill: readonly PrefillToken[],
  echoed: string,
  tokenizer: { isSpecial(id: number): boolean },
): { text: string; logprob: number | null }[] {
  let start = 0;
  while (
    start < prefill.length &&
    tokenizer.isSpecial(prefill[start]!.id) &&
    !echoed.startsWith(prefill[start]!.text)
  ) {
    start++;
  }
  return prefill.slice(start).map((token) => ({ text: token.text, logprob: token.logprob ?? null }));
}

/** Choices of a completions / chat response, best first when `best_of` picked among more than `n`. */
export function pickChoices(choices: readonly ChoiceResult[], n: number): ChoiceResult[] {
  if (choices.length <= n) return [...choices];
  return [...choices].sort((a, b) => b.logprobSum - a.logprobSum).slice(0, n);
}

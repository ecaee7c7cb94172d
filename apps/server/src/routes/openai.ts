import { randomUUID } from 'node:crypto';
import type { GenerationEvent, GenerationResult } from '@gen/engine';
import type { ChatMessage } from '@gen/tokenizer';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { errorBody, nestingError, validationError } from '../errors.js';
import { Exchange } from '../exchange.js';
import {
  countReasoningTokens,
  promptOpensThinking,
  ReasoningStream,
  reasoningApplies,
  splitReasoning,
} from '../reasoning.js';
import { ROUTE_SCHEMAS } from '../schemas/routes.js';
import { constraintProcessors } from '../tools/constraint.js';
import { detectToolCallFormat, parseToolCalls, type ToolCallFormatName } from '../tools/formats.js';
import { chatGrammar } from '../tools/grammars.js';
import { ToolCallStream, type ToolStreamEvent } from '../tools/stream.js';
import { toolCallId, toolPrompt } from '../tools/tools-request.js';
import {
  chatLogprobs,
  completionLogprobs,
  echoedPrefill,
  openAiFinishReason,
  parseChatRequest,
  parseCompletionRequest,
  pickChoices,
} from '../wire/openai.js';

/**
 * Content parts (`[{type: 'text', text}]`, what the OpenAI SDKs send for structured content) are joined into one
 * string, as TGI does: text-only chat templates apply string filters (`| trim`) to the content. Other part types
 * (images, audio) are refused, since the served models read text only.
 */
function flattenContent(message: ChatMessage, index: number): ChatMessage {
  const content = message.content;
  if (!Array.isArray(content)) return message;
  const texts = content.map((part: unknown) => {
    const { type, text } = (typeof part === 'object' && part !== null ? part : {}) as {
      type?: unknown;
      text?: unknown;
    };
    if (type === 'text' && typeof text === 'string') return text;
    throw validationError(
      type === 'text'
        ? `\`messages[${index}].content\` text parts must have a string \`text\``
        : `\`messages[${index}].content\` parts of type ${JSON.stringify(type)} are not supported by this server (text only)`,
      'messages',
    );
  });
  return { ...message, content: texts.join('') };
}

/** Tool-call arguments arrive as JSON strings; chat templates expect objects. Content parts become strings. */
function normalizeMessages(messages: ChatMessage[]): ChatMessage[] {
  return messages.map((original, index) => {
    const message = flattenContent(original, index);
    const calls = message['tool_calls'];
    if (!Array.isArray(calls)) return message;
    return {
      ...message,
      tool_calls: calls.map((call: unknown, position) => {
        if (typeof call !== 'object' || call === null || Array.isArray(call)) {
          throw validationError(`\`messages[${index}].tool_calls[${position}]\` must be an object`, 'messages');
        }
        const fn = (call as { function?: unknown }).function;
        if (typeof fn !== 'object' || fn === null) return call;
        if (!('arguments' in fn) || typeof fn.arguments !== 'string') return call;
        let parsed: unknown;
        try {
          parsed = JSON.parse(fn.arguments);
        } catch {
          throw validationError('`tool_calls[].function.arguments` must be a JSON string', 'messages');
        }
        const tooDeep = nestingError(parsed, '`tool_calls[].function.arguments`');
        if (tooDeep !== undefined) throw tooDeep;
        return { ...(call as object), function: { ...fn, arguments: parsed } };
      }),
    };
  });
}

/** Adds `text` to the system message (a new one first when there is none). */
function withSystemText(messages: ChatMessage[], text: string): ChatMessage[] {
  const first = messages[0];
  if (first?.role === 'system' && typeof first.content === 'string') {
    return [{ ...first, content: `${first.content}\n\n${text}` }, ...messages.slice(1)];
  }
  return [{ role: 'system', content: text }, ...messages];
}

/** OpenAI's usage object; `reasoningTokens` counts a choice's reasoning (`completion_tokens_details`) when given. */
function usage(results: readonly GenerationResult[], reasoningTokens?: (text: string) => number) {
  const prompt = results.reduce((sum, r) => sum + r.inputTokens, 0);
  const completion = results.reduce((sum, r) => sum + r.choices.reduce((s, c) => s + c.generatedTokens, 0), 0);
  const cached = results.reduce((sum, r) => sum + r.cachedTokens, 0);
  const reasoning =
    reasoningTokens === undefined
      ? undefined
      : results.reduce((sum, r) => sum + r.choices.reduce((s, c) => s + reasoningTokens(c.text), 0), 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cached },
    ...(reasoning === undefined ? {} : { completion_tokens_details: { reasoning_tokens: reasoning } }),
  };
}

/** Streams OpenAI chunks: `onEvent` maps engine events to chunk payloads; usage and `[DONE]` close the stream. */
async function streamChunks(
  exchange: Exchange,
  includeUsage: boolean,
  onEvent: (source: number, event: Exclude<GenerationEvent, { type: 'error' }>) => unknown[],
  usageChunk: (totals: ReturnType<typeof usage>) => unknown,
  reasoningTokens?: (text: string) => number,
): Promise<void> {
  const sse = exchange.openEventStream('openai');
  const results: GenerationResult[] = [];
  try {
    for await (const { source, event } of exchange.events()) {
      if (event.type === 'error') {
        if (event.report) await sse.send(errorBody('openai', event.error).body);
        return;
      }
      if (event.type === 'done') results.push(event.result);
      for (const chunk of onEvent(source, event)) await sse.send(chunk);
    }
    if (includeUsage) await sse.send(usageChunk(usage(results, reasoningTokens)));
    await sse.send('[DONE]');
  } finally {
    sse.end();
  }
}

/** Registers `/v1/chat/completions`, `/v1/completions` and `/v1/models`. */
export function registerOpenAiRoutes(app: FastifyInstance, context: ServerContext): void {
  app.get('/v1/models', { schema: ROUTE_SCHEMAS['GET /v1/models'] }, async () => {
    const { model } = context.ready();
    return { object: 'list', data: [{ id: model.modelId, object: 'model', created: 0, owned_by: 'gen' }] };
  });

  app.post('/v1/chat/completions', { schema: ROUTE_SCHEMAS['POST /v1/chat/completions'] }, async (request, reply) => {
    const { model } = context.ready();
    const parsed = parseChatRequest(request.body);
    const format: ToolCallFormatName =
      model.toolCallFormat ?? detectToolCallFormat(model.tokenizer.chatTemplate) ?? 'hermes';
    const tools = parsed.tools;
    // Templates that render `tools` get them; for the others the tools are described in a system message.
    const templateRendersTools =
      model.tokenizer.chatTemplateNames.includes('tool_use') ||
      (model.tokenizer.chatTemplate?.includes('tools') ?? false);
    let messages = normalizeMessages(parsed.messages);
    if (tools !== undefined && !templateRendersTools) {
      messages = withSystemText(messages, toolPrompt(format, tools, parsed.toolPrompt));
    }
    const prompt = model.tokenizer.applyChatTemplate(messages, {
      addGenerationPrompt: true,
      ...(parsed.templateTools === undefined || !templateRendersTools ? {} : { tools: parsed.templateTools }),
      variables: parsed.templateKwargs,
    });
    const grammar = chatGrammar(format, parsed);
    const processors = grammar === undefined ? undefined : constraintProcessors(model, grammar.grammar, grammar.param);
    // Constrained output starts at once (no room to think), so it is all content.
    const reasoning =
      processors === undefined &&
      reasoningApplies(model.reasoningParser ?? 'auto', model.tokenizer, parsed.templateKwargs);
    const startsInReasoning = reasoning && promptOpensThinking(prompt);
    const reasoningTokens = reasoning
      ? (text: string) => countReasoningTokens(model.tokenizer, text, startsInReasoning)
      : undefined;
    const exchange = Exchange.start(context, reply, [
      {
        inputs: prompt,
        parameters: {
          ...parsed.parameters,
          addSpecialTokens: false,
          ...(processors === undefined ? {} : { logitsProcessors: processors }),
        },
      },
    ]);
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const base = { id, created, model: model.modelId, system_fingerprint: `gen-${context.version}` };
    const toolNames = new Set((tools ?? []).map((tool) => tool.name));

    if (!parsed.stream) {
      const [result] = await exchange.results();
      return {
        ...base,
        object: 'chat.completion',
        choices: result!.choices.map((choice) => {
          const split = reasoning ? splitReasoning(choice.text, startsInReasoning) : undefined;
          const text = split?.content ?? choice.text;
          const output =
            tools === undefined || choice.finishReason === 'length'
              ? { content: text, calls: [] }
              : parseToolCalls(format, text, toolNames);
          const calls = output.calls.map((call) => ({
            id: toolCallId(format),
            type: 'function' as const,
            function: { name: call.name, arguments: call.arguments },
          }));
          return {
            index: choice.index,
            message: {
              role: 'assistant',
              content: output.content,
              ...(split === undefined ? {} : { reasoning_content: split.reasoning ?? null }),
              ...(calls.length === 0 ? {} : { tool_calls: calls }),
            },
            logprobs: parsed.logprobs ? chatLogprobs(choice.tokens ?? [], choice.topTokens) : null,
            finish_reason: openAiFinishReason(choice.finishReason, calls.length > 0),
          };
        }),
        usage: usage([result!], reasoningTokens),
      };
    }

    const started = new Set<number>();
    const toolStreams = new Map<number, ToolCallStream>();
    const reasoningStreams = new Map<number, ReasoningStream>();
    const chunk = (choices: unknown[]) => ({
      ...base,
      object: 'chat.completion.chunk',
      choices,
      ...(parsed.includeUsage ? { usage: null } : {}),
    });
    // Every delta names the role: TGI's and Together's Python clients require it in every chunk.
    const deltaChunk = (choice: number, delta: Record<string, unknown>, logprobs: unknown = null) =>
      chunk([{ index: choice, delta: { role: 'assistant', ...delta }, logprobs, finish_reason: null }]);
    const toolDeltas = (choice: number, events: readonly ToolStreamEvent[], logprobs: unknown) => {
      const chunks: unknown[] = [];
      for (const event of events) {
        const withLogprobs = chunks.length === 0 ? logprobs : null;
        if (event.type === 'content') chunks.push(deltaChunk(choice, { content: event.text }, withLogprobs));
        else if (event.type === 'call') {
          const call = {
            index: event.index,
            id: toolCallId(format),
            type: 'function',
            function: { name: event.name, arguments: '' },
          };
          chunks.push(deltaChunk(choice, { tool_calls: [call] }, withLogprobs));
        } else {
          const call = { index: event.index, function: { arguments: event.text } };
          chunks.push(deltaChunk(choice, { tool_calls: [call] }, withLogprobs));
        }
      }
      if (chunks.length === 0 && logprobs !== null) chunks.push(deltaChunk(choice, { content: '' }, logprobs));
      return chunks;
    };
    // Content (after the reasoning, when split) goes through the tool-call stream when there are tools.
    const contentDeltas = (choice: number, text: string, logprobs: unknown, final: boolean) => {
      const toolStream = toolStreams.get(choice);
      if (toolStream !== undefined) {
        const events = text === '' ? [] : toolStream.push(text);
        return toolDeltas(choice, final ? [...events, ...toolStream.finish()] : events, logprobs);
      }
      return text !== '' || logprobs !== null ? [deltaChunk(choice, { content: text }, logprobs)] : [];
    };
    const outputDeltas = (choice: number, text: string, logprobs: unknown, final: boolean) => {
      const reasoningStream = reasoningStreams.get(choice);
      if (reasoningStream === undefined) return contentDeltas(choice, text, logprobs, final);
      const chunks: unknown[] = [];
      let pending = logprobs;
      let content = '';
      for (const piece of final
        ? [...reasoningStream.push(text), ...reasoningStream.finish()]
        : reasoningStream.push(text)) {
        if (piece.type === 'content') content += piece.text;
        else {
          chunks.push(deltaChunk(choice, { reasoning_content: piece.text }, pending));
          pending = null;
        }
      }
      chunks.push(...contentDeltas(choice, content, pending, final));
      return chunks;
    };
    await streamChunks(
      exchange,
      parsed.includeUsage,
      (_source, event) => {
        const chunks: unknown[] = [];
        if (event.type === 'token') {
          if (!started.has(event.choice)) {
            started.add(event.choice);
            chunks.push(deltaChunk(event.choice, { content: '' }));
            if (tools !== undefined) toolStreams.set(event.choice, new ToolCallStream(format));
            if (reasoning) reasoningStreams.set(event.choice, new ReasoningStream(startsInReasoning));
          }
          const logprobs =
            parsed.logprobs && !event.token.special
              ? chatLogprobs([event.token], event.topTokens === undefined ? undefined : [event.topTokens])
              : null;
          chunks.push(...outputDeltas(event.choice, event.delta, logprobs, false));
        } else if (event.type === 'choice-end') {
          const index = event.choice.index;
          const toolStream = toolStreams.get(index);
          chunks.push(...outputDeltas(index, '', null, true));
          const calls = toolStream !== undefined && toolStream.calls > 0;
          chunks.push(
            chunk([
              {
                index,
                delta: { role: 'assistant' },
                logprobs: null,
                finish_reason: openAiFinishReason(event.choice.finishReason, calls),
              },
            ]),
          );
        }
        return chunks;
      },
      (totals) => ({ ...base, object: 'chat.completion.chunk', choices: [], usage: totals }),
      reasoningTokens,
    );
    return undefined;
  });

  app.post('/v1/completions', { schema: ROUTE_SCHEMAS['POST /v1/completions'] }, async (request, reply) => {
    const { model, limits } = context.ready();
    const parsed = parseCompletionRequest(request.body);
    if (parsed.prompts.length > limits.maxClientBatchSize) {
      throw validationError(
        `\`prompt\` supports up to ${limits.maxClientBatchSize} prompts. Given: ${parsed.prompts.length}`,
        'prompt',
      );
    }
    const exchange = Exchange.start(
      context,
      reply,
      parsed.prompts.map((inputs) => ({
        inputs,
        parameters:
          parsed.responseGrammar === undefined
            ? parsed.parameters
            : {
                ...parsed.parameters,
                logitsProcessors: constraintProcessors(model, parsed.responseGrammar, 'response_format'),
              },
      })),
    );
    const id = `cmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const base = { id, created, model: model.modelId, system_fingerprint: `gen-${context.version}` };
    const promptText = (index: number) => {
      const prompt = parsed.prompts[index]!;
      return typeof prompt === 'string' ? prompt : model.tokenizer.decode(prompt);
    };

    if (!parsed.stream) {
      const results = await exchange.results();
      const choices = results.flatMap((result, promptIndex) =>
        pickChoices(result.choices, parsed.n).map((choice, i) => {
          const echo = parsed.echo ? promptText(promptIndex) : '';
          let logprobs = null;
          if (parsed.logprobs !== undefined) {
            const generated = (choice.tokens ?? []).map((token, step) => ({
              text: token.text,
              logprob: token.logprob,
              ...(choice.topTokens === undefined ? {} : { top: choice.topTokens[step]! }),
            }));
            const prefill = parsed.echo ? echoedPrefill(result.prefill ?? [], echo, model.tokenizer) : [];
            logprobs = completionLogprobs([...prefill, ...generated], 0);
          }
          return {
            text: echo + choice.text,
            index: promptIndex * parsed.n + i,
            logprobs,
            finish_reason: openAiFinishReason(choice.finishReason),
          };
        }),
      );
      return { ...base, object: 'text_completion', choices, usage: usage(results) };
    }

    await streamChunks(
      exchange,
      parsed.includeUsage,
      (source, event) => {
        const index = (choice: number) => source * parsed.n + choice;
        if (event.type === 'token') {
          const echo = parsed.echo && event.index === 0 ? promptText(source) : '';
          const logprobs =
            parsed.logprobs === undefined
              ? null
              : completionLogprobs(
                  [
                    {
                      text: event.token.text,
                      logprob: event.token.logprob,
                      ...(event.topTokens === undefined ? {} : { top: event.topTokens }),
                    },
                  ],
                  0,
                );
          if (event.delta === '' && echo === '' && logprobs === null) return [];
          return [
            {
              ...base,
              object: 'text_completion',
              choices: [{ text: echo + event.delta, index: index(event.choice), logprobs, finish_reason: null }],
            },
          ];
        }
        if (event.type === 'choice-end') {
          return [
            {
              ...base,
              object: 'text_completion',
              choices: [
                {
                  text: '',
                  index: index(event.choice.index),
                  logprobs: null,
                  finish_reason: openAiFinishReason(event.choice.finishReason),
                },
              ],
            },
          ];
        }
        return [];
      },
      (totals) => ({ ...base, object: 'text_completion', choices: [], usage: totals }),
    );
    return undefined;
  });
}

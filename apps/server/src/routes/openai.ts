import { randomUUID } from 'node:crypto';
import {
  CancelledError,
  type GenerationEvent,
  type GenerationResult,
  type GenerationStream,
  type PrefillToken,
} from '@gen/engine';
import type { ChatMessage } from '@gen/tokenizer';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { startGeneration, timeoutError, type ServerContext } from '../context.js';
import { errorBody, nestingError, toHttpError, validationError } from '../errors.js';
import { SseWriter } from '../sse.js';
import {
  chatLogprobs,
  completionLogprobs,
  openAiFinishReason,
  parseChatRequest,
  parseCompletionRequest,
  pickChoices,
} from '../wire/openai.js';

/** OpenAI's `top_logprobs` maximum. */
const MAX_TOP_LOGPROBS = 20;

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

function usage(results: readonly GenerationResult[]) {
  const prompt = results.reduce((sum, r) => sum + r.inputTokens, 0);
  const completion = results.reduce((sum, r) => sum + r.choices.reduce((s, c) => s + c.generatedTokens, 0), 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/**
 * Prompt tokens for echoed logprobs, aligned with the echoed text: special tokens the tokenizer added in front of
 * a text prompt (BOS) are not part of that text, so they are left out (else every `text_offset` would be off by
 * their length).
 */
function echoedPrefill(
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

/** Events of several streams, interleaved as they come, each tagged with its stream's index. */
async function* merge(
  streams: readonly GenerationStream[],
): AsyncGenerator<{ source: number; event: GenerationEvent }> {
  const iterators = streams.map((stream) => stream[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<{ source: number; result: IteratorResult<GenerationEvent> }>>();
  const pull = (source: number) =>
    pending.set(
      source,
      iterators[source]!.next().then((result) => ({ source, result })),
    );
  iterators.forEach((_, source) => pull(source));
  try {
    while (pending.size > 0) {
      const { source, result } = await Promise.race(pending.values());
      if (result.done === true) {
        pending.delete(source);
        continue;
      }
      pull(source);
      yield { source, event: result.value };
    }
  } finally {
    for (const iterator of iterators) void iterator.return?.();
  }
}

/** Starts one generation per prompt, failing fast (and cancelling the started ones) if any is refused. */
function startAll(
  context: ServerContext,
  reply: FastifyReply,
  inputs: readonly (string | number[])[],
  parameters: object,
) {
  const generations: ReturnType<typeof startGeneration>[] = [];
  try {
    for (const input of inputs) generations.push(startGeneration(context, reply, { inputs: input, parameters }));
  } catch (error) {
    for (const generation of generations) generation.stream.cancel('another prompt of the request was refused');
    throw error;
  }
  return generations;
}

/** Streams OpenAI chunks: `onEvent` maps engine events to chunk payloads; usage and `[DONE]` close the stream. */
async function streamChunks(
  context: ServerContext,
  reply: FastifyReply,
  generations: readonly ReturnType<typeof startGeneration>[],
  includeUsage: boolean,
  onEvent: (source: number, event: GenerationEvent) => unknown[],
  usageChunk: (totals: ReturnType<typeof usage>) => unknown,
): Promise<void> {
  reply.hijack();
  const sse = new SseWriter(reply.raw, context.keepAliveMs);
  sse.start({ ...reply.getHeaders(), 'x-request-id': String(reply.request.id) });
  const results: GenerationResult[] = [];
  let failed = false;
  try {
    for await (const { source, event } of merge(generations.map((g) => g.stream))) {
      if (event.type === 'error') {
        failed = true;
        const timedOut = generations[source]!.timedOut();
        const error = timedOut ? timeoutError(context.requestTimeoutMs!) : toHttpError(event.error);
        context.metrics.failed(error.errorType);
        if (!(event.error instanceof CancelledError) || timedOut) await sse.send(errorBody('openai', error).body);
        for (const generation of generations) generation.stream.cancel('another prompt of the request failed');
        break;
      }
      if (event.type === 'done') {
        results.push(event.result);
        context.metrics.succeeded(event.result);
      }
      for (const chunk of onEvent(source, event)) await sse.send(chunk);
    }
    if (!failed) {
      if (includeUsage) await sse.send(usageChunk(usage(results)));
      await sse.send('[DONE]');
    }
  } finally {
    sse.end();
  }
}

async function collectAll(context: ServerContext, generations: readonly ReturnType<typeof startGeneration>[]) {
  try {
    const results = await Promise.all(generations.map((g) => g.stream.result()));
    for (const result of results) context.metrics.succeeded(result);
    return results;
  } catch (error) {
    for (const generation of generations) generation.stream.cancel('another prompt of the request failed');
    const timedOut = generations.some((g) => g.timedOut());
    const mapped = timedOut ? timeoutError(context.requestTimeoutMs!) : toHttpError(error);
    context.metrics.failed(mapped.errorType);
    throw mapped;
  }
}

/** Registers `/v1/chat/completions`, `/v1/completions` and `/v1/models`. */
export function registerOpenAiRoutes(app: FastifyInstance, context: ServerContext): void {
  app.get('/v1/models', async () => {
    const { model } = context.ready();
    return { object: 'list', data: [{ id: model.modelId, object: 'model', created: 0, owned_by: 'gen' }] };
  });

  app.post('/v1/chat/completions', async (request, reply) => {
    const { model } = context.ready();
    const parsed = parseChatRequest(request.body, MAX_TOP_LOGPROBS);
    context.metrics.received();
    let prompt: string;
    let generations;
    try {
      prompt = model.tokenizer.applyChatTemplate(normalizeMessages(parsed.messages), {
        addGenerationPrompt: true,
        ...(parsed.tools === undefined ? {} : { tools: parsed.tools }),
      });
      generations = startAll(context, reply, [prompt], { ...parsed.parameters, addSpecialTokens: false });
    } catch (error) {
      context.metrics.failed(toHttpError(error).errorType);
      throw error;
    }
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const base = { id, created, model: model.modelId, system_fingerprint: `gen-${context.version}` };

    if (!parsed.stream) {
      const [result] = await collectAll(context, generations);
      return {
        ...base,
        object: 'chat.completion',
        choices: result!.choices.map((choice) => ({
          index: choice.index,
          message: { role: 'assistant', content: choice.text },
          logprobs: parsed.logprobs ? chatLogprobs(choice.tokens ?? [], choice.topTokens) : null,
          finish_reason: openAiFinishReason(choice.finishReason),
        })),
        usage: usage([result!]),
      };
    }

    const started = new Set<number>();
    const chunk = (choices: unknown[]) => ({
      ...base,
      object: 'chat.completion.chunk',
      choices,
      ...(parsed.includeUsage ? { usage: null } : {}),
    });
    await streamChunks(
      context,
      reply,
      generations,
      parsed.includeUsage,
      (_source, event) => {
        const chunks: unknown[] = [];
        if (event.type === 'token') {
          if (!started.has(event.choice)) {
            started.add(event.choice);
            chunks.push(
              chunk([
                { index: event.choice, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null },
              ]),
            );
          }
          const logprobs =
            parsed.logprobs && !event.token.special
              ? chatLogprobs([event.token], event.topTokens === undefined ? undefined : [event.topTokens])
              : null;
          if (event.delta !== '' || logprobs !== null) {
            chunks.push(
              chunk([
                {
                  index: event.choice,
                  delta: { role: 'assistant', content: event.delta },
                  logprobs,
                  finish_reason: null,
                },
              ]),
            );
          }
        } else if (event.type === 'choice-end') {
          chunks.push(
            chunk([
              {
                index: event.choice.index,
                // Every delta names the role: TGI's and Together's Python clients require it in every chunk.
                delta: { role: 'assistant' },
                logprobs: null,
                finish_reason: openAiFinishReason(event.choice.finishReason),
              },
            ]),
          );
        }
        return chunks;
      },
      (totals) => ({ ...base, object: 'chat.completion.chunk', choices: [], usage: totals }),
    );
    return undefined;
  });

  app.post('/v1/completions', async (request, reply) => {
    const { model, limits } = context.ready();
    const parsed = parseCompletionRequest(request.body);
    if (parsed.prompts.length > limits.maxClientBatchSize) {
      throw validationError(
        `\`prompt\` supports up to ${limits.maxClientBatchSize} prompts. Given: ${parsed.prompts.length}`,
        'prompt',
      );
    }
    context.metrics.received();
    let generations;
    try {
      generations = startAll(context, reply, parsed.prompts, parsed.parameters);
    } catch (error) {
      context.metrics.failed(toHttpError(error).errorType);
      throw error;
    }
    const id = `cmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const base = { id, created, model: model.modelId, system_fingerprint: `gen-${context.version}` };
    const promptText = (index: number) => {
      const prompt = parsed.prompts[index]!;
      return typeof prompt === 'string' ? prompt : model.tokenizer.decode(prompt);
    };

    if (!parsed.stream) {
      const results = await collectAll(context, generations);
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
      context,
      reply,
      generations,
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

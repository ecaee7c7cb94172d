import { randomUUID } from 'node:crypto';
import type { ChoiceResult, GenerationResult, TokenEvent } from '@gen/engine';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { errorBody } from '../errors.js';
import { Exchange } from '../exchange.js';
import { ROUTE_SCHEMAS } from '../schemas/routes.js';
import { completionLogprobs, echoedPrefill, openAiFinishReason } from '../wire/openai.js';
import { tgiToken } from '../wire/tgi.js';
import { parseTogetherRequest, type TogetherRequest } from '../wire/together.js';

function usage(result: GenerationResult) {
  const completion = result.choices.reduce((sum, choice) => sum + choice.generatedTokens, 0);
  return {
    prompt_tokens: result.inputTokens,
    completion_tokens: completion,
    total_tokens: result.inputTokens + completion,
  };
}

/** A choice's `logprobs`: its tokens', after the prompt's when the prompt is echoed. */
function choiceLogprobs(
  choice: ChoiceResult,
  result: GenerationResult,
  parsed: TogetherRequest,
  tokenizer: { isSpecial(id: number): boolean },
) {
  const generated = (choice.tokens ?? []).map((token, step) => ({
    text: token.text,
    logprob: token.logprob,
    ...(choice.topTokens === undefined ? {} : { top: choice.topTokens[step]! }),
  }));
  const prefill = parsed.echo ? echoedPrefill(result.prefill ?? [], parsed.prompt, tokenizer) : [];
  return completionLogprobs([...prefill, ...generated], 0);
}

/**
 * Registers Together's `/inference` (the request and response shapes of Together's REST API). With
 * `stream_tokens`, it answers Server-Sent Events as Together does: one event per token,
 * `{id, choices: [{index, text, finish_reason}], token, generated_text, details, stats, usage}`, the last event of
 * each choice naming its `finish_reason` and the very last one carrying `generated_text` and `usage`, then
 * `data: [DONE]`.
 */
export function registerTogetherRoutes(app: FastifyInstance, context: ServerContext): void {
  app.post('/inference', { schema: ROUTE_SCHEMAS['POST /inference'] }, async (request, reply) => {
    const { model } = context.ready();
    const parsed = parseTogetherRequest(request.body);
    const started = performance.now();
    const exchange = Exchange.start(context, reply, [{ inputs: parsed.prompt, parameters: parsed.parameters }]);
    const id = randomUUID();
    const echo = parsed.echo ? parsed.prompt : '';

    if (!parsed.stream) {
      const [result] = await exchange.results();
      return {
        id,
        status: 'finished',
        prompt: [parsed.prompt],
        model: model.modelId,
        model_owner: '',
        num_returns: result!.choices.length,
        args: request.body,
        subjobs: [],
        output: {
          choices: result!.choices.map((choice) => ({
            text: echo + choice.text,
            finish_reason: openAiFinishReason(choice.finishReason),
            index: choice.index,
            ...(parsed.logprobs === undefined
              ? {}
              : { logprobs: choiceLogprobs(choice, result!, parsed, model.tokenizer) }),
          })),
          raw_compute_time: (performance.now() - started) / 1000,
          result_type: 'language-model-inference',
          usage: usage(result!),
        },
      };
    }

    const sse = exchange.openEventStream('openai');
    // Each choice's latest token is held until the end of the engine step it came in (a `setImmediate`), so the
    // choice's last token can carry its finish_reason, and the request's last token generated_text and usage.
    const held = new Map<number, TokenEvent>();
    const echoed = new Set<number>();
    const finished = new Map<number, ChoiceResult>();
    let flush: NodeJS.Immediate | undefined;
    const event = (
      choice: number,
      token: TokenEvent | undefined,
      end?: { choice: ChoiceResult; result?: GenerationResult },
    ) => {
      let text = token?.delta ?? '';
      if (!echoed.has(choice)) {
        echoed.add(choice);
        text = echo + text;
      }
      return {
        id,
        choices: [
          {
            index: choice,
            text,
            finish_reason: end === undefined ? null : openAiFinishReason(end.choice.finishReason),
            ...(parsed.logprobs === undefined || token === undefined
              ? {}
              : {
                  logprobs: completionLogprobs(
                    [
                      {
                        text: token.token.text,
                        logprob: token.token.logprob,
                        ...(token.topTokens === undefined ? {} : { top: token.topTokens }),
                      },
                    ],
                    0,
                  ),
                }),
          },
        ],
        token: token === undefined ? null : tgiToken(token.token),
        generated_text: end?.result === undefined ? null : echo + end.choice.text,
        details: null,
        stats: null,
        usage: end?.result === undefined ? null : usage(end.result),
      };
    };
    const pending: unknown[] = [];
    const flushHeld = () => {
      flush = undefined;
      for (const [choice, token] of held) {
        const end = finished.get(choice);
        // The last choice to finish keeps its last token for the `done` event.
        if (end !== undefined && finished.size === parsed.n) continue;
        held.delete(choice);
        // Written now (the stream's writes keep their call order); the loop waits on backpressure.
        void sse.send(event(choice, token, end === undefined ? undefined : { choice: end }));
      }
    };
    try {
      for await (const { event: item } of exchange.events()) {
        if (item.type === 'error') {
          flushHeld();
          if (item.report) await sse.send(errorBody('openai', item.error).body);
          return;
        }
        if (item.type === 'token') {
          const previous = held.get(item.choice);
          if (previous !== undefined) pending.push(event(item.choice, previous));
          held.set(item.choice, item);
          flush ??= setImmediate(flushHeld);
        } else if (item.type === 'choice-end') {
          finished.set(item.choice.index, item.choice);
          if (!held.has(item.choice.index)) pending.push(event(item.choice.index, undefined, { choice: item.choice }));
        } else if (item.type === 'done') {
          if (flush !== undefined) clearImmediate(flush);
          flush = undefined;
          const last = [...held.keys()].at(-1);
          for (const [choice, token] of held) {
            if (choice === last) continue;
            pending.push(event(choice, token, { choice: finished.get(choice)! }));
          }
          const lastChoice = last ?? item.result.choices.at(-1)!.index;
          pending.push(
            event(lastChoice, last === undefined ? undefined : held.get(last), {
              choice: finished.get(lastChoice) ?? item.result.choices.find((c) => c.index === lastChoice)!,
              result: item.result,
            }),
          );
          held.clear();
        }
        for (const payload of pending.splice(0)) await sse.send(payload);
      }
      await sse.send('[DONE]');
    } finally {
      if (flush !== undefined) clearImmediate(flush);
      sse.end();
    }
    return undefined;
  });
}

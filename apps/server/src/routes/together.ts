import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { startGeneration, timeoutError, type ServerContext } from '../context.js';
import { toHttpError } from '../errors.js';
import { completionLogprobs, openAiFinishReason } from '../wire/openai.js';
import { parseTogetherRequest } from '../wire/together.js';

/** Registers Together's `/inference` (the request and response shapes of Together's REST API). */
export function registerTogetherRoutes(app: FastifyInstance, context: ServerContext): void {
  app.post('/inference', async (request, reply) => {
    const { model } = context.ready();
    const parsed = parseTogetherRequest(request.body);
    context.metrics.received();
    const started = performance.now();
    let generation;
    try {
      generation = startGeneration(context, reply, { inputs: parsed.prompt, parameters: parsed.parameters });
    } catch (error) {
      context.metrics.failed(toHttpError(error).errorType);
      throw error;
    }
    let result;
    try {
      result = await generation.stream.result();
    } catch (error) {
      const mapped = generation.timedOut() ? timeoutError(context.requestTimeoutMs!) : toHttpError(error);
      context.metrics.failed(mapped.errorType);
      throw mapped;
    }
    context.metrics.succeeded(result);
    const completion = result.choices.reduce((sum, choice) => sum + choice.generatedTokens, 0);
    return {
      id: randomUUID(),
      status: 'finished',
      prompt: [parsed.prompt],
      model: model.modelId,
      model_owner: '',
      num_returns: result.choices.length,
      args: request.body,
      subjobs: [],
      output: {
        choices: result.choices.map((choice) => ({
          text: choice.text,
          finish_reason: openAiFinishReason(choice.finishReason),
          index: choice.index,
          ...(parsed.logprobs === undefined
            ? {}
            : {
                logprobs: completionLogprobs(
                  (choice.tokens ?? []).map((token, step) => ({
                    text: token.text,
                    logprob: token.logprob,
                    ...(choice.topTokens === undefined ? {} : { top: choice.topTokens[step]! }),
                  })),
                  0,
                ),
              }),
        })),
        raw_compute_time: (performance.now() - started) / 1000,
        result_type: 'language-model-inference',
        usage: {
          prompt_tokens: result.inputTokens,
          completion_tokens: completion,
          total_tokens: result.inputTokens + completion,
        },
      },
    };
  });
}

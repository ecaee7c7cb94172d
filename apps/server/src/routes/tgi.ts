import type { GenerationResult, TokenEvent } from '@gen/engine';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServerContext } from '../context.js';
import { errorBody, validationError } from '../errors.js';
import { Exchange } from '../exchange.js';
import { ROUTE_SCHEMAS } from '../schemas/routes.js';
import { constraintProcessors } from '../tools/constraint.js';
import { parseTgiRequest, tgiGenerateResponse, tgiToken, type TgiRequest } from '../wire/tgi.js';

/** TGI's `x-*` response headers for a finished request. */
export function timingHeaders(result: GenerationResult, inputs: string, validationMs: number): Record<string, string> {
  const generated = result.choices.reduce((sum, choice) => sum + choice.generatedTokens, 0);
  const { queueMs, inferenceMs, totalMs } = result.timings;
  return {
    'x-compute-type': 'gen',
    'x-compute-time': (totalMs / 1000).toFixed(6),
    'x-compute-characters': String(inputs.length),
    'x-total-time': String(Math.round(totalMs + validationMs)),
    'x-validation-time': String(Math.round(validationMs)),
    'x-queue-time': String(Math.round(queueMs)),
    'x-inference-time': String(Math.round(inferenceMs)),
    'x-time-per-token': String(generated > 0 ? Math.round(inferenceMs / generated) : 0),
    'x-prompt-tokens': String(result.inputTokens),
    'x-generated-tokens': String(generated),
  };
}

/** Runs a TGI request to completion and returns its result (or throws the mapped error). */
async function generateOnce(
  context: ServerContext,
  reply: FastifyReply,
  request: TgiRequest,
): Promise<{ result: GenerationResult; validationMs: number }> {
  const started = performance.now();
  const exchange = Exchange.start(context, reply, [{ inputs: request.inputs, parameters: request.parameters }]);
  const validationMs = performance.now() - started;
  const [result] = await exchange.results();
  return { result: result!, validationMs };
}

/**
 * Streams a TGI request as Server-Sent Events: one event per token; the last one carries `generated_text` and the
 * stream `details`. Validation errors are thrown before the stream starts (so they get a 4xx JSON answer); an
 * error after the first byte is sent as TGI does, as an event `{error, error_type}`.
 */
async function streamTgi(context: ServerContext, reply: FastifyReply, request: TgiRequest): Promise<void> {
  if (request.parameters.bestOf !== undefined && request.parameters.bestOf !== 1) {
    throw validationError('`best_of` != 1 is not supported when streaming tokens', 'best_of');
  }
  if (request.parameters.n !== undefined && request.parameters.n !== 1) {
    throw validationError('`n` != 1 is not supported when streaming tokens', 'n');
  }
  const exchange = Exchange.start(context, reply, [{ inputs: request.inputs, parameters: request.parameters }]);
  const sse = exchange.openEventStream('axum', {
    'x-compute-type': 'gen',
    'x-prompt-tokens': String(exchange.streams[0]!.inputTokens),
  });
  let index = 0;
  // The last token's event carries generated_text and details, which come with the engine's `done` event. The engine
  // emits a step's events together, so a token is held only until the end of the current step: if `done` follows,
  // the token goes out as the final event; otherwise it is flushed before the next step (never a step late).
  let held: TokenEvent | undefined;
  let writing: Promise<void> = Promise.resolve();
  let flush: NodeJS.Immediate | undefined;
  const send = (event: TokenEvent, final?: { generatedText: string; details: unknown }) => {
    writing = sse.send({
      index: ++index,
      token: tgiToken(event.token),
      top_tokens: (event.topTokens ?? []).map(tgiToken),
      generated_text: final?.generatedText ?? null,
      details: final?.details ?? null,
    });
    return writing;
  };
  const flushHeld = () => {
    flush = undefined;
    if (held === undefined) return;
    const event = held;
    held = undefined;
    void send(event);
  };
  try {
    for await (const { event } of exchange.events()) {
      if (event.type === 'token') {
        // Backpressure: wait while the socket buffer is full.
        await writing;
        if (held !== undefined) await send(held);
        held = event;
        flush ??= setImmediate(flushHeld);
      } else if (event.type === 'done') {
        const result = event.result;
        const choice = result.choices[0]!;
        const details =
          request.parameters.details !== true
            ? null
            : {
                finish_reason: choice.finishReason,
                generated_tokens: choice.generatedTokens,
                seed: result.seed ?? null,
                input_length: result.inputTokens,
              };
        if (held !== undefined) await send(held, { generatedText: choice.generatedText, details });
        held = undefined;
      } else if (event.type === 'error') {
        if (held !== undefined) await send(held);
        held = undefined;
        if (event.report) await sse.send(errorBody('tgi', event.error).body);
      }
    }
  } finally {
    if (flush !== undefined) clearImmediate(flush);
    sse.end();
  }
}

/** Registers TGI's generation routes: `/generate`, `/generate_stream` and `/` (array response, or a stream). */
export function registerTgiRoutes(app: FastifyInstance, context: ServerContext): void {
  const parse = (body: unknown, compat = false): TgiRequest => {
    const { model, limits } = context.ready();
    const parsed = parseTgiRequest(body, limits.maxTopNTokensTgi, compat);
    if (parsed.grammar === undefined) return parsed;
    const logitsProcessors = constraintProcessors(model, parsed.grammar, 'grammar');
    return { ...parsed, parameters: { ...parsed.parameters, logitsProcessors } };
  };

  app.post('/generate', { schema: ROUTE_SCHEMAS['POST /generate'] }, async (request, reply) => {
    const parsed = parse(request.body);
    const { result, validationMs } = await generateOnce(context, reply, parsed);
    void reply.headers(timingHeaders(result, parsed.inputs, validationMs));
    return tgiGenerateResponse(result, parsed.parameters);
  });

  app.post('/generate_stream', { schema: ROUTE_SCHEMAS['POST /generate_stream'] }, async (request, reply) => {
    await streamTgi(context, reply, parse(request.body));
  });

  app.post('/', { schema: ROUTE_SCHEMAS['POST /'] }, async (request, reply) => {
    const parsed = parse(request.body, true);
    if (parsed.stream) {
      await streamTgi(context, reply, parsed);
      return;
    }
    const { result, validationMs } = await generateOnce(context, reply, parsed);
    void reply.headers(timingHeaders(result, parsed.inputs, validationMs));
    return [tgiGenerateResponse(result, parsed.parameters)];
  });
}

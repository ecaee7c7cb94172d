import {
  CancelledError,
  type GenerationEvent,
  type GenerationRequest,
  type GenerationResult,
  type GenerationStream,
} from '@gen/engine';
import type { FastifyReply } from 'fastify';
import { startGeneration, timeoutError, type ServerContext } from './context.js';
import { toHttpError, type HttpError } from './errors.js';
import { SseWriter, type SseStyle } from './sse.js';

/** An engine event of one of the exchange's generations; errors are already mapped to the HTTP error to report. */
export type ExchangeEvent =
  | { source: number; event: Exclude<GenerationEvent, { type: 'error' }> }
  | {
      source: number;
      event: {
        type: 'error';
        /** The error in HTTP terms (a timeout is a 504 `timeout`, whatever the engine saw). */
        error: HttpError;
        /** False when the client went away (there is nobody to tell). */
        report: boolean;
      };
    };

/**
 * The lifecycle of one generation request, the same on every route: counted in the metrics (received once,
 * succeeded per result, failed once), tied to the client's connection and the request timeout, and failing as a
 * whole (when one generation of a multi-prompt request fails, the others are cancelled). Routes only translate
 * shapes: they hand the engine requests to {@link Exchange.start} and read results or events back.
 */
export class Exchange {
  private failed = false;

  private constructor(
    private readonly context: ServerContext,
    private readonly reply: FastifyReply,
    private readonly generations: readonly ReturnType<typeof startGeneration>[],
  ) {}

  /**
   * Starts one generation per request. A refused request (validation, overload) cancels the ones already started
   * and throws; it is counted as received and failed.
   */
  static start(context: ServerContext, reply: FastifyReply, requests: readonly GenerationRequest[]): Exchange {
    context.metrics.received();
    const generations: ReturnType<typeof startGeneration>[] = [];
    try {
      for (const request of requests) generations.push(startGeneration(context, reply, request));
    } catch (error) {
      for (const generation of generations) generation.stream.cancel('another prompt of the request was refused');
      context.metrics.failed(toHttpError(error).errorType);
      throw error;
    }
    return new Exchange(context, reply, generations);
  }

  /** The engine streams, in request order. */
  get streams(): readonly GenerationStream[] {
    return this.generations.map((generation) => generation.stream);
  }

  /** Waits for every result; on failure cancels the rest and throws the mapped error (504 after a timeout). */
  async results(): Promise<GenerationResult[]> {
    try {
      const results = await Promise.all(this.generations.map((generation) => generation.stream.result()));
      for (const result of results) this.context.metrics.succeeded(result);
      return results;
    } catch (error) {
      throw this.fail(error);
    }
  }

  /**
   * The events of every generation, interleaved as they come. The first error ends the iteration (after it is
   * yielded) and cancels the other generations; `done` events are counted as successes.
   */
  async *events(): AsyncGenerator<ExchangeEvent> {
    for await (const { source, event } of merge(this.streams)) {
      if (event.type === 'error') {
        const timedOut = this.generations[source]!.timedOut();
        const error = this.fail(event.error, source);
        yield { source, event: { type: 'error', error, report: !(event.error instanceof CancelledError) || timedOut } };
        return;
      }
      if (event.type === 'done') this.context.metrics.succeeded(event.result);
      yield { source, event };
    }
  }

  /**
   * Takes the response over for Server-Sent Events: the headers already set on the reply (CORS, x-request-id) and
   * `headers` go out with the 200.
   */
  openEventStream(style: SseStyle, headers: Record<string, string> = {}): SseWriter {
    this.reply.hijack();
    const sse = new SseWriter(this.reply.raw, this.context.keepAliveMs, style);
    sse.start({ ...this.reply.getHeaders(), ...headers, 'x-request-id': String(this.reply.request.id) });
    return sse;
  }

  /** Counts the failure once, cancels what still runs, and maps the error (504 after the request timeout). */
  private fail(error: unknown, source?: number): HttpError {
    const timedOut =
      source === undefined
        ? this.generations.some((generation) => generation.timedOut())
        : this.generations[source]!.timedOut();
    const mapped = timedOut ? timeoutError(this.context.requestTimeoutMs!) : toHttpError(error);
    if (!this.failed) {
      this.failed = true;
      this.context.metrics.failed(mapped.errorType);
      for (const generation of this.generations) generation.stream.cancel('another prompt of the request failed');
    }
    return mapped;
  }
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

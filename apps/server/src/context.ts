import type { BackendV1 } from '@gen/backend';
import type { Engine, EngineLimits, GenerationRequest, GenerationStream } from '@gen/engine';
import type { Tokenizer } from '@gen/tokenizer';
import type { FastifyReply } from 'fastify';
import { HttpError } from './errors.js';
import type { ServerMetrics } from './metrics.js';
import type { ReasoningParserName } from './reasoning.js';
import type { ToolCallFormatName } from './tools/formats.js';

/** A model ready to serve: the backend, its tokenizer, and how to name it. */
export interface LoadedModel {
  backend: BackendV1;
  tokenizer: Tokenizer;
  /** Name in `/info`, `/v1/models` and responses. */
  modelId: string;
  /** Where it was loaded from, when it came from a directory. */
  modelDir?: string;
  /** How the model writes tool calls; detected from the chat template when left out (`hermes` if it shows none). */
  toolCallFormat?: ToolCallFormatName;
  /** Whether `<think>` blocks go to `reasoning_content` on the chat route (`auto`, the default) or stay content. */
  reasoningParser?: ReasoningParserName;
}

/** Server limits: the engine's, plus TGI's per-route caps. */
export interface ServerLimits extends EngineLimits {
  /** TGI's `max_top_n_tokens` on the TGI routes (OpenAI's `top_logprobs` goes up to 20). */
  maxTopNTokensTgi: number;
  /** Most prompts in one `/v1/completions` request (TGI's `max_client_batch_size`). */
  maxClientBatchSize: number;
}

/** What every route needs: the model and engine once loaded, metrics, settings. */
export interface ServerContext {
  readonly metrics: ServerMetrics;
  readonly keepAliveMs: number;
  readonly requestTimeoutMs: number | undefined;
  readonly version: string;
  /** The model and engine, or a 503 `HttpError` while loading (or after loading failed). */
  ready(): { model: LoadedModel; engine: Engine; limits: ServerLimits };
  /** The engine once loaded. */
  engine(): Engine | undefined;
  /** The model once loaded. */
  model(): LoadedModel | undefined;
}

/**
 * Starts a generation tied to an HTTP exchange: when the client disconnects before the response is complete, or
 * the request timeout passes, the generation is cancelled (its cache is freed at the next engine step).
 */
export function startGeneration(
  context: ServerContext,
  reply: FastifyReply,
  request: GenerationRequest,
): { stream: GenerationStream; signal: AbortSignal; timedOut: () => boolean } {
  const { engine } = context.ready();
  const controller = new AbortController();
  let timedOut = false;
  const onClose = () => {
    if (!reply.raw.writableEnded) controller.abort(new Error('client disconnected'));
  };
  reply.raw.once('close', onClose);
  let timer: NodeJS.Timeout | undefined;
  if (context.requestTimeoutMs !== undefined) {
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error('request timeout'));
    }, context.requestTimeoutMs);
    timer.unref();
  }
  let stream: GenerationStream;
  try {
    stream = engine.generate(request, { signal: controller.signal });
  } catch (error) {
    reply.raw.off('close', onClose);
    clearTimeout(timer);
    throw error;
  }
  reply.raw.once('finish', () => clearTimeout(timer));
  reply.raw.once('close', () => clearTimeout(timer));
  return { stream, signal: controller.signal, timedOut: () => timedOut };
}

/** The error a timed-out request gets. */
export function timeoutError(timeoutMs: number): HttpError {
  return new HttpError(504, `Request timed out after ${timeoutMs} ms`, 'timeout');
}

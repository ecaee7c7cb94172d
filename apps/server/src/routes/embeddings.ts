import { ROUTE_SCHEMAS } from '../schemas/routes.js';
import {
  AbortError,
  BackendDisposedError,
  BatchLimitError,
  InvalidInputError,
  PositionLimitError,
  type BackendV1,
} from '@gen/backend';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify';
import { timeoutError, type ServerContext } from '../context.js';
import { HttpError, toHttpError, validationError } from '../errors.js';
import {
  checkEmbeddingLimits,
  checkEmbeddingTokens,
  encodeEmbedding,
  parseEmbeddingRequest,
} from '../wire/embeddings.js';

type Embedder = BackendV1 & Required<Pick<BackendV1, 'doEmbed'>>;

/** The backend when it can embed, else the 400 that says it cannot (not retried by clients, unlike a 5xx). */
function embedderOf(backend: BackendV1): Embedder {
  if (backend.capabilities.embeddings === true && typeof backend.doEmbed === 'function') return backend as Embedder;
  throw new HttpError(
    400,
    `The ${JSON.stringify(backend.backendId)} backend serving this model cannot compute embeddings (it does not ` +
      'expose the final hidden states); start the server with a backend that can, for example --backend js or tfjs',
    'validation',
    null,
    'embeddings_not_supported',
  );
}

/**
 * An AbortSignal for the exchange: aborted when the client goes away before the response is complete, or when the
 * request timeout passes (`timedOut()` tells which).
 */
function exchangeSignal(context: ServerContext, reply: FastifyReply) {
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
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    done: () => {
      clearTimeout(timer);
      reply.raw.off('close', onClose);
    },
  };
}

/** Backend errors in HTTP terms: inputs the wire checks let through are still the client's (400), never a 500. */
function embedError(error: unknown, timedOut: boolean, timeoutMs: number | undefined): HttpError {
  if (AbortError.isInstance(error)) {
    return timedOut
      ? timeoutError(timeoutMs!)
      : new HttpError(499, 'Request cancelled: the client went away', 'cancelled');
  }
  if (
    InvalidInputError.isInstance(error) ||
    PositionLimitError.isInstance(error) ||
    BatchLimitError.isInstance(error)
  ) {
    return validationError(error.message, 'input');
  }
  if (BackendDisposedError.isInstance(error)) return new HttpError(503, 'Server is shutting down', 'unhealthy');
  return toHttpError(error);
}

/**
 * Registers OpenAI's `POST /v1/embeddings`: pooled final hidden states of the served model (`pooling` `mean` by
 * default, or `last`), as JSON floats or base64 float32, with token usage. Every input is checked before the first
 * forward pass (no silent truncation); backends without `doEmbed` get a 400 that says so.
 */
export function registerEmbeddingRoutes(app: FastifyInstance, context: ServerContext): void {
  app.post('/v1/embeddings', { schema: ROUTE_SCHEMAS['POST /v1/embeddings'] }, async (request, reply) => {
    const { model, limits } = context.ready();
    const started = performance.now();
    const metrics = context.metrics;
    metrics.embeddingReceived();
    const exchange = exchangeSignal(context, reply);
    try {
      const parsed = parseEmbeddingRequest(request.body);
      const backend = embedderOf(model.backend);
      const { vocabSize, maxPositions, hiddenSize } = backend.model;
      checkEmbeddingLimits(parsed, { maxInputs: limits.maxClientBatchSize, hiddenSize: hiddenSize ?? 0 });
      const tokens = parsed.inputs.map((input) => (typeof input === 'string' ? model.tokenizer.encode(input) : input));
      const emptyText = tokens.findIndex((ids) => ids.length === 0);
      if (emptyText >= 0) {
        throw validationError(`\`input[${emptyText}]\` has no tokens to embed`, 'input');
      }
      checkEmbeddingTokens(tokens, { vocabSize, maxPositions });

      const vectors: Float32Array[] = [];
      const batch = backend.capabilities.maxBatchSize;
      try {
        for (let start = 0; start < tokens.length; start += batch) {
          const part = tokens.slice(start, start + batch);
          vectors.push(...(await backend.doEmbed({ tokens: part, pooling: parsed.pooling, signal: exchange.signal })));
        }
      } catch (error) {
        throw embedError(error, exchange.timedOut(), context.requestTimeoutMs);
      }
      const promptTokens = tokens.reduce((sum, ids) => sum + ids.length, 0);
      metrics.embeddingSucceeded(promptTokens, performance.now() - started);
      return {
        object: 'list',
        data: vectors.map((vector, index) => ({
          object: 'embedding',
          index,
          embedding: encodeEmbedding(vector, parsed.encodingFormat),
        })),
        model: model.modelId,
        usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
      };
    } catch (error) {
      metrics.embeddingFailed(toHttpError(error).errorType);
      throw error;
    } finally {
      exchange.done();
    }
  });
}

/**
 * {@link registerEmbeddingRoutes} as a Fastify plugin, so that `createServer` registers it in one line:
 * `void app.register(import('./routes/embeddings.js'), { context })` (the plugin inherits the app's hooks, content
 * type parser and error handler, which are set before it).
 */
const embeddingRoutes: FastifyPluginAsync<{ context: ServerContext }> = async (app, options) => {
  registerEmbeddingRoutes(app, options.context);
};
export default embeddingRoutes;

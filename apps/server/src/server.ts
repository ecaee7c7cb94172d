import { totalmem } from 'node:os';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import {
  createEngine,
  DEFAULT_LIMITS as ENGINE_DEFAULT_LIMITS,
  type Engine,
  type EngineLimits,
  type SchedulerSettings,
} from '@gen/engine';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { LoadedModel, ServerContext, ServerLimits } from './context.js';
import { HttpError, errorBody, familyOf, nestingError, toHttpError } from './errors.js';
import { ServerMetrics } from './metrics.js';
import { registerMiscRoutes } from './routes/misc.js';
import { registerOpenAiRoutes } from './routes/openai.js';
import { registerTgiRoutes } from './routes/tgi.js';
import { registerTogetherRoutes } from './routes/together.js';
import { SERVER_VERSION } from './version.js';

/** Settings of {@link createServer}. */
/** The prefix cache's default budget: a tenth of the machine's memory, at most 2 GiB. */
export const DEFAULT_PREFIX_CACHE_BYTES = Math.min(Math.floor(totalmem() / 10), 2 * 1024 ** 3);

export interface ServerOptions {
  /** The model to serve, or a function that loads it (the server answers 503 on generation routes until it resolves). */
  model: LoadedModel | (() => Promise<LoadedModel>);
  /** Request limits; TGI's defaults otherwise (max_best_of 2, max_stop_sequences 4, max_top_n_tokens 5, 128 concurrent). */
  limits?: Partial<ServerLimits>;
  /** Engine scheduling (batch size, per-step token budget). */
  scheduler?: Partial<SchedulerSettings>;
  /**
   * KV bytes the prefix cache may hold (prompts reused across requests; see `EngineSettings.prefixCache`). 0 turns
   * it off. Default {@link DEFAULT_PREFIX_CACHE_BYTES}. Backends without `forkPrefix` never cache.
   */
  prefixCacheBytes?: number;
  /** Require `Authorization: Bearer <apiKey>` on every route except `/health` and `/metrics`. Off by default. */
  apiKey?: string;
  /** Allowed CORS origins (`*` for any). Off by default. */
  corsOrigins?: readonly string[];
  /** Largest request body in bytes (413 above). Default 2,000,000 as TGI. */
  bodyLimit?: number;
  /** Cancel a generation that takes longer than this (504 / an error event). Default: none. */
  requestTimeoutMs?: number;
  /** Keep-alive comment interval on silent streams. Default 15 s. */
  keepAliveMs?: number;
  /** Fastify's logger option (pino). Default: off. */
  logger?: FastifyServerOptions['logger'];
}

/** A server: the Fastify app, plus its engine once the model is loaded. */
export interface GenServer {
  /** The Fastify instance (call `listen`, or `inject` in tests). */
  readonly app: FastifyInstance;
  /** Resolves when the model is loaded and the engine runs; rejects if loading failed. */
  readonly ready: Promise<void>;
  /** The engine, once loaded. */
  engine(): Engine | undefined;
  /**
   * Graceful stop: refuses new connections and requests, lets running generations finish (at most `timeoutMs`,
   * default 30 s), cancels what remains, then disposes the backend.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/** The server's default limits: the engine's (declared once, in @gen/engine) and the server's own batch size. */
const DEFAULT_LIMITS = {
  ...ENGINE_DEFAULT_LIMITS,
  maxTopNTokensTgi: ENGINE_DEFAULT_LIMITS.maxTopNTokens,
  maxClientBatchSize: 4,
};

/** Compares a presented API key with the configured one in constant time (hashes first, so lengths do not leak). */
function keyMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The media types TGI's router (axum's `Json` extractor) takes a body with: `application/json` and `*+json`. */
const JSON_MEDIA_TYPE = /^application\/(json|[\w.+-]+\+json)$/i;

/**
 * The 415 TGI's routes answer when a POST does not declare a JSON body (axum's wording), or undefined. Checked before
 * the body is read, as axum does; OpenAI-family routes stay lenient (curl's `-d` sends form encoding).
 */
function tgiContentTypeError(method: string, url: string, contentType: string | undefined): HttpError | undefined {
  if (method !== 'POST' || familyOf(url) !== 'tgi') return undefined;
  const mediaType = contentType?.split(';')[0]!.trim() ?? '';
  if (JSON_MEDIA_TYPE.test(mediaType)) return undefined;
  return new HttpError(415, 'Expected request with `Content-Type: application/json`', 'validation');
}

/** Content types a JSON body may come with on OpenAI-family routes: JSON itself, and what curl -d sends. */
const JSON_CARRIERS = /^(application\/(json|[\w.+-]+\+json|x-www-form-urlencoded)|text\/plain)$/i;

/**
 * A 415 error when the request declares a body that cannot be JSON (another media type, or a content encoding the
 * server does not decode); undefined otherwise. Only used once the body failed to parse, so lenient clients that
 * mislabel JSON keep working.
 */
function unsupportedMediaType(
  contentType: string | undefined,
  contentEncoding: string | undefined,
): HttpError | undefined {
  if (contentEncoding !== undefined && contentEncoding.trim().toLowerCase() !== 'identity') {
    return new HttpError(
      415,
      `Unsupported content encoding ${JSON.stringify(contentEncoding)}: send an uncompressed JSON body`,
      'validation',
    );
  }
  const mediaType = contentType?.split(';')[0]!.trim() ?? '';
  if (mediaType === '' || JSON_CARRIERS.test(mediaType)) return undefined;
  return new HttpError(
    415,
    `Unsupported content type ${JSON.stringify(mediaType)}: send a JSON body with content-type application/json`,
    'validation',
  );
}

/**
 * Builds the HTTP server: TGI routes (`/generate`, `/generate_stream`, `/`, `/tokenize`, `/detokenize`, `/info`,
 * `/health`, `/metrics`, `/docs`), OpenAI routes (`/v1/chat/completions`, `/v1/completions`, `/v1/models`),
 * Together's `/inference`, and `/watermark/detect`. Every request is validated before anything is streamed, and
 * every error uses its API family's envelope.
 */
export function createServer(options: ServerOptions): GenServer {
  const metrics = new ServerMetrics();
  let loaded: { model: LoadedModel; engine: Engine; limits: ServerLimits } | undefined;
  let loadError: Error | undefined;
  let closing = false;

  const context: ServerContext = {
    metrics,
    keepAliveMs: options.keepAliveMs ?? 15_000,
    requestTimeoutMs: options.requestTimeoutMs,
    version: SERVER_VERSION,
    ready() {
      if (closing) throw new HttpError(503, 'Server is shutting down', 'unhealthy');
      if (loaded !== undefined) return loaded;
      if (loadError !== undefined) throw new HttpError(503, `Model failed to load: ${loadError.message}`, 'unhealthy');
      throw new HttpError(503, 'Model is loading', 'unhealthy');
    },
    engine: () => loaded?.engine,
    model: () => loaded?.model,
  };
  metrics.attach(() => loaded?.engine);

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 2_000_000,
    genReqId: (request) => {
      const header = request.headers['x-request-id'];
      return typeof header === 'string' && header.length > 0 && header.length <= 128 ? header : randomUUID();
    },
    forceCloseConnections: 'idle',
    // During the drain, requests still arriving on open connections go through the routes, which answer 503 in
    // their family's envelope (Fastify's own 503 body has neither).
    return503OnClosing: false,
  });

  // JSON bodies; TGI routes were already refused in preParsing without a JSON type, OpenAI routes take any type
  // (curl -d sends form encoding). Invalid JSON is a 400.
  app.removeAllContentTypeParsers();
  // A body that is not JSON and says so (multipart, octet-stream, gzip...) is refused with 415, as TGI does.
  app.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    const unsupported = unsupportedMediaType(request.headers['content-type'], request.headers['content-encoding']);
    if (text.trim().length === 0) {
      done(new HttpError(400, 'Request body is empty: send a JSON object', 'validation'), undefined);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      done(
        unsupported ??
          new HttpError(400, `Failed to parse the request body as JSON: ${(error as Error).message}`, 'validation'),
        undefined,
      );
      return;
    }
    const tooDeep = nestingError(parsed, 'Request body');
    if (tooDeep !== undefined) done(tooDeep, undefined);
    else done(null, parsed);
  });

  // Responses not yet finished (streams included), so close() knows when the last bytes are out.
  const inFlight = new Set<ServerResponse>();
  app.addHook('onRequest', async (_request, reply) => {
    const response = reply.raw;
    inFlight.add(response);
    response.once('close', () => inFlight.delete(response));
  });

  // TGI's routes refuse a POST that does not declare JSON, before reading it (after authentication, as TGI).
  app.addHook('preParsing', async (request) => {
    const refused = tgiContentTypeError(request.method, request.url, request.headers['content-type']);
    if (refused !== undefined) throw refused;
  });

  app.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });

  if (options.corsOrigins !== undefined && options.corsOrigins.length > 0) {
    const origins = options.corsOrigins.includes('*') ? true : [...options.corsOrigins];
    void app.register(cors, {
      origin: origins,
      exposedHeaders: ['x-request-id', 'x-compute-time', 'x-prompt-tokens', 'x-generated-tokens'],
    });
  }

  if (options.apiKey !== undefined && options.apiKey.length > 0) {
    const expected = options.apiKey;
    app.addHook('onRequest', async (request) => {
      const path = request.url.split('?')[0]!;
      if (path === '/health' || path === '/metrics' || request.method === 'OPTIONS') return;
      // The auth scheme is case-insensitive (RFC 9110): "bearer <key>" works too.
      const match = /^bearer\s+(.+)$/i.exec(request.headers.authorization ?? '');
      const presented = match === null ? '' : match[1]!.trim();
      if (presented.length === 0 || !keyMatches(presented, expected)) {
        throw new HttpError(
          401,
          'Missing or invalid API key: send `Authorization: Bearer <key>`',
          'authentication',
          null,
          'invalid_api_key',
        );
      }
    });
  }

  app.setErrorHandler((error, request, reply) => {
    const mapped = toHttpError(error);
    if (mapped.status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ status: mapped.status, error: mapped.message }, 'request rejected');
    const { status, body } = errorBody(familyOf(request.url), mapped);
    if (mapped.status === 503) void reply.header('retry-after', '1');
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    const { status, body } = errorBody(
      familyOf(request.url),
      new HttpError(404, `Route ${request.method} ${request.url.split('?')[0]} not found`, 'not_found'),
    );
    void reply.status(status).send(body);
  });

  // Route schemas document the routes (OpenAPI at /api-doc/openapi.json, its UI at /docs) and declare each body
  // once: the route's parser checks the body against the same schema, after the readiness check and in the
  // family's wording, so Fastify's own validation and response serialization are off.
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'gen',
        version: context.version,
        description: 'Text generation with the APIs of Hugging Face TGI, OpenAI and Together.',
        license: { name: 'Apache-2.0' },
      },
      tags: [
        { name: 'TGI', description: 'Hugging Face text-generation-inference' },
        { name: 'OpenAI', description: 'OpenAI’s API (and vLLM’s extras)' },
        { name: 'Together', description: 'Together’s inference API' },
      ],
    },
  });
  void app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { url: '/api-doc/openapi.json' } });
  void app.register(async (routes) => {
    registerTgiRoutes(routes, context);
    registerOpenAiRoutes(routes, context);
    registerTogetherRoutes(routes, context);
    registerMiscRoutes(routes, context);
  });
  void app.register(import('./routes/embeddings.js'), { context });

  const ready = (async () => {
    try {
      const model = typeof options.model === 'function' ? await options.model() : options.model;
      const maxPositions = model.backend.model.maxPositions;
      const requested = options.limits ?? {};
      const maxTotalTokens = requested.maxTotalTokens ?? maxPositions;
      const engineLimits: Partial<EngineLimits> = {
        ...requested,
        maxTotalTokens,
        maxBestOf: requested.maxBestOf ?? DEFAULT_LIMITS.maxBestOf,
        maxN: requested.maxN ?? DEFAULT_LIMITS.maxN,
        maxStopSequences: requested.maxStopSequences ?? DEFAULT_LIMITS.maxStopSequences,
        maxConcurrentRequests: requested.maxConcurrentRequests ?? DEFAULT_LIMITS.maxConcurrentRequests,
        // OpenAI's top_logprobs goes up to 20; the TGI routes keep TGI's own cap.
        maxTopNTokens: Math.max(20, requested.maxTopNTokensTgi ?? DEFAULT_LIMITS.maxTopNTokensTgi),
      };
      const engine = createEngine({
        backend: model.backend,
        tokenizer: model.tokenizer,
        limits: engineLimits,
        ...(options.scheduler === undefined ? {} : { scheduler: options.scheduler }),
        onStep: (stats) => metrics.step(stats),
        prefixCache: { maxBytes: options.prefixCacheBytes ?? DEFAULT_PREFIX_CACHE_BYTES },
      });
      loaded = {
        model,
        engine,
        limits: {
          ...engine.limits,
          maxTopNTokensTgi: requested.maxTopNTokensTgi ?? DEFAULT_LIMITS.maxTopNTokensTgi,
          maxClientBatchSize: requested.maxClientBatchSize ?? DEFAULT_LIMITS.maxClientBatchSize,
        },
      };
    } catch (error) {
      loadError = error instanceof Error ? error : new Error(String(error));
      throw loadError;
    }
  })();
  ready.catch(() => undefined);

  return {
    app,
    ready,
    engine: () => loaded?.engine,
    async close(closeOptions = {}) {
      if (closing) return;
      const timeoutMs = closeOptions.timeoutMs ?? 30_000;
      const drained = loaded?.engine.close({ timeoutMs });
      closing = true;
      // Stop listening first; open streams end as their generations finish (or are cancelled at the timeout).
      const closed = app.close();
      await drained;
      // Let the last responses finish writing (bounded), then drop the connections left: idle keep-alive sockets
      // and sockets that never sent a request would hold close() open until the client's keep-alive timeout.
      const deadline = Date.now() + 2_000;
      while (inFlight.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      app.server.closeAllConnections();
      await closed;
      await loaded?.model.backend.doDispose();
    },
  };
}

import { detectWatermark } from '@gen/sampling';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { validationError } from '../errors.js';
import { HIDDEN, ROUTE_SCHEMAS } from '../schemas/routes.js';
import { checkDetokenizeBody, checkTokenizeBody, checkWatermarkDetectBody } from '../schemas/tgi.js';

function tokenIds(value: unknown, name: string, vocabSize: number): number[] {
  if (!Array.isArray(value) || value.length === 0)
    throw validationError(`\`${name}\` must be a non-empty array of token ids`, name);
  for (const id of value) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw validationError(
        `\`${name}\` must hold integers in [0, ${vocabSize - 1}]. Given: ${JSON.stringify(id)}`,
        name,
      );
    }
  }
  return value as number[];
}

/** Registers `/tokenize`, `/detokenize`, `/watermark/detect`, `/info`, `/health`, `/metrics`, `/docs` and the OpenAPI document. */
export function registerMiscRoutes(app: FastifyInstance, context: ServerContext): void {
  app.post('/tokenize', { schema: ROUTE_SCHEMAS['POST /tokenize'] }, async (request) => {
    const { model } = context.ready();
    const body = checkTokenizeBody(request.body);
    const add = body.parameters?.add_special_tokens ?? true;
    return model.tokenizer.encodeWithOffsets(body.inputs, { addSpecialTokens: add });
  });

  app.post('/detokenize', { schema: ROUTE_SCHEMAS['POST /detokenize'] }, async (request) => {
    const { model } = context.ready();
    const body = checkDetokenizeBody(request.body);
    const ids = tokenIds(body.ids, 'ids', model.backend.model.vocabSize);
    const skip = body.skip_special_tokens ?? false;
    return { text: model.tokenizer.decode(ids, { skipSpecialTokens: skip }) };
  });

  app.post('/watermark/detect', { schema: ROUTE_SCHEMAS['POST /watermark/detect'] }, async (request) => {
    const { model } = context.ready();
    const body: Record<string, unknown> = checkWatermarkDetectBody(request.body);
    const vocabSize = model.backend.model.vocabSize;
    let ids: number[];
    if (typeof body['text'] === 'string') {
      if (body['ids'] !== undefined) throw validationError('give either `text` or `ids`, not both', 'text');
      ids = model.tokenizer.encode(body['text'], { addSpecialTokens: false });
    } else if (body['ids'] !== undefined) ids = tokenIds(body['ids'], 'ids', vocabSize);
    else throw validationError('`text` (a string) or `ids` (token ids) is required', 'text');
    const option = (name: string) => (body[name] === null ? undefined : body[name]);
    const detection = detectWatermark(ids, {
      vocabSize,
      ...(option('gamma') === undefined ? {} : { gamma: option('gamma') as number }),
      ...(option('z_threshold') === undefined ? {} : { zThreshold: option('z_threshold') as number }),
      ...(option('ignore_repeated_bigrams') === undefined
        ? {}
        : { ignoreRepeatedBigrams: option('ignore_repeated_bigrams') as boolean }),
      ...(option('prefix_token') === undefined ? {} : { prefixToken: option('prefix_token') as number }),
    });
    return {
      z_score: detection.zScore,
      p_value: detection.pValue,
      green_fraction: detection.greenFraction,
      green_tokens: detection.greenCount,
      scored_tokens: detection.scoredCount,
      prediction: detection.prediction,
      verdict: detection.prediction ? 'watermarked' : 'not watermarked',
    };
  });

  app.get('/info', { schema: ROUTE_SCHEMAS['GET /info'] }, async () => {
    const { model, limits } = context.ready();
    return {
      model_id: model.modelId,
      model_sha: null,
      model_dtype: model.backend.model.dtype,
      model_device_type: model.backend.capabilities.device,
      model_pipeline_tag: 'text-generation',
      max_concurrent_requests: limits.maxConcurrentRequests,
      max_best_of: limits.maxBestOf,
      max_stop_sequences: limits.maxStopSequences,
      max_input_tokens: limits.maxInputTokens,
      max_total_tokens: limits.maxTotalTokens,
      max_client_batch_size: limits.maxClientBatchSize,
      max_top_n_tokens: limits.maxTopNTokensTgi,
      router: 'gen',
      version: context.version,
      sha: null,
      docker_label: null,
      backend: model.backend.backendId,
    };
  });

  app.get('/health', { schema: ROUTE_SCHEMAS['GET /health'] }, async () => {
    context.ready();
    return {};
  });

  app.get('/metrics', { schema: ROUTE_SCHEMAS['GET /metrics'] }, async (_request, reply) => {
    void reply.header('content-type', context.metrics.registry.contentType);
    return context.metrics.registry.metrics();
  });

  // The document @fastify/swagger builds from the route schemas, where TGI serves its own; /docs is its UI.
  app.get('/api-doc/openapi.json', { schema: HIDDEN }, async () => app.swagger());
}

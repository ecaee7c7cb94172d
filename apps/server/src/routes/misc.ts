import { detectWatermark } from '@gen/sampling';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { validationError } from '../errors.js';
import { openApiDocument } from '../openapi.js';
import { asObject } from '../wire/tgi.js';

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
  app.post('/tokenize', async (request) => {
    const { model } = context.ready();
    const body = asObject(request.body, 'request body');
    if (typeof body['inputs'] !== 'string') throw validationError('`inputs` must be a string', 'inputs');
    const parameters =
      body['parameters'] === undefined || body['parameters'] === null ? {} : asObject(body['parameters'], 'parameters');
    const add = parameters['add_special_tokens'] ?? true;
    if (typeof add !== 'boolean') throw validationError('`add_special_tokens` must be a boolean', 'add_special_tokens');
    return model.tokenizer.encodeWithOffsets(body['inputs'], { addSpecialTokens: add });
  });

  app.post('/detokenize', async (request) => {
    const { model } = context.ready();
    const body = asObject(request.body, 'request body');
    const ids = tokenIds(body['ids'], 'ids', model.backend.model.vocabSize);
    const skip = body['skip_special_tokens'] ?? false;
    if (typeof skip !== 'boolean')
      throw validationError('`skip_special_tokens` must be a boolean', 'skip_special_tokens');
    return { text: model.tokenizer.decode(ids, { skipSpecialTokens: skip }) };
  });

  app.post('/watermark/detect', async (request) => {
    const { model } = context.ready();
    const body = asObject(request.body, 'request body');
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

  app.get('/info', async () => {
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

  app.get('/health', async () => {
    context.ready();
    return {};
  });

  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', context.metrics.registry.contentType);
    return context.metrics.registry.metrics();
  });

  app.get('/api-doc/openapi.json', async () => openApiDocument(context.version));

  app.get('/docs', async (_request, reply) => {
    void reply.header('content-type', 'text/html; charset=utf-8');
    return DOCS_PAGE;
  });
}

/** A self-contained page (no CDN: servers often run offline) that renders the OpenAPI document. */
const DOCS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gen API</title>
<style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ddd;padding-bottom:.3rem}.op{margin:1rem 0;padding:.6rem 1rem;border:1px solid #e3e3e3;border-radius:6px}
.m{display:inline-block;min-width:4.5rem;font-weight:600}.post{color:#1a7f37}.get{color:#0969da}pre{background:#f6f8fa;padding:.6rem;overflow:auto;font-size:.85rem}</style>
</head><body><h1>gen API</h1><p>OpenAPI document: <a href="/api-doc/openapi.json">/api-doc/openapi.json</a></p><div id="ops">Loading...</div>
<script>
fetch('/api-doc/openapi.json').then(r=>r.json()).then(doc=>{
  const root=document.getElementById('ops');root.textContent='';
  const tags={};for(const [path,item] of Object.entries(doc.paths))for(const [method,op] of Object.entries(item))(tags[(op.tags||['other'])[0]]??=[]).push([path,method,op]);
  for(const [tag,ops] of Object.entries(tags)){const h=document.createElement('h2');h.textContent=tag;root.append(h);
    for(const [path,method,op] of ops){const d=document.createElement('div');d.className='op';
      const head=document.createElement('div');const m=document.createElement('span');m.className='m '+method;m.textContent=method.toUpperCase();
      const p=document.createElement('code');p.textContent=path;head.append(m,p);const s=document.createElement('p');s.textContent=op.summary||'';d.append(head,s);
      const body=op.requestBody?.content?.['application/json']?.schema;if(body){const pre=document.createElement('pre');pre.textContent=JSON.stringify(body,null,2);d.append(pre);}
      root.append(d);}}
}).catch(e=>{document.getElementById('ops').textContent='Could not load the document: '+e});
</script></body></html>`;

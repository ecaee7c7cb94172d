/**
 * The non-generation routes and Together's `/inference`, against a real server on 127.0.0.1 (tiny model-kit
 * model): `/tokenize`, `/detokenize`, `/info`, `/health`, `/metrics`, `/docs`, `/api-doc/openapi.json`,
 * `/v1/models`, `/inference` and `/watermark/detect`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedModel } from './context.js';
import { deferred, mockModel, postJson, send, startServer, tinyModel, type RunningServer } from './testing/harness.js';

let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ model: await tinyModel() });
});
afterAll(() => server?.close());

describe('/tokenize and /detokenize', () => {
  it('tokenize: [{id, text, start, stop}] with code-point offsets; BOS added unless add_special_tokens is false', async () => {
    const inputs = 'héllo wörld';
    const answer = await postJson(server.url, '/tokenize', { inputs });
    expect(answer.status).toBe(200);
    const tokens = answer.json as { id: number; text: string; start: number; stop: number }[];
    expect(tokens[0]).toEqual({ id: 507, text: '', start: 0, stop: 0 });
    for (const token of tokens) {
      expect(Object.keys(token).sort()).toEqual(['id', 'start', 'stop', 'text']);
      expect(token.start).toBeLessThanOrEqual(token.stop);
      expect(token.text).toBe(Array.from(inputs).slice(token.start, token.stop).join(''));
    }
    expect(tokens.at(-1)!.stop).toBe(Array.from(inputs).length);

    const bare = await postJson(server.url, '/tokenize', {
      inputs,
      parameters: { add_special_tokens: false },
    });
    expect((bare.json as unknown[]).length).toBe(tokens.length - 1);
  });

  it('detokenize reverses tokenize; special tokens kept unless skip_special_tokens', async () => {
    const inputs = 'Round trip: ünïcode ✓';
    const tokens = (await postJson(server.url, '/tokenize', { inputs })).json as { id: number }[];
    const ids = tokens.map((t) => t.id);
    const kept = await postJson(server.url, '/detokenize', { ids });
    expect(kept.status).toBe(200);
    expect(kept.json).toEqual({ text: `<|begin_of_text|>${inputs}` });
    const skipped = await postJson(server.url, '/detokenize', { ids, skip_special_tokens: true });
    expect(skipped.json).toEqual({ text: inputs });
  });

  it('detokenize refuses out-of-vocabulary ids with 422', async () => {
    const answer = await postJson(server.url, '/detokenize', { ids: [1, 512] });
    expect(answer.status).toBe(422);
    expect(answer.json).toMatchObject({ error_type: 'validation' });
    expect((answer.json as { error: string }).error).toContain('[0, 511]');
  });
});

describe('/info, /health, /v1/models', () => {
  it('/info has every TGI field with the configured limits', async () => {
    const answer = await send(server.url, { path: '/info' });
    expect(answer.status).toBe(200);
    const info = answer.json as Record<string, unknown>;
    for (const key of [
      'model_id',
      'model_sha',
      'model_pipeline_tag',
      'max_concurrent_requests',
      'max_best_of',
      'max_stop_sequences',
      'max_input_tokens',
      'max_total_tokens',
      'max_client_batch_size',
      'router',
      'version',
      'sha',
      'docker_label',
    ]) {
      expect(info, key).toHaveProperty(key);
    }
    expect(info).toMatchObject({
      model_id: 'tiny',
      model_pipeline_tag: 'text-generation',
      max_concurrent_requests: 128,
      max_best_of: 2,
      max_stop_sequences: 4,
      max_input_tokens: 511,
      max_total_tokens: 512,
      max_client_batch_size: 4,
    });
    expect(typeof info['version']).toBe('string');
  });

  it('/health is 200 {} once loaded', async () => {
    const answer = await send(server.url, { path: '/health' });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({});
  });

  it('/v1/models lists the served model', async () => {
    const answer = await send(server.url, { path: '/v1/models' });
    expect(answer.json).toEqual({
      object: 'list',
      data: [{ id: 'tiny', object: 'model', created: 0, owned_by: 'gen' }],
    });
  });

  it('while the model loads: /health 503, generation routes 503 in their envelope, /metrics and /docs 200', async () => {
    const gate = deferred<void>();
    const loading = await startServer(
      {
        model: async () => {
          await gate.promise;
          return mockModel();
        },
      },
      false,
    );
    try {
      const health = await send(loading.url, { path: '/health' });
      expect(health.status).toBe(503);
      expect(health.headers['retry-after']).toBe('1');
      expect(health.json).toEqual({ error: 'Model is loading', error_type: 'unhealthy' });
      const generate = await postJson(loading.url, '/generate', { inputs: 'x' });
      expect(generate.status).toBe(503);
      expect(generate.json).toMatchObject({ error_type: 'unhealthy' });
      const chat = await postJson(loading.url, '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }] });
      expect(chat.status).toBe(503);
      expect(chat.json).toMatchObject({ error: { type: 'server_error', message: 'Model is loading' } });
      expect((await send(loading.url, { path: '/metrics' })).status).toBe(200);
      expect((await send(loading.url, { path: '/docs' })).status).toBe(200);

      gate.resolve();
      await loading.gen.ready;
      expect((await send(loading.url, { path: '/health' })).status).toBe(200);
      expect(
        (await postJson(loading.url, '/generate', { inputs: 'x', parameters: { max_new_tokens: 2 } })).status,
      ).toBe(200);
    } finally {
      gate.resolve();
      await loading.close();
    }
  });

  it('a model that fails to load: /health 503 with the reason', async () => {
    const failing = await startServer(
      {
        model: () => Promise.reject(new Error('no such directory')) as Promise<LoadedModel>,
      },
      false,
    );
    try {
      await expect(failing.gen.ready).rejects.toThrow('no such directory');
      const health = await send(failing.url, { path: '/health' });
      expect(health.status).toBe(503);
      expect((health.json as { error: string }).error).toContain('no such directory');
    } finally {
      await failing.close();
    }
  });
});

describe('/metrics', () => {
  function metricValue(text: string, name: string): number {
    let total = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) total += Number(line.split(' ').at(-1));
    }
    return total;
  }

  it('exposes TGI metric names, and counts requests, successes, failures and tokens', async () => {
    const before = (await send(server.url, { path: '/metrics' })).text;
    await postJson(server.url, '/generate', { inputs: 'Count me', parameters: { max_new_tokens: 3 } });
    await postJson(server.url, '/generate_stream', { inputs: 'And me', parameters: { max_new_tokens: 2 } });
    await postJson(server.url, '/generate', { inputs: 'Bad', parameters: { temperature: -1 } });
    const answer = await send(server.url, { path: '/metrics' });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^text\/plain/);
    const text = answer.text;
    for (const name of [
      'tgi_request_count',
      'tgi_request_success',
      'tgi_request_failure',
      'tgi_queue_size',
      'tgi_batch_current_size',
      'tgi_request_duration',
      'tgi_request_queue_duration',
      'tgi_request_inference_duration',
      'tgi_request_mean_time_per_token_duration',
      'tgi_request_input_length',
      'tgi_request_generated_tokens',
      'tgi_batch_forward_duration',
    ]) {
      expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    }
    expect(metricValue(text, 'tgi_request_count') - metricValue(before, 'tgi_request_count')).toBe(3);
    expect(metricValue(text, 'tgi_request_success') - metricValue(before, 'tgi_request_success')).toBe(2);
    expect(text).toMatch(/^tgi_request_failure\{err="validation"\} [1-9]/m);
    expect(
      metricValue(text, 'tgi_request_generated_tokens_sum') - metricValue(before, 'tgi_request_generated_tokens_sum'),
    ).toBe(5);
    expect(text).toMatch(/^tgi_batch_forward_duration_count\{method="prefill"\} [1-9]/m);
    expect(text).toMatch(/^tgi_batch_forward_duration_count\{method="decode"\} [1-9]/m);
    expect(text).toMatch(/^tgi_queue_size 0$/m);
  });
});

describe('/docs and /api-doc/openapi.json', () => {
  it('serves Swagger UI from the package (no CDN: works offline) and an OpenAPI 3 document naming every route', async () => {
    const docs = await send(server.url, { path: '/docs' });
    expect(docs.status).toBe(200);
    expect(docs.headers['content-type']).toMatch(/^text\/html/);
    const scripts = [...docs.text.matchAll(/src="([^"]+)"/g)].map((m) => m[1]!);
    expect(scripts.length).toBeGreaterThan(0);
    for (const script of scripts) {
      expect(script, 'every script is served by this server').not.toMatch(/^(https?:)?\/\//);
      const asset = await send(server.url, { path: new URL(script, `${server.url}/docs/`).pathname });
      expect(asset.status, script).toBe(200);
    }
    expect((await send(server.url, { path: '/docs/json' })).json).toEqual(
      (await send(server.url, { path: '/api-doc/openapi.json' })).json,
    );
    const openapi = await send(server.url, { path: '/api-doc/openapi.json' });
    expect(openapi.status).toBe(200);
    const doc = openapi.json as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toMatch(/^3\./);
    for (const [path, method] of [
      ['/generate', 'post'],
      ['/generate_stream', 'post'],
      ['/', 'post'],
      ['/tokenize', 'post'],
      ['/detokenize', 'post'],
      ['/info', 'get'],
      ['/health', 'get'],
      ['/metrics', 'get'],
      ['/v1/chat/completions', 'post'],
      ['/v1/completions', 'post'],
      ['/v1/models', 'get'],
      ['/inference', 'post'],
      ['/watermark/detect', 'post'],
    ] as const) {
      expect(doc.paths[path]?.[method], `${method} ${path}`).toBeDefined();
    }
  });
});

describe("Together's /inference", () => {
  // Seed 002's request, as sent with `requests.post(endpoint, json=...)`.
  const seedRequest = {
    model: 'togethercomputer/RedPajama-INCITE-7B-Instruct',
    prompt:
      "Given a review from Amazon's food products, the task is to generate a short summary of the given review in the input.\n" +
      'Input: I have bought several of the Vitality canned dog food products and have found them all to be of good quality.\n' +
      'Output: Good Quality Dog Food\n' +
      'Input: My toddler loves this game to a point where he asks for it.\n' +
      'Output:',
    top_p: 1,
    top_k: 40,
    temperature: 0.8,
    max_tokens: 100,
    repetition_penalty: 1,
    stop: '\n\n',
  };

  it("answers seed 002's request with output.choices[0].text, raw_compute_time and result_type", async () => {
    const answer = await postJson(server.url, '/inference', seedRequest, {
      authorization: 'Bearer <YOUR_API_KEY>',
      'user-agent': '<YOUR_APP_NAME>',
    });
    expect(answer.status).toBe(200);
    const body = answer.json as {
      output: {
        choices: { text: string; finish_reason: string; index: number }[];
        raw_compute_time: number;
        result_type: string;
        usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
      };
    };
    expect(body.output.result_type).toBe('language-model-inference');
    expect(body.output.raw_compute_time).toBeGreaterThan(0);
    expect(body.output.choices).toHaveLength(1);
    const choice = body.output.choices[0]!;
    expect(Object.keys(choice).sort()).toEqual(['finish_reason', 'index', 'text']);
    expect(choice.index).toBe(0);
    expect(['length', 'stop']).toContain(choice.finish_reason);
    expect(choice.text).not.toContain('\n\n');
    const usage = body.output.usage;
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    expect(usage.completion_tokens).toBeLessThanOrEqual(100);
  });

  it('temperature 0 is greedy (same text as TGI /generate); logprobs adds a logprobs object per choice', async () => {
    const request = { prompt: 'Hello', max_tokens: 5, temperature: 0, logprobs: 2 };
    const answer = await postJson(server.url, '/inference', request);
    const tgi = await postJson(server.url, '/generate', { inputs: 'Hello', parameters: { max_new_tokens: 5 } });
    const choice = (
      answer.json as {
        output: {
          choices: {
            text: string;
            logprobs: { tokens: string[]; token_logprobs: number[]; top_logprobs: Record<string, number>[] };
          }[];
        };
      }
    ).output.choices[0]!;
    expect(choice.text).toBe((tgi.json as { generated_text: string }).generated_text);
    expect(choice.logprobs.tokens).toHaveLength(5);
    expect(choice.logprobs.token_logprobs).toHaveLength(5);
    for (const top of choice.logprobs.top_logprobs) expect(Object.keys(top).length).toBeLessThanOrEqual(2);
  });

  it('errors use the OpenAI envelope with status 400', async () => {
    const answer = await postJson(server.url, '/inference', { prompt: 42 });
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual({
      error: {
        message: '`prompt` must be a string',
        type: 'invalid_request_error',
        param: 'prompt',
        code: 'validation',
      },
    });
  });
});

describe('/watermark/detect', () => {
  it('detects a watermarked generation (by ids and by text), not a plain one', async () => {
    const generate = async (watermark: boolean) => {
      const answer = await postJson(server.url, '/generate', {
        inputs: 'The watermark test',
        parameters: { max_new_tokens: 150, do_sample: true, seed: 3, watermark, details: true, ignore_eos: true },
      });
      expect(answer.status).toBe(200);
      return answer.json as { generated_text: string; details: { tokens: { id: number }[] } };
    };
    const detect = async (body: unknown) => {
      const answer = await postJson(server.url, '/watermark/detect', body);
      expect(answer.status).toBe(200);
      return answer.json as {
        z_score: number;
        p_value: number;
        prediction: boolean;
        verdict: string;
        scored_tokens: number;
        green_tokens: number;
        green_fraction: number;
      };
    };
    const marked = await generate(true);
    const plain = await generate(false);

    const markedResult = await detect({ ids: marked.details.tokens.map((t) => t.id) });
    expect(Object.keys(markedResult).sort()).toEqual([
      'green_fraction',
      'green_tokens',
      'p_value',
      'prediction',
      'scored_tokens',
      'verdict',
      'z_score',
    ]);
    expect(markedResult.prediction).toBe(true);
    expect(markedResult.verdict).toBe('watermarked');
    expect(markedResult.z_score).toBeGreaterThan(4);

    const plainResult = await detect({ ids: plain.details.tokens.map((t) => t.id) });
    expect(plainResult.prediction).toBe(false);
    expect(plainResult.verdict).toBe('not watermarked');
    expect(plainResult.z_score).toBeLessThan(4);

    // By text: the text is re-tokenized without special tokens. (The random-weight model writes invalid UTF-8 that
    // decodes to U+FFFD, so its text does not round-trip to the same ids; a real model's text does.)
    const ids = (
      (
        await postJson(server.url, '/tokenize', {
          inputs: marked.generated_text,
          parameters: { add_special_tokens: false },
        })
      ).json as { id: number }[]
    ).map((t) => t.id);
    expect(await detect({ text: marked.generated_text })).toEqual(await detect({ ids }));
  });

  it('refuses a request without text or ids, and both at once (422)', async () => {
    expect((await postJson(server.url, '/watermark/detect', {})).status).toBe(422);
    const both = await postJson(server.url, '/watermark/detect', { text: 'a', ids: [1, 2] });
    expect(both.status).toBe(422);
    expect(both.json).toMatchObject({ error_type: 'validation' });
  });
});

/**
 * Error envelopes and statuses, against a real server on 127.0.0.1: every bad input gets its family's envelope
 * and the right status before any stream starts; 404 per family; the API key; CORS.
 */
import { readFileSync } from 'node:fs';
import OpenAI, { AuthenticationError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import {
  mockModel,
  postJson,
  send,
  sseJson,
  startServer,
  waitFor,
  type HttpAnswer,
  type RunningServer,
} from './testing/harness.js';

let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ model: await mockModel(), bodyLimit: 50_000 });
});
afterAll(() => server?.close());

/** A TGI error answer: the status, JSON (never SSE), and exactly `{error, error_type}`. */
function expectTgiError(answer: HttpAnswer, status: number, message?: string | RegExp, errorType = 'validation'): void {
  expect(answer.status, answer.text).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  const body = answer.json as { error: string; error_type: string };
  expect(Object.keys(body).sort()).toEqual(['error', 'error_type']);
  expect(typeof body.error).toBe('string');
  expect(body.error.length).toBeGreaterThan(0);
  expect(body.error_type).toBe(errorType);
  if (message !== undefined) expect(body.error).toMatch(message);
}

/** An OpenAI error answer: the status and exactly `{error: {message, type, param, code}}`. */
function expectOpenAiError(answer: HttpAnswer, status: number, message?: string | RegExp, param?: string | null): void {
  expect(answer.status, answer.text).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  const body = answer.json as { error: { message: string; type: string; param: unknown; code: unknown } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(typeof body.error.type).toBe('string');
  expect(body.error.param === null || typeof body.error.param === 'string').toBe(true);
  expect(body.error.code === null || typeof body.error.code === 'string').toBe(true);
  if (status === 400) expect(body.error.type).toBe('invalid_request_error');
  if (message !== undefined) expect(body.error.message).toMatch(message);
  if (param !== undefined) expect(body.error.param).toBe(param);
}

const TGI_ROUTES = [
  { path: '/generate', stream: undefined },
  { path: '/generate_stream', stream: undefined },
  { path: '/', stream: false },
  { path: '/', stream: true },
] as const;

// [parameters, message] pairs: each is invalid on every TGI route, streaming or not.
const BAD_TGI_PARAMETERS: [Record<string, unknown>, string | RegExp][] = [
  [{ temperature: 0 }, '`temperature` must be strictly positive'],
  [{ temperature: -1 }, '`temperature` must be strictly positive'],
  [{ top_p: 1.5 }, '`top_p` must be > 0.0 and <= 1.0'],
  [{ top_p: 0 }, '`top_p`'],
  [{ top_k: -3 }, '`top_k`'],
  [{ typical_p: 2 }, '`typical_p`'],
  [{ repetition_penalty: 0 }, '`repetition_penalty`'],
  [{ max_new_tokens: 0 }, '`max_new_tokens` must be strictly positive'],
  [{ max_new_tokens: 1.5 }, '`max_new_tokens`'],
  [{ max_new_tokens: 100_000 }, '`inputs` tokens + `max_new_tokens` must be <= 512'],
  [{ stop: ['a', 'b', 'c', 'd', 'e'] }, '`stop` supports up to 4 stop sequences'],
  [{ stop: [1] }, '`stop`'],
  [{ top_n_tokens: 6 }, '`top_n_tokens` must be >= 0 and <= 5'],
  [{ truncate: 0 }, '`truncate`'],
  [{ seed: -1 }, '`seed`'],
  [{ seed: 'abc' }, '`seed`'],
  [{ watermark: 'yes' }, '`watermark` must be a boolean'],
  [{ details: 'yes' }, '`details` must be a boolean'],
  [{ logit_bias: [1] }, '`logit_bias`'],
  [{ logit_bias: { '99999': 1 } }, '`logit_bias`'],
  [{ grammar: { type: 'json', value: { type: 'integer', multipleOf: 2 } } }, 'JSON Schema keyword `multipleOf`'],
  [{ grammar: { type: 'ebnf', value: 'root ::= "a"' } }, '`grammar.type` must be'],
  [{ adapter_id: 'lora' }, '`adapter_id` (LoRA adapters) is not supported'],
];

describe('TGI routes: 422 validation before anything is streamed', () => {
  for (const route of TGI_ROUTES) {
    const label = `${route.path}${route.stream === undefined ? '' : ` stream=${route.stream}`}`;
    it(`${label}: every bad parameter is a 422 {error, error_type: validation} JSON answer`, async () => {
      for (const [parameters, message] of BAD_TGI_PARAMETERS) {
        const body = { inputs: 'Hello', parameters, ...(route.stream === undefined ? {} : { stream: route.stream }) };
        expectTgiError(await postJson(server.url, route.path, body), 422, message);
      }
    });

    it(`${label}: bad bodies (missing inputs, wrong types, empty inputs, not an object) are 422`, async () => {
      const bodies: [unknown, string][] = [
        [{ parameters: {} }, '`inputs` is required: a string'],
        [{ inputs: 42 }, '`inputs` must be a string'],
        [{ inputs: '' }, '`inputs` cannot be empty'],
        [{ inputs: 'x', parameters: [] }, '`parameters` must be a JSON object'],
        [{ inputs: 'x', parameters: 'max_new_tokens=3' }, '`parameters` must be a JSON object'],
        [[{ inputs: 'x' }], 'request body must be a JSON object'],
        ['just a string', 'request body must be a JSON object'],
        [null, 'request body must be a JSON object'],
      ];
      for (const [body, message] of bodies) {
        const withStream =
          route.stream === undefined || typeof body !== 'object' || body === null || Array.isArray(body)
            ? body
            : { ...body, stream: route.stream };
        expectTgiError(await postJson(server.url, route.path, JSON.stringify(withStream)), 422, message);
      }
    });
  }

  it('best_of > 1 and n > 1 are refused when streaming (422), allowed otherwise', async () => {
    for (const path of ['/generate_stream', '/']) {
      const answer = await postJson(server.url, path, {
        inputs: 'x',
        stream: true,
        parameters: { best_of: 2, do_sample: true },
      });
      expectTgiError(answer, 422, '`best_of` != 1 is not supported when streaming tokens');
    }
    const ok = await postJson(server.url, '/generate', {
      inputs: 'x',
      parameters: { best_of: 2, do_sample: true, max_new_tokens: 2 },
    });
    expect(ok.status).toBe(200);
    expectTgiError(
      await postJson(server.url, '/generate', { inputs: 'x', parameters: { best_of: 3, do_sample: true } }),
      422,
      '`best_of` must be > 0 and <= 2',
    );
    expectTgiError(
      await postJson(server.url, '/generate', { inputs: 'x', parameters: { best_of: 2 } }),
      422,
      'you must use sampling when `best_of` is > 1',
    );
  });

  it('stream must be a boolean on /', async () => {
    expectTgiError(await postJson(server.url, '/', { inputs: 'x', stream: 'yes' }), 422, '`stream` must be a boolean');
  });

  it('TGI peers: top_p = 1.0 and a plain-string stop are accepted', async () => {
    const answer = await postJson(server.url, '/generate', {
      inputs: 'x',
      parameters: { top_p: 1.0, do_sample: true, stop: 'zzz', max_new_tokens: 2 },
    });
    expect(answer.status).toBe(200);
  });
});

describe('TGI routes: 400, 413, 415', () => {
  it('malformed JSON and empty bodies are 400', async () => {
    for (const path of ['/generate', '/generate_stream', '/', '/tokenize']) {
      expectTgiError(
        await postJson(server.url, path, '{"inputs": "x"'),
        400,
        /Failed to parse the request body as JSON/,
      );
      expectTgiError(await postJson(server.url, path, ''), 400, 'Request body is empty');
      expectTgiError(await postJson(server.url, path, '   '), 400, 'Request body is empty');
    }
  });

  it('a body nested deeper than 64 levels is 400 (it would overflow the stack of chat templates)', async () => {
    const deep = `{"inputs":"x","parameters":{"logit_bias":${'['.repeat(70)}${']'.repeat(70)}}}`;
    expectTgiError(await postJson(server.url, '/generate', deep), 400, 'Request body is nested too deeply');
    const shallow = `{"inputs":"x","parameters":{"max_new_tokens":1,"x":${'['.repeat(60)}${']'.repeat(60)}}}`;
    expect((await postJson(server.url, '/generate', shallow)).status).toBe(200);
  });

  it('a body over the payload limit is 413, in each family', async () => {
    const huge = JSON.stringify({ inputs: 'x'.repeat(60_000) });
    expectTgiError(await postJson(server.url, '/generate', huge), 413, 'Request body is too large');
    expectTgiError(await postJson(server.url, '/generate_stream', huge), 413);
    expectOpenAiError(await postJson(server.url, '/v1/completions', huge), 413, 'Request body is too large');
  });

  it('a body that is not JSON and says so (multipart, octet-stream, gzip) is 415', async () => {
    const multipart = await send(server.url, {
      path: '/generate',
      body: '--x\r\ncontent-disposition: form-data; name="inputs"\r\n\r\nHello\r\n--x--',
      headers: { 'content-type': 'multipart/form-data; boundary=x' },
    });
    expectTgiError(multipart, 415, 'Expected request with `Content-Type: application/json`');
    const binary = await send(server.url, {
      path: '/v1/completions',
      body: '\u0000\u0001binary',
      headers: { 'content-type': 'application/octet-stream' },
    });
    expectOpenAiError(binary, 415, /Unsupported content type/);
    const gzipped = await send(server.url, {
      path: '/generate',
      body: gzipSync('{"inputs":"x"}').toString('latin1'),
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    expectTgiError(gzipped, 415, /Unsupported content encoding "gzip"/);
  });

  it('TGI routes refuse a POST that does not declare JSON, before reading it (axum wording, as TGI)', async () => {
    const cases: [string, Record<string, string | null>][] = [
      ['application/x-www-form-urlencoded', { 'content-type': 'application/x-www-form-urlencoded' }],
      ['text/plain', { 'content-type': 'text/plain;charset=UTF-8' }],
      ['none', { 'content-type': null }],
    ];
    for (const path of ['/generate', '/generate_stream', '/', '/tokenize', '/detokenize']) {
      for (const [name, headers] of cases) {
        const answer = await send(server.url, {
          path,
          body: '{"inputs":"x","parameters":{"max_new_tokens":1}}',
          headers,
        });
        expectTgiError(answer, 415, 'Expected request with `Content-Type: application/json`');
        expect(answer.status, `${path} ${name}`).toBe(415);
      }
      // Even an empty body: the media type is checked first.
      expectTgiError(await send(server.url, { path, body: '', headers: { 'content-type': null } }), 415);
    }
    for (const contentType of ['application/json', 'application/json; charset=utf-8', 'application/vnd.api+json']) {
      const answer = await send(server.url, {
        path: '/generate',
        body: '{"inputs":"x","parameters":{"max_new_tokens":1}}',
        headers: { 'content-type': contentType },
      });
      expect(answer.status, contentType).toBe(200);
    }
  });

  it('OpenAI routes take JSON sent with a lenient content type (curl -d form encoding, text/plain)', async () => {
    for (const contentType of ['application/x-www-form-urlencoded', 'text/plain', 'application/json; charset=utf-8']) {
      const answer = await send(server.url, {
        path: '/v1/completions',
        body: '{"model":"m","prompt":"x","max_tokens":1}',
        headers: { 'content-type': contentType },
      });
      expect(answer.status, contentType).toBe(200);
    }
  });
});

const CHAT = { messages: [{ role: 'user', content: 'Hello' }], max_tokens: 3 };
const COMPLETION = { prompt: 'Hello', max_tokens: 3 };

// [route, body patch, message, param]
const BAD_OPENAI: [string, Record<string, unknown>, string | RegExp, string | null][] = [
  ['chat', { temperature: -1 }, '`temperature` must be >= 0', 'temperature'],
  ['chat', { temperature: 'hot' }, '`temperature` must be a number', 'temperature'],
  ['chat', { top_p: 0 }, '`top_p`', 'top_p'],
  ['chat', { top_p: 1.5 }, '`top_p`', 'top_p'],
  ['chat', { n: 0 }, '`n`', 'n'],
  ['chat', { n: 17 }, '`n` must be > 0 and <= 16', 'n'],
  ['chat', { max_tokens: 0 }, '`max_tokens`', 'max_tokens'],
  ['chat', { max_tokens: 10_000 }, 'must be <= 512', 'max_new_tokens'],
  ['chat', { max_completion_tokens: -5 }, '`max_completion_tokens`', 'max_completion_tokens'],
  ['chat', { stop: ['a', 'b', 'c', 'd', 'e'] }, '`stop` supports up to 4', 'stop'],
  ['chat', { stop: 5 }, '`stop` must be a string or an array of strings', 'stop'],
  ['chat', { logprobs: 'yes' }, '`logprobs` must be a boolean', 'logprobs'],
  ['chat', { logprobs: true, top_logprobs: 21 }, '`top_logprobs` must be an integer between 0 and 20', 'top_logprobs'],
  ['chat', { top_logprobs: 2 }, '`top_logprobs` requires `logprobs`', 'top_logprobs'],
  ['chat', { messages: [] }, '`messages` must be a non-empty array', 'messages'],
  ['chat', { messages: 'Hello' }, '`messages` must be a non-empty array', 'messages'],
  ['chat', { messages: [{ content: 'x' }] }, '`messages[0].role` is required: a string', 'messages'],
  ['chat', { messages: [{ role: 'user', content: 7 }] }, '`messages[0].content`', 'messages'],
  [
    'chat',
    { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
    'not supported by this server (text only)',
    'messages',
  ],
  [
    'chat',
    { messages: [{ role: 'user', content: 'x', tool_calls: [null] }] },
    '`messages[0].tool_calls[0]` must be an object',
    'messages',
  ],
  [
    'chat',
    {
      messages: [
        {
          role: 'assistant',
          tool_calls: [{ function: { name: 'f', arguments: `${'['.repeat(100)}${']'.repeat(100)}` } }],
        },
      ],
    },
    '`tool_calls[].function.arguments` is nested too deeply',
    null,
  ],
  ['chat', { response_format: { type: 'xml' } }, '`response_format.type`', 'response_format'],
  ['chat', { guided_grammar: 'root ::= "a"' }, '`guided_grammar`', 'guided_grammar'],
  [
    'chat',
    { stream_options: { include_usage: true } },
    '`stream_options` is only allowed when `stream` is true',
    'stream_options',
  ],
  ['chat', { logit_bias: { '9999': 1 } }, '`logit_bias`', 'logit_bias'],
  ['chat', { logit_bias: { '5': 500 } }, '`logit_bias`', 'logit_bias'],
  ['chat', { seed: 'x' }, '`seed`', 'seed'],
  ['chat', { frequency_penalty: 3 }, '`frequency_penalty`', 'frequency_penalty'],
  ['chat', { tools: 'none' }, '`tools` must be an array', 'tools'],
  ['completions', { prompt: undefined }, '`prompt` is required', 'prompt'],
  ['completions', { prompt: [] }, '`prompt` must be a string', 'prompt'],
  ['completions', { prompt: [1.5, 'x'] }, '`prompt` must be a string', 'prompt'],
  ['completions', { suffix: 'x' }, '`suffix` (insertion) is not supported', 'suffix'],
  ['completions', { logprobs: 6 }, '`logprobs` must be an integer between 0 and 5', 'logprobs'],
  ['completions', { prompt: ['a', 'b', 'c', 'd', 'e'] }, '`prompt` supports up to 4 prompts', 'prompt'],
  ['completions', { temperature: -0.5 }, '`temperature` must be >= 0', 'temperature'],
  ['completions', { prompt: [999999] }, '`inputs` token ids must be integers in [0, 511]', 'inputs'],
];

describe('OpenAI routes: 400 {error: {message, type, param, code}} before anything is streamed', () => {
  for (const stream of [false, true]) {
    it(`stream=${stream}: every bad request is a 400 JSON answer in the OpenAI envelope`, async () => {
      for (const [route, patch, message, param] of BAD_OPENAI) {
        const base = route === 'chat' ? CHAT : COMPLETION;
        const body = { ...base, ...patch, ...(stream && !('stream_options' in patch) ? { stream } : {}) };
        const path = route === 'chat' ? '/v1/chat/completions' : '/v1/completions';
        expectOpenAiError(await postJson(server.url, path, body), 400, message, param);
      }
    });
  }

  it('best_of > 1 when streaming completions is refused (400)', async () => {
    expectOpenAiError(
      await postJson(server.url, '/v1/completions', { ...COMPLETION, best_of: 2, stream: true }),
      400,
      '`best_of` > 1 is not supported when streaming',
      'best_of',
    );
  });

  it('malformed JSON on /v1 routes is 400 in the OpenAI envelope', async () => {
    expectOpenAiError(await postJson(server.url, '/v1/chat/completions', '{'), 400, /Failed to parse/);
    expectOpenAiError(await postJson(server.url, '/v1/completions', '[1,'), 400, /Failed to parse/);
    expectOpenAiError(
      await postJson(server.url, '/v1/chat/completions', '[]'),
      400,
      'request body must be a JSON object',
    );
  });

  it('content parts [{type: text}] are joined into one string, as TGI does', async () => {
    const parts = await postJson(server.url, '/v1/chat/completions', {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Hel' },
            { type: 'text', text: 'lo' },
          ],
        },
      ],
      max_tokens: 3,
      temperature: 0,
    });
    const plain = await postJson(server.url, '/v1/chat/completions', { ...CHAT, temperature: 0 });
    expect(parts.status, parts.text).toBe(200);
    expect((parts.json as { usage: unknown }).usage).toEqual((plain.json as { usage: unknown }).usage);
  });
});

describe("Together's /inference errors", () => {
  it('are 400 in the OpenAI envelope', async () => {
    for (const [body, message] of [
      [{ prompt: 1 }, '`prompt` must be a string'],
      [{ prompt: 'x', temperature: -1 }, '`temperature` must be >= 0'],
      [{ prompt: 'x', max_tokens: 0 }, '`max_tokens` must be an integer >= 1'],
      [{ prompt: 'x', stop: [1] }, '`stop` must be a string or an array of strings'],
      [{ prompt: 'x', logprobs: 100 }, '`logprobs` must be an integer between 0 and 20'],
    ] as const) {
      expectOpenAiError(await postJson(server.url, '/inference', body), 400, message);
    }
  });
});

describe('404 per family', () => {
  it('TGI paths answer {error, error_type: not_found}; /v1 paths the OpenAI envelope', async () => {
    expectTgiError(await send(server.url, { path: '/nope' }), 404, 'Route GET /nope not found', 'not_found');
    expectTgiError(await send(server.url, { path: '/generate' }), 404, 'Route GET /generate not found', 'not_found');
    expectTgiError(await postJson(server.url, '/info', {}), 404, undefined, 'not_found');
    expectOpenAiError(await send(server.url, { path: '/v1/nope?x=1' }), 404, 'Route GET /v1/nope not found', null);
    expectOpenAiError(await postJson(server.url, '/v1/moderations', { input: 'x' }), 404);
    expect((await send(server.url, { path: '/v1/nope' })).json).toMatchObject({
      error: { type: 'invalid_request_error' },
    });
  });
});

describe('API key', () => {
  const KEY = 'sk-test-0123456789';
  let secured: RunningServer;
  beforeAll(async () => {
    secured = await startServer({ model: await mockModel(), apiKey: KEY });
  });
  afterAll(() => secured?.close());

  it('401 without a key or with a wrong one, in the family envelope; 200 with it (scheme case-insensitive)', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: `Bearer ${KEY}x` },
      { authorization: `Bearer ${KEY.slice(0, -1)}` },
      { authorization: KEY },
      { authorization: `Basic ${KEY}` },
      { authorization: 'Bearer ' },
    ];
    for (const headers of attempts) {
      const tgi = await postJson(secured.url, '/generate', { inputs: 'x' }, headers);
      expectTgiError(tgi, 401, 'Missing or invalid API key', 'authentication');
      const openai = await send(secured.url, { path: '/v1/models', headers });
      expectOpenAiError(openai, 401, 'Missing or invalid API key', null);
      expect((openai.json as { error: { code: string } }).error.code).toBe('invalid_api_key');
    }
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const ok = await postJson(
        secured.url,
        '/generate',
        { inputs: 'x', parameters: { max_new_tokens: 1 } },
        { authorization: `${scheme} ${KEY}` },
      );
      expect(ok.status, scheme).toBe(200);
    }
  });

  it('/health and /metrics stay open; the OpenAI SDK works with the key and gets AuthenticationError without', async () => {
    expect((await send(secured.url, { path: '/health' })).status).toBe(200);
    expect((await send(secured.url, { path: '/metrics' })).status).toBe(200);
    const good = new OpenAI({ baseURL: `${secured.url}/v1`, apiKey: KEY, maxRetries: 0 });
    expect((await good.models.list()).data).toHaveLength(1);
    const bad = new OpenAI({ baseURL: `${secured.url}/v1`, apiKey: 'nope', maxRetries: 0 });
    await expect(bad.models.list()).rejects.toBeInstanceOf(AuthenticationError);
  });

  it('the key is compared in constant time (SHA-256 digests through timingSafeEqual, so lengths do not leak)', () => {
    // Timing cannot be measured reliably in CI; check that the comparison is the constant-time one.
    const source = readFileSync(new URL('./server.ts', import.meta.url), 'utf8');
    const compare = /function keyMatches[\s\S]*?\n}/.exec(source)?.[0] ?? '';
    expect(compare).toContain("createHash('sha256')");
    expect(compare).toContain('timingSafeEqual(a, b)');
    expect(source).toContain('keyMatches(presented, expected)');
    expect(source).not.toMatch(/presented\s*===\s*expected|expected\s*===\s*presented/);
  });
});

describe('CORS', () => {
  let withCors: RunningServer;
  beforeAll(async () => {
    withCors = await startServer({ model: await mockModel(), corsOrigins: ['http://app.example'], apiKey: 'k' });
  });
  afterAll(() => withCors?.close());

  it('answers preflights for allowed origins (without the API key) and tags responses; not for others', async () => {
    const preflight = await send(withCors.url, {
      method: 'OPTIONS',
      path: '/v1/chat/completions',
      headers: {
        origin: 'http://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    expect(preflight.status).toBeLessThan(300);
    expect(preflight.headers['access-control-allow-origin']).toBe('http://app.example');
    expect(String(preflight.headers['access-control-allow-methods'])).toContain('POST');

    const actual = await postJson(
      withCors.url,
      '/generate',
      { inputs: 'x', parameters: { max_new_tokens: 1 } },
      { origin: 'http://app.example', authorization: 'Bearer k' },
    );
    expect(actual.status).toBe(200);
    expect(actual.headers['access-control-allow-origin']).toBe('http://app.example');
    expect(String(actual.headers['access-control-expose-headers'])).toContain('x-request-id');

    // Streams too: the hijacked SSE responses carry the CORS headers.
    for (const [path, body] of [
      ['/generate_stream', { inputs: 'x', parameters: { max_new_tokens: 1 } }],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 1, stream: true }],
    ] as const) {
      const stream = await postJson(withCors.url, path, body, {
        origin: 'http://app.example',
        authorization: 'Bearer k',
      });
      expect(stream.headers['content-type'], path).toMatch(/^text\/event-stream/);
      expect(stream.headers['access-control-allow-origin'], path).toBe('http://app.example');
      expect(String(stream.headers['access-control-expose-headers']), path).toContain('x-request-id');
    }

    const foreign = await postJson(
      withCors.url,
      '/generate',
      { inputs: 'x', parameters: { max_new_tokens: 1 } },
      { origin: 'http://evil.example', authorization: 'Bearer k' },
    );
    expect(foreign.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('no CORS headers when CORS is not configured', async () => {
    const answer = await postJson(
      server.url,
      '/generate',
      { inputs: 'x', parameters: { max_new_tokens: 1 } },
      { origin: 'http://app.example' },
    );
    expect(answer.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('failures after admission: 424 generation, 504 timeout, keep-alive comments', () => {
  it('a backend failure is a 424 {error_type: generation} before the stream, an error event after it started', async () => {
    let failNext = false;
    const model = await mockModel({
      failure: () => {
        if (!failNext) return undefined;
        failNext = false;
        return new Error('device lost');
      },
    });
    const failing = await startServer({ model });
    try {
      failNext = true;
      expectTgiError(
        await postJson(failing.url, '/generate', { inputs: 'x', parameters: { max_new_tokens: 3 } }),
        424,
        /device lost/,
        'generation',
      );
      failNext = true;
      expectOpenAiError(
        await postJson(failing.url, '/v1/completions', { prompt: 'x', max_tokens: 3 }),
        424,
        /device lost/,
      );
      failNext = true;
      // The failure happens at the first step, after the 200 and the headers: TGI's error event ends the stream.
      const stream = await postJson(failing.url, '/generate_stream', {
        inputs: 'x',
        parameters: { max_new_tokens: 3 },
      });
      expect(stream.status).toBe(200);
      expect(sseJson(stream.text).at(-1)).toMatchObject({ error_type: 'generation' });
      // The server keeps serving.
      const ok = await postJson(failing.url, '/generate', { inputs: 'x', parameters: { max_new_tokens: 2 } });
      expect(ok.status).toBe(200);
    } finally {
      await failing.close();
    }
  });

  it('requestTimeoutMs: 504 {error_type: timeout}; a stream ends with a timeout event; the sequence is freed', async () => {
    const model = await mockModel({ latencyMs: 40 });
    const slow = await startServer({ model, requestTimeoutMs: 150 });
    try {
      expectTgiError(
        await postJson(slow.url, '/generate', { inputs: 'x', parameters: { max_new_tokens: 100 } }),
        504,
        'Request timed out after 150 ms',
        'timeout',
      );
      expectOpenAiError(
        await postJson(slow.url, '/v1/chat/completions', {
          messages: [{ role: 'user', content: 'x' }],
          max_tokens: 100,
        }),
        504,
        'Request timed out after 150 ms',
      );
      const stream = await postJson(slow.url, '/generate_stream', { inputs: 'x', parameters: { max_new_tokens: 100 } });
      expect(stream.status).toBe(200);
      expect(sseJson(stream.text).at(-1)).toEqual({ error: 'Request timed out after 150 ms', error_type: 'timeout' });
      const chat = await postJson(slow.url, '/v1/chat/completions', {
        messages: [{ role: 'user', content: 'x' }],
        max_tokens: 100,
        stream: true,
      });
      const events = sseJson(chat.text);
      expect(events).not.toContain('[DONE]');
      expect(events.at(-1)).toMatchObject({ error: { message: 'Request timed out after 150 ms' } });
      await waitFor(() => model.backend.stats().sequences === 0, 2_000);
    } finally {
      await slow.close();
    }
  });

  it('a silent stream gets ": keep-alive" comments (SDKs ignore them)', async () => {
    const model = await mockModel({ latencyMs: (call) => (call.index === 1 ? 700 : 1) });
    const quiet = await startServer({ model, keepAliveMs: 200 });
    try {
      const answer = await postJson(quiet.url, '/generate_stream', { inputs: 'x', parameters: { max_new_tokens: 3 } });
      expect(answer.text).toMatch(/^: keep-alive$/m);
      expect(sseJson(answer.text)).toHaveLength(3);
    } finally {
      await quiet.close();
    }
  });
});

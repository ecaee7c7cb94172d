/**
 * HTTP fuzzing with fast-check against a real server on 127.0.0.1 (mock backend with the tiny tokenizer, small
 * limits so valid requests stay fast): about 2,000 generated and mutated bodies over every POST route. Whatever the
 * body, the server answers below 500, stays up, never starts a stream it then fails with a validation error, uses
 * its family's error envelope, and leaks no sequence.
 *
 * Seeds are fixed for reproducibility; set GEN_FUZZ_SEED to explore others.
 */
import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MockBackend } from '@gen/testkit';
import {
  mockModel,
  send,
  sseData,
  startServer,
  waitFor,
  type HttpAnswer,
  type RunningServer,
} from './testing/harness.js';

const SEED = process.env['GEN_FUZZ_SEED'] === undefined ? 20_260_101 : Number(process.env['GEN_FUZZ_SEED']);

let server: RunningServer;
let backend: MockBackend;

beforeAll(async () => {
  const model = await mockModel({ maxPositions: 512 });
  backend = model.backend;
  server = await startServer({
    model,
    bodyLimit: 200_000,
    limits: { maxTotalTokens: 64, maxInputTokens: 48, defaultMaxNewTokens: 4, maxBestOf: 2 },
  });
});
afterAll(() => server?.close());

type Family = 'tgi' | 'openai';

const ROUTES: { path: string; family: Family }[] = [
  { path: '/generate', family: 'tgi' },
  { path: '/generate_stream', family: 'tgi' },
  { path: '/', family: 'tgi' },
  { path: '/tokenize', family: 'tgi' },
  { path: '/detokenize', family: 'tgi' },
  { path: '/watermark/detect', family: 'tgi' },
  { path: '/v1/chat/completions', family: 'openai' },
  { path: '/v1/completions', family: 'openai' },
  { path: '/inference', family: 'openai' },
];

/** Field names of the real request schemas (top level, TGI `parameters`, chat messages). */
const TOP_LEVEL = [
  'inputs',
  'parameters',
  'stream',
  'model',
  'messages',
  'prompt',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'top_k',
  'min_p',
  'typical_p',
  'n',
  'best_of',
  'stop',
  'seed',
  'presence_penalty',
  'frequency_penalty',
  'repetition_penalty',
  'logit_bias',
  'logprobs',
  'top_logprobs',
  'stream_options',
  'response_format',
  'user',
  'tools',
  'tool_choice',
  'echo',
  'suffix',
  'min_tokens',
  'ignore_eos',
  'stop_token_ids',
  'ids',
  'text',
  'skip_special_tokens',
  'gamma',
  'z_threshold',
  'ignore_repeated_bigrams',
  'prefix_token',
];
const TGI_PARAMETERS = [
  'do_sample',
  'max_new_tokens',
  'repetition_penalty',
  'frequency_penalty',
  'presence_penalty',
  'return_full_text',
  'stop',
  'seed',
  'temperature',
  'top_k',
  'top_p',
  'min_p',
  'truncate',
  'typical_p',
  'best_of',
  'watermark',
  'details',
  'decoder_input_details',
  'top_n_tokens',
  'grammar',
  'adapter_id',
  'logit_bias',
  'no_repeat_ngram_size',
  'min_new_tokens',
  'stop_token_ids',
  'ignore_eos',
  'raw_logprobs',
  'top_tokens_from',
  'samplers',
  'add_special_tokens',
];
const MESSAGE_FIELDS = ['role', 'content', 'name', 'tool_calls', 'tool_call_id', 'function'];

/** Replaced after JSON.stringify by number literals JSON.parse turns into ±Infinity or 0. */
const RAW_LITERALS: Record<string, string> = {
  '"\u0001INF\u0001"': '1e400',
  '"\u0001NINF\u0001"': '-1e400',
  '"\u0001TINY\u0001"': '1e-400',
  '"\u0001NEGZERO\u0001"': '-0',
};

const nastyNumber = fc.oneof(
  fc.integer(),
  fc.integer({ min: -3, max: 600 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.double({ min: 0, max: 2, noNaN: true }),
  fc.constantFrom(
    0,
    1,
    -1,
    2,
    0.5,
    1.0000001,
    20,
    21,
    100,
    101,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 53 + 2,
    2 ** 64,
    1e308,
  ),
  fc.constantFrom(...Object.values(RAW_LITERALS).map((_, i) => `\u0001${['INF', 'NINF', 'TINY', 'NEGZERO'][i]}\u0001`)),
);
const nastyString = fc.oneof(
  fc.constantFrom(
    'NaN',
    'Infinity',
    '-Infinity',
    '1e999',
    '-0',
    '0x10',
    '',
    ' ',
    'null',
    'true',
    '[]',
    '{}',
    '\u0000',
    '\uD800',
    '\uDC00x',
    '🦄🦄🦄',
    'a'.repeat(3_000),
    '<|begin_of_text|>',
    '<|eot_id|>',
    'text',
    'json',
    'user',
    'assistant',
    'system',
    'tool',
    'processed',
    'raw',
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ maxLength: 20 }),
);
const scalar = fc.oneof(nastyNumber, nastyString, fc.boolean(), fc.constant(null));

/** Any value, shaped like the schemas' values (token id lists, stop lists, maps, messages) or not. */
const nastyValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(fc.oneof(fc.integer({ min: -2, max: 600 }), nastyNumber), { maxLength: 8 }),
    fc.array(nastyString, { maxLength: 6 }),
    fc.dictionary(fc.oneof(fc.constantFrom('0', '5', '511', '512', '-1', 'a', '1.5'), fc.string()), nastyNumber, {
      maxKeys: 4,
    }),
    fc.array(
      fc.dictionary(fc.constantFrom(...MESSAGE_FIELDS, 'type', 'text', 'image_url', 'arguments'), tie('value'), {
        maxKeys: 4,
      }),
      { maxLength: 4 },
    ),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

/** Chat messages that get past the first checks (a string role) and carry nasty content and tool calls. */
const nastyMessages = fc.array(
  fc.record(
    {
      role: fc.oneof(fc.constantFrom('user', 'assistant', 'system', 'tool'), fc.string({ maxLength: 8 })),
      content: fc.oneof(
        nastyString,
        fc.constant(null),
        fc.array(
          fc.oneof(
            fc.record({ type: fc.constant('text'), text: fc.oneof(nastyString, nastyValue) }),
            fc.record({ type: nastyString, image_url: nastyValue }),
            nastyValue,
          ),
          { maxLength: 3 },
        ),
        nastyValue,
      ),
      tool_calls: fc.oneof(
        fc.array(
          fc.oneof(
            fc.record({
              id: nastyString,
              type: fc.constant('function'),
              function: fc.oneof(
                fc.record({
                  name: nastyString,
                  arguments: fc.oneof(fc.json({ maxDepth: 3 }), nastyString, nastyValue),
                }),
                nastyValue,
              ),
            }),
            nastyValue,
          ),
          { maxLength: 3 },
        ),
        nastyValue,
      ),
      tool_call_id: nastyValue,
      name: nastyValue,
    },
    { requiredKeys: ['role'] },
  ),
  { minLength: 1, maxLength: 4 },
);

/** A body built from the schemas' field names with nasty values (and TGI parameters inside `parameters`). */
const schemaBody = fc
  .record(
    {
      top: fc.dictionary(fc.constantFrom(...TOP_LEVEL), nastyValue, { maxKeys: 6 }),
      parameters: fc.dictionary(fc.constantFrom(...TGI_PARAMETERS), nastyValue, { maxKeys: 6 }),
      messages: nastyMessages,
    },
    { requiredKeys: ['top'] },
  )
  .map(({ top, parameters, messages }) => ({
    ...top,
    ...(parameters === undefined ? {} : { parameters }),
    ...(messages === undefined ? {} : { messages }),
  }));

/** Valid bodies per route, to mutate. */
const VALID: Record<string, Record<string, unknown>> = {
  '/generate': { inputs: 'Hello', parameters: { max_new_tokens: 3, details: true } },
  '/generate_stream': { inputs: 'Hello', parameters: { max_new_tokens: 3 } },
  '/': { inputs: 'Hello', stream: true, parameters: { max_new_tokens: 2 } },
  '/tokenize': { inputs: 'Hello world' },
  '/detokenize': { ids: [507, 72, 101] },
  '/watermark/detect': { ids: [72, 101, 108, 108, 111] },
  '/v1/chat/completions': { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, stream: true },
  '/v1/completions': { prompt: 'Hi', max_tokens: 3, logprobs: 1 },
  '/inference': { prompt: 'Hi', max_tokens: 3, stop: '\n\n' },
};

type Mutation =
  | { kind: 'set'; path: number; key: string; value: unknown }
  | { kind: 'delete'; path: number }
  | { kind: 'wrap'; path: number };

/** A valid body with a few fields replaced, deleted or wrapped in an array. */
function mutate(body: Record<string, unknown>, mutations: Mutation[]): unknown {
  const copy = structuredClone(body);
  for (const mutation of mutations) {
    const target =
      mutation.path % 2 === 1 && typeof copy['parameters'] === 'object' && copy['parameters'] !== null
        ? (copy['parameters'] as Record<string, unknown>)
        : copy;
    const keys = Object.keys(target);
    const existing = keys.length === 0 ? undefined : keys[mutation.path % keys.length]!;
    if (mutation.kind === 'set') target[mutation.key] = mutation.value;
    else if (existing === undefined) continue;
    else if (mutation.kind === 'delete') delete target[existing];
    else target[existing] = [target[existing]];
  }
  return copy;
}

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('set' as const),
    path: fc.nat(7),
    key: fc.constantFrom(...TOP_LEVEL, ...TGI_PARAMETERS),
    value: nastyValue,
  }),
  fc.record({ kind: fc.constant('delete' as const), path: fc.nat(7) }),
  fc.record({ kind: fc.constant('wrap' as const), path: fc.nat(7) }),
);

/** Serializes a body, turning the raw-literal markers into number literals JSON cannot otherwise carry. */
function serialize(body: unknown): string {
  let text = JSON.stringify(body) ?? 'null';
  for (const [marker, literal] of Object.entries(RAW_LITERALS)) text = text.split(marker).join(literal);
  return text;
}

/** Raw texts: broken JSON, deep nesting, odd literals. */
const rawText = fc.oneof(
  fc.nat({ max: 60_000 }).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`),
  fc.nat({ max: 20_000 }).map((depth) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`),
  fc
    .nat({ max: 5_000 })
    .map((depth) => `{"inputs":"x","parameters":{"logit_bias":${'['.repeat(depth)}${']'.repeat(depth)}}}`),
  fc
    .nat({ max: 3_000 })
    .map(
      (depth) =>
        `{"messages":[{"role":"user","content":"x","tool_calls":[{"function":{"arguments":${JSON.stringify(
          '['.repeat(depth) + ']'.repeat(depth),
        )}}}]}]}`,
    ),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.constantFrom(
    '{',
    '}',
    '[',
    '{"inputs":',
    '{"inputs":"x",}',
    "{'inputs':'x'}",
    '{"inputs":"x"}garbage',
    'NaN',
    '{"inputs": NaN}',
    '{"inputs":"x","parameters":{"max_new_tokens":1e400}}',
    '{"inputs":"x","parameters":{"temperature":-0}}',
    '{"inputs":"x","parameters":{"seed":18446744073709551616}}',
    '{"inputs":"x","parameters":{"seed":18446744073709551615,"do_sample":true,"max_new_tokens":1}}',
    '{"prompt":"x","max_tokens":1e400}',
    '{"messages":[{"role":"user","content":"x"}],"max_tokens":1,"seed":9007199254740993}',
    '{"__proto__":{"inputs":"x"}}',
    '{"inputs":"x","parameters":{"__proto__":{"max_new_tokens":100000}}}',
    '{"constructor":{"prototype":{"x":1}},"inputs":"x","parameters":{"max_new_tokens":1}}',
    '\uFEFF{"inputs":"x","parameters":{"max_new_tokens":1}}',
  ),
);

/** Checks one answer: below 500, JSON errors in the family envelope, successful streams free of error events. */
function checkAnswer(route: { path: string; family: Family }, answer: HttpAnswer): void {
  const context = `${route.path} -> ${answer.status} ${answer.text.slice(0, 300)}`;
  expect(answer.status, context).toBeGreaterThanOrEqual(200);
  expect(answer.status, context).toBeLessThan(500);
  if (answer.status >= 400) {
    expect(answer.headers['content-type'], context).toMatch(/^application\/json/);
    const body = answer.json as Record<string, unknown>;
    if (route.family === 'tgi') {
      expect(Object.keys(body).sort(), context).toEqual(['error', 'error_type']);
      expect(typeof body['error'], context).toBe('string');
      expect(typeof body['error_type'], context).toBe('string');
      expect([400, 401, 404, 413, 415, 422, 429], context).toContain(answer.status);
    } else {
      expect(Object.keys(body), context).toEqual(['error']);
      const error = body['error'] as Record<string, unknown>;
      expect(Object.keys(error).sort(), context).toEqual(['code', 'message', 'param', 'type']);
      expect(typeof error['message'], context).toBe('string');
      expect([400, 401, 404, 413, 415, 429], context).toContain(answer.status);
    }
    return;
  }
  if (String(answer.headers['content-type']).startsWith('text/event-stream')) {
    for (const data of sseData(answer.text)) {
      if (data === '[DONE]') continue;
      const event = JSON.parse(data) as Record<string, unknown>;
      expect(event, `error event in a 200 stream: ${context}`).not.toHaveProperty('error');
    }
  } else {
    expect(answer.json, context).toBeDefined();
  }
}

async function post(route: { path: string }, text: string): Promise<HttpAnswer> {
  return send(server.url, { path: route.path, body: text, timeoutMs: 15_000 });
}

const route = fc.constantFrom(...ROUTES);

describe('HTTP fuzzing: no 5xx, the right envelope, the server stays up', () => {
  test.prop([route, fc.jsonValue({ maxDepth: 6 })], { numRuns: 400, seed: SEED })(
    'random JSON values on every POST route',
    async (target, body) => {
      checkAnswer(target, await post(target, JSON.stringify(body)));
    },
  );

  test.prop([route, schemaBody], { numRuns: 600, seed: SEED + 1 })(
    'bodies made of the real field names with wrong types, huge numbers, NaN-ish strings, unicode',
    async (target, body) => {
      checkAnswer(target, await post(target, serialize(body)));
    },
  );

  test.prop([nastyMessages, fc.boolean()], { numRuns: 200, seed: SEED + 4 })(
    'chat messages with nasty roles, content parts and tool calls',
    async (messages, stream) => {
      const target = { path: '/v1/chat/completions', family: 'openai' as const };
      checkAnswer(target, await post(target, serialize({ messages, max_tokens: 2, stream })));
    },
  );

  test.prop([route, fc.array(mutation, { minLength: 1, maxLength: 3 })], { numRuns: 600, seed: SEED + 2 })(
    'valid bodies with fields replaced, deleted or wrapped',
    async (target, mutations) => {
      checkAnswer(target, await post(target, serialize(mutate(VALID[target.path]!, mutations))));
    },
  );

  test.prop([route, rawText], { numRuns: 200, seed: SEED + 3 })(
    'raw texts: broken JSON, deep nesting, odd literals',
    async (target, text) => {
      checkAnswer(target, await post(target, text));
    },
  );

  it('afterwards the server is healthy, serves a normal request, and holds no sequence', async () => {
    expect((await send(server.url, { path: '/health' })).status).toBe(200);
    const answer = await send(server.url, {
      path: '/generate',
      body: { inputs: 'still here', parameters: { max_new_tokens: 2 } },
    });
    expect(answer.status).toBe(200);
    await waitFor(() => server.gen.engine()!.stats().runningRequests === 0 && backend.stats().sequences === 0);
  });
});

/**
 * `POST /v1/embeddings` on real servers on 127.0.0.1: the official `openai` SDK (5.x) unchanged against the tiny
 * model-kit model on the pure-JS backend (float and its default base64), numbers checked against the backend's own
 * `doEmbed`, the refusals, backends without embeddings, batching beyond the backend's batch size, timeouts,
 * metrics, and a fuzz of bodies that must never get a 5xx.
 */
import { fc, test } from '@fast-check/vitest';
import { AbortError, type BackendEmbedOptionsV1 } from '@gen/backend';
import { createJsBackend } from '@gen/backend-js';
import type { Tokenizer } from '@gen/tokenizer';
import OpenAI, { BadRequestError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  mockModel,
  postJson,
  send,
  startServer,
  tinyModel,
  tinyModelDir,
  tinyModelTokenizer,
  type RunningServer,
} from './testing/harness.js';

let server: RunningServer;
let client: OpenAI;
let tokenizer: Tokenizer;
let hiddenSize: number;
let maxPositions: number;

beforeAll(async () => {
  const model = await tinyModel();
  hiddenSize = model.backend.model.hiddenSize!;
  maxPositions = model.backend.model.maxPositions;
  tokenizer = await tinyModelTokenizer();
  server = await startServer({ model });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 30_000 });
});
afterAll(() => server?.close());

type EmbeddingList = {
  object: string;
  data: { object: string; index: number; embedding: number[] | string }[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
};

/** The vectors the JS backend itself computes for `tokens` (a fresh instance on the same model directory). */
async function direct(tokens: number[][], pooling: 'mean' | 'last'): Promise<number[][]> {
  const backend = await createJsBackend({ modelDir: await tinyModelDir() });
  try {
    return (await backend.doEmbed!({ tokens, pooling })).map((vector) => Array.from(vector));
  } finally {
    await backend.doDispose();
  }
}

function expectRefused(answer: { status: number; json: unknown }, message: string, param: string | null): void {
  expect(answer.status, JSON.stringify(answer.json)).toBe(400);
  const error = (answer.json as { error: { message: string; type: string; param: string | null } }).error;
  expect(error.message).toContain(message);
  expect(error.type).toBe('invalid_request_error');
  expect(error.param).toBe(param);
}

describe('the openai SDK, unchanged', () => {
  it('encoding_format float: one vector of hiddenSize floats, usage = the tokenizer’s token count', async () => {
    const text = 'What is deep learning?';
    const response = await client.embeddings.create({ model: 'tiny', input: text, encoding_format: 'float' });
    expect(response.object).toBe('list');
    expect(response.model).toBe('tiny');
    expect(response.data).toHaveLength(1);
    const [item] = response.data;
    expect(item!.object).toBe('embedding');
    expect(item!.index).toBe(0);
    expect(item!.embedding).toHaveLength(hiddenSize);
    const count = tokenizer.encode(text).length;
    expect(response.usage).toEqual({ prompt_tokens: count, total_tokens: count });
    expect(item!.embedding).toEqual((await direct([tokenizer.encode(text)], 'mean'))[0]);
  });

  it('the default (the SDK asks for base64 and decodes it): the same numbers, bit for bit', async () => {
    const input = 'The sea is blue';
    const viaBase64 = await client.embeddings.create({ model: 'tiny', input });
    const viaFloat = await client.embeddings.create({ model: 'tiny', input, encoding_format: 'float' });
    expect(viaBase64.data[0]!.embedding).toHaveLength(hiddenSize);
    expect(viaBase64.data[0]!.embedding).toEqual(viaFloat.data[0]!.embedding);
    // On the wire it really is base64 of little-endian float32.
    const raw = await postJson(server.url, '/v1/embeddings', { model: 'tiny', input, encoding_format: 'base64' });
    const encoded = (raw.json as EmbeddingList).data[0]!.embedding;
    expect(typeof encoded).toBe('string');
    expect(Buffer.from(encoded as string, 'base64').length).toBe(4 * hiddenSize);
  });

  it('a batch of strings: one vector per input in order, each as if embedded alone; usage sums the inputs', async () => {
    const inputs = ['Hello', 'a longer sentence about the weather', 'x'];
    const batch = await client.embeddings.create({ model: 'tiny', input: inputs, encoding_format: 'float' });
    expect(batch.data.map((d) => d.index)).toEqual([0, 1, 2]);
    for (const [i, input] of inputs.entries()) {
      const alone = await client.embeddings.create({ model: 'tiny', input, encoding_format: 'float' });
      expect(batch.data[i]!.embedding).toEqual(alone.data[0]!.embedding);
    }
    const total = inputs.reduce((sum, input) => sum + tokenizer.encode(input).length, 0);
    expect(batch.usage).toEqual({ prompt_tokens: total, total_tokens: total });
    expect(batch.data[0]!.embedding).not.toEqual(batch.data[1]!.embedding);
  });

  it('token ids (one list, or a list of lists) embed like the text they encode', async () => {
    const text = 'Hello world';
    const ids = tokenizer.encode(text);
    const fromText = await client.embeddings.create({ model: 'tiny', input: text });
    const fromIds = await client.embeddings.create({ model: 'tiny', input: ids });
    expect(fromIds.data[0]!.embedding).toEqual(fromText.data[0]!.embedding);
    expect(fromIds.usage.prompt_tokens).toBe(ids.length);
    const lists = await client.embeddings.create({ model: 'tiny', input: [ids, ids.slice(0, 2)] });
    expect(lists.data).toHaveLength(2);
    expect(lists.data[0]!.embedding).toEqual(fromText.data[0]!.embedding);
    expect(lists.usage.prompt_tokens).toBe(ids.length + 2);
  });

  it('dimensions equal to the hidden size and user are accepted; another dimensions is a BadRequestError', async () => {
    const ok = await client.embeddings.create({ model: 'tiny', input: 'hi', dimensions: hiddenSize, user: 'u-1' });
    expect(ok.data[0]!.embedding).toHaveLength(hiddenSize);
    const error = await client.embeddings
      .create({ model: 'tiny', input: 'hi', dimensions: 8 })
      .then(() => undefined)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BadRequestError);
    const bad = error as BadRequestError;
    expect(bad.status).toBe(400);
    expect(bad.param).toBe('dimensions');
    expect(bad.message).toContain(`this model's embeddings have ${hiddenSize} dimensions`);
  });
});

describe('pooling', () => {
  it('mean (default) and last equal the backend’s doEmbed; they differ from each other', async () => {
    const input = ['one two three four', 'five'];
    const tokens = input.map((text) => tokenizer.encode(text));
    for (const pooling of ['mean', 'last'] as const) {
      const body = { model: 'tiny', input, encoding_format: 'float', ...(pooling === 'last' ? { pooling } : {}) };
      const answer = await postJson(server.url, '/v1/embeddings', body);
      expect(answer.status).toBe(200);
      const vectors = (answer.json as EmbeddingList).data.map((d) => d.embedding);
      expect(vectors).toEqual(await direct(tokens, pooling));
    }
    const [mean, last] = await Promise.all(
      (['mean', 'last'] as const).map((pooling) =>
        postJson(server.url, '/v1/embeddings', { input: input[0], pooling, encoding_format: 'float' }),
      ),
    );
    expect((mean!.json as EmbeddingList).data[0]!.embedding).not.toEqual(
      (last!.json as EmbeddingList).data[0]!.embedding,
    );
  });
});

describe('refusals (400, OpenAI envelope, nothing computed)', () => {
  const post = (body: unknown) => postJson(server.url, '/v1/embeddings', body);

  it('unknown fields, with OpenAI wording', async () => {
    expectRefused(
      await post({ model: 'tiny', input: 'x', truncate: true }),
      'Unrecognized request argument supplied: truncate',
      'truncate',
    );
    expectRefused(
      await post({ model: 'tiny', input: 'x', max_tokens: 3 }),
      'Unrecognized request argument supplied: max_tokens',
      'max_tokens',
    );
  });

  it('missing or empty input', async () => {
    expectRefused(await post({ model: 'tiny' }), '`input` is required', 'input');
    expectRefused(await post({ model: 'tiny', input: '' }), '`input` must not be an empty string', 'input');
    expectRefused(await post({ model: 'tiny', input: [] }), '`input` must not be an empty array', 'input');
    expectRefused(await post({ model: 'tiny', input: ['a', ''] }), '`input[1]` must not be an empty string', 'input');
    expectRefused(await post({ model: 'tiny', input: [[1], []] }), '`input[1]` must not be an empty array', 'input');
    expectRefused(await post({ model: 'tiny', input: ['a', [1]] }), 'not a mix of them', 'input');
  });

  it('more inputs than maxClientBatchSize (4 by default)', async () => {
    expectRefused(
      await post({ model: 'tiny', input: ['a', 'b', 'c', 'd', 'e'] }),
      '`input` supports up to 4 inputs per request. Given: 5',
      'input',
    );
  });

  it('inputs longer than the model’s context (never truncated), and token ids outside the vocabulary', async () => {
    const long = Array.from({ length: maxPositions + 1 }, (_, i) => i % 500);
    expectRefused(
      await post({ model: 'tiny', input: long }),
      `This model's maximum context length is ${maxPositions} tokens, however \`input\` has ${maxPositions + 1} tokens`,
      'input',
    );
    const longText = 'word '.repeat(2 * maxPositions);
    expectRefused(
      await post({ model: 'tiny', input: ['short', longText] }),
      `This model's maximum context length is ${maxPositions} tokens, however \`input[1]\` has`,
      'input',
    );
    expectRefused(await post({ model: 'tiny', input: [1, 512] }), 'token id 512 is out of range', 'input');
    expectRefused(await post({ model: 'tiny', input: [1, -1] }), '`input[1]` must be a token id', 'input');
    // Exactly the limit is fine.
    const full = await post({ model: 'tiny', input: long.slice(0, maxPositions) });
    expect(full.status).toBe(200);
  });

  it('a dimensions other than the hidden size, bad encoding_format and pooling', async () => {
    expectRefused(await post({ input: 'x', dimensions: hiddenSize + 1 }), 'is not supported', 'dimensions');
    expectRefused(await post({ input: 'x', encoding_format: 'fp16' }), '`encoding_format` must be', 'encoding_format');
    expectRefused(await post({ input: 'x', pooling: 'cls' }), '`pooling` must be "mean" or "last"', 'pooling');
  });

  it('bodies that are not a JSON object', async () => {
    for (const body of ['[1, 2]', '"text"', '{"input": ']) {
      const answer = await send(server.url, { path: '/v1/embeddings', body });
      expect(answer.status, body).toBe(400);
      expect((answer.json as { error: { type: string } }).error.type).toBe('invalid_request_error');
    }
  });
});

describe('backends', () => {
  it('a backend without doEmbed: a 400 saying it cannot embed (the SDK does not retry it)', async () => {
    const model = await mockModel();
    expect(model.backend.capabilities.embeddings).toBe(false);
    const mock = await startServer({ model });
    try {
      const sdk = new OpenAI({ baseURL: `${mock.url}/v1`, apiKey: 'x', timeout: 10_000 });
      const error = await sdk.embeddings.create({ model: 'mock', input: 'hi' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BadRequestError);
      expect((error as BadRequestError).code).toBe('embeddings_not_supported');
      expect((error as BadRequestError).message).toContain('backend serving this model cannot compute embeddings');
      const metrics = await send(mock.url, { path: '/metrics' });
      expect(metrics.text).toMatch(/^gen_embedding_request_count 1$/m);
    } finally {
      await mock.close();
    }
  });

  it('more inputs than the backend’s maxBatchSize are embedded in several calls, same numbers', async () => {
    const model = await mockModel({ embeddings: true, hiddenSize: 6, maxBatchSize: 2 });
    const mock = await startServer({ model, limits: { maxClientBatchSize: 5 } });
    try {
      const input = ['a', 'bb', 'ccc', 'dddd', 'eeeee'];
      const answer = await postJson(mock.url, '/v1/embeddings', { input, encoding_format: 'float' });
      expect(answer.status).toBe(200);
      const vectors = (answer.json as EmbeddingList).data.map((d) => d.embedding);
      expect(model.backend.embedCalls.map((call) => call.length)).toEqual([2, 2, 1]);
      const tokens = input.map((text) => tokenizer.encode(text));
      expect(model.backend.embedCalls.flat()).toEqual(tokens);
      const alone = await model.backend.doEmbed!({ tokens: [tokens[4]!], pooling: 'mean' });
      expect(vectors[4]).toEqual(Array.from(alone[0]!));
      // Embedding touches no sequence.
      expect(model.backend.stats()).toMatchObject({ sequences: 0, cachedTokens: 0 });
    } finally {
      await mock.close();
    }
  });

  it('the request timeout aborts a slow embedding: 504, and the backend saw the abort', async () => {
    const model = await mockModel({ embeddings: true });
    let aborted = false;
    const slow = (options: BackendEmbedOptionsV1) =>
      new Promise<Float32Array[]>((_, reject) => {
        options.signal?.addEventListener('abort', () => {
          aborted = true;
          reject(new AbortError({ cause: options.signal?.reason }));
        });
      });
    Object.defineProperty(model.backend, 'doEmbed', { value: slow });
    const mock = await startServer({ model, requestTimeoutMs: 100 });
    try {
      const answer = await postJson(mock.url, '/v1/embeddings', { input: 'hi' });
      expect(answer.status).toBe(504);
      expect((answer.json as { error: { message: string } }).error.message).toContain('timed out after 100 ms');
      expect(aborted).toBe(true);
      const metrics = await send(mock.url, { path: '/metrics' });
      expect(metrics.text).toMatch(/^gen_embedding_request_failure\{err="timeout"\} 1$/m);
    } finally {
      await mock.close();
    }
  });
});

describe('metrics', () => {
  it('counts embedding requests, successes, failures by type and tokens, apart from generation', async () => {
    const model = await mockModel({ embeddings: true });
    const mock = await startServer({ model });
    try {
      await postJson(mock.url, '/v1/embeddings', { input: ['one', 'two'] });
      await postJson(mock.url, '/v1/embeddings', { input: '' });
      const text = (await send(mock.url, { path: '/metrics' })).text;
      expect(text).toMatch(/^gen_embedding_request_count 2$/m);
      expect(text).toMatch(/^gen_embedding_request_success 1$/m);
      expect(text).toMatch(/^gen_embedding_request_failure\{err="validation"\} 1$/m);
      const tokens = tokenizer.encode('one').length + tokenizer.encode('two').length;
      expect(text).toMatch(new RegExp(`^gen_embedding_input_tokens_sum ${tokens}$`, 'm'));
      expect(text).toMatch(/^gen_embedding_request_duration_count 1$/m);
      expect(text).toMatch(/^tgi_request_count 0$/m);
    } finally {
      await mock.close();
    }
  });
});

describe('fuzz: any body gets a clean answer below 500', () => {
  let fuzzServer: RunningServer;
  beforeAll(async () => {
    fuzzServer = await startServer({
      model: await mockModel({ embeddings: true, maxPositions: 16 }),
      bodyLimit: 100_000,
    });
  });
  afterAll(() => fuzzServer?.close());
  let accepted = 0;
  let refused = 0;

  const value = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.integer({ min: -3, max: 600 }),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.integer({ min: -2, max: 520 }), { maxLength: 20 }),
    fc.array(fc.string({ maxLength: 12 }), { maxLength: 6 }),
    fc.array(fc.array(fc.integer({ min: 0, max: 511 }), { maxLength: 20 }), { maxLength: 6 }),
    fc.constantFrom('float', 'base64', 'mean', 'last', 16),
  );
  const often = <T>(valid: fc.Arbitrary<T>) =>
    fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: value as fc.Arbitrary<unknown>, weight: 1 });
  // Mostly plausible requests (valid or one field off), plus arbitrary dictionaries.
  const plausible = fc.record(
    {
      input: fc.oneof(
        fc.string({ minLength: 1, maxLength: 30 }),
        fc.array(fc.string({ minLength: 1, maxLength: 10 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.integer({ min: 0, max: 511 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.array(fc.integer({ min: 0, max: 511 }), { minLength: 1, maxLength: 20 }), {
          minLength: 1,
          maxLength: 5,
        }),
        value,
      ),
      model: often(fc.constant('mock')),
      encoding_format: often(fc.constantFrom('float', 'base64')),
      dimensions: often(fc.constant(16)),
      pooling: often(fc.constantFrom('mean', 'last')),
      user: often(fc.string()),
    },
    { requiredKeys: ['input'] },
  );
  const body = fc.oneof(
    plausible,
    fc.dictionary(
      fc.constantFrom('input', 'model', 'encoding_format', 'dimensions', 'user', 'pooling', 'extra'),
      value,
      { maxKeys: 6 },
    ),
  );

  test.prop([body], { numRuns: 300, seed: 20_260_301 })('status < 500 with an OpenAI envelope', async (payload) => {
    const answer = await postJson(fuzzServer.url, '/v1/embeddings', payload);
    expect(answer.status, JSON.stringify(payload)).toBeLessThan(500);
    if (answer.status === 200) {
      accepted++;
      const list = answer.json as EmbeddingList;
      expect(list.object).toBe('list');
      expect(list.data.length).toBeGreaterThan(0);
      expect(list.usage.total_tokens).toBe(list.usage.prompt_tokens);
    } else {
      refused++;
      expect(answer.status).toBe(400);
      const error = (answer.json as { error: { message: string; type: string } }).error;
      expect(error.type).toBe('invalid_request_error');
      expect(error.message.length).toBeGreaterThan(0);
    }
  });

  it('the fuzz reached both outcomes', () => {
    console.info(`embeddings fuzz: ${accepted} accepted, ${refused} refused`);
    expect(accepted).toBeGreaterThan(10);
    expect(refused).toBeGreaterThan(10);
  });
});

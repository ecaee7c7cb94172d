/**
 * Lifecycle under load, against real servers on 127.0.0.1: a client that disconnects mid-stream frees its
 * sequences within a step or two; overload answers 429 and loses nothing already admitted; a seeded request gives
 * the same text alone and under concurrent load; close() drains.
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  mockModel,
  postJson,
  send,
  sseJson,
  startServer,
  tinyModel,
  waitFor,
  type HttpAnswer,
  type RunningServer,
} from './testing/harness.js';
import type { MockBackend } from '@gen/testkit';

/**
 * Starts a streaming POST and resolves once `events` SSE events have arrived, with a function that drops the
 * connection (the client going away).
 */
function openStream(
  url: string,
  path: string,
  body: unknown,
  events: number,
): Promise<{ received: string; disconnect: () => void }> {
  return new Promise((resolve, reject) => {
    let received = '';
    let resolved = false;
    const req = httpRequest(new URL(path, url), { method: 'POST', headers: { 'content-type': 'application/json' } });
    req.on('response', (res) => {
      expect(res.statusCode).toBe(200);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        received += chunk;
        if (!resolved && received.split('\n\n').length - 1 >= events) {
          resolved = true;
          resolve({ received, disconnect: () => req.destroy() });
        }
      });
      res.on('error', () => undefined);
    });
    req.on('error', (error) => {
      if (!resolved) reject(error);
    });
    req.end(JSON.stringify(body));
  });
}

describe('client disconnect', () => {
  let server: RunningServer;
  let backend: MockBackend;
  beforeAll(async () => {
    const model = await mockModel({ latencyMs: 15 });
    backend = model.backend;
    server = await startServer({ model, limits: { maxBestOf: 4 } });
  });
  afterAll(() => server?.close());

  const cases = [
    {
      path: '/generate_stream',
      body: { inputs: 'Tell me a long story', parameters: { max_new_tokens: 300 } },
      seqs: 1,
    },
    {
      path: '/v1/chat/completions',
      body: { messages: [{ role: 'user', content: 'Go on' }], max_tokens: 300, n: 3, stream: true },
      seqs: 3,
    },
    { path: '/v1/completions', body: { prompt: ['a', 'b'], max_tokens: 300, stream: true }, seqs: 2 },
  ];
  for (const { path, body, seqs } of cases) {
    it(`${path}: dropping the connection mid-stream frees the sequences within a step or two`, async () => {
      const stream = await openStream(server.url, path, body, 4);
      expect(backend.stats().sequences).toBe(seqs);
      const callsAtDisconnect = backend.calls.length;
      stream.disconnect();
      await waitFor(() => backend.stats().sequences === 0, 3_000);
      // At most the step in flight and one more ran after the client left (of 300 tokens).
      expect(backend.calls.length - callsAtDisconnect).toBeLessThanOrEqual(2);
      await waitFor(() => server.gen.engine()!.stats().runningRequests === 0, 1_000);
    });
  }

  it('a non-streaming request whose client leaves is cancelled too', async () => {
    const controller = new AbortController();
    const pending = fetch(`${server.url}/generate`, {
      method: 'POST',
      body: JSON.stringify({ inputs: 'slow', parameters: { max_new_tokens: 300 } }),
      headers: { 'content-type': 'application/json' },
      signal: controller.signal,
    }).catch((error: unknown) => error);
    await waitFor(() => backend.stats().sequences === 1, 3_000);
    await waitFor(() => backend.calls.length > 3, 3_000);
    const callsAtDisconnect = backend.calls.length;
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    await waitFor(() => backend.stats().sequences === 0, 3_000);
    expect(backend.calls.length - callsAtDisconnect).toBeLessThanOrEqual(2);
    // The server keeps serving.
    const after = await postJson(server.url, '/generate', { inputs: 'x', parameters: { max_new_tokens: 2 } });
    expect(after.status).toBe(200);
  });
});

describe('streaming latency', () => {
  it('/generate_stream sends each token when its step ends, not one step later', async () => {
    // Step 0 prefills and samples token 1, step 1 samples token 2, step 2 takes 1.5 s.
    const model = await mockModel({ latencyMs: (call) => (call.index === 2 ? 1_500 : 1) });
    const server = await startServer({ model });
    try {
      const started = Date.now();
      const stream = await openStream(
        server.url,
        '/generate_stream',
        { inputs: 'x', parameters: { max_new_tokens: 5 } },
        2,
      );
      // Token 2 arrives before the slow step ends (holding it until the next event would take 1.5 s).
      expect(Date.now() - started).toBeLessThan(1_000);
      stream.disconnect();
      await waitFor(() => model.backend.stats().sequences === 0, 3_000);
    } finally {
      await server.close();
    }
  });
});

describe('overload', () => {
  let server: RunningServer;
  let backend: MockBackend;
  beforeAll(async () => {
    const model = await mockModel({ latencyMs: 10 });
    backend = model.backend;
    server = await startServer({ model, limits: { maxConcurrentRequests: 4 } });
  });
  afterAll(() => server?.close());

  it('beyond maxConcurrentRequests new requests get 429 at once; every admitted one completes in full', async () => {
    const TOKENS = 25;
    const requests = Array.from({ length: 14 }, (_, i) => {
      const kind = i % 3;
      if (kind === 0)
        return {
          kind,
          path: '/generate',
          body: { inputs: `r${i}`, parameters: { max_new_tokens: TOKENS, details: true } },
        };
      if (kind === 1)
        return { kind, path: '/generate_stream', body: { inputs: `r${i}`, parameters: { max_new_tokens: TOKENS } } };
      return {
        kind,
        path: '/v1/chat/completions',
        body: { messages: [{ role: 'user', content: `r${i}` }], max_tokens: TOKENS, stream: true },
      };
    });
    const started = Date.now();
    const answers = await Promise.all(
      requests.map(async (r) => ({
        ...r,
        answer: await postJson(server.url, r.path, r.body),
        at: Date.now() - started,
      })),
    );
    const ok = answers.filter((a) => a.answer.status === 200);
    const refused = answers.filter((a) => a.answer.status === 429);
    expect(ok.length + refused.length).toBe(requests.length);
    expect(ok.length).toBeGreaterThanOrEqual(4);
    expect(refused.length).toBeGreaterThanOrEqual(1);

    for (const { path, answer } of refused) {
      if (path.startsWith('/v1/')) {
        expect(answer.json).toEqual({
          error: { message: 'Model is overloaded', type: 'rate_limit_error', param: null, code: null },
        });
      } else {
        expect(answer.json).toEqual({ error: 'Model is overloaded', error_type: 'overloaded' });
      }
      expect(answer.headers['content-type']).toMatch(/^application\/json/);
    }
    // Refusals are immediate: well before the admitted requests (25 steps of 10 ms) finish.
    const slowestRefusal = Math.max(...refused.map((a) => a.at));
    const fastestSuccess = Math.min(...ok.map((a) => a.at));
    expect(slowestRefusal).toBeLessThan(fastestSuccess);

    for (const { kind, answer } of ok) expectComplete(kind, answer, TOKENS);
    await waitFor(() => backend.stats().sequences === 0, 2_000);
    const metrics = (await send(server.url, { path: '/metrics' })).text;
    expect(metrics).toMatch(new RegExp(`^tgi_request_failure\\{err="overloaded"\\} ${refused.length}$`, 'm'));
  });

  it('after the burst, capacity comes back', async () => {
    const answers = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        postJson(server.url, '/generate', { inputs: `again ${i}`, parameters: { max_new_tokens: 3 } }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
  });
});

/** An admitted request ran to the end: all its tokens, a final event (TGI) or a finish_reason and [DONE] (OpenAI). */
function expectComplete(kind: number, answer: HttpAnswer, tokens: number): void {
  if (kind === 0) {
    expect((answer.json as { details: { generated_tokens: number } }).details.generated_tokens).toBe(tokens);
  } else if (kind === 1) {
    const events = sseJson(answer.text) as { index: number; generated_text: string | null }[];
    expect(events).toHaveLength(tokens);
    expect(events.at(-1)!.generated_text).not.toBeNull();
  } else {
    const events = sseJson(answer.text);
    expect(events.at(-1)).toBe('[DONE]');
    const finish = events
      .slice(0, -1)
      .flatMap((e) => (e as { choices: { finish_reason: string | null }[] }).choices)
      .map((c) => c.finish_reason)
      .filter((r) => r !== null);
    expect(finish).toEqual(['length']);
  }
}

describe('seeded requests under load (tiny model, real batching)', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ model: await tinyModel(), scheduler: { maxBatchTokens: 64 } });
  });
  afterAll(() => server?.close());

  it('the same seed gives the same text alone and in the middle of concurrent traffic', async () => {
    const seeded = {
      inputs: 'The seed decides',
      parameters: { max_new_tokens: 24, do_sample: true, temperature: 0.9, top_k: 50, seed: 424242, details: true },
    };
    const alone = await postJson(server.url, '/generate', seeded);
    expect(alone.status).toBe(200);
    const text = (alone.json as { generated_text: string }).generated_text;

    const noise = (i: number) =>
      postJson(server.url, i % 2 === 0 ? '/generate' : '/generate_stream', {
        inputs: `noise ${i} `.repeat(1 + (i % 5)),
        parameters: { max_new_tokens: 10 + (i % 7) * 3, do_sample: i % 3 !== 0, seed: i },
      });
    const crowd = [
      ...Array.from({ length: 6 }, (_, i) => noise(i)),
      postJson(server.url, '/generate', seeded),
      ...Array.from({ length: 6 }, (_, i) => noise(i + 6)),
      postJson(server.url, '/generate', seeded),
      new Promise<void>((resolve) => setTimeout(resolve, 15)).then(() => postJson(server.url, '/generate', seeded)),
    ];
    const answers = await Promise.all(crowd);
    const seededAnswers = [answers[6]!, answers[13]!, answers[14]!];
    for (const answer of seededAnswers) {
      expect(answer.status).toBe(200);
      expect((answer.json as { generated_text: string }).generated_text).toBe(text);
      expect((answer.json as { details: { seed: number } }).details.seed).toBe(424242);
    }
    for (const answer of answers) expect(answer.status).toBe(200);

    // Chat: the same seed over the OpenAI route, alone and under load.
    const chat = { messages: [{ role: 'user', content: 'seeded' }], max_tokens: 16, seed: 99, temperature: 1 };
    const chatAlone = await postJson(server.url, '/v1/chat/completions', chat);
    const chatLoaded = await Promise.all([
      ...Array.from({ length: 5 }, (_, i) => noise(i + 20)),
      postJson(server.url, '/v1/chat/completions', chat),
    ]);
    const content = (a: HttpAnswer) =>
      (a.json as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
    expect(content(chatLoaded.at(-1)!)).toBe(content(chatAlone));
  });
});

describe('graceful close', () => {
  it('close() lets running streams finish, refuses new connections, then disposes', async () => {
    const model = await mockModel({ latencyMs: 10 });
    const server = await startServer({ model });
    const streaming = postJson(server.url, '/generate_stream', {
      inputs: 'drain me',
      parameters: { max_new_tokens: 30 },
    });
    await waitFor(() => model.backend.stats().sequences === 1, 2_000);
    const closing = server.gen.close({ timeoutMs: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const refused = await send(server.url, { path: '/health' }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(Error); // the listener is closed
    const answer = await streaming;
    const events = sseJson(answer.text) as { generated_text: string | null }[];
    expect(events).toHaveLength(30);
    expect(events.at(-1)!.generated_text).not.toBeNull();
    await closing;
    expect(model.backend.stats().sequences).toBe(0);
  });

  it('a request arriving on an open connection during the drain gets 503 in its envelope', async () => {
    const model = await mockModel({ latencyMs: 10 });
    const server = await startServer({ model });
    const socket = connect(server.port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    const ended = new Promise((resolve) => socket.on('close', resolve));
    const post = (path: string, body: string) =>
      `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    socket.write(post('/generate_stream', JSON.stringify({ inputs: 'x', parameters: { max_new_tokens: 20 } })));
    await waitFor(() => model.backend.stats().sequences === 1, 2_000);
    const closing = server.gen.close({ timeoutMs: 5_000 });
    // Pipelined behind the running stream, on the same connection, after the drain began.
    socket.write(post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x' }] })));
    await closing;
    await ended;
    const second = received.slice(received.indexOf('HTTP/1.1', 10));
    expect(received.startsWith('HTTP/1.1 200')).toBe(true);
    expect(received).toContain('"generated_text":"');
    expect(second).toMatch(/^HTTP\/1\.1 503/);
    expect(second).toContain(
      '{"error":{"message":"Server is shutting down","type":"server_error","param":null,"code":null}}',
    );
  });

  it('close() cancels what is still running at the timeout; the stream ends', async () => {
    const model = await mockModel({ latencyMs: 20 });
    const server = await startServer({ model });
    const streaming = postJson(server.url, '/generate_stream', {
      inputs: 'too long',
      parameters: { max_new_tokens: 400 },
    });
    await waitFor(() => model.backend.stats().sequences === 1, 2_000);
    const started = Date.now();
    await server.gen.close({ timeoutMs: 200 });
    expect(Date.now() - started).toBeLessThan(3_000);
    const answer = await streaming;
    expect(answer.status).toBe(200);
    const events = sseJson(answer.text) as Record<string, unknown>[];
    expect(events.length).toBeLessThan(400);
    // The stream ends with an error event saying why (TGI's way once a stream has started).
    expect(events.at(-1)).toMatchObject({ error_type: 'unhealthy' });
  });
});

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CONTINUATION,
  DRAWN_SEED,
  EOS,
  fakeTokenize,
  sseEvent,
  startFakeTgiServer,
  type FakeTgiServer,
} from '../test/fake-tgi-server.js';
import { Client } from './client.js';
import {
  BadRequestError,
  ClientError,
  ConnectionError,
  GenerationError,
  IncompleteGenerationError,
  NotFoundError,
  NotSupportedError,
  OverloadedError,
  RateLimitExceededError,
  ShardNotReadyError,
  ShardTimeoutError,
  TimeoutError,
  UnknownError,
  ValidationError,
} from './errors.js';
import type { StreamResponse } from './types.js';

const FULL_TEXT = CONTINUATION.map(([, text]) => text).join('');

async function collect(stream: AsyncIterable<StreamResponse>): Promise<StreamResponse[]> {
  const events: StreamResponse[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let fake: FakeTgiServer;
let client: Client;

beforeAll(async () => {
  fake = await startFakeTgiServer();
  client = new Client(fake.url);
});
afterAll(() => fake.close());
afterEach(() => {
  fake.healthy = true;
});

describe('Client.generate', () => {
  it('posts {inputs, parameters} in snake_case to /generate and maps the answer to camelCase', async () => {
    const response = await client.generate('Why is the sky blue?', { maxNewTokens: 3, repetitionPenalty: 1.2 });
    const request = fake.requests.at(-1)!;
    expect(request.method).toBe('POST');
    expect(request.path).toBe('/generate');
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.body).toEqual({
      inputs: 'Why is the sky blue?',
      parameters: { details: true, max_new_tokens: 3, repetition_penalty: 1.2 },
    });
    expect(response).toEqual({
      generatedText: ' Rayleigh scattering',
      details: {
        finishReason: 'length',
        generatedTokens: 3,
        prefill: [],
        tokens: [
          { id: 6090, text: ' Ray', logprob: -0.25, special: false },
          { id: 14671, text: 'leigh', logprob: -0.5, special: false },
          { id: 22407, text: ' scattering', logprob: -0.75, special: false },
        ],
      },
    });
  });

  it('reports eos, stop sequences, full text and multi-byte text', async () => {
    const eos = await client.generate('Hi', { maxNewTokens: 20 });
    expect(eos.generatedText).toBe(FULL_TEXT);
    expect(eos.details?.finishReason).toBe('eos_token');
    expect(eos.details?.tokens.at(-1)).toEqual({ id: EOS.id, text: EOS.text, logprob: -0.25 * 9, special: true });

    const stopped = await client.generate('Hi', { stop: ['日本'] });
    expect(stopped.generatedText).toBe(' Rayleigh scattering — 日本');
    expect(stopped.details?.finishReason).toBe('stop_sequence');

    const full = await client.generate('Hi', { maxNewTokens: 2, returnFullText: true, details: false });
    expect(full).toEqual({ generatedText: 'Hi Rayleigh' });
    expect((fake.requests.at(-1)!.body as { parameters: unknown }).parameters).toEqual({
      details: false,
      max_new_tokens: 2,
      return_full_text: true,
    });
  });

  it('returns prefill, top tokens, the seed and best_of sequences', async () => {
    const response = await client.generate('Hello world', {
      maxNewTokens: 2,
      decoderInputDetails: true,
      topNTokens: 2,
      bestOf: 2,
      doSample: true,
    });
    const details = response.details!;
    expect(details.seed).toBe(DRAWN_SEED);
    expect(details.prefill).toEqual(
      fakeTokenize('Hello world').map((token, i) =>
        i === 0 ? { id: token.id, text: token.text } : { id: token.id, text: token.text, logprob: -1.5 },
      ),
    );
    expect(details.topTokens).toHaveLength(2);
    expect(details.topTokens?.[0]?.map((token) => token.text)).toEqual([' Ray', ' alt1']);
    expect(details.bestOfSequences).toHaveLength(1);
    expect(details.bestOfSequences?.[0]).toMatchObject({
      generatedText: ' Rayleigh',
      seed: DRAWN_SEED + 1,
      generatedTokens: 2,
    });
  });

  it('accepts the one-element array TGI answers on POST / (a server that answers /generate like that too)', async () => {
    fake.override('/generate', (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify([{ generated_text: 'array' }]));
    });
    expect(await client.generate('x')).toEqual({ generatedText: 'array' });
  });

  it('normalises a trailing slash in the base URL', async () => {
    const slashed = new Client(`${fake.url}///`);
    expect(slashed.baseUrl).toBe(fake.url);
    await slashed.generate('x', { maxNewTokens: 1 });
    expect(fake.requests.at(-1)!.path).toBe('/generate');
  });
});

describe('Client.generateStream', () => {
  it('yields one event per token; the last carries the text and details', async () => {
    const events = await collect(client.generateStream('Why is the sky blue?', { maxNewTokens: 20 }));
    const request = fake.requests.at(-1)!;
    expect(request.path).toBe('/generate_stream');
    expect(request.headers['accept']).toBe('text/event-stream');
    expect(request.body).toEqual({ inputs: 'Why is the sky blue?', parameters: { details: true, max_new_tokens: 20 } });
    expect(events).toHaveLength(CONTINUATION.length + 1);
    expect(events.map((event) => event.index)).toEqual(events.map((_, i) => i + 1));
    expect(events.slice(0, -1).every((event) => event.generatedText === undefined && event.details === undefined)).toBe(
      true,
    );
    const text = events
      .filter((event) => !event.token.special)
      .map((event) => event.token.text)
      .join('');
    expect(text).toBe(FULL_TEXT);
    expect(events.at(-1)).toEqual({
      index: 9,
      token: { id: EOS.id, text: EOS.text, logprob: -2.25, special: true },
      generatedText: FULL_TEXT,
      details: {
        finishReason: 'eos_token',
        generatedTokens: 9,
        inputLength: fakeTokenize('Why is the sky blue?').length,
      },
    });
  });

  it('passes top tokens and the seed through', async () => {
    const events = await collect(
      client.generateStream('x', { maxNewTokens: 2, topNTokens: 3, temperature: 0.5, seed: 9 }),
    );
    expect(events[0]?.topTokens?.map((token) => token.text)).toEqual([' Ray', ' alt1', ' alt2']);
    expect(events.at(-1)?.details).toEqual({ finishReason: 'length', generatedTokens: 2, seed: 9, inputLength: 2 });
  });

  it('parses streams split at awkward byte boundaries, inside multi-byte characters', async () => {
    const reference = await collect(client.generateStream('x', { maxNewTokens: 20 }));
    const splitters: Array<(body: Buffer) => number[]> = [
      (body) => Array.from({ length: body.length - 1 }, (_, i) => i + 1), // every byte
      (body) => {
        // inside 日 (3 bytes), inside 👍 (4 bytes), right after "data", and between the two newlines
        const offsets = [body.indexOf('日') + 1, body.indexOf('日') + 2, body.indexOf('👍') + 3, 4, body.length - 1];
        return offsets.filter((offset) => offset > 0 && offset < body.length).sort((a, b) => a - b);
      },
      (body) => Array.from({ length: Math.floor(body.length / 7) }, (_, i) => (i + 1) * 7),
    ];
    for (const chunker of splitters) {
      const split = await startFakeTgiServer({ chunker, writeDelayMs: 1 });
      try {
        expect(await collect(new Client(split.url).generateStream('x', { maxNewTokens: 20 }))).toEqual(reference);
      } finally {
        await split.close();
      }
    }
  });

  it('skips keep-alive comments, which also keep the idle timeout from firing', async () => {
    // Tokens come slower than the timeout; only the keep-alives (every 20 ms) keep the stream alive. Wide margins:
    // a loaded 2-core CI machine can stall timers by a few hundred ms.
    const slow = await startFakeTgiServer({ tokenDelayMs: 900, keepAliveMs: 20 });
    try {
      const events = await collect(new Client(slow.url, { timeout: 600 }).generateStream('x', { maxNewTokens: 3 }));
      expect(events.map((event) => event.token.text)).toEqual([' Ray', 'leigh', ' scattering']);
      expect(events.at(-1)?.generatedText).toBe(' Rayleigh scattering');
    } finally {
      await slow.close();
    }
  });

  it('raises an error event sent inside the stream as its mapped error, after the tokens before it', async () => {
    fake.override('/generate_stream', (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write(
        sseEvent({
          index: 1,
          token: { id: 1, text: 'a', logprob: -1, special: false },
          generated_text: null,
          details: null,
        }),
      );
      response.end(
        sseEvent({ error: 'Request failed during generation: Server error: out of memory', error_type: 'generation' }),
      );
    });
    const seen: string[] = [];
    const error = await rejection(
      (async () => {
        for await (const event of client.generateStream('x')) seen.push(event.token.text);
      })(),
    );
    expect(seen).toEqual(['a']);
    expect(error).toBeInstanceOf(GenerationError);
    expect((error as GenerationError).message).toBe('Request failed during generation: Server error: out of memory');
    expect((error as GenerationError).status).toBe(200);
    expect((error as GenerationError).errorType).toBe('generation');
  });

  it('raises TGI validation errors, which TGI sends as an event of a 200 stream', async () => {
    // top_p = 1.0 passes the client (gen accepts it); TGI refuses it.
    const error = await rejection(collect(client.generateStream('x', { topP: 1 })));
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).message).toBe('`top_p` must be > 0.0 and < 1.0');
  });

  it('raises the error of a non-200 answer before the stream starts', async () => {
    fake.override('/generate_stream', (_request, response) => {
      response.writeHead(429, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: 'Model is overloaded', error_type: 'overloaded' }));
    });
    const error = await rejection(collect(client.generateStream('x')));
    expect(error).toBeInstanceOf(OverloadedError);
    expect((error as OverloadedError).status).toBe(429);
  });

  it('raises IncompleteGenerationError when the stream ends before its last event', async () => {
    fake.override('/generate_stream', (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.end(
        sseEvent({
          index: 1,
          token: { id: 1, text: 'a', logprob: -1, special: false },
          generated_text: null,
          details: null,
        }),
      );
    });
    expect(await rejection(collect(client.generateStream('x')))).toBeInstanceOf(IncompleteGenerationError);
  });

  it('raises ConnectionError when the connection breaks in the middle of the stream', async () => {
    fake.override('/generate_stream', (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write(
        sseEvent({
          index: 1,
          token: { id: 1, text: 'a', logprob: -1, special: false },
          generated_text: null,
          details: null,
        }),
      );
      setTimeout(() => response.socket?.destroy(), 20);
    });
    const error = await rejection(collect(client.generateStream('x')));
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as ConnectionError).cause).toBeDefined();
  });

  it('raises NotSupportedError when a streaming request is answered with JSON', async () => {
    fake.override('/generate_stream', (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify([{ generated_text: 'not a stream' }]));
    });
    expect(await rejection(collect(client.generateStream('x')))).toBeInstanceOf(NotSupportedError);
  });

  it('raises UnknownError for an event that is not JSON or not a token', async () => {
    for (const body of ['data:not json\n\n', 'data:{"index":1}\n\n']) {
      fake.override('/generate_stream', (_request, response) => {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.end(body);
      });
      expect(await rejection(collect(client.generateStream('x')))).toBeInstanceOf(UnknownError);
    }
  });

  it('stops at an OpenAI-style [DONE] and ignores empty data', async () => {
    fake.override('/generate_stream', (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.end(
        'data:\n\n' +
          sseEvent({
            index: 1,
            token: { id: 1, text: 'a', logprob: -1, special: false },
            generated_text: 'a',
            details: null,
          }) +
          'data: [DONE]\n\n',
      );
    });
    expect(await collect(client.generateStream('x'))).toEqual([
      { index: 1, token: { id: 1, text: 'a', logprob: -1, special: false }, generatedText: 'a' },
    ]);
  });

  it('cancels the request when the loop stops early', async () => {
    const slow = await startFakeTgiServer({ tokenDelayMs: 30 });
    try {
      for await (const event of new Client(slow.url).generateStream('x', { maxNewTokens: 8 })) {
        expect(event.token.text).toBe(' Ray');
        break;
      }
      await sleep(100);
      expect(slow.requests.at(-1)!.closedEarly).toBe(true);
    } finally {
      await slow.close();
    }
  });
});

describe('client-side validation', () => {
  it('rejects before sending anything', async () => {
    const before = fake.requests.length;
    expect(await rejection(client.generate('x', { temperature: 0 }))).toBeInstanceOf(ValidationError);
    expect(await rejection(client.generate(''))).toBeInstanceOf(ValidationError);
    const stream = client.generateStream('x', { bestOf: 2, doSample: true });
    const error = await rejection(collect(stream));
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).message).toBe('`best_of` != 1 is not supported when streaming tokens');
    expect(await rejection(client.tokenize(42 as unknown as string))).toBeInstanceOf(ValidationError);
    expect(fake.requests.length).toBe(before);
  });
});

describe('error mapping over HTTP', () => {
  it.each<[number, string, new (...args: never[]) => ClientError]>([
    [422, JSON.stringify({ error: 'Input validation error', error_type: 'validation' }), ValidationError],
    [422, 'Failed to deserialize the JSON body into the target type: missing field `inputs`', ValidationError],
    [424, JSON.stringify({ error: 'Request failed during generation', error_type: 'generation' }), GenerationError],
    [
      500,
      JSON.stringify({ error: 'Incomplete generation', error_type: 'incomplete_generation' }),
      IncompleteGenerationError,
    ],
    [429, JSON.stringify({ error: 'Model is overloaded', error_type: 'overloaded' }), OverloadedError],
    [429, JSON.stringify({ error: 'Rate limit reached' }), RateLimitExceededError],
    [400, JSON.stringify({ error: 'Bad request' }), BadRequestError],
    [403, JSON.stringify({ error: 'Forbidden' }), ShardNotReadyError],
    [404, '', NotFoundError],
    [504, JSON.stringify({ error: 'Gateway timeout' }), ShardTimeoutError],
    [500, JSON.stringify({ error: 'Internal error', error_type: 'internal' }), UnknownError],
    [502, '<html>bad gateway</html>', UnknownError],
    [
      400,
      JSON.stringify({ error: { message: 'bad temperature', type: 'invalid_request_error', code: 'validation' } }),
      ValidationError,
    ],
  ])('HTTP %i %s -> %o', async (status, body, expected) => {
    for (const path of ['/generate', '/generate_stream']) {
      fake.override(path, (_request, response) => {
        response.writeHead(status, { 'content-type': body.startsWith('{') ? 'application/json' : 'text/plain' });
        response.end(body);
      });
      const error = await rejection(path === '/generate' ? client.generate('x') : collect(client.generateStream('x')));
      expect(error).toBeInstanceOf(expected);
      expect((error as ClientError).status).toBe(status);
      if (body.startsWith('{')) expect((error as ClientError).payload).toEqual(JSON.parse(body));
      if (body === '') expect((error as ClientError).message).toBe('HTTP 404 Not Found');
      if (body.startsWith('Failed')) expect((error as ClientError).message).toBe(body);
    }
  });

  it('maps the real TGI validation answers of the fake (422 `validation`)', async () => {
    const error = await rejection(client.generate('x', { stop: ['a', 'b', 'c', 'd', 'e'] }));
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).message).toBe('`stop` supports up to 4 stop sequences. Given: 5');
    expect((error as ValidationError).status).toBe(422);
    const tooLong = await rejection(client.generate('x', { maxNewTokens: 4000 }));
    expect((tooLong as ValidationError).message).toMatch(/^`inputs` tokens \+ `max_new_tokens` must be <= 2048/);
  });

  it('raises UnknownError for a 200 answer that is not JSON or not a generation', async () => {
    for (const body of ['<html>captive portal</html>', JSON.stringify({ text: 'x' })]) {
      fake.override('/generate', (_request, response) => {
        response.writeHead(200);
        response.end(body);
      });
      const error = await rejection(client.generate('x'));
      expect(error).toBeInstanceOf(UnknownError);
      expect((error as UnknownError).status).toBe(200);
    }
  });
});

describe('timeouts, cancellation and network failures', () => {
  it('times out waiting for the response', async () => {
    fake.override('/generate', async (_request, response) => {
      await sleep(1500);
      if (!response.destroyed) response.end();
    });
    const started = Date.now();
    const error = await rejection(new Client(fake.url, { timeout: 50 }).generate('x'));
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).timeout).toBe(50);
    expect((error as TimeoutError).message).toMatch(/received nothing for 50 ms/);
    expect(Date.now() - started).toBeLessThan(1200); // well before the answer: the timeout fired, not the response
  });

  it('times out when a stream stalls between two events, and closes the connection', async () => {
    fake.override('/generate_stream', async (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write(
        sseEvent({
          index: 1,
          token: { id: 1, text: 'a', logprob: -1, special: false },
          generated_text: null,
          details: null,
        }),
      );
      await sleep(400);
      if (!response.destroyed) response.end();
    });
    const seen: string[] = [];
    const error = await rejection(
      (async () => {
        for await (const event of new Client(fake.url, { timeout: 60 }).generateStream('x'))
          seen.push(event.token.text);
      })(),
    );
    expect(seen).toEqual(['a']);
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).message).toMatch(/waiting for the next event/);
    await sleep(200);
    expect(fake.requests.at(-1)!.closedEarly).toBe(true);
  });

  it('does not time out with timeout 0', async () => {
    fake.override('/generate', async (_request, response) => {
      await sleep(80);
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ generated_text: 'late' }));
    });
    expect(await new Client(fake.url, { timeout: 0 }).generate('x')).toEqual({ generatedText: 'late' });
  });

  it("rejects with the signal's reason when the caller aborts", async () => {
    fake.override('/generate', async (_request, response) => {
      await sleep(300);
      if (!response.destroyed) response.end();
    });
    const controller = new AbortController();
    const pending = client.generate('x', undefined, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    const error = await rejection(pending);
    expect(ClientError.isInstance(error)).toBe(false);
    expect((error as Error).name).toBe('AbortError');

    const reason = new Error('user left');
    const aborted = new AbortController();
    aborted.abort(reason);
    expect(await rejection(collect(client.generateStream('x', undefined, { signal: aborted.signal })))).toBe(reason);
  });

  it('wraps a refused connection in ConnectionError', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const error = await rejection(new Client(`http://127.0.0.1:${port}`).generate('x'));
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as ConnectionError).message).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}/generate: request failed`));
    expect((error as ConnectionError).message).toMatch(/ECONNREFUSED/);
    expect((error as ConnectionError).status).toBeUndefined();
  });
});

describe('headers and fetch', () => {
  it('sends the configured headers with every request', async () => {
    const withHeaders = new Client(fake.url, { headers: { Authorization: 'Bearer secret', 'X-Tenant': 'blue' } });
    await withHeaders.generate('x', { maxNewTokens: 1 });
    await collect(withHeaders.generateStream('x', { maxNewTokens: 1 }));
    await withHeaders.info();
    for (const request of fake.requests.slice(-3)) {
      expect(request.headers['authorization']).toBe('Bearer secret');
      expect(request.headers['x-tenant']).toBe('blue');
    }
  });

  it('uses an injected fetch, called without a `this` (as browsers require)', async () => {
    const calls: string[] = [];
    const injected = function (this: unknown, input: string | URL | Request, init?: RequestInit) {
      expect(this).toBeUndefined();
      calls.push(`${init?.method} ${String(input)}`);
      return fetch(input, init);
    } as typeof fetch;
    const custom = new Client(fake.url, { fetch: injected });
    await custom.generate('x', { maxNewTokens: 1 });
    await collect(custom.generateStream('x', { maxNewTokens: 1 }));
    expect(calls).toEqual([`POST ${fake.url}/generate`, `POST ${fake.url}/generate_stream`]);
  });
});

describe('tokenize, info, health', () => {
  it('tokenizes', async () => {
    expect(await client.tokenize('Hello 日本')).toEqual(fakeTokenize('Hello 日本'));
    expect(fake.requests.at(-1)!.body).toEqual({ inputs: 'Hello 日本' });
  });

  it('reads /info in camelCase', async () => {
    const info = await client.info();
    expect(info).toMatchObject({
      modelId: 'fake/tiny-llama',
      modelPipelineTag: 'text-generation',
      maxConcurrentRequests: 128,
      maxBestOf: 2,
      maxStopSequences: 4,
      maxInputTokens: 1024,
      maxTotalTokens: 2048,
      maxClientBatchSize: 4,
      validationWorkers: 2,
      router: 'text-generation-router',
      version: '2.4.1',
    });
    expect('sha' in info).toBe(false);
  });

  it('reports health: 200 -> true, 503 -> false, other errors thrown', async () => {
    expect(await client.health()).toBe(true);
    fake.healthy = false;
    expect(await client.health()).toBe(false);
    expect(await rejection(new Client(`${fake.url}/nowhere`).health())).toBeInstanceOf(NotFoundError);
  });
});

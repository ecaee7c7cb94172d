import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTINUATION, startFakeTgiServer, type FakeTgiServer } from '../test/fake-tgi-server.js';
import {
  NotFoundError,
  NotSupportedError,
  RateLimitExceededError,
  ShardNotReadyError,
  ValidationError,
} from './errors.js';
import { InferenceAPIClient, deployedModels } from './inference-api.js';
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

let fake: FakeTgiServer;
let api: InferenceAPIClient;

beforeAll(async () => {
  fake = await startFakeTgiServer();
  api = new InferenceAPIClient('bigscience/bloomz', { baseUrl: `${fake.url}/models/`, token: 'hf_secret' });
});
afterAll(() => fake.close());

describe('InferenceAPIClient', () => {
  it('builds the model URL from the hosted API default or a given base URL', () => {
    expect(new InferenceAPIClient('bigscience/bloomz').url).toBe(
      'https://api-inference.huggingface.co/models/bigscience/bloomz',
    );
    expect(new InferenceAPIClient('org/model', { baseUrl: 'http://127.0.0.1:1/models' }).url).toBe(
      'http://127.0.0.1:1/models/org/model',
    );
    expect(api.url).toBe(`${fake.url}/models/bigscience/bloomz`);
  });

  it('posts {inputs, parameters, stream: false} with a bearer token and reads the array answer', async () => {
    const response = await api.generate('Why is the sky blue?', { maxNewTokens: 3 });
    const request = fake.requests.at(-1)!;
    expect(request.method).toBe('POST');
    expect(request.path).toBe('/models/bigscience/bloomz');
    expect(request.headers['authorization']).toBe('Bearer hf_secret');
    expect(request.body).toEqual({
      inputs: 'Why is the sky blue?',
      parameters: { details: true, max_new_tokens: 3 },
      stream: false,
    });
    expect(response.generatedText).toBe(' Rayleigh scattering');
    expect(response.details?.finishReason).toBe('length');
  });

  it('sends the token rather than an Authorization header given in headers, once', async () => {
    const both = new InferenceAPIClient('bigscience/bloomz', {
      baseUrl: `${fake.url}/models/`,
      token: 'hf_secret',
      headers: { Authorization: 'Bearer other', 'X-Use-Cache': 'false' },
    });
    await both.generate('x', { maxNewTokens: 1 });
    expect(fake.requests.at(-1)!.headers['authorization']).toBe('Bearer hf_secret');
    expect(fake.requests.at(-1)!.headers['x-use-cache']).toBe('false');
  });

  it('also accepts a plain object answer', async () => {
    fake.override('/models/bigscience/bloomz', (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ generated_text: 'object' }));
    });
    expect(await api.generate('x')).toEqual({ generatedText: 'object' });
  });

  it('works against TGI itself on POST /', async () => {
    const root = new InferenceAPIClient('', { baseUrl: `${fake.url}/` });
    expect(root.url).toBe(`${fake.url}/`);
    expect((await root.generate('x', { maxNewTokens: 2 })).generatedText).toBe(' Rayleigh');
    expect(fake.requests.at(-1)!.path).toBe('/');
    expect(fake.requests.at(-1)!.headers['authorization']).toBeUndefined();
  });

  it('streams with stream: true', async () => {
    const events = await collect(api.generateStream('Why is the sky blue?', { maxNewTokens: 20 }));
    const request = fake.requests.at(-1)!;
    expect(request.body).toEqual({
      inputs: 'Why is the sky blue?',
      parameters: { details: true, max_new_tokens: 20 },
      stream: true,
    });
    expect(events.at(-1)?.generatedText).toBe(FULL_TEXT);
    expect(
      events
        .filter((event) => !event.token.special)
        .map((event) => event.token.text)
        .join(''),
    ).toBe(FULL_TEXT);
  });

  it('refuses a stream answered with JSON (a model not served by text-generation-inference)', async () => {
    fake.override('/models/bigscience/bloomz', (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify([{ generated_text: 'no stream here' }]));
    });
    const error = await rejection(collect(api.generateStream('x')));
    expect(error).toBeInstanceOf(NotSupportedError);
    expect((error as NotSupportedError).message).toMatch(/not served by text-generation-inference/);
  });

  it("maps the hosted API's errors", async () => {
    const cases: Array<[number, unknown, new (...args: never[]) => Error]> = [
      [429, { error: 'Rate limit reached. You reached free usage limit (reset hourly).' }, RateLimitExceededError],
      [404, { error: 'Model bigscience/nope does not exist' }, NotFoundError],
      [403, { error: 'Model requires a Pro subscription' }, ShardNotReadyError],
      [
        422,
        { error: 'Input validation error: `temperature` must be strictly positive', error_type: 'validation' },
        ValidationError,
      ],
    ];
    for (const [status, body, expected] of cases) {
      fake.override('/models/bigscience/bloomz', (_request, response) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      });
      const error = await rejection(api.generate('x'));
      expect(error).toBeInstanceOf(expected);
      expect((error as Error).message).toBe((body as { error: string }).error);
    }
  });

  it('validates before sending', async () => {
    const before = fake.requests.length;
    expect(await rejection(api.generate('x', { topK: -1 }))).toBeInstanceOf(ValidationError);
    expect(await rejection(collect(api.generateStream('x', { bestOf: 2, doSample: true })))).toBeInstanceOf(
      ValidationError,
    );
    expect(fake.requests.length).toBe(before);
  });
});

describe('deployedModels', () => {
  it('lists the models served with text-generation-inference, camelCased', async () => {
    const models = await deployedModels({ baseUrl: fake.url, token: 'hf_secret' });
    expect(models).toEqual([
      { modelId: 'bigscience/bloomz', sha: '2a3d62313bfd1f1b9e5e1d2c3c4e5f60718293a4' },
      { modelId: 'google/flan-t5-xxl', sha: 'ae8d6b1f0f1d3e4c5b6a7988796a5b4c3d2e1f00' },
    ]);
    const request = fake.requests.at(-1)!;
    expect(request.method).toBe('GET');
    expect(request.path).toBe('/framework/text-generation-inference');
    expect(request.headers['authorization']).toBe('Bearer hf_secret');
  });

  it('asks the hosted API by default', async () => {
    const urls: string[] = [];
    const fetchStub = (async (input: string | URL | Request) => {
      urls.push(String(input));
      return new Response(JSON.stringify([{ model_id: 'a/b', sha: 'c' }]), {
        headers: { 'content-type': 'application/json' },
      });
    }) as typeof fetch;
    expect(await deployedModels({ fetch: fetchStub })).toEqual([{ modelId: 'a/b', sha: 'c' }]);
    expect(urls).toEqual(['https://api-inference.huggingface.co/framework/text-generation-inference']);
  });
});

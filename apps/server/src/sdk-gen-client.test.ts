/**
 * `@gen/client` (packages/client, the TypeScript counterpart of TGI's Python client) against a real server on
 * 127.0.0.1: the tiny model-kit model for results, a slow mock backend for overload and cancellation.
 */
import { Client, OverloadedError, ValidationError } from '@gen/client';
import type { MockBackend } from '@gen/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockModel, postJson, startServer, tinyModel, waitFor, type RunningServer } from './testing/harness.js';

describe('@gen/client Client against the tiny model', () => {
  let server: RunningServer;
  let client: Client;
  beforeAll(async () => {
    server = await startServer({ model: await tinyModel() });
    client = new Client(server.url, { timeout: 30_000 });
  });
  afterAll(() => server?.close());

  it('info() and health()', async () => {
    const info = await client.info();
    expect(info.modelId).toBe('tiny');
    expect(info.maxTotalTokens).toBe(512);
    expect(await client.health()).toBe(true);
  });

  it('generate(): the text of /generate, with details (tokens, prefill, finish reason)', async () => {
    const response = await client.generate('Why is the sky blue?', { maxNewTokens: 5, decoderInputDetails: true });
    const raw = await postJson(server.url, '/generate', {
      inputs: 'Why is the sky blue?',
      parameters: { max_new_tokens: 5 },
    });
    expect(response.generatedText).toBe((raw.json as { generated_text: string }).generated_text);
    const details = response.details!;
    expect(details.finishReason).toBe('length');
    expect(details.generatedTokens).toBe(5);
    expect(details.tokens).toHaveLength(5);
    expect(details.prefill.length).toBeGreaterThan(1);
    expect(details.prefill[0]!.logprob).toBeUndefined();
  });

  it('generate() with bestOf returns bestOfSequences (the client, like the Python one, refuses a seed there)', async () => {
    const response = await client.generate('Hello', { maxNewTokens: 4, bestOf: 2, doSample: true });
    expect(typeof response.details!.seed).toBe('number');
    expect(response.details!.bestOfSequences).toHaveLength(1);
  });

  it('generateStream(): one event per token, the last with generatedText and details', async () => {
    const events = [];
    for await (const event of client.generateStream('Why is the sky blue?', { maxNewTokens: 6 })) events.push(event);
    expect(events).toHaveLength(6);
    const last = events.at(-1)!;
    expect(last.details).toMatchObject({ finishReason: 'length', generatedTokens: 6 });
    expect(last.details!.inputLength).toBeGreaterThan(0);
    const whole = await client.generate('Why is the sky blue?', { maxNewTokens: 6 });
    expect(last.generatedText).toBe(whole.generatedText);
    const text = events.map((e) => (e.token.special ? '' : e.token.text)).join('');
    expect(whole.generatedText.startsWith(text)).toBe(true);
  });

  it('tokenize()', async () => {
    const tokens = await client.tokenize('Hello world');
    expect(tokens[0]!.id).toBe(507);
    expect(tokens.length).toBeGreaterThan(2);
  });

  it("the server's 422 becomes the client's ValidationError with our message", async () => {
    const error = await client.generate('Hello', { maxNewTokens: 100_000 }).catch((e: unknown) => e);
    expect(ValidationError.isInstance(error)).toBe(true);
    expect((error as ValidationError).status).toBe(422);
    expect((error as Error).message).toContain('`inputs` tokens + `max_new_tokens` must be <= 512');
  });
});

describe('@gen/client Client against a slow mock backend', () => {
  let server: RunningServer;
  let backend: MockBackend;
  let client: Client;
  beforeAll(async () => {
    const model = await mockModel({ latencyMs: 10 });
    backend = model.backend;
    server = await startServer({ model, limits: { maxConcurrentRequests: 1 } });
    client = new Client(server.url, { timeout: 30_000 });
  });
  afterAll(() => server?.close());

  it('429 becomes OverloadedError; breaking out of generateStream frees the sequence', async () => {
    const stream = client.generateStream('long', { maxNewTokens: 300 });
    const first = await stream.next();
    expect(first.done).toBe(false);
    const error = await client.generate('second', { maxNewTokens: 2 }).catch((e: unknown) => e);
    expect(OverloadedError.isInstance(error)).toBe(true);
    expect((error as OverloadedError).status).toBe(429);
    await stream.return(undefined);
    await waitFor(() => backend.stats().sequences === 0, 3_000);
    const after = await client.generate('third', { maxNewTokens: 2 });
    expect(after.details!.generatedTokens).toBe(2);
  });
});

/**
 * Nothing silently ignored on the OpenAI routes: unknown fields are refused with OpenAI's wording, the fields
 * clients send that have no local meaning are accepted (docs/server.md lists them), and tool choices that would
 * need the output constrained are refused rather than dropped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startServer, tinyModel, type RunningServer } from './testing/harness.js';

let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ model: await tinyModel() });
});
afterAll(() => server?.close());

const chat = { model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 };
const completion = { model: 'tiny', prompt: 'Hi', max_tokens: 2 };

function expectRefused(answer: { status: number; json: unknown }, message: string, param: string): void {
  expect(answer.status).toBe(400);
  const error = (answer.json as { error: { message: string; type: string; param: string | null } }).error;
  expect(error.message).toBe(message);
  expect(error.type).toBe('invalid_request_error');
  expect(error.param).toBe(param);
}

describe('unknown fields', () => {
  it('are refused on /v1/chat/completions and /v1/completions, naming the field as OpenAI does', async () => {
    expectRefused(
      await postJson(server.url, '/v1/chat/completions', { ...chat, temprature: 0.5 }),
      'Unrecognized request argument supplied: temprature',
      'temprature',
    );
    expectRefused(
      await postJson(server.url, '/v1/completions', { ...completion, raw_logprobs: true }),
      'Unrecognized request argument supplied: raw_logprobs',
      'raw_logprobs',
    );
    // A field of the other route is unknown here.
    expectRefused(
      await postJson(server.url, '/v1/completions', { ...completion, messages: [] }),
      'Unrecognized request argument supplied: messages',
      'messages',
    );
  });

  it('the fields OpenAI clients send for OpenAI-side features are accepted and have no effect', async () => {
    const extras = { user: 'u-1', store: false, metadata: { a: 'b' }, service_tier: 'auto', safety_identifier: 'x' };
    const plain = await postJson(server.url, '/v1/chat/completions', { ...chat, temperature: 0 });
    const withExtras = await postJson(server.url, '/v1/chat/completions', { ...chat, ...extras, temperature: 0 });
    expect(withExtras.status).toBe(200);
    const text = (answer: { json: unknown }) =>
      (answer.json as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
    expect(text(withExtras)).toBe(text(plain));
    expect((await postJson(server.url, '/v1/completions', { ...completion, ...extras })).status).toBe(200);
  });
});

describe('tool_choice and parallel_tool_calls', () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }];

  it('every tool_choice is taken: auto and none free, required and named enforced; parallel_tool_calls both ways', async () => {
    for (const tool_choice of ['auto', 'none', 'required', { type: 'function', function: { name: 'get_weather' } }]) {
      const answer = await postJson(server.url, '/v1/chat/completions', { ...chat, tools, tool_choice, max_tokens: 4 });
      expect(answer.status, JSON.stringify(tool_choice)).toBe(200);
    }
    for (const parallel_tool_calls of [true, false]) {
      const answer = await postJson(server.url, '/v1/chat/completions', { ...chat, tools, parallel_tool_calls });
      expect(answer.status).toBe(200);
    }
    expectRefused(
      await postJson(server.url, '/v1/chat/completions', {
        ...chat,
        tools,
        tool_choice: { type: 'function', function: { name: 'nope' } },
      }),
      '`tool_choice` names the function `nope`, which is not in `tools`',
      'tool_choice',
    );
  });
});

describe('Together /inference', () => {
  const body = { model: 'tiny', prompt: 'Hi', max_tokens: 2 };

  it("refuses unknown fields with OpenAI's wording", async () => {
    expectRefused(
      await postJson(server.url, '/inference', { ...body, frequency_penalty: 1 }),
      'Unrecognized request argument supplied: frequency_penalty',
      'frequency_penalty',
    );
    const defaults = await postJson(server.url, '/inference', { ...body, stream_tokens: false, n: 1, echo: false });
    expect(defaults.status).toBe(200);
  });
});

describe('n is its own limit (default 16), not capped by --max-best-of (default 2)', () => {
  it('n = 16 returns 16 choices; n = 17 is refused; best_of 3 is still refused', async () => {
    const answer = await postJson(server.url, '/v1/chat/completions', { ...chat, n: 16 });
    expect(answer.status).toBe(200);
    const choices = (answer.json as { choices: { index: number }[] }).choices;
    expect(choices.map((c) => c.index)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    const refused = await postJson(server.url, '/v1/chat/completions', { ...chat, n: 17 });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('`n` must be > 0 and <= 16. Given: 17');
    const bestOf = await postJson(server.url, '/v1/completions', { ...completion, best_of: 3 });
    expect(bestOf.status).toBe(400);
    expect(bestOf.text).toContain('best_of');
  });
});

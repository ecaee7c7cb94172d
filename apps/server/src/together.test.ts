/**
 * Together's `/inference`: `stream_tokens` streams as Together does, `n` returns several choices sharing the
 * prompt, `echo` prepends the prompt. Checked at the bytes a client parses (`data: ` lines, `[DONE]` last).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startServer, tinyModel, type RunningServer } from './testing/harness.js';

let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ model: await tinyModel() });
});
afterAll(() => server?.close());

interface StreamEvent {
  id: string;
  choices: { index: number; text: string; finish_reason: string | null; logprobs?: { tokens: string[] } }[];
  token: { id: number; text: string; logprob: number; special: boolean } | null;
  generated_text: string | null;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
}

interface Output {
  output: {
    choices: { index: number; text: string; finish_reason: string; logprobs?: { tokens: string[] } }[];
    usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  };
}

/** The event lines as a strict parser reads them: every event one `data: ` line, `data: [DONE]` last. */
function parseStream(text: string): StreamEvent[] {
  const blocks = text.split('\n\n').filter((block) => block.length > 0 && !block.startsWith(':'));
  for (const block of blocks) expect(block).toMatch(/^data: [^\n]+$/);
  expect(blocks.at(-1)).toBe('data: [DONE]');
  return blocks.slice(0, -1).map((block) => JSON.parse(block.slice('data: '.length)) as StreamEvent);
}

const body = { model: 'tiny', prompt: 'Hello there', max_tokens: 6, seed: 11, temperature: 0.9 };

describe('stream_tokens', () => {
  it('streams one event per token; concatenated they are the non-streamed text, the last carries generated_text and usage', async () => {
    const whole = (await postJson(server.url, '/inference', body)).json as Output;
    const answer = await postJson(server.url, '/inference', { ...body, stream_tokens: true });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^text\/event-stream/);
    const events = parseStream(answer.text);
    const choice = whole.output.choices[0]!;
    expect(events.map((e) => e.choices[0]!.text).join('')).toBe(choice.text);
    expect(events.filter((e) => e.token !== null)).toHaveLength(whole.output.usage.completion_tokens);
    const last = events.at(-1)!;
    expect(last.generated_text).toBe(choice.text);
    expect(last.usage).toEqual(whole.output.usage);
    expect(last.choices[0]!.finish_reason).toBe(choice.finish_reason);
    for (const event of events.slice(0, -1)) {
      expect(event.generated_text).toBeNull();
      expect(event.usage).toBeNull();
      expect(event.choices[0]!.finish_reason).toBeNull();
    }
    expect(new Set(events.map((e) => e.id)).size).toBe(1);
  });

  it('bad streaming requests are refused before the stream starts', async () => {
    const answer = await postJson(server.url, '/inference', { ...body, stream_tokens: true, max_tokens: 0 });
    expect(answer.status).toBe(400);
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    expect((answer.json as { error: { param: string } }).error.param).toBe('max_tokens');
  });
});

describe('n', () => {
  it('returns n choices, the same streamed or not, each ending once with its finish_reason', async () => {
    const whole = (await postJson(server.url, '/inference', { ...body, n: 3 })).json as Output;
    expect(whole.output.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    const answer = await postJson(server.url, '/inference', { ...body, n: 3, stream_tokens: true });
    const events = parseStream(answer.text);
    for (const choice of whole.output.choices) {
      const own = events.filter((e) => e.choices[0]!.index === choice.index);
      expect(own.map((e) => e.choices[0]!.text).join('')).toBe(choice.text);
      const ends = own.filter((e) => e.choices[0]!.finish_reason !== null);
      expect(ends).toHaveLength(1);
      expect(ends[0]!.choices[0]!.finish_reason).toBe(choice.finish_reason);
    }
    expect(events.filter((e) => e.usage !== null)).toHaveLength(1);
    expect(events.at(-1)!.usage).toEqual(whole.output.usage);
  });

  it('n above the server limit is refused', async () => {
    const answer = await postJson(server.url, '/inference', { ...body, n: 17 });
    expect(answer.status).toBe(400);
    expect(answer.text).toContain('`n` must be > 0 and <= 16');
  });
});

describe('echo', () => {
  it('prepends the prompt to each choice, streamed or not, and to the logprobs', async () => {
    const plain = (await postJson(server.url, '/inference', body)).json as Output;
    const echoed = (await postJson(server.url, '/inference', { ...body, echo: true })).json as Output;
    expect(echoed.output.choices[0]!.text).toBe(body.prompt + plain.output.choices[0]!.text);
    const events = parseStream(
      (await postJson(server.url, '/inference', { ...body, echo: true, stream_tokens: true })).text,
    );
    expect(events[0]!.choices[0]!.text.startsWith(body.prompt)).toBe(true);
    expect(events.map((e) => e.choices[0]!.text).join('')).toBe(echoed.output.choices[0]!.text);
    expect(events.at(-1)!.generated_text).toBe(echoed.output.choices[0]!.text);

    const withLogprobs = (await postJson(server.url, '/inference', { ...body, echo: true, logprobs: 1 }))
      .json as Output;
    const tokens = withLogprobs.output.choices[0]!.logprobs!.tokens;
    expect(tokens.join('')).toBe(withLogprobs.output.choices[0]!.text);
  });
});

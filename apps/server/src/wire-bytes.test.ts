/**
 * The bytes of our streams, line by line, as the Python-only clients parse them (they cannot run here):
 * - huggingface_hub's `InferenceClient` (chat_completion / text_generation with stream=True) strips each line,
 *   ends the stream on the exact line `data: [DONE]`, and otherwise `json.loads(line[len("data:"):])`;
 * - TGI's `text_generation` client reads `line.startswith(b"data:")`, `json.loads(line[5:])`, and validates every
 *   chat chunk with a pydantic model whose `delta.role` is required;
 * - openai-python's SSE decoder takes `data:` with one optional space stripped, and `[DONE]` as the end.
 * And the peers' own bytes: TGI (axum 0.7) writes `data:` + JSON for JSON events and `data: [DONE]`; OpenAI
 * writes `data: ` before every event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startServer, tinyModel, type RunningServer } from './testing/harness.js';

let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ model: await tinyModel() });
});
afterAll(() => server?.close());

/** Non-empty, non-comment lines of a stream, as `iter_lines()` yields them. */
function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.length > 0 && !line.startsWith(':'));
}

/** huggingface_hub's per-line rule: `None` for the end of the stream, else the parsed JSON, else it throws. */
function huggingfaceHubLine(raw: string): unknown {
  const line = raw.trim();
  if (line === 'data: [DONE]') return null;
  if (!line.startsWith('data:')) throw new Error(`not a data line: ${line}`);
  const payload = JSON.parse(line.slice('data:'.length)) as { error?: unknown };
  if (payload.error !== undefined) throw new Error(`stream error: ${JSON.stringify(payload.error)}`);
  return payload;
}

/** text_generation's chat chunk validation: the fields its pydantic model requires, in every chunk. */
function textGenerationChatChunk(raw: string): void {
  expect(raw.startsWith('data:')).toBe(true);
  const chunk = JSON.parse(raw.slice(5)) as {
    id: unknown;
    created: unknown;
    model: unknown;
    choices: { index: unknown; delta: { role: unknown; content?: unknown }; finish_reason: unknown }[];
  };
  expect(typeof chunk.id).toBe('string');
  expect(typeof chunk.created).toBe('number');
  expect(typeof chunk.model).toBe('string');
  for (const choice of chunk.choices) {
    expect(typeof choice.index).toBe('number');
    expect(choice.delta.role, raw).toBe('assistant');
    if (choice.delta.content !== undefined) expect(typeof choice.delta.content).toBe('string');
  }
}

const chatBody = {
  model: 'tgi',
  messages: [{ role: 'user', content: 'Hello' }],
  max_tokens: 5,
  stream: true,
  stream_options: { include_usage: true },
};

describe('OpenAI-family streams: `data: ` before every event, `data: [DONE]` last', () => {
  it('/v1/chat/completions', async () => {
    const answer = await postJson(server.url, '/v1/chat/completions', chatBody);
    expect(answer.status).toBe(200);
    const all = lines(answer.text);
    expect(all.length).toBeGreaterThan(3);
    for (const line of all) expect(line.startsWith('data: '), line).toBe(true);
    expect(all.at(-1)).toBe('data: [DONE]');
    expect(answer.text.endsWith('data: [DONE]\n\n')).toBe(true);
    // huggingface_hub reads to the end without a JSONDecodeError, and ends on the sentinel.
    const parsed = all.map(huggingfaceHubLine);
    expect(parsed.at(-1)).toBeNull();
    expect(parsed.slice(0, -1).every((p) => p !== null)).toBe(true);
  });

  it('every chat chunk carries delta.role (text_generation validates each one), the usage chunk has no choices', async () => {
    const answer = await postJson(server.url, '/v1/chat/completions', { ...chatBody, n: 2 });
    const events = lines(answer.text).slice(0, -1);
    for (const line of events) textGenerationChatChunk(line);
    const chunks = events.map((line) => JSON.parse(line.slice(6)) as { choices: unknown[]; usage?: unknown });
    const finals = chunks
      .flatMap((c) => c.choices as { finish_reason: string | null }[])
      .filter((c) => c.finish_reason);
    expect(finals).toHaveLength(2);
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toBeDefined();
  });

  it('/v1/completions', async () => {
    const answer = await postJson(server.url, '/v1/completions', {
      model: 'tgi',
      prompt: 'Hello',
      max_tokens: 4,
      stream: true,
    });
    const all = lines(answer.text);
    for (const line of all) expect(line.startsWith('data: '), line).toBe(true);
    expect(all.at(-1)).toBe('data: [DONE]');
  });
});

describe('TGI streams: axum bytes', () => {
  it('/generate_stream: `data:` directly followed by JSON, no [DONE] (as TGI)', async () => {
    const answer = await postJson(server.url, '/generate_stream', {
      inputs: 'Hello',
      parameters: { max_new_tokens: 4 },
    });
    expect(answer.status).toBe(200);
    const all = lines(answer.text);
    expect(all.length).toBeGreaterThan(0);
    for (const line of all) {
      expect(line.startsWith('data:{'), line).toBe(true);
      // text_generation: json.loads(line[5:]); huggingface_hub: json.loads(line[len("data:"):])
      expect(() => JSON.parse(line.slice(5))).not.toThrow();
      huggingfaceHubLine(line);
    }
    expect(answer.text).not.toContain('[DONE]');
  });
});

/**
 * Clients from the JavaScript ecosystem, unchanged, against a real server on 127.0.0.1 (tiny model-kit model): the
 * Vercel AI SDK's openai-compatible provider, LangChain.js ChatOpenAI, and eventsource-parser (the SSE parser many
 * clients build on). Versions are the newest majors that run on Node 20.
 */
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import type { AIMessageChunk } from '@langchain/core/messages';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, streamText } from 'ai';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startServer, tinyModel, type RunningServer } from './testing/harness.js';

let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ model: await tinyModel() });
});
afterAll(() => server?.close());

const PROMPT = 'What is deep learning?';

/** The greedy reply to PROMPT, non-streaming, straight from the wire. */
async function greedyReply(maxTokens: number): Promise<{ text: string; finishReason: string }> {
  const answer = await postJson(server.url, '/v1/chat/completions', {
    model: 'tiny',
    messages: [{ role: 'user', content: PROMPT }],
    max_tokens: maxTokens,
    temperature: 0,
  });
  expect(answer.status).toBe(200);
  const body = answer.json as { choices: { message: { content: string }; finish_reason: string }[] };
  return { text: body.choices[0]!.message.content, finishReason: body.choices[0]!.finish_reason };
}

describe('Vercel AI SDK (@ai-sdk/openai-compatible + ai)', () => {
  const provider = () => createOpenAICompatible({ name: 'gen', baseURL: `${server.url}/v1`, includeUsage: true });

  it('streamText: the streamed text is the greedy reply, with finish reason and usage', async () => {
    const expected = await greedyReply(8);
    const errors: unknown[] = [];
    const result = streamText({
      model: provider().chatModel('tiny'),
      prompt: PROMPT,
      maxOutputTokens: 8,
      temperature: 0,
      maxRetries: 0,
      onError: ({ error }) => void errors.push(error),
    });
    let text = '';
    for await (const part of result.textStream) text += part;
    expect(errors).toEqual([]);
    expect(text).toBe(expected.text);
    expect(await result.finishReason).toBe(expected.finishReason === 'length' ? 'length' : 'stop');
    const usage = await result.usage;
    expect(usage.outputTokens).toBeGreaterThan(0);
    expect(usage.outputTokens).toBeLessThanOrEqual(8);
    expect(usage.totalTokens).toBe(usage.inputTokens! + usage.outputTokens!);
  });

  it('generateText: the same text without streaming', async () => {
    const expected = await greedyReply(6);
    const result = await generateText({
      model: provider().chatModel('tiny'),
      prompt: PROMPT,
      maxOutputTokens: 6,
      temperature: 0,
      maxRetries: 0,
    });
    expect(result.text).toBe(expected.text);
  });

  it('completionModel streams /v1/completions', async () => {
    // The SDK wraps the prompt in its own completion template; record the body it sends to ask the same thing.
    const sent: string[] = [];
    const recording = createOpenAICompatible({
      name: 'gen',
      baseURL: `${server.url}/v1`,
      fetch: (input, init) => {
        sent.push(String(init?.body));
        return fetch(input, init);
      },
    });
    const result = streamText({
      model: recording.completionModel('tiny'),
      prompt: 'Hello',
      maxOutputTokens: 5,
      temperature: 0,
      maxRetries: 0,
    });
    let text = '';
    for await (const part of result.textStream) text += part;
    const body = JSON.parse(sent[0]!) as { prompt: string; stream: boolean };
    expect(body.stream).toBe(true);
    const whole = await postJson(server.url, '/v1/completions', {
      model: 'tiny',
      prompt: body.prompt,
      max_tokens: 5,
      temperature: 0,
    });
    expect(text).toBe((whole.json as { choices: { text: string }[] }).choices[0]!.text);
  });
});

describe('LangChain.js ChatOpenAI', () => {
  const chat = (streaming: boolean) =>
    new ChatOpenAI({
      model: 'tiny',
      apiKey: 'not-needed',
      configuration: { baseURL: `${server.url}/v1` },
      maxTokens: 8,
      temperature: 0,
      maxRetries: 0,
      streaming,
      streamUsage: true,
    });

  it('stream(): chunks concatenate to the greedy reply, usage on the merged message', async () => {
    const expected = await greedyReply(8);
    let merged: AIMessageChunk | undefined;
    let text = '';
    for await (const chunk of await chat(true).stream(PROMPT)) {
      text += typeof chunk.content === 'string' ? chunk.content : '';
      merged = merged === undefined ? chunk : merged.concat(chunk);
    }
    expect(text).toBe(expected.text);
    expect(merged?.usage_metadata?.output_tokens).toBeGreaterThan(0);
  });

  it('invoke(): the greedy reply as an AIMessage', async () => {
    const expected = await greedyReply(8);
    const message = await chat(false).invoke(PROMPT);
    expect(message.content).toBe(expected.text);
    expect(message.response_metadata.finish_reason).toBe(expected.finishReason);
  });
});

describe('eventsource-parser', () => {
  async function events(path: string, body: unknown): Promise<EventSourceMessage[]> {
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(200);
    const parsed: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (event) => parsed.push(event) });
    const decoder = new TextDecoder();
    for await (const chunk of response.body!) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
    return parsed;
  }

  it('OpenAI chat stream: every event is JSON with delta.role, the last is [DONE]', async () => {
    const parsed = await events('/v1/chat/completions', {
      model: 'tiny',
      messages: [{ role: 'user', content: PROMPT }],
      max_tokens: 5,
      stream: true,
    });
    expect(parsed.at(-1)!.data).toBe('[DONE]');
    for (const event of parsed.slice(0, -1)) {
      expect(event.event).toBeUndefined();
      const chunk = JSON.parse(event.data) as { choices: { delta: { role: string } }[] };
      expect(chunk.choices[0]!.delta.role).toBe('assistant');
    }
  });

  it('TGI stream: one JSON event per token, the last with generated_text', async () => {
    const parsed = await events('/generate_stream', { inputs: 'Hello', parameters: { max_new_tokens: 4 } });
    const tokens = parsed.map((event) => JSON.parse(event.data) as { index: number; generated_text: string | null });
    expect(tokens.map((t) => t.index)).toEqual([1, 2, 3, 4]);
    expect(typeof tokens.at(-1)!.generated_text).toBe('string');
  });
});

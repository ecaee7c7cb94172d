/**
 * The official `openai` npm SDK (5.x), unchanged, against a real server on 127.0.0.1 (tiny model-kit model).
 */
import type { APIError } from 'openai';
import OpenAI, { BadRequestError, NotFoundError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, tinyModel, type RunningServer } from './testing/harness.js';

let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  server = await startServer({ model: await tinyModel(), limits: { maxBestOf: 4 } });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 30_000 });
});
afterAll(() => server?.close());

const messages: OpenAI.ChatCompletionMessageParam[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is deep learning?' },
];

/** A stop string the greedy text contains after a few characters (two plain characters). */
function stopWithin(text: string): { stop: string; before: string } {
  const chars = Array.from(text);
  const at = chars.findIndex(
    (c, i) => i >= 3 && c !== '\uFFFD' && chars[i + 1] !== undefined && chars[i + 1] !== '\uFFFD',
  );
  if (at < 0) throw new Error(`no usable stop string in ${JSON.stringify(text)}`);
  const stop = chars.slice(at, at + 2).join('');
  return { stop, before: text.slice(0, text.indexOf(stop)) };
}

describe('chat.completions', () => {
  it('non-streaming: a chat.completion with the assistant message, finish_reason and usage', async () => {
    const completion = await client.chat.completions.create({
      model: 'tiny',
      messages,
      max_tokens: 8,
      temperature: 0,
    });
    expect(completion.object).toBe('chat.completion');
    expect(completion.id).toMatch(/^chatcmpl-.+/);
    expect(completion.model).toBe('tiny');
    expect(completion.choices).toHaveLength(1);
    const choice = completion.choices[0]!;
    expect(choice.index).toBe(0);
    expect(choice.message.role).toBe('assistant');
    expect(typeof choice.message.content).toBe('string');
    expect(['length', 'stop']).toContain(choice.finish_reason);
    expect(choice.logprobs).toBeNull();
    expect(completion.usage!.total_tokens).toBe(completion.usage!.prompt_tokens + completion.usage!.completion_tokens);
    expect(completion.usage!.completion_tokens).toBeLessThanOrEqual(8);
  });

  it('streaming: role first, then content deltas, then finish_reason; same text as non-streaming; one id', async () => {
    const request = { model: 'tiny', messages, max_tokens: 10, temperature: 0 } as const;
    const whole = await client.chat.completions.create(request);
    const stream = await client.chat.completions.create({ ...request, stream: true });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    for (const chunk of chunks) expect(chunk.object).toBe('chat.completion.chunk');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe(whole.choices[0]!.finish_reason);
    expect(chunks.slice(0, -1).every((c) => c.choices[0]!.finish_reason === null)).toBe(true);
  });

  it('stream_options.include_usage: a last chunk with choices [] and the usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'tiny',
      messages,
      max_tokens: 5,
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0,
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage!.completion_tokens).toBeGreaterThan(0);
    expect(last.usage!.total_tokens).toBe(last.usage!.prompt_tokens + last.usage!.completion_tokens);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.usage).toBeNull();
  });

  it('n > 1: n choices, indexed 0..n-1, in both modes', async () => {
    const completion = await client.chat.completions.create({
      model: 'tiny',
      messages,
      max_tokens: 6,
      n: 3,
      seed: 11,
    });
    expect(completion.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    // Each choice samples its own stream.
    expect(new Set(completion.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    expect(completion.usage!.completion_tokens).toBeGreaterThanOrEqual(3);

    const stream = await client.chat.completions.create({
      model: 'tiny',
      messages,
      max_tokens: 6,
      n: 2,
      seed: 11,
      stream: true,
    });
    const texts = ['', ''];
    const finished = new Set<number>();
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        texts[choice.index] += choice.delta.content ?? '';
        if (choice.finish_reason !== null) finished.add(choice.index);
      }
    }
    expect([...finished].sort()).toEqual([0, 1]);
    // Same seed: choice i streams the same text as choice i of the non-streaming request with n = 2.
    const again = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 6, n: 2, seed: 11 });
    expect(texts).toEqual(again.choices.map((c) => c.message.content));
  });

  it('logprobs and top_logprobs: one entry per content token, top_logprobs of the asked size', async () => {
    const completion = await client.chat.completions.create({
      model: 'tiny',
      messages,
      max_tokens: 6,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
    });
    const content = completion.choices[0]!.logprobs!.content!;
    expect(content.length).toBeGreaterThan(0);
    expect(content.length).toBeLessThanOrEqual(6);
    for (const entry of content) {
      expect(entry.logprob).toBeLessThanOrEqual(0);
      expect(entry.bytes).toEqual(Array.from(new TextEncoder().encode(entry.token)));
      expect(entry.top_logprobs).toHaveLength(3);
      // Greedy: the chosen token is the most likely one.
      expect(entry.top_logprobs[0]!.logprob).toBeCloseTo(entry.logprob, 9);
    }

    const stream = await client.chat.completions.create({
      model: 'tiny',
      messages,
      max_tokens: 6,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
      stream: true,
    });
    const streamed: OpenAI.ChatCompletionTokenLogprob[] = [];
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    expect(streamed.map((e) => e.logprob)).toEqual(content.map((e) => e.logprob));
    for (const entry of streamed) expect(entry.top_logprobs).toHaveLength(2);
  });

  it('stop as a string and as a list: the text ends before the stop, finish_reason stop', async () => {
    const free = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 30, temperature: 0 });
    const { stop, before } = stopWithin(free.choices[0]!.message.content!);
    for (const stopParam of [stop, [stop, 'never-generated-zzz']]) {
      const stopped = await client.chat.completions.create({
        model: 'tiny',
        messages,
        max_tokens: 30,
        temperature: 0,
        stop: stopParam,
      });
      expect(stopped.choices[0]!.message.content).toBe(before);
      expect(stopped.choices[0]!.finish_reason).toBe('stop');
    }
    const stream = await client.chat.completions.create({
      model: 'tiny',
      messages,
      max_tokens: 30,
      temperature: 0,
      stop,
      stream: true,
    });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(before);
    expect(finish).toBe('stop');
  });

  it('seed: the same seed gives the same sampled text, another seed another text', async () => {
    const sample = async (seed: number) =>
      (await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 12, temperature: 1.5, seed }))
        .choices[0]!.message.content;
    const a = await sample(1234);
    expect(await sample(1234)).toBe(a);
    const others = await Promise.all([1, 2, 3].map(sample));
    expect(others.some((text) => text !== a)).toBe(true);
  });

  it('invalid parameters: BadRequestError (400) with our message and param, streaming or not', async () => {
    for (const stream of [false, true]) {
      const error = await client.chat.completions
        .create({ model: 'tiny', messages, max_tokens: 5, temperature: -1, stream })
        .then(() => undefined)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BadRequestError);
      const bad = error as BadRequestError;
      expect(bad.status).toBe(400);
      expect(bad.message).toContain('`temperature` must be >= 0');
      expect(bad.param).toBe('temperature');
      expect(bad.type).toBe('invalid_request_error');
    }
    const tooMany = await client.chat.completions
      .create({ model: 'tiny', messages, max_tokens: 5, n: 17 })
      .catch((e: unknown) => e);
    expect(tooMany).toBeInstanceOf(BadRequestError);
    expect((tooMany as BadRequestError).message).toContain('`n` must be > 0 and <= 16');
    const tooLong = await client.chat.completions
      .create({ model: 'tiny', messages, max_tokens: 100_000 })
      .catch((e: unknown) => e);
    expect(tooLong).toBeInstanceOf(BadRequestError);
    expect((tooLong as BadRequestError).message).toContain('must be <= 512');
  });

  it('ids are unique and non-empty across requests', async () => {
    const ids = await Promise.all(
      Array.from({ length: 8 }, () =>
        client.chat.completions.create({ model: 'tiny', messages, max_tokens: 1 }).then((c) => c.id),
      ),
    );
    expect(ids.every((id) => id.length > 'chatcmpl-'.length)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('completions', () => {
  it('non-streaming and streaming give the same greedy text; ids unique', async () => {
    const whole = await client.completions.create({
      model: 'tiny',
      prompt: 'Once upon a time',
      max_tokens: 8,
      temperature: 0,
    });
    expect(whole.object).toBe('text_completion');
    expect(whole.id).toMatch(/^cmpl-.+/);
    expect(whole.choices[0]!.index).toBe(0);
    expect(whole.usage!.completion_tokens).toBeLessThanOrEqual(8);
    const stream = await client.completions.create({
      model: 'tiny',
      prompt: 'Once upon a time',
      max_tokens: 8,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    const ids = new Set<string>();
    for await (const chunk of stream) {
      ids.add(chunk.id);
      text += chunk.choices[0]?.text ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0]!.text);
    expect(usage).toEqual(whole.usage);
    expect(ids.size).toBe(1);
    expect(ids.has(whole.id)).toBe(false);
  });

  it('a prompt array gives one choice per prompt (times n), echo prepends the prompt', async () => {
    const batch = await client.completions.create({
      model: 'tiny',
      prompt: ['Hello', 'World'],
      max_tokens: 4,
      temperature: 0,
    });
    expect(batch.choices.map((c) => c.index)).toEqual([0, 1]);
    const single = await client.completions.create({ model: 'tiny', prompt: 'World', max_tokens: 4, temperature: 0 });
    expect(batch.choices[1]!.text).toBe(single.choices[0]!.text);
    const echoed = await client.completions.create({
      model: 'tiny',
      prompt: 'World',
      max_tokens: 4,
      temperature: 0,
      echo: true,
    });
    expect(echoed.choices[0]!.text).toBe(`World${single.choices[0]!.text}`);
    const n = await client.completions.create({ model: 'tiny', prompt: ['a', 'b'], max_tokens: 2, n: 2, seed: 1 });
    expect(n.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
  });

  it('logprobs: tokens, token_logprobs, top_logprobs and text_offset of the same length', async () => {
    const completion = await client.completions.create({
      model: 'tiny',
      prompt: 'Hello',
      max_tokens: 5,
      temperature: 0,
      logprobs: 2,
    });
    const logprobs = completion.choices[0]!.logprobs!;
    expect(logprobs.tokens).toHaveLength(5);
    expect(logprobs.token_logprobs).toHaveLength(5);
    expect(logprobs.text_offset).toHaveLength(5);
    expect(logprobs.top_logprobs).toHaveLength(5);
    for (const top of logprobs.top_logprobs!) expect(Object.keys(top).length).toBeGreaterThanOrEqual(1);
  });

  it('echo with logprobs: the prompt tokens come first and text_offset indexes the returned text', async () => {
    const completion = await client.completions.create({
      model: 'tiny',
      prompt: 'Hello world',
      max_tokens: 4,
      temperature: 0,
      echo: true,
      logprobs: 1,
    });
    const choice = completion.choices[0]!;
    const logprobs = choice.logprobs!;
    expect(choice.text.startsWith('Hello world')).toBe(true);
    // The BOS the tokenizer adds is not part of the echoed text, so it is not listed.
    const promptTokens = completion.usage!.prompt_tokens - 1;
    expect(logprobs.tokens!.slice(0, promptTokens).join('')).toBe('Hello world');
    expect(logprobs.token_logprobs![0]).toBeLessThan(0); // conditioned on the BOS, so it has a logprob
    logprobs.tokens!.forEach((token, i) => {
      if (token !== '') expect(choice.text.slice(logprobs.text_offset![i]!).startsWith(token), token).toBe(true);
    });
    expect(logprobs.tokens!.length).toBe(promptTokens + 4);
  });

  it('stop as a string: the text ends before it, finish_reason stop', async () => {
    const free = await client.completions.create({ model: 'tiny', prompt: 'Hello', max_tokens: 30, temperature: 0 });
    const { stop, before } = stopWithin(free.choices[0]!.text);
    const stopped = await client.completions.create({
      model: 'tiny',
      prompt: 'Hello',
      max_tokens: 30,
      temperature: 0,
      stop,
    });
    expect(stopped.choices[0]!.text).toBe(before);
    expect(stopped.choices[0]!.finish_reason).toBe('stop');
  });

  it('suffix is refused clearly; errors are APIError subclasses with our message', async () => {
    const error = await client.completions
      .create({ model: 'tiny', prompt: 'Hello', suffix: 'end', max_tokens: 3 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BadRequestError);
    expect((error as APIError).message).toContain('`suffix` (insertion) is not supported');
  });
});

describe('models', () => {
  it('models.list() lists the model; an unknown route is a NotFoundError', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['tiny']);
    const error = await client.models.retrieve('tiny').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
  });
});

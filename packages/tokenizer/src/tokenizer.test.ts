import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { ChatTemplateError, loadTokenizer, TokenizerError, type Tokenizer } from './index.js';
import { fixtureDir, loadFixture, readFixtureJson } from './testing/fixtures.js';

let llama3: Tokenizer;
let qwen2: Tokenizer;
let mistral: Tokenizer;
let scratch: string;

beforeAll(async () => {
  [llama3, qwen2, mistral] = await Promise.all([loadFixture('llama3'), loadFixture('qwen2'), loadFixture('mistral')]);
  scratch = await mkdtemp(join(tmpdir(), 'gen-tokenizer-'));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('loadTokenizer', () => {
  test('reads a model directory: vocabulary size and special tokens from tokenizer_config.json', () => {
    const json = readFixtureJson('llama3', 'tokenizer.json');
    const learned = Object.keys((json['model'] as { vocab: Record<string, number> }).vocab).length;
    expect(llama3.vocabSize).toBe(learned + 11);
    expect(llama3.bosToken).toBe('<|begin_of_text|>');
    expect(llama3.bosTokenId).toBe(learned);
    expect(llama3.eosToken).toBe('<|eot_id|>');
    expect(llama3.eosTokenId).toBe(learned + 9);
    expect(llama3.padToken).toBeUndefined();
    expect(llama3.padTokenId).toBeUndefined();
    expect(llama3.modelMaxLength).toBe(131072);

    expect(qwen2.bosToken).toBeUndefined();
    expect(qwen2.eosToken).toBe('<|im_end|>');
    expect(qwen2.padToken).toBe('<|endoftext|>');
    expect(qwen2.padTokenId).toBe(qwen2.tokenToId('<|endoftext|>'));

    expect([mistral.bosTokenId, mistral.eosTokenId, mistral.unkTokenId]).toEqual([1, 2, 0]);
    expect(mistral.unkToken).toBe('<unk>');
    // Mistral's config says model_max_length = int(1e30), transformers' "no limit".
    expect(mistral.modelMaxLength).toBeUndefined();
  });

  test('accepts the files as objects or JSON text, and AddedToken objects for special-token fields', async () => {
    const tokenizerJson = await readFile(join(fixtureDir('mistral'), 'tokenizer.json'), 'utf8');
    const config = readFixtureJson('mistral', 'tokenizer_config.json');
    config['bos_token'] = { __type: 'AddedToken', content: '<s>', lstrip: false, normalized: true, rstrip: false };
    const tokenizer = await loadTokenizer({ tokenizerJson, tokenizerConfig: JSON.stringify(config) });
    expect(tokenizer.bosToken).toBe('<s>');
    expect(tokenizer.bosTokenId).toBe(1);
    expect(tokenizer.encode('the sea')).toEqual(mistral.encode('the sea'));
    // Without generation_config.json the eos ids are the config's alone.
    expect(tokenizer.eosTokenIds()).toEqual([2]);
  });

  test('without tokenizer_config.json: no special-token names, no chat template', async () => {
    const tokenizer = await loadTokenizer({ tokenizerJson: readFixtureJson('qwen2', 'tokenizer.json') });
    expect(tokenizer.eosToken).toBeUndefined();
    expect(tokenizer.eosTokenIds()).toEqual([]);
    expect(tokenizer.chatTemplate).toBeUndefined();
    expect(tokenizer.decode(tokenizer.encode('naïve café'))).toBe('naïve café');
  });

  test('errors name the file: missing tokenizer.json, invalid JSON, not a tokenizer', async () => {
    const missing = loadTokenizer(join(scratch, 'nowhere'));
    await expect(missing).rejects.toSatisfy(TokenizerError.isInstance);
    await expect(missing).rejects.toThrow(/nowhere\/tokenizer\.json does not exist/);

    const dir = join(scratch, 'broken');
    await rm(dir, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(dir));
    await writeFile(join(dir, 'tokenizer.json'), '{"model": ');
    await expect(loadTokenizer(dir)).rejects.toThrow(/broken\/tokenizer\.json is not valid JSON/);

    await expect(loadTokenizer({ tokenizerJson: { version: '1.0' }, source: 'my upload' })).rejects.toThrow(
      /tokenizer\.json \(my upload\) has no "model" object/,
    );
  });
});

describe('encode', () => {
  test('special tokens come from the post-processor: bos for Llama 3 and Mistral, none for Qwen2', () => {
    expect(llama3.encode('Hello')[0]).toBe(llama3.bosTokenId);
    expect(llama3.encode('Hello', { addSpecialTokens: false })).toEqual(llama3.encode('Hello').slice(1));
    expect(mistral.encode('Hello')[0]).toBe(1);
    expect(qwen2.encode('Hello')).toEqual(qwen2.encode('Hello', { addSpecialTokens: false }));
    expect(qwen2.encode('Hello').some((id) => qwen2.isSpecial(id))).toBe(false);
  });

  test('add_bos_token / add_eos_token in tokenizer_config.json override the post-processor', async () => {
    const noBos = await loadFixture('mistral', { tokenizerConfig: (config) => (config['add_bos_token'] = false) });
    expect(noBos.encode('the sea')).toEqual(mistral.encode('the sea', { addSpecialTokens: false }));
    const withEos = await loadFixture('mistral', { tokenizerConfig: (config) => (config['add_eos_token'] = true) });
    expect(withEos.encode('the sea')).toEqual([...mistral.encode('the sea'), 2]);
    // Without a post-processor, add_bos_token alone adds the bos token (Llama 2 with a stripped tokenizer.json).
    const bare = await loadFixture('mistral', { tokenizerJson: (json) => (json['post_processor'] = null) });
    expect(bare.encode('the sea')).toEqual(mistral.encode('the sea'));
  });

  test('special tokens written in the text are recognised (ChatML markers), other added tokens too', () => {
    const ids = qwen2.encode('<|im_start|>user\nhi<|im_end|><tool_call>');
    expect(ids[0]).toBe(qwen2.tokenToId('<|im_start|>'));
    expect(ids).toContain(qwen2.tokenToId('<|im_end|>'));
    expect(ids.at(-1)).toBe(qwen2.tokenToId('<tool_call>'));
  });

  test('the empty string encodes to the special tokens alone and decodes to ""', () => {
    expect(llama3.encode('')).toEqual([llama3.bosTokenId]);
    expect(qwen2.encode('')).toEqual([]);
    expect(qwen2.decode([])).toBe('');
  });
});

describe('encodeWithOffsets (TGI /tokenize)', () => {
  test('TGI layout: id, the covered text, code-point start/stop; bos gets an empty span', () => {
    const tokens = llama3.encodeWithOffsets('Hello world');
    expect(tokens[0]).toEqual({ id: llama3.bosTokenId, text: '', start: 0, stop: 0 });
    expect(tokens.slice(1).map((token) => token.text)).toEqual(
      llama3.encode('Hello world', { addSpecialTokens: false }).map((id) => llama3.decode([id])),
    );
    expect(tokens.at(-1)).toMatchObject({ start: 9, stop: 11, text: 'ld' });
    expect(tokens.map((token) => token.id)).toEqual(llama3.encode('Hello world'));
  });

  test('offsets count code points: an emoji after CJK lands at the right index', () => {
    const text = '日本 👍 the';
    const tokens = llama3.encodeWithOffsets(text, { addSpecialTokens: false });
    const chars = Array.from(text);
    const last = tokens.at(-1)!;
    expect(last.text).toBe(' the');
    expect([last.start, last.stop]).toEqual([chars.length - 4, chars.length]);
    expect(text.length - chars.length).toBe(1);
    // Tokens holding part of 👍's four bytes all cover the whole emoji.
    for (const token of tokens.filter((t) => t.text.includes('👍'))) {
      expect(chars.slice(token.start, token.stop).join('')).toBe(token.text);
    }
  });

  test('SentencePiece: the ▁ the pre-tokenizer adds belongs to the first word (or is an empty span alone)', () => {
    const tokens = mistral.encodeWithOffsets('the sea', { addSpecialTokens: false });
    expect(tokens.map((token) => [token.text, token.start, token.stop])).toEqual(
      tokens.map((token) => [Array.from('the sea').slice(token.start, token.stop).join(''), token.start, token.stop]),
    );
    expect(tokens[0]).toMatchObject({ text: 'the', start: 0, stop: 3 });
    expect(tokens.at(-1)!.stop).toBe(7);
  });

  test('NFC normalization: "e\\u0301" becomes one token that covers both code points', () => {
    const tokens = qwen2.encodeWithOffsets('cafe\u0301!', { addSpecialTokens: false });
    const accent = tokens.find((token) => token.text.includes('\u0301'))!;
    expect(accent.stop).toBe(5);
    expect(tokens.at(-1)).toMatchObject({ text: '!', start: 5, stop: 6 });
  });

  test('an added token with lstrip/rstrip: the swallowed spaces belong to no token', async () => {
    const stripping = await loadFixture('qwen2', {
      tokenizerJson: (json) => {
        for (const token of json['added_tokens'] as Array<Record<string, unknown>>) {
          if (token['content'] === '<tool_call>') Object.assign(token, { lstrip: true, rstrip: true });
        }
      },
    });
    const tokens = stripping.encodeWithOffsets('x  <tool_call>  y', { addSpecialTokens: false });
    expect(tokens.map((token) => [token.text, token.start, token.stop])).toEqual([
      ['x', 0, 1],
      ['<tool_call>', 3, 14],
      ['y', 16, 17],
    ]);
  });

  test('NFC-composed input keeps every character in a span (fast-check found "A\u0302\u0301ㆂ" on qwen2)', () => {
    const text = 'A\u0302\u0301\u3182';
    const tokens = qwen2.encodeWithOffsets(text, { addSpecialTokens: false });
    const chars = Array.from(text);
    const covered = new Array<boolean>(chars.length).fill(false);
    for (const token of tokens) for (let k = token.start; k < token.stop; k++) covered[k] = true;
    expect(covered).toEqual([true, true, true, true]);
    expect(tokens.at(-1)!.text).toBe('\u3182');
  });

  const names = ['llama3', 'qwen2', 'mistral'] as const;
  test.prop([fc.constantFrom(...names), fc.string({ unit: 'grapheme', maxLength: 40 })], { numRuns: 200 })(
    'spans are ordered, inside the input, match their text and cover every character',
    (name, text) => {
      const tokenizer = { llama3, qwen2, mistral }[name];
      const chars = Array.from(text);
      const tokens = tokenizer.encodeWithOffsets(text, { addSpecialTokens: false });
      expect(tokens.map((token) => token.id)).toEqual(tokenizer.encode(text, { addSpecialTokens: false }));
      const covered = new Array<boolean>(chars.length).fill(false);
      let lastStart = 0;
      for (const token of tokens) {
        expect(token.start).toBeGreaterThanOrEqual(lastStart);
        expect(token.stop).toBeGreaterThanOrEqual(token.start);
        expect(token.stop).toBeLessThanOrEqual(chars.length);
        expect(token.text).toBe(chars.slice(token.start, token.stop).join(''));
        for (let k = token.start; k < token.stop; k++) covered[k] = true;
        lastStart = token.start;
      }
      // Every character is covered, except those the normalizer or a SentencePiece prefix space dropped: none here.
      expect(covered.every(Boolean)).toBe(true);
    },
  );

  test.prop([fc.string({ unit: 'grapheme-ascii', maxLength: 60 })], { numRuns: 200 })(
    'byte-level, ASCII input: each token covers exactly the text it decodes to',
    (text) => {
      const tokens = llama3.encodeWithOffsets(text, { addSpecialTokens: false });
      for (const token of tokens) expect(token.text).toBe(llama3.decode([token.id]));
      expect(tokens.map((token) => token.text).join('')).toBe(text);
    },
  );
});

describe('decode', () => {
  test('skipSpecialTokens drops special tokens, keeps non-special added tokens', () => {
    const ids = qwen2.encode('<|im_start|>assistant\n<tool_call>{"a": 1}</tool_call><|im_end|>');
    expect(qwen2.decode(ids)).toBe('<|im_start|>assistant\n<tool_call>{"a": 1}</tool_call><|im_end|>');
    expect(qwen2.decode(ids, { skipSpecialTokens: true })).toBe('assistant\n<tool_call>{"a": 1}</tool_call>');
  });

  test('SentencePiece decode: leading space stripped after <s> is skipped, kept when <s> is shown', () => {
    const ids = mistral.encode('The sea is calm.');
    expect(mistral.decode(ids, { skipSpecialTokens: true })).toBe('The sea is calm.');
    expect(mistral.decode(ids)).toBe('<s> The sea is calm.');
  });

  test('clean_up_tokenization_spaces only on request', () => {
    const ids = llama3.encode("Hello , world . I 'm here", { addSpecialTokens: false });
    expect(llama3.decode(ids)).toBe("Hello , world . I 'm here");
    expect(llama3.decode(ids, { cleanUpTokenizationSpaces: true })).toBe("Hello, world. I'm here");
  });

  test('ids outside the vocabulary are ignored', () => {
    const ids = llama3.encode('sea', { addSpecialTokens: false });
    expect(llama3.decode([...ids, llama3.vocabSize, 1e9, -3, 2.5])).toBe('sea');
    expect(llama3.idToToken(llama3.vocabSize)).toBeUndefined();
  });
});

describe('special tokens', () => {
  test('isSpecial: added tokens marked special and additional_special_tokens', () => {
    expect(llama3.isSpecial(llama3.tokenToId('<|eot_id|>')!)).toBe(true);
    expect(llama3.isSpecial(llama3.tokenToId('<|python_tag|>')!)).toBe(true);
    expect(llama3.isSpecial(llama3.encode('a', { addSpecialTokens: false })[0]!)).toBe(false);
    expect(qwen2.isSpecial(qwen2.tokenToId('<|im_start|>')!)).toBe(true);
    expect(qwen2.isSpecial(qwen2.tokenToId('<tool_call>')!)).toBe(false);
    expect(mistral.isSpecial(0)).toBe(true);
    expect(mistral.isSpecial(mistral.tokenToId('<0x0A>')!)).toBe(false);
  });

  test('eosTokenIds joins the config eos, generation_config eos_token_id and extra ids', () => {
    const ids = (tokens: string[]) => tokens.map((token) => llama3.tokenToId(token)!);
    expect(llama3.eosTokenIds()).toEqual(ids(['<|eot_id|>', '<|end_of_text|>', '<|eom_id|>']));
    expect(llama3.eosTokenIds(5)).toEqual([...ids(['<|eot_id|>', '<|end_of_text|>', '<|eom_id|>']), 5]);
    expect(qwen2.eosTokenIds([qwen2.tokenToId('<|endoftext|>')!])).toEqual([
      qwen2.tokenToId('<|im_end|>'),
      qwen2.tokenToId('<|endoftext|>'),
    ]);
    expect(mistral.eosTokenIds(null)).toEqual([2]);
  });
});

describe('errors', () => {
  test('isInstance recognises errors across copies (Symbol.for markers), and the hierarchy', () => {
    const error = new ChatTemplateError({ kind: 'missing', message: 'no template' });
    expect(TokenizerError.isInstance(error)).toBe(true);
    expect(ChatTemplateError.isInstance(error)).toBe(true);
    expect(ChatTemplateError.isInstance(new TokenizerError('x'))).toBe(false);
    expect(TokenizerError.isInstance(new Error('x'))).toBe(false);
    expect(TokenizerError.isInstance({ [Symbol.for('gen.tokenizer.error')]: true })).toBe(true);
    expect(error.name).toBe('ChatTemplateError');
  });
});

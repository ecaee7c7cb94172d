import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { buildTokenizerFiles, specialTokens } from './tokenizer-files.js';
import { byteToUnicode, preTokenize, splitPatterns, splitRegExp } from './byte-level.js';

interface TokenizerConfig {
  bos_token: string | null;
  eos_token: string;
  pad_token: string;
  chat_template: string;
  added_tokens_decoder: Record<string, { content: string; special: boolean }>;
}

const samples = [
  'Hello, world! The lighthouse keeper woke up at 10:20.',
  'Prices: 2.50 per kilo, up 8% since 2023-01-01 (order #A-1047).',
  "It's  a\n\n  test\twith   odd\r\nspacing ",
  'function greet(name: string) {\n  return `Hello, ${name}!`;\n}',
  '今天天气很好，我们去公园散步吧。 今日はとても良い天気ですね。 한국어',
  'Emoji: 🎉🚀 ❤️ 👋🏽 👨‍👩‍👧 🇫🇷',
  'Unseen words: xylophone quizzically zephyr Ω≈ç√∫',
  '',
];

describe.each(['llama3', 'chatml'] as const)('%s tokenizer files', (format) => {
  const built = buildTokenizerFiles(format, { modelVocabSize: 640, modelMaxLength: 512 });
  const tokenizerJson = JSON.parse(built.files['tokenizer.json']!) as {
    model: { vocab: Record<string, number> };
  };
  const tokenizerConfig = JSON.parse(built.files['tokenizer_config.json']!) as TokenizerConfig;
  const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
  const specials = specialTokens[format];
  // tokenizers.js refuses to decode an empty id list, so the empty text is checked by its encoding alone. The
  // Llama 3 files ask for clean_up_tokenization_spaces (as Meta's do), which turns " ." into "." on decode: the
  // round trip is of the tokens, so it decodes without the clean-up.
  const roundTrip = (text: string) => {
    const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
    return ids.length === 0 ? '' : tokenizer.decode(ids, { clean_up_tokenization_spaces: false });
  };
  // The Qwen2 tokenizer normalises to NFC first, as the real one does.
  const expected = (text: string) => (format === 'chatml' ? text.normalize('NFC') : text);

  it('fills the model vocabulary exactly when the corpus allows it', () => {
    expect(built.tokenizerVocabSize).toBe(640);
    expect(tokenizer.get_vocab(true).size).toBe(640);
    expect(Object.keys(tokenizerJson.model.vocab)).toHaveLength(640 - specials.length);
    // ids 0..255 are the bytes, in byte order
    expect(tokenizer.id_to_token(0)).toBe(byteToUnicode[0]);
    expect(tokenizer.id_to_token(32)).toBe('Ġ');
  });

  it('round-trips varied text through @huggingface/tokenizers', () => {
    for (const text of samples) expect(roundTrip(text), JSON.stringify(text)).toBe(expected(text));
  });

  test.prop([fc.string({ unit: 'grapheme', maxLength: 40 })], { numRuns: 200 })('round-trips any text', (text) => {
    expect(roundTrip(text)).toBe(expected(text));
  });

  it('compresses the text it learned from', () => {
    const text = 'The lighthouse keeper wrote the weather in her notebook every morning.';
    expect(tokenizer.encode(text, { add_special_tokens: false }).ids.length).toBeLessThan(text.length / 3);
  });

  it('recognises every special token as one id and can skip it when decoding', () => {
    for (const [index, content] of specials.entries()) {
      const id = built.tokenizerVocabSize - specials.length + index;
      expect(tokenizer.token_to_id(content)).toBe(id);
      expect(tokenizer.encode(`a${content}b`, { add_special_tokens: false }).ids).toContain(id);
    }
    const ids = tokenizer.encode(`${specials[1]}hi${specials[2]}`, { add_special_tokens: false }).ids;
    expect(tokenizer.decode(ids, { skip_special_tokens: true })).toBe('hi');
    expect(tokenizer.decode(ids, { skip_special_tokens: false })).toBe(`${specials[1]}hi${specials[2]}`);
  });

  it('declares bos/eos/pad consistently in every file', () => {
    const map = JSON.parse(built.files['special_tokens_map.json']!) as Record<string, { content: string }>;
    const idOf = (token: string) => tokenizer.token_to_id(token);
    expect(built.tokenIds.eos).toContain(idOf(tokenizerConfig.eos_token));
    expect(idOf(map['eos_token']!.content)).toBe(idOf(tokenizerConfig.eos_token));
    expect(idOf(tokenizerConfig.pad_token)).toBe(built.tokenIds.pad);
    for (const [id, entry] of Object.entries(tokenizerConfig.added_tokens_decoder)) {
      expect(idOf(entry.content)).toBe(Number(id));
      expect(entry.special).toBe(true);
    }
    if (format === 'llama3') {
      expect(idOf(tokenizerConfig.bos_token!)).toBe(built.tokenIds.bos);
      // The post-processor prepends <|begin_of_text|>, as Llama 3's does.
      expect(tokenizer.encode('hi').ids[0]).toBe(built.tokenIds.bos);
    } else {
      expect(tokenizerConfig.bos_token).toBeNull();
      expect(tokenizer.encode('hi').ids).toEqual(tokenizer.encode('hi', { add_special_tokens: false }).ids);
      expect(built.files['merges.txt']!.split('\n')[0]).toBe('#version: 0.2');
      expect(Object.keys(JSON.parse(built.files['vocab.json']!) as object)).toHaveLength(637);
    }
  });

  it('has a chat template that renders and tokenizes into the expected special tokens', () => {
    const template = new Template(tokenizerConfig.chat_template);
    const text: string = template.render({
      messages: [
        { role: 'user', content: 'What is 2 + 2?' },
        { role: 'assistant', content: 'Four.' },
        { role: 'user', content: 'Thanks!' },
      ],
      add_generation_prompt: true,
      bos_token: tokenizerConfig.bos_token ?? '',
    });
    if (format === 'llama3') {
      expect(text).toBe(
        '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 2?<|eot_id|>' +
          '<|start_header_id|>assistant<|end_header_id|>\n\nFour.<|eot_id|>' +
          '<|start_header_id|>user<|end_header_id|>\n\nThanks!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
      );
    } else {
      expect(text).toBe(
        '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n' +
          '<|im_start|>assistant\nFour.<|im_end|>\n<|im_start|>user\nThanks!<|im_end|>\n<|im_start|>assistant\n',
      );
    }
    const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
    expect(tokenizer.decode(ids)).toBe(text);
    const eos = built.tokenIds.eos[format === 'llama3' ? 1 : 0]!; // <|eot_id|> / <|im_end|>
    expect(ids.filter((id: number) => id === eos)).toHaveLength(format === 'llama3' ? 3 : 4);
  });
});

describe('buildTokenizerFiles', () => {
  it('is deterministic and pads large vocabularies (tokenizer smaller than the model)', () => {
    const a = buildTokenizerFiles('llama3', { modelVocabSize: 32000, modelMaxLength: 2048 });
    const b = buildTokenizerFiles('llama3', { modelVocabSize: 32000, modelMaxLength: 2048 });
    expect(a.files).toEqual(b.files);
    expect(a.tokenizerVocabSize).toBeGreaterThan(700);
    expect(a.tokenizerVocabSize).toBeLessThan(32000);
    expect(a.tokenIds.bos).toBe(a.tokenizerVocabSize - 5);
  });

  it('refuses a vocabulary too small for the bytes and the special tokens', () => {
    expect(() => buildTokenizerFiles('chatml', { modelVocabSize: 258, modelMaxLength: 8 })).toThrow(
      /`vocabSize` must be at least 259/,
    );
  });
});

describe('preTokenize', () => {
  it('splits like the Llama 3 pattern: contractions, letters, up to 3 digits, punctuation, spaces', () => {
    const regExp = splitRegExp(splitPatterns.llama3);
    expect(preTokenize("I'm here at 12345, OK?  yes\n\nno", regExp)).toEqual([
      'I',
      "'m",
      ' here',
      ' at',
      ' ',
      '123',
      '45',
      ',',
      ' OK',
      '?',
      ' ',
      ' yes',
      '\n\n',
      'no',
    ]);
    expect(preTokenize('12345', splitRegExp(splitPatterns.chatml))).toEqual(['1', '2', '3', '4', '5']);
  });
});

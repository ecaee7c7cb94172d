import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { writeModelDir } from '@gen/model-kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, TokenizerError, type Tokenizer } from './index.js';
import { loadFixture, loadLegacySentencePiece, loadMetaspaceDecoderSentencePiece } from './testing/fixtures.js';
import { decodesByConcatenation } from './token-bytes.js';

const encoder = new TextEncoder();

/** A hand-written SentencePiece-style tokenizer.json: Metaspace pre-tokenizer and decoder, BPE with byte fallback. */
function handWrittenSentencePiece(): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  const pieces = ['▁', 'h', 'e', 'l', 'o', 't', 'w', 'r', 'd', '▁h', '▁t', 'he', 'll', 'lo', '▁he', '▁the', 'llo'];
  pieces.push('▁hello', 'or', '▁w', '▁wor', 'ld', '▁world', '世', '▁世');
  for (const piece of pieces) vocab[piece] = Object.keys(vocab).length;
  const merges = [
    '▁ h',
    '▁ t',
    'h e',
    'l l',
    'l o',
    '▁h e',
    '▁t he',
    'll o',
    '▁he llo',
    'o r',
    '▁ w',
    '▁w or',
    'l d',
    '▁wor ld',
    '▁ 世',
  ];
  return {
    version: '1.0',
    added_tokens: [
      { id: 0, content: '<unk>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
      { id: 1, content: '<s>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
      { id: 2, content: '</s>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
      ],
    },
    model: { type: 'BPE', unk_token: '<unk>', byte_fallback: true, fuse_unk: true, vocab, merges },
  };
}

let scratch: string;
const tokenizers: Record<string, Tokenizer> = {};
const byteLevel = ['model-kit tiny', 'model-kit tiny-qwen2', 'llama3', 'qwen2'];
const sentencePiece = ['hand-written', 'mistral', 'mistral legacy', 'mistral metaspace'];

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'gen-tokenizer-bytes-'));
  for (const preset of ['tiny', 'tiny-qwen2'] as const) {
    const info = await writeModelDir({ preset, outDir: join(scratch, preset), formats: ['safetensors'], seed: 3 });
    tokenizers[`model-kit ${preset}`] = await loadTokenizer(info.dir);
  }
  tokenizers['llama3'] = await loadFixture('llama3');
  tokenizers['qwen2'] = await loadFixture('qwen2');
  tokenizers['mistral'] = await loadFixture('mistral');
  tokenizers['mistral legacy'] = await loadLegacySentencePiece();
  tokenizers['mistral metaspace'] = await loadMetaspaceDecoderSentencePiece();
  tokenizers['hand-written'] = await loadTokenizer({ tokenizerJson: handWrittenSentencePiece(), source: 'test' });
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function concatenated(tokenizer: Tokenizer, ids: readonly number[]): Uint8Array {
  const parts = ids.map((id) => {
    const bytes = tokenizer.tokenBytes(id);
    if (bytes === undefined) throw new Error(`token ${id} has no bytes`);
    return bytes;
  });
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const texts = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
  fc
    .array(fc.constantFrom('hello', ' world', '世界', '😀', '🦙', ' ', '\n', '{"a": 1}', 'é', 'naïve', '∑'), {
      maxLength: 12,
    })
    .map((parts) => parts.join('')),
);

describe.each(byteLevel)('byte-level %s', (name) => {
  test.prop([texts], { numRuns: 150 })('token bytes concatenate to the UTF-8 of the encoded text', (text) => {
    const tokenizer = tokenizers[name]!;
    const normalized = name.includes('qwen2') ? text.normalize('NFC') : text;
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    expect(concatenated(tokenizer, ids)).toEqual(encoder.encode(normalized));
  });
});

// A literal U+2581 in the text is a space to a Metaspace decoder (as in Hugging Face tokenizers: encode leaves it
// as ▁, decode turns every ▁ into a space), so such texts do not round-trip and are left out.
const sentencePieceTexts = texts.filter(
  (text) => text !== '' && !/^\s/u.test(text) && !text.includes('  ') && !text.includes('\u2581'),
);

describe.each(sentencePiece)('SentencePiece-style %s', (name) => {
  test.prop([sentencePieceTexts], { numRuns: 150 })(
    'token bytes concatenate to a space plus the UTF-8 of the text (the prepended ▁ is a space mid-sequence)',
    (text) => {
      const tokenizer = tokenizers[name]!;
      const ids = tokenizer.encode(text, { addSpecialTokens: false });
      expect(new TextDecoder().decode(concatenated(tokenizer, ids))).toBe(` ${text}`);
      expect(concatenated(tokenizer, ids)).toEqual(encoder.encode(` ${text}`));
    },
  );
});

describe('tokenBytes', () => {
  test('partial UTF-8: an emoji spelled with byte tokens gives one byte per token', () => {
    const tokenizer = tokenizers['hand-written']!;
    const ids = tokenizer.encode('😀', { addSpecialTokens: false });
    const lengths = ids.map((id) => tokenizer.tokenBytes(id)!.length);
    expect(lengths.filter((length) => length === 1).length).toBeGreaterThanOrEqual(4);
    expect(tokenizer.tokenBytes(tokenizer.tokenToId('<0xF0>')!)).toEqual(Uint8Array.of(0xf0));
    expect(tokenizer.tokenBytes(tokenizer.tokenToId('▁hello')!)).toEqual(encoder.encode(' hello'));
  });

  test('special tokens and ids outside the vocabulary have no bytes; non-special added tokens their content', () => {
    const qwen = tokenizers['qwen2']!;
    expect(qwen.tokenBytes(qwen.tokenToId('<|im_end|>')!)).toBeUndefined();
    expect(qwen.tokenBytes(qwen.tokenToId('<tool_call>')!)).toEqual(encoder.encode('<tool_call>'));
    expect(qwen.tokenBytes(-1)).toBeUndefined();
    expect(qwen.tokenBytes(1.5)).toBeUndefined();
    expect(qwen.tokenBytes(qwen.vocabSize)).toBeUndefined();
    const llama = tokenizers['llama3']!;
    expect(llama.tokenBytes(llama.bosTokenId!)).toBeUndefined();
    for (const id of llama.eosTokenIds()) expect(llama.tokenBytes(id)).toBeUndefined();
    const mistral = tokenizers['mistral']!;
    expect(mistral.tokenBytes(mistral.bosTokenId!)).toBeUndefined();
    expect(mistral.tokenBytes(mistral.eosTokenId!)).toBeUndefined();
  });

  test('vocabularyBytes lists tokenBytes of every id', () => {
    for (const tokenizer of Object.values(tokenizers)) {
      const all = tokenizer.vocabularyBytes();
      expect(all.length).toBe(tokenizer.vocabSize);
      for (let id = 0; id < tokenizer.vocabSize; id += 7) expect(all[id]).toEqual(tokenizer.tokenBytes(id));
      expect(tokenizer.vocabularyBytes()).toBe(all);
    }
  });

  test.each([
    ['WordPiece', { type: 'WordPiece', prefix: '##', cleanup: true }],
    ['CTC', { type: 'CTC', pad_token: '<pad>', word_delimiter_token: '|', cleanup: true }],
    ['Replace', { type: 'Replace', pattern: { Regex: '▁+' }, content: ' ' }],
    ['Strip', { type: 'Sequence', decoders: [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] }],
    ['null', null],
  ])('a %s decoder that cannot be mapped exactly throws a TokenizerError naming it', async (type, decoder) => {
    const tokenizer = await loadFixture('mistral', { tokenizerJson: (json) => void (json['decoder'] = decoder) });
    expect(tokenizer.decode(tokenizer.encode('hello'))).toBeTypeOf('string');
    const id = tokenizer.tokenToId('<0x41>')!;
    expect(() => tokenizer.tokenBytes(id)).toThrow(TokenizerError);
    expect(() => tokenizer.tokenBytes(id)).toThrow(new RegExp(`decoder ${type}\\b`));
  });
});

describe('decodesByConcatenation', () => {
  it('holds for decoders that join token bytes and trim at most the start', () => {
    expect(decodesByConcatenation({ type: 'ByteLevel' })).toBe(true);
    const legacy = {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    };
    expect(decodesByConcatenation(legacy)).toBe(true);
  });

  it('fails for decoders that rewrite the end of the text or have no per-token bytes', () => {
    expect(decodesByConcatenation({ type: 'BPEDecoder', suffix: '</w>' })).toBe(false);
    const trailing = { type: 'Sequence', decoders: [{ type: 'Fuse' }, { type: 'Strip', start: 0, stop: 1 }] };
    expect(decodesByConcatenation(trailing)).toBe(false);
    expect(decodesByConcatenation({ type: 'WordPiece' })).toBe(false);
    expect(decodesByConcatenation(null)).toBe(false);
  });
});

import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { kv, writeGguf, type GgufValue } from '@gen/gguf';
import { writeGgufModel, writeModelDir, type ModelConfig, type PresetName } from '@gen/model-kit';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { fixtureDir } from './testing/fixtures.js';
import { gpt2Gguf, llamaGguf } from './testing/gguf.js';
import { loadTokenizer, mergesFromScores, TokenizerError, tokenizerFilesFromGguf, type Tokenizer } from './index.js';

// The same tokenizer twice: from its Hugging Face files, and from a GGUF file holding the `tokenizer.ggml.*` metadata
// llama.cpp's converter writes for it. Both must tokenize, decode, mark specials and render chat templates alike.
let scratch: string;
const exportedPresets: Array<[PresetName, Partial<ModelConfig>]> = [
  ['tiny', {}],
  ['tiny-qwen2', {}],
  ['tiny-qwen3', {}],
  ['tiny-gemma2', { queryPreAttnScalar: 16 }],
  ['tiny-gemma3', {}],
  ['tiny-phi3', {}],
];
const pairs: Record<string, { original: Tokenizer; gguf: Tokenizer; fromDir: Tokenizer }> = {};

const samples = [
  'Hello world! The quick brown fox jumps over the lazy dog.',
  "  leading spaces, tabs\tand\nnewlines\n\n  it's 2026, isn't it? 12345 67",
  'Unicode: héllo wörld, 日本語のテキスト, emoji 🦙🚀, combining é (e + ́)',
  '<|im_start|>user\nhi<|im_end|> <|eot_id|> </s> <s> special-looking text',
  'code: function f(x) { return x ** 2; } // ok',
];

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'gen-tokenizer-gguf-'));
  const add = async (name: string, original: Tokenizer, bytes: Uint8Array) => {
    const dir = join(scratch, name);
    await mkdir(dir, { recursive: true });
    const file = join(dir, 'model.gguf');
    await writeFile(file, bytes);
    pairs[name] = { original, gguf: await loadTokenizer(file), fromDir: await loadTokenizer(dir) };
  };
  for (const [preset, pre] of [
    ['tiny', 'llama-bpe'],
    ['tiny-qwen2', 'qwen2'],
  ] as const) {
    const info = await writeModelDir({ preset, outDir: join(scratch, `${preset}-hf`), formats: ['safetensors'] });
    const original = await loadTokenizer(info.dir);
    const json = JSON.parse(await readFile(join(info.dir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    await add(preset, original, gpt2Gguf(original, json, pre, { addBos: preset === 'tiny' }));
  }
  // GGUF files written by model-kit's exporter, every preset family (with the overrides that make Gemma 2
  // exportable): its tokenizer.ggml.* metadata must give back the directory's tokenizer.
  for (const [preset, config] of exportedPresets) {
    const info = await writeModelDir({
      preset,
      config,
      outDir: join(scratch, `${preset}-exported-hf`),
      formats: ['safetensors'],
    });
    const dir = join(scratch, `exported-${preset}`);
    const gguf = await writeGgufModel({ preset, config, outFile: join(dir, 'model.gguf') });
    pairs[`exported ${preset}`] = {
      original: await loadTokenizer(info.dir),
      gguf: await loadTokenizer(gguf.file),
      fromDir: await loadTokenizer(dir),
    };
  }
  const mistral = await loadTokenizer(fixtureDir('mistral'));
  const json = JSON.parse(await readFile(join(fixtureDir('mistral'), 'tokenizer.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  await add('sentencepiece', mistral, llamaGguf(mistral, json));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom(...samples),
  fc
    .array(fc.constantFrom('a', ' ', '  ', '\n', 'the', ' The', '日本', '🦙', "'s", '123', '<|im_end|>', '</s>'), {
      maxLength: 12,
    })
    .map((parts) => parts.join('')),
);

describe.each(['tiny', 'tiny-qwen2', 'sentencepiece', ...exportedPresets.map(([preset]) => `exported ${preset}`)])(
  '%s: tokenizer.json and GGUF agree',
  (name) => {
    const pair = () => pairs[name]!;

    test.prop([text], { numRuns: 200 })('encode and decode', (input) => {
      const { original, gguf, fromDir } = pair();
      for (const addSpecialTokens of [true, false]) {
        const ids = original.encode(input, { addSpecialTokens });
        expect(gguf.encode(input, { addSpecialTokens })).toEqual(ids);
        expect(fromDir.encode(input, { addSpecialTokens })).toEqual(ids);
        for (const skipSpecialTokens of [true, false]) {
          expect(gguf.decode(ids, { skipSpecialTokens })).toBe(original.decode(ids, { skipSpecialTokens }));
        }
      }
    });

    test('every id: token, special flag and bytes; special and end-of-generation ids', () => {
      const { original, gguf } = pair();
      expect(gguf.vocabSize).toBe(original.vocabSize);
      for (let id = 0; id < original.vocabSize; id++) {
        expect(gguf.idToToken(id)).toBe(original.idToToken(id));
        expect(gguf.isSpecial(id)).toBe(original.isSpecial(id));
        expect(gguf.tokenBytes(id)).toEqual(original.tokenBytes(id));
      }
      if (name.startsWith('exported')) {
        // ChatML / Qwen3 tokenizers have no bos_token; the files carry config.json's bos_token_id (never added).
        if (original.bosTokenId !== undefined) expect(gguf.bosTokenId).toBe(original.bosTokenId);
        // model-kit's files carry config.json's primary end token as tokenizer.ggml.eos_token_id (what llama.cpp
        // and the backends report as eos; transformers' eos_token is the end of a chat turn, an end token too) and
        // its pad_token_id.
        expect(gguf.eosTokenIds()).toContain(original.eosTokenId);
        if (original.padTokenId !== undefined) expect(gguf.padTokenId).toBe(original.padTokenId);
      } else {
        expect(gguf.bosTokenId).toBe(original.bosTokenId);
        expect(gguf.eosTokenId).toBe(original.eosTokenId);
        expect(gguf.padTokenId).toBe(original.padTokenId);
      }
      expect([...gguf.eosTokenIds()].sort()).toEqual([...original.eosTokenIds()].sort());
    });

    test('chat template', () => {
      const { original, gguf } = pair();
      if (original.chatTemplate === undefined) return;
      const messages = [
        { role: 'user', content: 'Hi there 🦙' },
        { role: 'assistant', content: 'Hello!' },
        { role: 'user', content: 'Again?' },
      ];
      for (const addGenerationPrompt of [true, false]) {
        expect(gguf.applyChatTemplate(messages, { addGenerationPrompt })).toBe(
          original.applyChatTemplate(messages, { addGenerationPrompt }),
        );
      }
    });
  },
);

describe('tokenizerFilesFromGguf errors', () => {
  test('no tokenizer, an unknown model, an unknown pre-tokenizer, bad ids: TokenizerError naming the key', () => {
    expect(() => tokenizerFilesFromGguf(new Map())).toThrow(/tokenizer\.ggml\.model/);
    const tokens = kv.array('string', ['a', 'b', 'ab']);
    expect(() =>
      tokenizerFilesFromGguf(
        new Map<string, GgufValue>([
          ['tokenizer.ggml.model', kv.string('rwkv')],
          ['tokenizer.ggml.tokens', tokens],
        ]),
      ),
    ).toThrow(/"rwkv" is not supported/);
    expect(() =>
      tokenizerFilesFromGguf(
        new Map<string, GgufValue>([
          ['tokenizer.ggml.model', kv.string('gpt2')],
          ['tokenizer.ggml.pre', kv.string('deepseek-coder')],
          ['tokenizer.ggml.tokens', tokens],
          ['tokenizer.ggml.merges', kv.array('string', ['a b'])],
        ]),
      ),
    ).toThrow(/"deepseek-coder" has no exact tokenizer.json equivalent.*llama-bpe/);
    expect(() =>
      tokenizerFilesFromGguf(
        new Map<string, GgufValue>([
          ['tokenizer.ggml.model', kv.string('gpt2')],
          ['tokenizer.ggml.tokens', tokens],
          ['tokenizer.ggml.merges', kv.array('string', ['a b'])],
          ['tokenizer.ggml.eos_token_id', kv.uint32(9)],
        ]),
      ),
    ).toThrow(/eos_token_id = 9 is not a token id/);
    expect(() => tokenizerFilesFromGguf(new Map([['tokenizer.ggml.model', kv.string('gpt2')]]))).toThrow(
      TokenizerError,
    );
  });

  test('a file that is not GGUF, and a directory with two GGUF files', async () => {
    const dir = join(scratch, 'bad');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'x.gguf'), 'not a gguf file');
    await expect(loadTokenizer(join(dir, 'x.gguf'))).rejects.toThrow(/Cannot read the GGUF file .*x\.gguf/);
    await writeFile(join(dir, 'y.gguf'), writeGguf({ metadata: new Map(), tensors: [] }));
    await expect(loadTokenizer(dir)).rejects.toThrow(/several GGUF files \(x\.gguf, y\.gguf\)/);
  });
});

describe('mergesFromScores', () => {
  test('merges of each split into vocabulary pieces, ranked by the piece score, then by the halves scores', () => {
    const tokens = ['a', 'b', 'c', 'ab', 'bc', 'abc'];
    const scores = [0, 0, 0, -1, -2, -3];
    expect(mergesFromScores(tokens, scores)).toEqual([
      ['a', 'b'],
      ['b', 'c'],
      ['a', 'bc'],
      ['ab', 'c'],
    ]);
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { writeModelDir, type ModelDirInfo } from '@gen/model-kit';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { loadTokenizer, type Tokenizer } from './index.js';

// Model directories written by @gen/model-kit (what the backends, the engine and the demo load): a learned byte-level
// BPE laid out like Llama 3 (`tiny`), Qwen2 (`tiny-qwen2`), Qwen3, Gemma or Phi-3 (the tiny-* family presets), read here
// exactly as a downloaded model would be.
const presets = ['tiny', 'tiny-qwen2', 'tiny-qwen3', 'tiny-gemma2', 'tiny-gemma3', 'tiny-phi3'] as const;
/** Presets whose tokenizer normalises to NFC (the Qwen layouts). */
const nfcPresets: readonly string[] = ['tiny-qwen2', 'tiny-qwen3'];
let scratch: string;
const models: Record<string, { info: ModelDirInfo; tokenizer: Tokenizer }> = {};

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'gen-tokenizer-model-kit-'));
  for (const preset of presets) {
    const info = await writeModelDir({ preset, outDir: join(scratch, preset), formats: ['safetensors'], seed: 7 });
    models[preset] = { info, tokenizer: await loadTokenizer(info.dir) };
  }
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function model(preset: string) {
  const entry = models[preset];
  if (entry === undefined) throw new Error(`${preset} not written`);
  return entry;
}

describe.each(presets)('@gen/model-kit %s directory', (preset) => {
  test('vocabulary size and eos ids agree with what model-kit wrote in config.json', () => {
    const { info, tokenizer } = model(preset);
    expect(tokenizer.vocabSize).toBe(info.tokenizerVocabSize);
    expect(tokenizer.vocabSize).toBeLessThanOrEqual(info.config.vocabSize);
    expect([...tokenizer.eosTokenIds()].sort()).toEqual([...info.tokenIds.eos].sort());
    expect(tokenizer.padTokenId).toBe(info.tokenIds.pad);
  });

  test('chat template renders and its prompt encodes to special tokens where they belong', () => {
    const { tokenizer } = model(preset);
    const prompt = tokenizer.applyChatTemplate([{ role: 'user', content: 'Where is the lighthouse?' }], {
      addGenerationPrompt: true,
    });
    const ids = tokenizer.encode(prompt, { addSpecialTokens: false });
    expect(tokenizer.decode(ids)).toBe(prompt);
    expect(ids.filter((id) => tokenizer.isSpecial(id)).length).toBeGreaterThanOrEqual(3);
    expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toContain('Where is the lighthouse?');
  });

  test.prop([fc.array(fc.nat(), { maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 24 })], { numRuns: 100 })(
    'random generations stream to their full decode; encoded text streams back to itself',
    (raw, text) => {
      const { info, tokenizer } = model(preset);
      // A model samples from its whole embedding, which can be larger than the tokenizer's vocabulary.
      const ids = raw.map((n) => n % info.config.vocabSize);
      const decoder = tokenizer.createStreamDecoder({ skipSpecialTokens: true });
      let emitted = '';
      for (const id of ids) emitted += decoder.push(id);
      expect(emitted + decoder.flush()).toBe(tokenizer.decode(ids, { skipSpecialTokens: true }));

      const encoded = tokenizer.encode(text, { addSpecialTokens: false });
      const roundTrip = tokenizer.createStreamDecoder();
      const expected = nfcPresets.includes(preset) ? text.normalize('NFC') : text;
      expect(encoded.map((id) => roundTrip.push(id)).join('') + roundTrip.flush()).toBe(expected);
    },
  );
});

describe('@gen/model-kit family chat templates', () => {
  const conversation = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi' },
  ];

  test('qwen3: the real Qwen3 template, thinking switch, <think> kept by skipSpecialTokens', () => {
    const { tokenizer } = model('tiny-qwen3');
    expect(tokenizer.applyChatTemplate(conversation, { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(
      tokenizer.applyChatTemplate(conversation, { addGenerationPrompt: true, variables: { enable_thinking: false } }),
    ).toMatch(/<think>\n\n<\/think>\n\n$/);
    const ids = tokenizer.encode('<think>x</think>', { addSpecialTokens: false });
    expect(ids.length).toBe(3);
    expect(ids.some((id) => tokenizer.isSpecial(id))).toBe(false);
    expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe('<think>x</think>');
  });

  test.each(['tiny-gemma2', 'tiny-gemma3'])(
    '%s: the Gemma 3 template folds the system prompt into the first turn',
    (preset) => {
      const { tokenizer } = model(preset);
      expect(tokenizer.applyChatTemplate(conversation, { addGenerationPrompt: true })).toBe(
        '<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n',
      );
      const ids = tokenizer.encode('Hi');
      expect(tokenizer.decode(ids.slice(0, 1))).toBe('<bos>');
    },
  );

  test('phi3: the Phi-3 template', () => {
    const { tokenizer } = model('tiny-phi3');
    expect(tokenizer.applyChatTemplate(conversation, { addGenerationPrompt: true })).toBe(
      '<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n',
    );
    expect(tokenizer.encode('Hi', { addSpecialTokens: true }).length).toBe(tokenizer.encode('Hi').length);
  });
});

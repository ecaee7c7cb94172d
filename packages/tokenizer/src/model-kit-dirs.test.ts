import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { writeModelDir, type ModelDirInfo } from '@gen/model-kit';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { loadTokenizer, type Tokenizer } from './index.js';

// Model directories written by @gen/model-kit (what the backends, the engine and the demo load): a learned byte-level
// BPE laid out like Llama 3 (`tiny`) or Qwen2 (`tiny-qwen2`), read here exactly as a downloaded model would be.
let scratch: string;
const models: Record<string, { info: ModelDirInfo; tokenizer: Tokenizer }> = {};

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'gen-tokenizer-model-kit-'));
  for (const preset of ['tiny', 'tiny-qwen2'] as const) {
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

describe.each(['tiny', 'tiny-qwen2'])('@gen/model-kit %s directory', (preset) => {
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
      const expected = preset === 'tiny-qwen2' ? text.normalize('NFC') : text;
      expect(encoded.map((id) => roundTrip.push(id)).join('') + roundTrip.flush()).toBe(expected);
    },
  );
});

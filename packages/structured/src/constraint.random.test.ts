import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fc, test } from '@fast-check/vitest';
import { writeModelDir } from '@gen/model-kit';
import { createSampler } from '@gen/sampling';
import { loadTokenizer, type Tokenizer } from '@gen/tokenizer';
import { Ajv2020 as Ajv } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { constraintFor, maskIndexFor } from './cache.js';
import { constraintState } from './constraint.js';
import { jsonSchemaGrammar } from './json-schema.js';
import { schemaArb } from './testing/schemas.js';
import { randomRow } from './testing/logits.js';
import { vocabularyFromTokenizer, type TokenVocabulary } from './vocabulary.js';

// Random schemas of the supported subset, sampled token by token through @gen/sampling with random logits, on the
// two kinds of vocabulary models ship: byte-level BPE (model-kit's tiny-qwen2 tokenizer) and SentencePiece-style BPE
// (Metaspace `▁`, `<0xNN>` byte fallback: a copy of @gen/tokenizer's Mistral-shaped fixture). Every output that ends
// with EOS must decode to JSON valid for its schema (ajv), and no row may be emptied on the way.

const ajv = new Ajv({ strict: false });
(formats as unknown as { default: (a: Ajv) => void }).default(ajv);

interface Subject {
  tokenizer: Tokenizer;
  vocabulary: TokenVocabulary;
  eos: number[];
}
const subjects = new Map<string, Subject>();
let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'gen-structured-random-'));
  const info = await writeModelDir({ preset: 'tiny-qwen2', outDir: join(scratch, 'm'), formats: ['safetensors'] });
  const here = dirname(fileURLToPath(import.meta.url));
  for (const [name, dir, size] of [
    ['byte-level BPE', info.dir, info.config.vocabSize],
    ['SentencePiece', join(here, 'testing', 'sentencepiece'), undefined],
  ] as const) {
    const tokenizer = await loadTokenizer(dir);
    const eos = tokenizer.eosTokenIds();
    const vocabulary = vocabularyFromTokenizer(tokenizer, { size: size ?? tokenizer.vocabSize, eosTokenIds: eos });
    subjects.set(name, { tokenizer, vocabulary, eos });
  }
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const ended: Record<string, number> = {};

describe.each(['byte-level BPE', 'SentencePiece'])('random schemas on a %s vocabulary', (name) => {
  test.prop([schemaArb, fc.integer({ min: 1, max: 2 ** 30 })], { numRuns: 60 })(
    'outputs ended by EOS decode to JSON that validates; no row is ever emptied',
    (schema, seed) => {
      const { tokenizer, vocabulary, eos } = subjects.get(name)!;
      const grammar = jsonSchemaGrammar(schema, { maxDepth: 3 });
      const index = maskIndexFor(grammar, vocabulary);
      const sampler = createSampler(
        { seed, temperature: 1.2 },
        { vocabSize: vocabulary.size, eosTokenIds: eos, processors: [constraintFor(grammar, vocabulary)] },
      );
      const sequence = sampler.createSequence([1]);
      const state = constraintState(sequence.processors.find((p) => constraintState(p) !== undefined)!)!;
      const ids: number[] = [];
      let done = false;
      for (let step = 0; step < 150 && !done; step++) {
        expect(index.mask(state.state).allowed).toBeGreaterThan(0);
        const { tokenId } = sampler.sample(randomRow(vocabulary.size, seed * 977 + step, eos, 9), sequence);
        sequence.accept(tokenId);
        if (eos.includes(tokenId)) done = true;
        else {
          expect(tokenizer.isSpecial(tokenId)).toBe(false);
          ids.push(tokenId);
        }
      }
      expect(state.finished).toBe(done);
      if (!done) return;
      ended[name] = (ended[name] ?? 0) + 1;
      const text = tokenizer.decode(ids);
      const validate = ajv.compile(schema);
      const value: unknown = JSON.parse(text);
      expect(validate(value), `${JSON.stringify(schema)}\n${text}\n${JSON.stringify(validate.errors)}`).toBe(true);
    },
  );

  test('most of those outputs ended (the property was not vacuous)', () => {
    expect(ended[name] ?? 0).toBeGreaterThanOrEqual(30);
  });
});

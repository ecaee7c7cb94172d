import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { writeModelDir } from '@gen/model-kit';
import { createSampler } from '@gen/sampling';
import { loadTokenizer, type Tokenizer } from '@gen/tokenizer';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { constraintFor, maskIndexFor } from './cache.js';
import { constraintState } from './constraint.js';
import { jsonSchemaGrammar } from './json-schema.js';
import { randomRow } from './testing/logits.js';
import { vocabularyFromTokenizer, type TokenVocabulary } from './vocabulary.js';

// End to end: the model-kit byte-level tokenizer (what the demo model and the backends' tests load), JSON Schemas
// compiled by compileGrammar, the constraint as a processor of @gen/sampling's sampler, seeded random logits.
let scratch: string;
let tokenizer: Tokenizer;
let vocabulary: TokenVocabulary;
let eos: number[];

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'gen-structured-e2e-'));
  const info = await writeModelDir({
    preset: 'tiny-qwen2',
    outDir: join(scratch, 'm'),
    formats: ['safetensors'],
    seed: 5,
  });
  tokenizer = await loadTokenizer(info.dir);
  eos = tokenizer.eosTokenIds();
  vocabulary = vocabularyFromTokenizer(tokenizer, { size: info.config.vocabSize, eosTokenIds: eos });
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const schemas: Record<string, Record<string, unknown>> = {
  object: {
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 6 },
      n: { type: 'integer', minimum: -5, maximum: 999 },
      ok: { type: 'boolean' },
      tag: { enum: ['a', 'b c', '日本語', '😀'] },
      list: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, maxItems: 3 },
    },
    required: ['name', 'n', 'ok'],
  },
  unicode: { enum: ['日本語', '😀🦙', 'é'] },
  array: { type: 'array', items: { type: 'boolean' }, minItems: 1, maxItems: 4 },
};

const completed: Record<string, number> = {};

describe.each(Object.keys(schemas))('JSON Schema %s on the model-kit tiny-qwen2 vocabulary', (name) => {
  const schema = schemas[name]!;
  const validate = new Ajv().compile(schema);

  test.prop([fc.integer({ min: 1, max: 2 ** 30 })], { numRuns: 25 })(
    'sampled outputs ended by EOS parse and validate; the mask never empties a row nor lets special tokens in',
    (seed) => {
      const grammar = jsonSchemaGrammar(schema, { whitespace: 'compact' });
      const index = maskIndexFor(grammar, vocabulary);
      const sampler = createSampler(
        { seed, temperature: 1.5 },
        { vocabSize: vocabulary.size, eosTokenIds: eos, processors: [constraintFor(grammar, vocabulary)] },
      );
      const sequence = sampler.createSequence([1, 2]);
      const state = constraintState(sequence.processors.find((p) => constraintState(p) !== undefined)!)!;
      const ids: number[] = [];
      let ended = false;
      for (let step = 0; step < 120 && !ended; step++) {
        const mask = index.mask(state.state);
        expect(mask.allowed).toBeGreaterThan(0);
        const { tokenId } = sampler.sample(randomRow(vocabulary.size, seed * 131 + step, eos, 12), sequence);
        sequence.accept(tokenId);
        if (eos.includes(tokenId)) {
          ended = true;
        } else {
          expect(tokenizer.isSpecial(tokenId)).toBe(false);
          expect(tokenId).toBeLessThan(tokenizer.vocabSize);
          ids.push(tokenId);
        }
      }
      expect(state.finished).toBe(ended);
      if (ended) {
        completed[name] = (completed[name] ?? 0) + 1;
        const text = tokenizer.decode(ids);
        const value: unknown = JSON.parse(text);
        expect(validate(value), `${text}: ${JSON.stringify(validate.errors)}`).toBe(true);
      }
    },
  );

  test('many of those outputs were complete (the property above was not vacuous)', () => {
    expect(completed[name] ?? 0).toBeGreaterThanOrEqual(5);
  });
});

describe('masks on a real vocabulary', () => {
  test('special tokens are never allowed inside JSON; EOS only where the value is complete', () => {
    const grammar = jsonSchemaGrammar(schemas['object']!, { whitespace: 'compact' });
    const index = maskIndexFor(grammar, vocabulary);
    expect(maskIndexFor(grammar, vocabulary)).toBe(index);
    const specials = Array.from({ length: tokenizer.vocabSize }, (_, id) => id).filter((id) => tokenizer.isSpecial(id));
    expect(specials.length).toBeGreaterThan(0);
    let s = index.automaton.start;
    const text = '{"name":"日本","n":12,"ok":true}';
    for (const id of tokenizer.encode(text, { addSpecialTokens: false })) {
      const mask = index.mask(s);
      const ids = new Set(mask.ids);
      for (const special of specials) {
        const allowed = mask.mode === 'allow' ? ids.has(special) : !ids.has(special);
        expect(allowed).toBe(eos.includes(special) && index.isAccepting(s));
      }
      expect(index.allows(s, id)).toBe(true);
      s = index.advance(s, id);
      expect(s).toBeGreaterThanOrEqual(0);
    }
    expect(index.isAccepting(s)).toBe(true);
    expect(index.mask(s).eos).toBe(true);
  });
});

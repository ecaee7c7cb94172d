import { describe, expect, test } from 'vitest';
import { constraintFor, maskIndexFor } from './cache.js';
import { literalGrammar } from './grammar.js';
import { TokenVocabulary } from './vocabulary.js';

const vocabulary = new TokenVocabulary({
  size: 258,
  tokenBytes: (id) => (id < 256 ? Uint8Array.of(id) : undefined),
  eosTokenIds: [256],
});

describe('maskIndexFor', () => {
  test('one index per grammar key and vocabulary, least recently used evicted past 64', () => {
    const first = maskIndexFor(literalGrammar('a'), vocabulary);
    expect(maskIndexFor(literalGrammar('a'), vocabulary)).toBe(first);
    const other = new TokenVocabulary({ size: 258, tokenBytes: (id) => Uint8Array.of(id & 255), eosTokenIds: [] });
    expect(maskIndexFor(literalGrammar('a'), other)).not.toBe(first);
    for (let k = 0; k < 63; k++) maskIndexFor(literalGrammar(`x${k}`), vocabulary);
    // 'a' was used least recently but the cache holds 64: still there; one more evicts it.
    expect(maskIndexFor(literalGrammar('a'), vocabulary)).toBe(first);
    for (let k = 0; k < 64; k++) maskIndexFor(literalGrammar(`y${k}`), vocabulary);
    expect(maskIndexFor(literalGrammar('a'), vocabulary)).not.toBe(first);
  });

  test('constraintFor shares the cached masks between processors', () => {
    const index = maskIndexFor(literalGrammar('ok'), vocabulary);
    index.mask(index.automaton.start);
    const processor = constraintFor(literalGrammar('ok'), vocabulary);
    expect(processor.name).toBe('constraint');
    expect(index.cachedMasks).toBe(1);
  });
});

import type { LogitsProcessor } from '@gen/sampling';
import { createConstraintProcessor } from './constraint.js';
import { compileGrammar } from './dfa.js';
import { TokenMaskIndex } from './token-index.js';
import type { Grammar } from './types.js';
import type { TokenVocabulary } from './vocabulary.js';

const indexes = new WeakMap<TokenVocabulary, Map<string, TokenMaskIndex>>();
/** Most indexes kept per vocabulary. */
const INDEX_ENTRIES = 64;
/** Most mask ids (4 bytes each) kept per vocabulary, all indexes together: 128 MiB. */
const INDEX_IDS = 32 * 2 ** 20;

/**
 * The token-mask index of `grammar` on `vocabulary`, from an LRU cache per vocabulary (masks stay warm across
 * requests with the same grammar key), bounded to 64 indexes and 128 MiB of cached masks: the least recently used
 * indexes are dropped (the one returned always stays).
 */
export function maskIndexFor(grammar: Grammar, vocabulary: TokenVocabulary): TokenMaskIndex {
  let entries = indexes.get(vocabulary);
  if (entries === undefined) indexes.set(vocabulary, (entries = new Map()));
  let index = entries.get(grammar.key);
  if (index !== undefined) {
    entries.delete(grammar.key);
  } else {
    index = new TokenMaskIndex(compileGrammar(grammar), vocabulary);
  }
  entries.set(grammar.key, index);
  if (entries.size > INDEX_ENTRIES) entries.delete(entries.keys().next().value!);
  let ids = 0;
  for (const entry of entries.values()) ids += entry.cachedIds;
  for (const [key, entry] of entries) {
    if (ids <= INDEX_IDS || entry === index) break;
    ids -= entry.cachedIds;
    entries.delete(key);
  }
  return index;
}

/**
 * The constraint processor of `grammar` on `vocabulary`: compiled once per grammar key and vocabulary, its masks
 * cached. Throws the grammar's errors (`UnsupportedSchemaError`, ...) only when the grammar is built; compiling
 * the automaton itself fails only on the state limit (`InvalidGrammarError`).
 */
export function constraintFor(grammar: Grammar, vocabulary: TokenVocabulary): LogitsProcessor {
  return createConstraintProcessor(maskIndexFor(grammar, vocabulary));
}

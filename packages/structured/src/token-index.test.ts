import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { TokenMaskIndex } from './token-index.js';
import type { ByteAutomaton } from './types.js';
import { compileGrammar, regexGrammar } from './grammar.js';
import { isPlainByte, TokenVocabulary, vocabularyFromTokenizer } from './vocabulary.js';

const utf8 = new TextEncoder();

/** A hand-written DFA for a finite set of words (a byte trie; accepting at word ends), optionally followed by digits. */
class WordsDfa implements ByteAutomaton {
  readonly start = 0;
  private readonly next: Map<number, number>[] = [new Map()];
  private readonly accepting: boolean[] = [false];

  constructor(words: readonly string[]) {
    for (const word of words) {
      let state = 0;
      for (const byte of utf8.encode(word)) {
        let to = this.next[state]!.get(byte);
        if (to === undefined) {
          to = this.next.length;
          this.next.push(new Map());
          this.accepting.push(false);
          this.next[state]!.set(byte, to);
        }
        state = to;
      }
      this.accepting[state] = true;
    }
  }

  get stateCount(): number {
    return this.next.length;
  }

  step(state: number, byte: number): number {
    return this.next[state]?.get(byte) ?? -1;
  }

  isAccepting(state: number): boolean {
    return this.accepting[state] === true;
  }

  isFinal(state: number): boolean {
    return this.isAccepting(state) && this.next[state]!.size === 0;
  }
}

/** A hand-written DFA for `[0-9]+`: state 0 needs a digit, state 1 has one and takes more. */
class DigitsDfa implements ByteAutomaton {
  readonly start = 0;
  readonly stateCount = 2;
  step(_state: number, byte: number): number {
    return byte >= 0x30 && byte <= 0x39 ? 1 : -1;
  }
  isAccepting(state: number): boolean {
    return state === 1;
  }
  isFinal(): boolean {
    return false;
  }
}

/** Token 0 and 1 are special (no bytes), 2 is EOS; then the pieces. */
function vocabularyOf(pieces: readonly (string | Uint8Array)[], extra = 0): TokenVocabulary {
  const bytes = pieces.map((piece) => (typeof piece === 'string' ? utf8.encode(piece) : piece));
  return new TokenVocabulary({
    size: 3 + bytes.length + extra,
    tokenBytes: (id) => (id < 3 ? undefined : bytes[id - 3]),
    eosTokenIds: [2],
  });
}

function allowedIds(index: TokenMaskIndex, state: number): number[] {
  const mask = index.mask(state);
  if (mask.mode === 'allow') return [...mask.ids];
  const forbidden = new Set(mask.ids);
  const ids: number[] = [];
  for (let id = 0; id < index.vocabulary.size; id++) if (!forbidden.has(id)) ids.push(id);
  return ids;
}

/** What the mask must be: every token whose bytes step to live states, and EOS where accepting. */
function bruteForce(automaton: ByteAutomaton, vocabulary: TokenVocabulary, state: number): number[] {
  const ids: number[] = [];
  for (let id = 0; id < vocabulary.size; id++) {
    if (vocabulary.eosTokenIds.includes(id)) {
      if (automaton.isAccepting(state)) ids.push(id);
      continue;
    }
    const bytes = vocabulary.bytes(id);
    if (bytes === undefined || automaton.isFinal(state)) continue;
    let s = state;
    for (const byte of bytes) if (s >= 0) s = automaton.step(s, byte);
    if (s >= 0) ids.push(id);
  }
  return ids;
}

describe('TokenVocabulary', () => {
  test('keeps special, empty and EOS tokens out of the trie; shares prefixes', () => {
    const vocabulary = vocabularyOf(['t', 'tr', 'true', '', 'fa', 'f']);
    expect(vocabulary.byteTokens).toBe(5);
    expect(vocabulary.bytes(0)).toBeUndefined();
    expect(vocabulary.bytes(2)).toBeUndefined();
    expect(vocabulary.bytes(5)).toEqual(utf8.encode('true'));
    // root, t, r, u, e, f, a
    expect(vocabulary.nodeCount).toBe(7);
  });

  test('vocabularyFromTokenizer caches per tokenizer object and uses vocabularyBytes', () => {
    let calls = 0;
    const tokenizer = {
      tokenBytes: (id: number) => (id === 0 ? undefined : Uint8Array.of(0x40 + id)),
      vocabularyBytes: () => {
        calls++;
        return [undefined, Uint8Array.of(0x41), Uint8Array.of(0x42)];
      },
    };
    const a = vocabularyFromTokenizer(tokenizer, { size: 4, eosTokenIds: [3] });
    expect(vocabularyFromTokenizer(tokenizer, { size: 4, eosTokenIds: [3] })).toBe(a);
    expect(calls).toBe(1);
    expect(a.bytes(2)).toEqual(Uint8Array.of(0x42));
    expect(a.bytes(3)).toBeUndefined();
    expect(vocabularyFromTokenizer(tokenizer, { size: 5, eosTokenIds: [3] })).not.toBe(a);
  });
});

describe('TokenVocabulary trie', () => {
  test.prop(
    [
      fc.array(
        fc.uint8Array({ minLength: 1, maxLength: 9 }).map((b) => b.map((x) => [0, 1, 97, 255][x % 4]!)),
        { maxLength: 400 },
      ),
    ],
    { numRuns: 100 },
  )('every token ends at the node its bytes spell, and nowhere else', (pieces) => {
    const vocabulary = vocabularyOf(pieces);
    const seen = new Set<number>();
    for (let id = 3; id < vocabulary.size; id++) {
      let node = 0;
      for (const byte of vocabulary.bytes(id)!) {
        let child = vocabulary.firstChild[node]!;
        while (child !== -1 && vocabulary.byte[child] !== byte) child = vocabulary.nextSibling[child]!;
        expect(child).not.toBe(-1);
        node = child;
      }
      const ending = vocabulary.tokenIds.subarray(vocabulary.tokenStart[node], vocabulary.tokenStart[node + 1]);
      expect([...ending]).toContain(id);
      seen.add(id);
    }
    expect(vocabulary.tokenIds.length).toBe(seen.size);
    // Siblings have distinct bytes.
    for (let node = 0; node < vocabulary.nodeCount; node++) {
      const bytes = new Set<number>();
      for (let child = vocabulary.firstChild[node]!; child !== -1; child = vocabulary.nextSibling[child]!) {
        expect(bytes.has(vocabulary.byte[child]!)).toBe(false);
        bytes.add(vocabulary.byte[child]!);
      }
    }
  });
});

describe('TokenMaskIndex', () => {
  const words = new WordsDfa(['true', 'false', 'null']);
  const vocabulary = vocabularyOf(['t', 'tr', 'true', 'ru', 'ue', 'e', 'fa', 'lse', 'null', 'nu', 'l', 'x', 'truex']);

  test('masks of the JSON literal DFA; EOS only where accepting; advance walks the bytes', () => {
    const index = new TokenMaskIndex(words, vocabulary);
    const names = (state: number) => allowedIds(index, state);
    // t tr true fa null nu
    expect(names(words.start)).toEqual([3, 4, 5, 9, 11, 12]);
    const afterTr = index.advance(words.start, 4);
    expect(names(afterTr)).toEqual([7]);
    const done = index.advance(afterTr, 7);
    expect(index.isAccepting(done)).toBe(true);
    // final: only EOS
    expect(names(done)).toEqual([2]);
    expect(index.mask(done).eos).toBe(true);
    expect(index.advance(words.start, 14)).toBe(-1);
    expect(index.advance(words.start, 0)).toBe(-1);
    expect(index.cachedMasks).toBe(3);
  });

  test('digits: most tokens forbidden, EOS once a digit was read; rows longer than the vocabulary', () => {
    const pieces = ['0', '1', '12', '345', 'a', ' 1', '1a', '99'];
    const vocab = vocabularyOf(pieces, 4);
    const index = new TokenMaskIndex(new DigitsDfa(), vocab);
    expect(allowedIds(index, 0)).toEqual([3, 4, 5, 6, 10]);
    expect(allowedIds(index, 1)).toEqual([2, 3, 4, 5, 6, 10]);
    const logits = new Float32Array(vocab.size + 3).fill(1);
    expect(index.apply(logits, 1)).toBe(6);
    expect([...logits].map((x, id) => (x === 1 ? id : -1)).filter((id) => id >= 0)).toEqual([2, 3, 4, 5, 6, 10]);
  });

  test.prop(
    [
      fc.array(
        fc.uint8Array({ minLength: 1, maxLength: 4 }).map((b) => b.map((x) => 0x2f + (x % 8))),
        {
          minLength: 1,
          maxLength: 300,
        },
      ),
      fc.array(fc.nat(), { maxLength: 12 }),
    ],
    { numRuns: 100 },
  )('every mask equals the brute-force set of tokens whose bytes stay live, both representations', (pieces, walk) => {
    for (const automaton of [new DigitsDfa(), new WordsDfa(['0123', '01', '2345', '55', '0000000', '/'])]) {
      const vocab = vocabularyOf(pieces);
      const index = new TokenMaskIndex(automaton, vocab);
      let state = automaton.start;
      for (const pick of walk) {
        const expected = bruteForce(automaton, vocab, state);
        expect(allowedIds(index, state)).toEqual(expected);
        const logits = new Float32Array(vocab.size).map((_, id) => id * 0.5);
        index.apply(logits, state);
        const kept = [...logits].flatMap((x, id) => (x === id * 0.5 ? [id] : []));
        expect(kept).toEqual(expected);
        const tokens = expected.filter((id) => id !== 2);
        if (tokens.length === 0) break;
        state = index.advance(state, tokens[pick % tokens.length]!);
        expect(state).toBeGreaterThanOrEqual(0);
      }
    }
  });
});

describe('plain subtrees (whole subtrees allowed where a state loops on plain bytes)', () => {
  const piece = fc
    .array(fc.constantFrom('a', 'b', ' ', '1', '"', '\\', 'é', '\n'), { minLength: 1, maxLength: 6 })
    .map((chars) => chars.join(''));

  test.prop([fc.array(piece, { minLength: 1, maxLength: 300 })], { numRuns: 40 })(
    'subtreeEnd and plainBelow match a direct walk of each subtree',
    (pieces) => {
      const vocabulary = vocabularyOf(pieces);
      for (let node = 0; node < vocabulary.nodeCount; node++) {
        const below: number[] = [];
        const stack = [node];
        while (stack.length > 0) {
          const n = stack.pop()!;
          for (let c = vocabulary.firstChild[n]!; c !== -1; c = vocabulary.nextSibling[c]!) {
            below.push(c);
            stack.push(c);
          }
        }
        expect(vocabulary.subtreeEnd[node]).toBe(node + 1 + below.length);
        expect(Math.max(node, ...below)).toBe(vocabulary.subtreeEnd[node]! - 1);
        const plain = below.every((c) => isPlainByte(vocabulary.byte[c]!));
        expect(vocabulary.plainBelow[node]).toBe(plain ? 1 : 0);
      }
    },
  );

  test.prop([fc.array(piece, { minLength: 1, maxLength: 300 }), fc.array(fc.nat(), { maxLength: 10 })], {
    numRuns: 40,
  })('masks inside and around JSON strings equal the brute force in every state a walk reaches', (pieces, walk) => {
    const vocabulary = vocabularyOf(pieces);
    for (const pattern of ['"([^"\\\\]|\\\\["\\\\n])*"', '"[ab1 ]{0,5}"', 'a*"[^"]*" ?1', '.*']) {
      const automaton = compileGrammar(regexGrammar(pattern));
      const index = new TokenMaskIndex(automaton, vocabulary);
      let state = automaton.start;
      for (const pick of [0, ...walk]) {
        const expected = bruteForce(automaton, vocabulary, state);
        expect(allowedIds(index, state)).toEqual(expected);
        const tokens = expected.filter((id) => id !== 2);
        if (tokens.length === 0) break;
        state = index.advance(state, tokens[pick % tokens.length]!);
        expect(state).toBeGreaterThanOrEqual(0);
      }
    }
  });
});

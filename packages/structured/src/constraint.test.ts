import { createSampler, type SequenceState } from '@gen/sampling';
import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { constraintState, createConstraintProcessor } from './constraint.js';
import { ConstraintViolationError, StructuredError } from './errors.js';
import { TokenMaskIndex } from './token-index.js';
import type { ByteAutomaton } from './types.js';
import { TokenVocabulary } from './vocabulary.js';

const utf8 = new TextEncoder();

/** A hand-written DFA for JSON literals `true`, `false`, `null` (a byte trie; the word ends are final). */
class LiteralsDfa implements ByteAutomaton {
  readonly start = 0;
  private readonly next: Map<number, number>[] = [new Map()];
  private readonly accepting = new Set<number>();

  constructor(words: readonly string[] = ['true', 'false', 'null']) {
    for (const word of words) {
      let state = 0;
      for (const byte of utf8.encode(word)) {
        let to = this.next[state]!.get(byte);
        if (to === undefined) {
          to = this.next.length;
          this.next.push(new Map());
          this.next[state]!.set(byte, to);
        }
        state = to;
      }
      this.accepting.add(state);
    }
  }
  get stateCount(): number {
    return this.next.length;
  }
  step(state: number, byte: number): number {
    return this.next[state]?.get(byte) ?? -1;
  }
  isAccepting(state: number): boolean {
    return this.accepting.has(state);
  }
  isFinal(state: number): boolean {
    return this.accepting.has(state) && this.next[state]!.size === 0;
  }
}

/** Ids: 0 special, 1 EOS, then single bytes a-z, then pieces; the row has 3 padding ids at the end. */
const pieces = ['tr', 'ue', 'true', 'fal', 'se', 'nu', 'll', 'null', 'truefalse', '\u00e9'];
const letters = Array.from({ length: 26 }, (_, k) => String.fromCharCode(0x61 + k));
const all = [...letters, ...pieces].map((piece) => utf8.encode(piece));
const vocabulary = new TokenVocabulary({
  size: 2 + all.length + 3,
  tokenBytes: (id) => (id < 2 ? undefined : all[id - 2]),
  eosTokenIds: [1],
});
const text = (ids: readonly number[]) =>
  new TextDecoder().decode(Uint8Array.from(ids.flatMap((id) => [...(vocabulary.bytes(id) ?? [])])));

function run(seed: number, steps: number): { ids: number[]; ended: boolean; sequence: SequenceState } {
  const processor = createConstraintProcessor(new LiteralsDfa(), vocabulary);
  const sampler = createSampler({ seed, doSample: true }, { vocabSize: vocabulary.size, processors: [processor] });
  const sequence = sampler.createSequence([5, 6]);
  let random = seed;
  const ids: number[] = [];
  for (let step = 0; step < steps; step++) {
    const logits = new Float32Array(vocabulary.size).map(() => {
      random = (Math.imul(random, 1103515245) + 12345) >>> 0;
      return (random / 2 ** 32) * 8;
    });
    const { tokenId } = sampler.sample(logits, sequence);
    sequence.accept(tokenId);
    if (tokenId === 1) return { ids, ended: true, sequence };
    ids.push(tokenId);
  }
  return { ids, ended: false, sequence };
}

describe('createConstraintProcessor', () => {
  test.prop([fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 1, max: 8 })], { numRuns: 200 })(
    'sampling with random logits only ever produces a literal, ended by EOS; never special or padding ids',
    (seed, steps) => {
      const { ids, ended, sequence } = run(seed, steps);
      for (const id of ids) expect(id).toBeGreaterThanOrEqual(2);
      for (const id of ids) expect(id).toBeLessThan(2 + all.length);
      const output = text(ids);
      const state = constraintState(sequence.processors.find((p) => constraintState(p) !== undefined)!)!;
      expect(state.finished).toBe(ended);
      if (ended) {
        expect(['true', 'false', 'null']).toContain(output);
        expect(state.complete).toBe(true);
      } else {
        expect(['true', 'false', 'null'].some((word) => word.startsWith(output))).toBe(true);
        expect(state.complete).toBe(['true', 'false', 'null'].includes(output));
      }
    },
  );

  test('accept rejects tokens the mask forbids and an early EOS; fork copies the state', () => {
    const processor = createConstraintProcessor(new TokenMaskIndex(new LiteralsDfa(), vocabulary));
    expect(processor.name).toBe('constraint');
    expect(processor.changesArgmax).toBe(true);
    const sequence = createSampler({}, { vocabSize: vocabulary.size }).createSequence();
    const state = processor.createState(sequence);
    const tr = 2 + 26;
    state.accept!(tr);
    const fork = state.fork!();
    expect(() => state.accept!(2)).toThrow(ConstraintViolationError);
    expect(() => state.accept!(1)).toThrow(/end of sequence before the output is complete/);
    state.accept!(2 + 27);
    expect(constraintState(state)).toMatchObject({ complete: true, finished: false });
    expect(constraintState(fork)).toMatchObject({ complete: false, finished: false });
    state.accept!(1);
    expect(constraintState(state)?.finished).toBe(true);
    const logits = new Float32Array(vocabulary.size).fill(3);
    state.apply(logits, sequence);
    expect([...logits].filter((x) => x === 3)).toHaveLength(1);
    expect(logits[1]).toBe(3);
  });

  test('a row that would become empty throws instead of sampling garbage', () => {
    const processor = createConstraintProcessor(new LiteralsDfa(['\u{1F600}']), vocabulary);
    const sequence = createSampler({}, { vocabSize: vocabulary.size }).createSequence();
    const state = processor.createState(sequence);
    expect(() => state.apply(new Float32Array(vocabulary.size), sequence)).toThrow(StructuredError);
    expect(() => state.apply(new Float32Array(vocabulary.size), sequence)).toThrow(/No token/);
  });

  test('a multi-byte character split over byte tokens: partial UTF-8 is followed through the automaton', () => {
    const bytes = [...utf8.encode('\u00e9')];
    const byteVocabulary = new TokenVocabulary({
      size: 258,
      tokenBytes: (id) => (id < 256 ? Uint8Array.of(id) : undefined),
      eosTokenIds: [256],
    });
    const index = new TokenMaskIndex(new LiteralsDfa(['\u00e9t\u00e9']), byteVocabulary);
    const state = createConstraintProcessor(index).createState(createSampler({}, { vocabSize: 258 }).createSequence());
    expect([...index.mask(index.automaton.start).ids]).toEqual([bytes[0]]);
    state.accept!(bytes[0]!);
    expect(constraintState(state)?.complete).toBe(false);
    expect([...index.mask(constraintState(state)!.state).ids]).toEqual([bytes[1]]);
    state.accept!(bytes[1]!);
    state.accept!(0x74);
    state.accept!(bytes[0]!);
    state.accept!(bytes[1]!);
    expect(constraintState(state)?.complete).toBe(true);
  });
});

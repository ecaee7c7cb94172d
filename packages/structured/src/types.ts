import type { LanguageNode } from './ast.js';

/**
 * A deterministic automaton over bytes, the compiled form of a {@link Grammar}. States are small non-negative
 * integers, numbered as they are discovered (the automaton may be built lazily); `-1` is the dead state.
 *
 * Every state other than `-1` can still reach an accepting state: `step` never leads into a dead end, so a token
 * whose bytes all step to live states is always safe to allow.
 */
export interface ByteAutomaton {
  /** The state before any byte. */
  readonly start: number;
  /** The state after `byte` (0 to 255) from `state`, or -1 when the byte is not allowed there. */
  step(state: number, byte: number): number;
  /** Whether the bytes read so far form a complete word of the language (end of sequence allowed). */
  isAccepting(state: number): boolean;
  /** Whether no byte at all may follow (accepting and a dead end for every byte). */
  isFinal(state: number): boolean;
  /** Number of states discovered so far. */
  readonly stateCount: number;
}

/**
 * A language to constrain generation to, before compilation: built by {@link jsonSchemaGrammar},
 * {@link jsonObjectGrammar}, {@link regexGrammar}, {@link literalGrammar} and composed with {@link sequenceGrammar},
 * {@link choiceGrammar} and {@link repeatGrammar} (tool-call formats are compositions).
 */
export interface Grammar {
  /** A canonical description: equal keys mean equal languages, so compiled automata are cached by it. */
  readonly key: string;
  /** The language tree. */
  readonly node: LanguageNode;
}

import type { LanguageNode } from './ast.js';
import { alt, literal, repeat, seq } from './ast.js';
import { InvalidGrammarError } from './errors.js';
import { regexNode } from './regex.js';
import type { ByteAutomaton, Grammar } from './types.js';

function make(key: string, node: LanguageNode): Grammar {
  return { key, node };
}

/**
 * A regular expression that the whole output must match (anchored at both ends, as TGI and outlines do).
 *
 * Supported: literals, escapes (`\d \w \s \D \W \S \n \t \r \f \v \0 \xHH \uXXXX \u{...}`, escaped
 * metacharacters), classes with ranges and negation (over all of Unicode), `.` (any code point but a line
 * terminator), groups `(...)`, `(?:...)`, `(?<name>...)`, alternation, quantifiers `* + ? {m} {m,} {m,n}` and their
 * lazy forms, a leading `^` and trailing `$`.
 *
 * @throws UnsupportedRegexError naming the feature and its position (backreferences, lookaround, `\b`, ...).
 */
export function regexGrammar(pattern: string): Grammar {
  return make(`regex:${JSON.stringify(pattern)}`, regexNode(pattern));
}

/** Exactly the UTF-8 bytes of `text`. */
export function literalGrammar(text: string): Grammar {
  return make(`lit:${JSON.stringify(text)}`, literal(text));
}

/** The concatenation of `parts`, in order. */
export function sequenceGrammar(parts: readonly Grammar[]): Grammar {
  return make(`seq(${parts.map((p) => p.key).join(',')})`, seq(...parts.map((p) => p.node)));
}

/** Any one of `options`. */
export function choiceGrammar(options: readonly Grammar[]): Grammar {
  if (options.length === 0) throw new InvalidGrammarError('choiceGrammar needs at least one option.');
  return make(`alt(${options.map((p) => p.key).join(',')})`, alt(...options.map((p) => p.node)));
}

/**
 * `item` repeated `min` to `max` times (`max` may be `Infinity`), with `separator` between consecutive items.
 */
export function repeatGrammar(item: Grammar, min: number, max: number, separator?: Grammar): Grammar {
  if (!Number.isInteger(min) || min < 0 || !(max === Infinity || Number.isInteger(max)) || max < min) {
    throw new InvalidGrammarError(`repeatGrammar: invalid bounds ${min}..${max}.`);
  }
  const key = `rep(${item.key},${min},${max},${separator?.key ?? ''})`;
  if (separator === undefined) return make(key, repeat(item.node, min, max));
  if (max === 0) return make(key, repeat(item.node, 0, 0));
  const body = seq(item.node, repeat(seq(separator.node, item.node), Math.max(min - 1, 0), max - 1));
  return make(key, min === 0 ? alt(repeat(item.node, 0, 0), body) : body);
}

export { compileGrammar } from './dfa.js';
export { jsonObjectGrammar, jsonSchemaGrammar } from './json-schema.js';

const textEncoder = new TextEncoder();

/** Whether `automaton` accepts the whole of `text` (UTF-8 bytes or a string, encoded as UTF-8). */
export function matches(automaton: ByteAutomaton, text: string | Uint8Array): boolean {
  const bytes = typeof text === 'string' ? textEncoder.encode(text) : text;
  let state = automaton.start;
  for (const byte of bytes) {
    state = automaton.step(state, byte);
    if (state < 0) return false;
  }
  return automaton.isAccepting(state);
}

import { describe, expect, it } from 'vitest';
import { UnsupportedRegexError } from './errors.js';
import { compileGrammar, matches, regexGrammar } from './grammar.js';

function accepts(pattern: string, text: string): boolean {
  return matches(compileGrammar(regexGrammar(pattern)), text);
}

describe('regexGrammar', () => {
  const table: [string, string[], string[]][] = [
    ['abc', ['abc'], ['ab', 'abcd', '']],
    ['^a+$', ['a', 'aaa'], ['', 'b']],
    ['[A-Z]{3}-[0-9]{2,4}', ['ABC-12', 'XYZ-1234'], ['AB-12', 'ABC-1', 'ABC-12345', 'abc-12']],
    ['(cat|dog)s?', ['cat', 'dogs'], ['cats ', 'bird']],
    ['\\d+(\\.\\d+)?', ['12', '3.14'], ['3.', '.5']],
    ['[^a-c]', ['d', 'é', '😀', '\n'], ['a', 'b', '']],
    ['.', ['x', '界', '😀'], ['\n', '\r', 'xy', '']],
    ['\\w\\s\\W', ['a !', '_\t-'], ['a b', 'ab!']],
    ['\\D\\S', ['ab', '-x'], ['1a', 'a ']],
    ['x{2,}?', ['xx', 'xxxx'], ['x']],
    ['x{3}', ['xxx'], ['xx', 'xxxx']],
    ['(?:ab)*', ['', 'abab'], ['aba']],
    ['(?<year>\\d{4})-\\u0041\\x42\\u{1F600}', ['2024-AB😀'], ['2024-AB']],
    ['[\\]\\-a]+', [']-a'], ['b']],
    ['a|', ['a', ''], ['b']],
    ['[é-ë]', ['é', 'ê', 'ë'], ['e', 'ì']],
    ['[日本]+語', ['日本語', '本語'], ['語', '日本']],
    ['\\n\\t\\r\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$\\\\\\/', ['\n\t\r.*+?()[]{}|^$\\/'], ['x']],
    ['[\\d\\s]+', ['1 2'], ['a']],
    ['\\ud83d\\ude00', ['😀'], ['x']],
  ];
  for (const [pattern, yes, no] of table) {
    it(`/${pattern}/`, () => {
      const expected = new RegExp(`^(?:${pattern.replace(/^\^|\$$/g, '')})$`, 'u');
      for (const text of yes) {
        expect(accepts(pattern, text), text).toBe(true);
        expect(expected.test(text)).toBe(true);
      }
      for (const text of no) {
        expect(accepts(pattern, text), text).toBe(false);
        expect(expected.test(text)).toBe(false);
      }
    });
  }

  it('names each unsupported feature and where it is', () => {
    const cases: [string, RegExp, number][] = [
      ['(a)\\1', /backreference/, 3],
      ['\\k<x>', /named backreference/, 0],
      ['a(?=b)', /lookahead/, 1],
      ['a(?!b)', /negative lookahead/, 1],
      ['(?<=a)b', /lookbehind/, 0],
      ['(?<!a)b', /negative lookbehind/, 0],
      ['\\bword', /word boundary/, 0],
      ['x\\B', /word boundary/, 1],
      ['a^b', /anchor/, 1],
      ['a$b', /anchor/, 1],
      ['(?i)a', /flags/, 0],
      ['(ab', /unbalanced/, 0],
      ['ab)', /unbalanced/, 2],
      ['*a', /quantifier without a target/, 0],
      ['[abc', /unterminated/, 0],
      ['\\p{L}', /Unicode property/, 0],
      ['a{3,1}', /m < n/, 1],
      ['\\q', /unknown escape/, 0],
    ];
    for (const [pattern, feature, position] of cases) {
      let caught: unknown;
      try {
        regexGrammar(pattern);
      } catch (error) {
        caught = error;
      }
      expect(UnsupportedRegexError.isInstance(caught), pattern).toBe(true);
      const error = caught as UnsupportedRegexError;
      expect(error.feature, pattern).toMatch(feature);
      expect(error.position, pattern).toBe(position);
      expect(error.message).toContain(pattern);
    }
  });

  it('random walks match the same pattern in JavaScript (u flag) and are valid UTF-8', () => {
    const patterns = [
      '[^a-c]{1,3}x',
      '.{0,4}',
      '(ab|cd)*e+',
      '[\\w\\s]{2}\\S',
      '[é-ë日-本😀]+',
      '\\d{3}-\\D?',
      '(?:x|[^\\n]y)?z',
    ];
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (const pattern of patterns) {
      const automaton = compileGrammar(regexGrammar(pattern));
      const expected = new RegExp(`^(?:${pattern})$`, 'u');
      for (let run = 0; run < 200; run++) {
        let state = automaton.start;
        const bytes: number[] = [];
        while (!(automaton.isAccepting(state) && (automaton.isFinal(state) || random() < 0.3)) && bytes.length < 200) {
          const options: number[] = [];
          for (let byte = 0; byte < 256; byte++) if (automaton.step(state, byte) >= 0) options.push(byte);
          expect(options.length).toBeGreaterThan(0);
          const byte = options[Math.floor(random() * options.length)] as number;
          bytes.push(byte);
          state = automaton.step(state, byte);
        }
        if (!automaton.isAccepting(state)) continue;
        const text = decoder.decode(Uint8Array.from(bytes));
        expect(expected.test(text), `${pattern} ${JSON.stringify(text)}`).toBe(true);
      }
    }
  });

  it('unbounded repeats stay small automata', () => {
    const automaton = compileGrammar(regexGrammar('(ab|cd)*e+'));
    expect(matches(automaton, 'abcdabeee')).toBe(true);
    expect(automaton.stateCount).toBeLessThan(10);
  });
});

import type { LanguageNode } from './ast.js';
import { alt, charClass, EMPTY, repeat, seq } from './ast.js';
import { UnsupportedRegexError } from './errors.js';
import type { CodePointRange } from './utf8.js';
import { complementRanges, normalizeRanges } from './utf8.js';

/** One top-level alternative of a parsed pattern, with its anchors. */
export interface RegexBranch {
  readonly node: LanguageNode;
  readonly anchoredStart: boolean;
  readonly anchoredEnd: boolean;
}

const DIGIT: CodePointRange[] = [[0x30, 0x39]];
const WORD: CodePointRange[] = [
  [0x30, 0x39],
  [0x41, 0x5a],
  [0x5f, 0x5f],
  [0x61, 0x7a],
];
/** ECMAScript `\s`: WhiteSpace and LineTerminator. */
const SPACE: CodePointRange[] = normalizeRanges([
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
]);
/** ECMAScript `.` without the `s` flag: anything but a line terminator. */
export const DOT: CodePointRange[] = complementRanges([
  [0x0a, 0x0a],
  [0x0d, 0x0d],
  [0x2028, 0x2029],
]);
const META = '^$\\.*+?()[]{}|/-';

class Parser {
  pos = 0;
  constructor(readonly src: string) {}

  fail(feature: string, at = this.pos): never {
    throw new UnsupportedRegexError(feature, at, this.src);
  }
  peek(): string | undefined {
    return this.pos < this.src.length ? String.fromCodePoint(this.src.codePointAt(this.pos) as number) : undefined;
  }
  next(): string {
    const ch = this.peek();
    if (ch === undefined) this.fail('unexpected end of pattern');
    this.pos += ch.length;
    return ch;
  }

  parseTop(): RegexBranch[] {
    const branches: RegexBranch[] = [];
    for (;;) {
      let anchoredStart = false;
      if (this.peek() === '^') {
        anchoredStart = true;
        this.pos++;
      }
      const items = this.parseSeq(true);
      let anchoredEnd = false;
      if (this.peek() === '$') {
        anchoredEnd = true;
        this.pos++;
      }
      branches.push({ node: seq(...items), anchoredStart, anchoredEnd });
      const ch = this.peek();
      if (ch === undefined) return branches;
      if (ch === '|') {
        this.pos++;
        continue;
      }
      if (ch === ')') this.fail('unbalanced parenthesis');
      this.fail('anchor $ not at the end');
    }
  }

  parseAlt(): LanguageNode {
    const branches = [seq(...this.parseSeq(false))];
    while (this.peek() === '|') {
      this.pos++;
      branches.push(seq(...this.parseSeq(false)));
    }
    return alt(...branches);
  }

  parseSeq(top: boolean): LanguageNode[] {
    const items: LanguageNode[] = [];
    for (;;) {
      const ch = this.peek();
      if (ch === undefined || ch === '|' || ch === ')') return items;
      if (ch === '$') {
        if (top) {
          const save = this.pos;
          this.pos++;
          const after = this.peek();
          this.pos = save;
          if (after === undefined || after === '|') return items;
        }
        this.fail('anchor $ not at the end');
      }
      const start = this.pos;
      let atom = this.parseAtom();
      atom = this.parseQuantifier(atom, start);
      items.push(atom);
    }
  }

  parseQuantifier(atom: LanguageNode, atomStart: number): LanguageNode {
    for (;;) {
      const ch = this.peek();
      let min: number;
      let max: number;
      if (ch === '*') [min, max] = [0, Infinity];
      else if (ch === '+') [min, max] = [1, Infinity];
      else if (ch === '?') [min, max] = [0, 1];
      else if (ch === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.pos));
        if (m === null) this.fail('lone {');
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        if (max < min) this.fail('quantifier {n,m} with m < n (n < m required)');
        if (min > 10_000 || (max !== Infinity && max > 10_000)) this.fail('repeat count over 10000');
        this.pos += m[0].length - 1;
      } else return atom;
      this.pos++;
      if (this.peek() === '?') this.pos++; // lazy: same language
      if (this.peek() === '+') this.fail('possessive quantifier');
      void atomStart;
      atom = repeat(atom, min, max);
    }
  }

  parseAtom(): LanguageNode {
    const at = this.pos;
    const ch = this.next();
    switch (ch) {
      case '(': {
        if (this.src.startsWith('?:', this.pos)) this.pos += 2;
        else if (this.src.startsWith('?=', this.pos)) this.fail('lookahead', at);
        else if (this.src.startsWith('?!', this.pos)) this.fail('negative lookahead', at);
        else if (this.src.startsWith('?<=', this.pos)) this.fail('lookbehind', at);
        else if (this.src.startsWith('?<!', this.pos)) this.fail('negative lookbehind', at);
        else if (this.src.startsWith('?<', this.pos)) {
          const m = /^\?<([A-Za-z_$][\w$]*)>/.exec(this.src.slice(this.pos));
          if (m === null) this.fail('invalid group name', at);
          this.pos += m[0].length;
        } else if (this.peek() === '?') this.fail('group flags', at);
        const inner = this.parseAlt();
        if (this.peek() !== ')') this.fail('unbalanced parenthesis', at);
        this.pos++;
        return inner;
      }
      case ')':
        return this.fail('unbalanced parenthesis', at);
      case '[':
        return charClass(this.parseClass(at));
      case '.':
        return charClass(DOT);
      case '^':
        return this.fail('anchor ^ not at the start', at);
      case '*':
      case '+':
      case '?':
        return this.fail('quantifier without a target', at);
      case '{':
        return this.fail('lone {', at);
      case '\\':
        return charClass(this.parseEscape(at, false));
      default:
        return charClass([[ch.codePointAt(0) as number, ch.codePointAt(0) as number]]);
    }
  }

  /** After a backslash. Returns the code point set it denotes. */
  parseEscape(at: number, inClass: boolean): CodePointRange[] {
    const ch = this.next();
    const single = (cp: number): CodePointRange[] => [[cp, cp]];
    switch (ch) {
      case 'd':
        return DIGIT;
      case 'D':
        return complementRanges(DIGIT);
      case 'w':
        return WORD;
      case 'W':
        return complementRanges(WORD);
      case 's':
        return SPACE;
      case 'S':
        return complementRanges(SPACE);
      case 'n':
        return single(10);
      case 't':
        return single(9);
      case 'r':
        return single(13);
      case 'f':
        return single(12);
      case 'v':
        return single(11);
      case '0':
        if (/[0-9]/.test(this.peek() ?? '')) this.fail('octal escape', at);
        return single(0);
      case 'b':
        if (inClass) return single(8);
        return this.fail('word boundary \\b', at);
      case 'B':
        return this.fail('word boundary \\B', at);
      case 'k':
        return this.fail('named backreference', at);
      case 'p':
      case 'P':
        return this.fail('Unicode property escape', at);
      case 'c':
        return this.fail('control escape \\c', at);
      case 'x': {
        const m = /^[0-9a-fA-F]{2}/.exec(this.src.slice(this.pos));
        if (m === null) this.fail('invalid \\x escape', at);
        this.pos += 2;
        return single(parseInt(m[0], 16));
      }
      case 'u': {
        const braced = /^\{([0-9a-fA-F]{1,6})\}/.exec(this.src.slice(this.pos));
        if (braced !== null) {
          const cp = parseInt(braced[1] as string, 16);
          if (cp > 0x10ffff) this.fail('code point out of range', at);
          this.pos += braced[0].length;
          return single(cp);
        }
        const m = /^[0-9a-fA-F]{4}/.exec(this.src.slice(this.pos));
        if (m === null) this.fail('invalid \\u escape', at);
        this.pos += 4;
        let cp = parseInt(m[0], 16);
        if (cp >= 0xd800 && cp <= 0xdbff) {
          const low = /^\\u([dD][c-fC-F][0-9a-fA-F]{2})/.exec(this.src.slice(this.pos));
          if (low !== null) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (parseInt(low[1] as string, 16) - 0xdc00);
            this.pos += 6;
          }
        }
        return single(cp);
      }
      default:
        if (/[1-9]/.test(ch)) return this.fail('backreference', at);
        if (META.includes(ch)) return single(ch.codePointAt(0) as number);
        return this.fail(`unknown escape \\${ch}`, at);
    }
  }

  parseClass(at: number): CodePointRange[] {
    let negate = false;
    if (this.peek() === '^') {
      negate = true;
      this.pos++;
    }
    const ranges: CodePointRange[] = [];
    const atomAt = (): CodePointRange[] => {
      const p = this.pos;
      const ch = this.next();
      if (ch === '\\') return this.parseEscape(p, true);
      if (ch === '[' && this.peek() === ':') this.fail('POSIX class', p);
      return [[ch.codePointAt(0) as number, ch.codePointAt(0) as number]];
    };
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) this.fail('unterminated character class', at);
      if (ch === ']') {
        this.pos++;
        break;
      }
      const p = this.pos;
      const first = atomAt();
      if (this.peek() === '-' && this.src[this.pos + 1] !== ']' && this.pos + 1 < this.src.length) {
        this.pos++;
        const second = atomAt();
        const a = first[0];
        const b = second[0];
        if (
          first.length !== 1 ||
          second.length !== 1 ||
          a === undefined ||
          b === undefined ||
          a[0] !== a[1] ||
          b[0] !== b[1]
        )
          this.fail('class escape in a range', p);
        if (b[0] < a[0]) this.fail('range out of order in character class', p);
        ranges.push([a[0], b[0]]);
      } else ranges.push(...first);
    }
    const normalized = normalizeRanges(ranges);
    return negate ? complementRanges(normalized) : normalized;
  }
}

/** Parses a pattern of the supported subset into its top-level branches (anchors reported per branch). */
export function parseRegex(pattern: string): RegexBranch[] {
  return new Parser(pattern).parseTop();
}

/** A pattern as a language over code points, matched against the whole text (anchors are no-ops). */
export function regexNode(pattern: string): LanguageNode {
  return alt(...parseRegex(pattern).map((branch) => branch.node));
}

/**
 * A pattern with JSON Schema `pattern` (ECMAScript search) semantics: the text must contain a match, so an
 * unanchored branch is surrounded by "any code points".
 */
export function searchNode(pattern: string): LanguageNode {
  const any = repeat(charClass([[0, 0x10ffff]]), 0, Infinity);
  return alt(
    ...parseRegex(pattern).map((branch) =>
      seq(branch.anchoredStart ? EMPTY : any, branch.node, branch.anchoredEnd ? EMPTY : any),
    ),
  );
}

import type { LanguageNode } from './ast.js';
import { alt, charClass, EMPTY, literal, NEVER, repeat, seq } from './ast.js';
import { InvalidGrammarError, UnsupportedSchemaError } from './errors.js';
import { formatNode } from './formats.js';
import { searchNode } from './regex.js';
import type { Grammar } from './types.js';
import type { CodePointRange } from './utf8.js';
import { normalizeRanges } from './utf8.js';

/** Options of {@link jsonSchemaGrammar} and {@link jsonObjectGrammar}. */
export interface JsonSchemaOptions {
  /**
   * `'flexible'` (default): 0 to `maxWhitespace` of space, tab, CR, LF between JSON tokens (what models emit:
   * `{"a": 1, "b": [1, 2]}` and pretty-printed output), never before or after the whole value. `'compact'`: none.
   */
  readonly whitespace?: 'flexible' | 'compact';
  /** Most whitespace characters in one gap (default 20: 2-space indentation up to depth 9). */
  readonly maxWhitespace?: number;
  /** Depth to which `$ref` recursion is unrolled and `{}` / `true` nest objects and arrays (default 6). */
  readonly maxDepth?: number;
  /** Keywords that are not JSON Schema at all: `'error'` (default, as OpenAI strict mode) or `'ignore'`. */
  readonly unknownKeywords?: 'error' | 'ignore';
  /**
   * Whether an object schema without `additionalProperties` may produce undeclared keys (JSON Schema says yes;
   * default false: only declared properties are generated, a sound subset, as outlines does).
   */
  readonly implicitAdditionalProperties?: boolean;
}

/** Most digits in the integer part of a number and in an unbounded integer. */
export const MAX_INTEGER_DIGITS = 16;
/** Most digits in a fraction. */
export const MAX_FRACTION_DIGITS = 16;
/** Most digits in an exponent. */
export const MAX_EXPONENT_DIGITS = 3;
/** Most digits of a number's integer part (alias of {@link MAX_INTEGER_DIGITS}). */
export const MAX_NUMBER_DIGITS = MAX_INTEGER_DIGITS;
/** Options of the JSON grammars (alias of {@link JsonSchemaOptions}). */
export type JsonOptions = JsonSchemaOptions;
export { SUPPORTED_FORMATS } from './formats.js';

/** Keywords ignored as annotations. */
export const ANNOTATION_KEYWORDS: readonly string[] = [
  'title',
  'description',
  'examples',
  'default',
  '$schema',
  '$id',
  '$comment',
  'deprecated',
  'readOnly',
  'writeOnly',
  'contentMediaType',
  'contentEncoding',
  '$anchor',
];
const ANNOTATIONS = new Set(ANNOTATION_KEYWORDS);
const SUPPORTED = new Set([
  'type',
  'enum',
  'const',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'prefixItems',
  'minItems',
  'maxItems',
  'anyOf',
  'oneOf',
  'allOf',
  '$ref',
  '$defs',
  'definitions',
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
]);
/** Keywords of JSON Schema (drafts 4 to 2020-12) that restrict the language and that this compiler refuses. */
export const UNSUPPORTED_KEYWORDS: readonly string[] = [
  'multipleOf',
  'not',
  'if',
  'then',
  'else',
  'patternProperties',
  'propertyNames',
  'dependentRequired',
  'dependentSchemas',
  'dependencies',
  'uniqueItems',
  'contains',
  'minContains',
  'maxContains',
  'minProperties',
  'maxProperties',
  'unevaluatedProperties',
  'unevaluatedItems',
  'additionalItems',
  '$dynamicRef',
  '$recursiveRef',
  'contentSchema',
];
const TYPES = ['string', 'number', 'integer', 'boolean', 'null', 'object', 'array'] as const;
type JsonType = (typeof TYPES)[number];
const TYPE_KEYWORDS: Record<string, JsonType> = {
  minLength: 'string',
  maxLength: 'string',
  pattern: 'string',
  format: 'string',
  minimum: 'number',
  maximum: 'number',
  exclusiveMinimum: 'number',
  exclusiveMaximum: 'number',
  properties: 'object',
  required: 'object',
  additionalProperties: 'object',
  items: 'array',
  prefixItems: 'array',
  minItems: 'array',
  maxItems: 'array',
};

type Schema = Record<string, unknown>;
const isObject = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);
const pointer = (path: string, key: string | number): string =>
  `${path}/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;

function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  if (isObject(value)) {
    return `{${Object.keys(value)
      .map((k) => `${JSON.stringify(k)}:${stable(value[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
/** Order-sensitive for objects' keys is not wanted in equality: compare sorted. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isObject(value)) {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

// ---- JSON lexical pieces -------------------------------------------------------------------------------------

const HEX: CodePointRange[] = [
  [0x30, 0x39],
  [0x41, 0x46],
  [0x61, 0x66],
];
const hex = charClass(HEX);
const RAW: CodePointRange[] = [
  [0x20, 0x21],
  [0x23, 0x5b],
  [0x5d, 0x10ffff],
];
const NON_SURROGATE_U = alt(
  seq(
    charClass(
      normalizeRanges([
        [0x30, 0x39],
        [0x41, 0x43],
        [0x45, 0x46],
        [0x61, 0x63],
        [0x65, 0x66],
      ]),
    ),
    hex,
    hex,
    hex,
  ),
  seq(
    charClass([
      [0x44, 0x44],
      [0x64, 0x64],
    ]),
    charClass([[0x30, 0x37]]),
    hex,
    hex,
  ),
);
const SURROGATE_PAIR = seq(
  charClass([
    [0x44, 0x44],
    [0x64, 0x64],
  ]),
  charClass(
    normalizeRanges([
      [0x38, 0x39],
      [0x41, 0x42],
      [0x61, 0x62],
    ]),
  ),
  hex,
  hex,
  literal('\\u'),
  charClass([
    [0x44, 0x44],
    [0x64, 0x64],
  ]),
  charClass(
    normalizeRanges([
      [0x43, 0x46],
      [0x63, 0x66],
    ]),
  ),
  hex,
  hex,
);
/** One code point of JSON string content, in any of its encodings but lone surrogates. */
const STRING_CHAR = alt(
  charClass(RAW),
  seq(
    literal('\\'),
    alt(
      charClass([...'"\\/bfnrt'].map((c) => [c.charCodeAt(0), c.charCodeAt(0)] as const)),
      seq(literal('u'), alt(NON_SURROGATE_U, SURROGATE_PAIR)),
    ),
  ),
);
const SHORT: Record<number, string> = { 8: 'b', 9: 't', 10: 'n', 12: 'f', 13: 'r' };

/** The JSON encodings (raw, short escape, `\u00XX` for controls) of the code points in `ranges`. */
function encodeRanges(ranges: readonly CodePointRange[]): LanguageNode {
  const raw: CodePointRange[] = [];
  const out: LanguageNode[] = [];
  for (const [lo, hi] of ranges) {
    for (const [a, b] of RAW) {
      const x = Math.max(lo, a);
      const y = Math.min(hi, b);
      if (x <= y) raw.push([x, y]);
    }
    if (lo <= 0x22 && hi >= 0x22) out.push(literal('\\"'));
    if (lo <= 0x5c && hi >= 0x5c) out.push(literal('\\\\'));
    if (lo <= 0x2f && hi >= 0x2f) out.push(literal('\\/'));
    const cLo = lo;
    const cHi = Math.min(hi, 0x1f);
    if (cLo <= 0x1f && cLo === 0 && cHi === 0x1f) {
      out.push(seq(literal('\\u00'), charClass([[0x30, 0x31]]), hex));
      out.push(
        seq(
          literal('\\'),
          charClass(normalizeRanges([...'bfnrt'].map((c) => [c.charCodeAt(0), c.charCodeAt(0)] as const))),
        ),
      );
    } else {
      for (let c = cLo; c <= cHi; c++) {
        const h = c.toString(16).padStart(2, '0');
        const digit = (d: string): LanguageNode =>
          /[a-f]/.test(d)
            ? charClass(
                normalizeRanges([
                  [d.charCodeAt(0), d.charCodeAt(0)],
                  [d.toUpperCase().charCodeAt(0), d.toUpperCase().charCodeAt(0)],
                ]),
              )
            : literal(d);
        out.push(seq(literal('\\u00'), digit(h[0] as string), digit(h[1] as string)));
        const short = SHORT[c];
        if (short !== undefined) out.push(literal(`\\${short}`));
      }
    }
  }
  return alt(charClass(normalizeRanges(raw)), ...out);
}

/** Maps a language over code points to the language of its JSON string contents. */
function encodeString(node: LanguageNode): LanguageNode {
  switch (node.kind) {
    case 'class':
      return encodeRanges(node.ranges);
    case 'seq':
      return seq(...node.items.map(encodeString));
    case 'alt':
      return alt(...node.items.map(encodeString));
    case 'repeat':
      return repeat(encodeString(node.item), node.min, node.max);
    case 'never':
    case 'empty':
      return node;
    default:
      throw new InvalidGrammarError(`internal: cannot encode a ${node.kind} node as string content`);
  }
}

const QUOTE = literal('"');
const DIGIT = charClass([[0x30, 0x39]]);
const NONZERO = charClass([[0x31, 0x39]]);
const INTEGER_PART = alt(literal('0'), seq(NONZERO, repeat(DIGIT, 0, MAX_INTEGER_DIGITS - 1)));
const INTEGER = seq(repeat(literal('-'), 0, 1), INTEGER_PART);
const NUMBER = seq(
  INTEGER,
  repeat(seq(literal('.'), repeat(DIGIT, 1, MAX_FRACTION_DIGITS)), 0, 1),
  repeat(
    seq(
      charClass([
        [0x45, 0x45],
        [0x65, 0x65],
      ]),
      repeat(
        charClass([
          [0x2b, 0x2b],
          [0x2d, 0x2d],
        ]),
        0,
        1,
      ),
      repeat(DIGIT, 1, MAX_EXPONENT_DIGITS),
    ),
    0,
    1,
  ),
);
const STRING = seq(QUOTE, repeat(STRING_CHAR, 0, Infinity), QUOTE);

// ---- integer ranges ------------------------------------------------------------------------------------------

function digitClass(lo: number, hi: number): LanguageNode {
  return charClass([[0x30 + lo, 0x30 + hi]]);
}
/** Same-length decimal strings between `a` and `b` (inclusive). */
function sameLength(a: string, b: string): LanguageNode {
  if (a.length === 0) return EMPTY;
  const a0 = Number(a[0]);
  const b0 = Number(b[0]);
  const ra = a.slice(1);
  const rb = b.slice(1);
  if (a0 === b0) return seq(literal(String(a0)), sameLength(ra, rb));
  if (/^0*$/.test(ra) && /^9*$/.test(rb)) return seq(digitClass(a0, b0), repeat(DIGIT, ra.length, ra.length));
  const parts = [seq(literal(String(a0)), sameLength(ra, '9'.repeat(ra.length)))];
  if (a0 + 1 <= b0 - 1) parts.push(seq(digitClass(a0 + 1, b0 - 1), repeat(DIGIT, ra.length, ra.length)));
  parts.push(seq(literal(String(b0)), sameLength('0'.repeat(rb.length), rb)));
  return alt(...parts);
}
/** Canonical decimal spellings of the integers in `[lo, hi]`, both non-negative. */
function naturalRange(lo: bigint, hi: bigint): LanguageNode {
  if (lo > hi) return NEVER;
  const parts: LanguageNode[] = [];
  const ls = lo.toString();
  const hs = hi.toString();
  for (let len = ls.length; len <= hs.length; len++) {
    const from = len === ls.length ? ls : `1${'0'.repeat(len - 1)}`;
    const to = len === hs.length ? hs : '9'.repeat(len);
    parts.push(sameLength(from, to));
  }
  return alt(...parts);
}
/** The integers in `[lo, hi]` as JSON (no `-0`). */
export function integerRange(lo: bigint, hi: bigint): LanguageNode {
  const parts: LanguageNode[] = [];
  if (lo < 0n) parts.push(seq(literal('-'), naturalRange(hi < 0n ? -hi : 1n, -lo)));
  if (hi >= 0n) parts.push(naturalRange(lo > 0n ? lo : 0n, hi));
  return alt(...parts);
}

// ---- compiler ------------------------------------------------------------------------------------------------

interface Context {
  readonly root: unknown;
  readonly ws: LanguageNode;
  readonly maxDepth: number;
  readonly unknownKeywords: 'error' | 'ignore';
  readonly implicitAdditional: boolean;
  refDepth: number;
}

function punct(ctx: Context, text: string): LanguageNode {
  return seq(ctx.ws, literal(text), ctx.ws);
}

/** The JSON text of a value (objects keep key order; strings as JSON.stringify spells them). */
function valueNode(value: unknown, ctx: Context): LanguageNode {
  if (Array.isArray(value)) {
    if (value.length === 0) return seq(literal('['), ctx.ws, literal(']'));
    const items = value.map((v) => valueNode(v, ctx));
    const body: LanguageNode[] = [];
    items.forEach((item, i) => body.push(...(i > 0 ? [punct(ctx, ',')] : []), item));
    return seq(literal('['), ctx.ws, ...body, ctx.ws, literal(']'));
  }
  if (isObject(value)) {
    const keys = Object.keys(value);
    if (keys.length === 0) return seq(literal('{'), ctx.ws, literal('}'));
    const body: LanguageNode[] = [];
    keys.forEach((k, i) =>
      body.push(
        ...(i > 0 ? [punct(ctx, ',')] : []),
        literal(JSON.stringify(k)),
        punct(ctx, ':'),
        valueNode(value[k], ctx),
      ),
    );
    return seq(literal('{'), ctx.ws, ...body, ctx.ws, literal('}'));
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return NEVER;
  return literal(JSON.stringify(value) ?? 'null');
}

function objectNode(
  ctx: Context,
  properties: Array<{ key: LanguageNode; value: LanguageNode; required: boolean }>,
  extra: { key: LanguageNode; value: LanguageNode } | null,
): LanguageNode {
  return {
    kind: 'object',
    open: seq(literal('{'), ctx.ws),
    close: seq(ctx.ws, literal('}')),
    comma: punct(ctx, ','),
    colon: punct(ctx, ':'),
    properties,
    extra,
  };
}

function arrayNode(ctx: Context, prefix: LanguageNode[], rest: LanguageNode, min: number, max: number): LanguageNode {
  const comma = punct(ctx, ',');
  if (prefix.length === 0 && max === Infinity && min <= 1) {
    const list: LanguageNode = { kind: 'list', item: rest, separator: comma, min, max };
    return rest.kind === 'never'
      ? min === 0
        ? seq(literal('['), ctx.ws, literal(']'))
        : NEVER
      : seq(literal('['), ctx.ws, list, ctx.ws, literal(']'));
  }
  const element = (i: number): LanguageNode => (i < prefix.length ? (prefix[i] as LanguageNode) : rest);
  const tail = (i: number): LanguageNode => {
    if (i >= prefix.length) {
      return repeat(seq(comma, rest), Math.max(min - i, 0), max === Infinity ? Infinity : max - i);
    }
    const options: LanguageNode[] = [];
    if (i >= min) options.push(EMPTY);
    if (i < max) options.push(seq(comma, element(i), tail(i + 1)));
    return alt(...options);
  };
  const options: LanguageNode[] = [];
  if (min === 0) options.push(seq(literal('['), ctx.ws, literal(']')));
  if (max >= 1) options.push(seq(literal('['), ctx.ws, element(0), tail(1), ctx.ws, literal(']')));
  return alt(...options);
}

function anyValue(ctx: Context, depth: number): LanguageNode {
  const scalars = [STRING, NUMBER, literal('true'), literal('false'), literal('null')];
  if (depth <= 0) return alt(...scalars);
  const inner = anyValue(ctx, depth - 1);
  return alt(...scalars, objectNode(ctx, [], { key: STRING, value: inner }), arrayNode(ctx, [], inner, 0, Infinity));
}

function resolveRef(ref: string, ctx: Context, path: string): { schema: unknown; path: string } {
  if (ref === '#') return { schema: ctx.root, path: '' };
  const m = /^#(\/(?:\$defs|definitions)\/.+)$/.exec(ref);
  if (m === null)
    throw new UnsupportedSchemaError(
      '$ref',
      pointer(path, '$ref'),
      `only "#", "#/$defs/..." and "#/definitions/..." are supported, not ${JSON.stringify(ref)}`,
    );
  let target: unknown = ctx.root;
  const parts = (m[1] as string)
    .slice(1)
    .split('/')
    .map((p) => decodeURIComponent(p).replace(/~1/g, '/').replace(/~0/g, '~'));
  for (const part of parts) {
    if (!isObject(target) || !(part in target))
      throw new InvalidGrammarError(`$ref ${JSON.stringify(ref)} at ${path || '/'} does not resolve.`);
    target = target[part];
  }
  return { schema: target, path: m[1] as string };
}

/** Merges `allOf` branches (and `$ref` / `anyOf` siblings) when they are trivially compatible. */
function merge(a: Schema, b: Schema, keyword: string, path: string): Schema {
  const out: Schema = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (ANNOTATIONS.has(k)) continue;
    if (!(k in out)) {
      out[k] = v;
      continue;
    }
    const cur = out[k];
    if (canonical(cur) === canonical(v)) continue;
    if (k === 'required' && Array.isArray(cur) && Array.isArray(v)) out[k] = [...new Set([...cur, ...v])];
    else if (k === 'type') {
      const x = Array.isArray(cur) ? cur : [cur];
      const y = Array.isArray(v) ? v : [v];
      const both = x.filter((t) => y.includes(t) || (t === 'integer' && y.includes('number')));
      for (const t of y) if (t === 'integer' && x.includes('number') && !both.includes(t)) both.push(t);
      out[k] = both;
    } else if (
      k === 'properties' &&
      isObject(cur) &&
      isObject(v) &&
      !('additionalProperties' in a) &&
      !('additionalProperties' in b)
    ) {
      const props: Schema = { ...cur };
      for (const [name, s] of Object.entries(v)) {
        if (!(name in props)) props[name] = s;
        else if (isObject(props[name]) && isObject(s)) props[name] = merge(props[name] as Schema, s, keyword, path);
        else if (canonical(props[name]) !== canonical(s))
          throw new UnsupportedSchemaError(keyword, path, `cannot merge property ${JSON.stringify(name)}`);
      }
      out[k] = props;
    } else if (
      (k === 'minLength' || k === 'minItems' || k === 'minimum') &&
      typeof cur === 'number' &&
      typeof v === 'number'
    )
      out[k] = Math.max(cur, v);
    else if (
      (k === 'maxLength' || k === 'maxItems' || k === 'maximum') &&
      typeof cur === 'number' &&
      typeof v === 'number'
    )
      out[k] = Math.min(cur, v);
    else throw new UnsupportedSchemaError(keyword, path, `cannot merge \`${k}\``);
  }
  if (
    'additionalProperties' in a &&
    'properties' in b &&
    'properties' in a &&
    canonical(a.properties) !== canonical(b.properties)
  )
    throw new UnsupportedSchemaError(keyword, path, 'additionalProperties across branches');
  return out;
}

function typesOf(schema: unknown): Set<string> {
  if (schema === true || (isObject(schema) && Object.keys(schema).length === 0)) return new Set(TYPES);
  if (!isObject(schema)) return new Set();
  if ('const' in schema) return new Set([jsonType(schema.const)]);
  if (Array.isArray(schema.enum)) return new Set(schema.enum.map(jsonType));
  if (typeof schema.type === 'string') return new Set([schema.type]);
  if (Array.isArray(schema.type)) return new Set(schema.type as string[]);
  return new Set(TYPES);
}
function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}
function overlaps(a: Set<string>, b: Set<string>): boolean {
  for (const t of a) {
    if (b.has(t)) return true;
    if ((t === 'integer' && b.has('number')) || (t === 'number' && b.has('integer'))) return true;
  }
  return false;
}
/** Values a branch forces a required property to (const or enum), or undefined. */
function discriminator(schema: unknown, name: string): Set<string> | undefined {
  if (!isObject(schema) || !Array.isArray(schema.required) || !schema.required.includes(name)) return undefined;
  const prop = isObject(schema.properties) ? schema.properties[name] : undefined;
  if (!isObject(prop)) return undefined;
  if ('const' in prop) return new Set([canonical(prop.const)]);
  if (Array.isArray(prop.enum)) return new Set(prop.enum.map(canonical));
  return undefined;
}
function provablyDisjoint(branches: unknown[]): boolean {
  const types = branches.map(typesOf);
  let byType = true;
  for (let i = 0; i < types.length && byType; i++)
    for (let j = i + 1; j < types.length; j++)
      if (overlaps(types[i] as Set<string>, types[j] as Set<string>)) byType = false;
  if (byType) return true;
  const first = branches[0];
  if (!isObject(first) || !Array.isArray(first.required)) return false;
  for (const name of first.required as unknown[]) {
    if (typeof name !== 'string') continue;
    const sets = branches.map((b) => discriminator(b, name));
    if (sets.some((s) => s === undefined)) continue;
    const seen = new Set<string>();
    let ok = true;
    for (const s of sets as Set<string>[])
      for (const v of s) {
        if (seen.has(v)) ok = false;
        seen.add(v);
      }
    if (ok) return true;
  }
  return false;
}

function nonNegativeInt(schema: Schema, key: string, path: string): number | undefined {
  const v = schema[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
    throw new InvalidGrammarError(`\`${key}\` at ${pointer(path, key)} must be a non-negative integer.`);
  return v;
}

function compile(schema: unknown, path: string, ctx: Context): LanguageNode {
  if (schema === true) return anyValue(ctx, ctx.maxDepth);
  if (schema === false) return NEVER;
  if (!isObject(schema)) throw new InvalidGrammarError(`The schema at ${path || '/'} is not an object or a boolean.`);

  for (const k of Object.keys(schema)) {
    if (ANNOTATIONS.has(k) || SUPPORTED.has(k)) continue;
    if (UNSUPPORTED_KEYWORDS.includes(k)) throw new UnsupportedSchemaError(k, pointer(path, k));
    if (ctx.unknownKeywords === 'error') throw new UnsupportedSchemaError(k, pointer(path, k), 'unknown keyword');
  }

  // Combinators: fold siblings into each branch.
  const siblings: Schema = {};
  for (const [k, v] of Object.entries(schema))
    if (!ANNOTATIONS.has(k) && k !== '$defs' && k !== 'definitions') siblings[k] = v;

  if ('$ref' in siblings) {
    const ref = siblings.$ref;
    if (typeof ref !== 'string') throw new InvalidGrammarError(`$ref at ${path || '/'} must be a string.`);
    const { schema: target, path: targetPath } = resolveRef(ref, ctx, path);
    if (ctx.refDepth >= ctx.maxDepth) return NEVER;
    delete siblings.$ref;
    ctx.refDepth++;
    try {
      if (Object.keys(siblings).length === 0) return compile(target, targetPath, ctx);
      if (!isObject(target)) return target === true ? compile(siblings, path, ctx) : NEVER;
      return compile(merge(target, siblings, '$ref', pointer(path, '$ref')), path, ctx);
    } finally {
      ctx.refDepth--;
    }
  }
  if ('allOf' in siblings) {
    const branches = siblings.allOf;
    if (!Array.isArray(branches)) throw new InvalidGrammarError(`allOf at ${path || '/'} must be an array.`);
    delete siblings.allOf;
    let merged: Schema = siblings;
    branches.forEach((b, i) => {
      let branch: unknown = b;
      if (isObject(branch) && typeof branch.$ref === 'string' && Object.keys(branch).length === 1)
        branch = resolveRef(branch.$ref, ctx, pointer(pointer(path, 'allOf'), i)).schema;
      if (branch === true) return;
      if (!isObject(branch)) {
        merged = { not: {} };
        return;
      }
      for (const k of Object.keys(branch))
        if (['anyOf', 'oneOf', 'allOf', '$ref'].includes(k))
          throw new UnsupportedSchemaError('allOf', pointer(path, 'allOf'), `nested \`${k}\``);
      merged = merge(merged, branch, 'allOf', pointer(path, 'allOf'));
    });
    if ('not' in merged) return NEVER;
    return compile(merged, path, ctx);
  }
  for (const keyword of ['anyOf', 'oneOf'] as const) {
    if (!(keyword in siblings)) continue;
    const branches = siblings[keyword];
    if (!Array.isArray(branches) || branches.length === 0)
      throw new InvalidGrammarError(`${keyword} at ${path || '/'} must be a non-empty array.`);
    delete siblings[keyword];
    const at = pointer(path, keyword);
    if (keyword === 'oneOf' && !provablyDisjoint(branches))
      throw new UnsupportedSchemaError('oneOf', at, 'branches are not provably disjoint (use anyOf)');
    return alt(
      ...branches.map((b, i) => {
        if (Object.keys(siblings).length === 0) return compile(b, pointer(at, i), ctx);
        if (b === false) return NEVER;
        const branch = b === true ? {} : b;
        if (!isObject(branch)) throw new InvalidGrammarError(`${keyword} branch at ${pointer(at, i)} is not a schema.`);
        return compile(merge(siblings, branch, keyword, at), pointer(at, i), ctx);
      }),
    );
  }

  // No restricting keyword left: any JSON value.
  if (Object.keys(siblings).length === 0) return anyValue(ctx, ctx.maxDepth - ctx.refDepth);

  // Allowed types.
  let types: Set<string>;
  if (siblings.type !== undefined) {
    const list = Array.isArray(siblings.type) ? siblings.type : [siblings.type];
    for (const t of list)
      if (!TYPES.includes(t as JsonType))
        throw new InvalidGrammarError(`Unknown type ${JSON.stringify(t)} at ${pointer(path, 'type')}.`);
    types = new Set(list as string[]);
    if (types.has('number')) types.delete('integer');
  } else {
    const implied = new Set(
      Object.keys(siblings)
        .map((k) => TYPE_KEYWORDS[k])
        .filter((t) => t !== undefined),
    );
    types = implied.size > 0 ? (implied as Set<string>) : new Set(TYPES.filter((t) => t !== 'integer'));
  }

  if ('const' in siblings || 'enum' in siblings) {
    let values: unknown[] = 'enum' in siblings ? (Array.isArray(siblings.enum) ? siblings.enum : []) : [siblings.const];
    if ('enum' in siblings && 'const' in siblings)
      values = values.filter((v) => canonical(v) === canonical(siblings.const));
    for (const k of Object.keys(siblings)) {
      if (k !== 'enum' && k !== 'const' && k !== 'type')
        throw new UnsupportedSchemaError(k, pointer(path, k), 'combined with enum/const');
    }
    if (siblings.type !== undefined) {
      values = values.filter((v) => {
        const t = jsonType(v);
        return (
          types.has(t) ||
          (t === 'integer' && types.has('number')) ||
          (t === 'number' && types.has('integer') && Number.isInteger(v))
        );
      });
    }
    return alt(...values.map((v) => valueNode(v, ctx)));
  }

  const out: LanguageNode[] = [];
  for (const t of types) {
    switch (t) {
      case 'null':
        out.push(literal('null'));
        break;
      case 'boolean':
        out.push(literal('true'), literal('false'));
        break;
      case 'string':
        out.push(stringNode(siblings, path));
        break;
      case 'integer':
      case 'number':
        out.push(numberNode(siblings, path, t === 'integer'));
        break;
      case 'object':
        out.push(objectSchema(siblings, path, ctx));
        break;
      case 'array':
        out.push(arraySchema(siblings, path, ctx));
        break;
    }
  }
  return alt(...out);
}

function stringNode(schema: Schema, path: string): LanguageNode {
  const min = nonNegativeInt(schema, 'minLength', path);
  const max = nonNegativeInt(schema, 'maxLength', path);
  const lengths = min !== undefined || max !== undefined;
  let content: LanguageNode | undefined;
  if (schema.pattern !== undefined) {
    if (typeof schema.pattern !== 'string')
      throw new InvalidGrammarError(`pattern at ${pointer(path, 'pattern')} must be a string.`);
    if (lengths)
      throw new UnsupportedSchemaError('pattern', pointer(path, 'pattern'), 'combined with minLength/maxLength');
    try {
      content = encodeString(searchNode(schema.pattern));
    } catch (error) {
      throw new UnsupportedSchemaError('pattern', pointer(path, 'pattern'), (error as Error).message);
    }
  }
  if (schema.format !== undefined) {
    const at = pointer(path, 'format');
    if (typeof schema.format !== 'string') throw new InvalidGrammarError(`format at ${at} must be a string.`);
    const node = formatNode(schema.format);
    if (node === undefined) throw new UnsupportedSchemaError('format', at, `format ${JSON.stringify(schema.format)}`);
    if (lengths || content !== undefined)
      throw new UnsupportedSchemaError('format', at, 'combined with pattern or length bounds');
    content = encodeString(node);
  }
  if (content === undefined) content = repeat(STRING_CHAR, min ?? 0, max ?? Infinity);
  return seq(QUOTE, content, QUOTE);
}

function bound(schema: Schema, key: string, path: string): number | undefined {
  const v = schema[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new UnsupportedSchemaError(
      key,
      pointer(path, key),
      'not a finite number (draft-4 boolean form is not supported)',
    );
  return v;
}

function numberNode(schema: Schema, path: string, integer: boolean): LanguageNode {
  const keys = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];
  const present = keys.filter((k) => schema[k] !== undefined);
  if (present.length === 0) return integer ? INTEGER : NUMBER;
  if (!integer) return boundedNumber(schema, path);
  const limit = 10n ** BigInt(MAX_INTEGER_DIGITS) - 1n;
  let lo = -limit;
  let hi = limit;
  const min = bound(schema, 'minimum', path);
  const max = bound(schema, 'maximum', path);
  const emin = bound(schema, 'exclusiveMinimum', path);
  const emax = bound(schema, 'exclusiveMaximum', path);
  const big = (x: number): bigint => BigInt(Math.max(Math.min(x, 1e17), -1e17));
  if (min !== undefined) lo = lo > big(Math.ceil(min)) ? lo : big(Math.ceil(min));
  if (emin !== undefined) lo = lo > big(Math.floor(emin) + 1) ? lo : big(Math.floor(emin) + 1);
  if (max !== undefined) hi = hi < big(Math.floor(max)) ? hi : big(Math.floor(max));
  if (emax !== undefined) hi = hi < big(Math.ceil(emax) - 1) ? hi : big(Math.ceil(emax) - 1);
  return integerRange(lo, hi);
}

const ANY_FRACTION = repeat(seq(literal('.'), repeat(DIGIT, 1, MAX_FRACTION_DIGITS)), 0, 1);
const ZERO_FRACTION = repeat(seq(literal('.'), repeat(literal('0'), 1, MAX_FRACTION_DIGITS)), 0, 1);
const NONZERO_FRACTION = seq(literal('.'), repeat(literal('0'), 0, 7), NONZERO, repeat(DIGIT, 0, 8));

/**
 * Non-negative decimals `i(.f)?` (no exponent) in the range from `lo` to `hi` (`undefined`: no upper bound), both
 * integers, each inclusive or exclusive.
 */
function nonNegativeDecimal(
  lo: bigint,
  loExcl: boolean,
  hi: bigint | undefined,
  hiExcl: boolean,
  limit: bigint,
): LanguageNode {
  const parts: LanguageNode[] = [];
  const top = hi === undefined ? limit : hi - 1n;
  const from = loExcl ? lo + 1n : lo;
  if (from <= top) parts.push(seq(naturalRange(from, top), ANY_FRACTION));
  if (loExcl && (hi === undefined || lo < hi)) parts.push(seq(naturalRange(lo, lo), NONZERO_FRACTION));
  if (hi !== undefined && !hiExcl && hi >= lo && !(loExcl && hi === lo))
    parts.push(seq(naturalRange(hi, hi), ZERO_FRACTION));
  return alt(...parts);
}

/** `type: number` with integer bounds: exact, as decimals without exponent (a sound subset). */
function boundedNumber(schema: Schema, path: string): LanguageNode {
  const limit = 10n ** BigInt(MAX_INTEGER_DIGITS) - 1n;
  let lo: bigint | undefined;
  let loExcl = false;
  let hi: bigint | undefined;
  let hiExcl = false;
  const integerBound = (key: string): bigint | undefined => {
    const v = bound(schema, key, path);
    if (v === undefined) return undefined;
    if (!Number.isInteger(v) || Math.abs(v) >= 1e16)
      throw new UnsupportedSchemaError(key, pointer(path, key), 'a non-integer bound on type number');
    return BigInt(v);
  };
  const min = integerBound('minimum');
  const emin = integerBound('exclusiveMinimum');
  const max = integerBound('maximum');
  const emax = integerBound('exclusiveMaximum');
  if (min !== undefined) lo = min;
  if (emin !== undefined && (lo === undefined || emin >= lo)) [lo, loExcl] = [emin, true];
  if (max !== undefined) hi = max;
  if (emax !== undefined && (hi === undefined || emax <= hi)) [hi, hiExcl] = [emax, true];
  const parts: LanguageNode[] = [];
  // x >= 0
  if (hi === undefined || hi > 0n || (hi === 0n && !hiExcl)) {
    const [l, le] = lo === undefined || lo < 0n ? [0n, false] : [lo, loExcl];
    parts.push(nonNegativeDecimal(l, le, hi, hiExcl, limit));
  }
  // x < 0: |x| between max(0, -hi) and -lo
  if (lo === undefined || lo < 0n) {
    const [l, le] = hi === undefined || hi >= 0n ? [0n, true] : [-hi, hiExcl];
    const upper = lo === undefined ? limit : -lo;
    parts.push(seq(literal('-'), nonNegativeDecimal(l, le, upper, lo === undefined ? false : loExcl, limit)));
  }
  return alt(...parts);
}

function objectSchema(schema: Schema, path: string, ctx: Context): LanguageNode {
  const props = schema.properties ?? {};
  if (!isObject(props))
    throw new InvalidGrammarError(`properties at ${pointer(path, 'properties')} must be an object.`);
  const required = schema.required ?? [];
  if (!Array.isArray(required))
    throw new InvalidGrammarError(`required at ${pointer(path, 'required')} must be an array.`);
  const additional = schema.additionalProperties;
  // Without additionalProperties: a free-form object when no property is declared, else only the declared ones
  // (unless implicitAdditionalProperties).
  const extraSchema: unknown =
    additional === undefined ? ctx.implicitAdditional || Object.keys(props).length === 0 : additional;
  const properties: Array<{ key: LanguageNode; value: LanguageNode; required: boolean }> = [];
  const names = Object.keys(props);
  for (const name of names) {
    properties.push({
      key: literal(JSON.stringify(name)),
      value: compile(props[name], pointer(pointer(path, 'properties'), name), ctx),
      required: required.includes(name),
    });
  }
  for (const name of required) {
    if (typeof name !== 'string' || names.includes(name)) continue;
    names.push(name);
    properties.push({
      key: literal(JSON.stringify(name)),
      value: compile(extraSchema, pointer(path, 'additionalProperties'), ctx),
      required: true,
    });
  }
  let extra: { key: LanguageNode; value: LanguageNode } | null = null;
  if (extraSchema !== false) {
    const value = compile(extraSchema, pointer(path, 'additionalProperties'), ctx);
    if (value.kind !== 'never') extra = { key: names.length === 0 ? STRING : { kind: 'key-except', names }, value };
  }
  return objectNode(ctx, properties, extra);
}

function arraySchema(schema: Schema, path: string, ctx: Context): LanguageNode {
  const min = nonNegativeInt(schema, 'minItems', path) ?? 0;
  const max = nonNegativeInt(schema, 'maxItems', path) ?? Infinity;
  if (Array.isArray(schema.items))
    throw new UnsupportedSchemaError('items', pointer(path, 'items'), 'array form of items (use prefixItems)');
  const prefixSchemas = schema.prefixItems ?? [];
  if (!Array.isArray(prefixSchemas))
    throw new InvalidGrammarError(`prefixItems at ${pointer(path, 'prefixItems')} must be an array.`);
  const prefix = prefixSchemas.map((s, i) => compile(s, pointer(pointer(path, 'prefixItems'), i), ctx));
  const rest = compile(schema.items ?? true, pointer(path, 'items'), ctx);
  return arrayNode(ctx, prefix, rest, min, max);
}

function contextOf(options: JsonSchemaOptions, root: unknown): Context {
  const maxWs = options.maxWhitespace ?? 20;
  return {
    root,
    ws:
      options.whitespace === 'compact'
        ? EMPTY
        : repeat(
            charClass([
              [0x09, 0x0a],
              [0x0d, 0x0d],
              [0x20, 0x20],
            ]),
            0,
            maxWs,
          ),
    maxDepth: options.maxDepth ?? 6,
    unknownKeywords: options.unknownKeywords ?? 'error',
    implicitAdditional: options.implicitAdditionalProperties ?? false,
    refDepth: 0,
  };
}

function optionsKey(options: JsonSchemaOptions): string {
  return `${options.whitespace ?? 'flexible'},${options.maxWhitespace ?? 20},${options.maxDepth ?? 6},${options.unknownKeywords ?? 'error'},${options.implicitAdditionalProperties ?? false}`;
}

/**
 * JSON text valid against a JSON Schema (the supported subset is listed in the package README). Every keyword that
 * would restrict the language and is not enforced exactly throws; annotations are ignored.
 *
 * @throws UnsupportedSchemaError naming the keyword and its JSON Pointer.
 * @throws InvalidGrammarError for malformed schemas and dangling `$ref`s.
 */
export function jsonSchemaGrammar(schema: unknown, options: JsonSchemaOptions = {}): Grammar {
  const node = compile(schema, '', contextOf(options, schema));
  return { key: `schema:${optionsKey(options)}:${stable(schema)}`, node };
}

/** Any JSON object (OpenAI `response_format: json_object`), values nested up to `options.maxDepth` (default 6). */
export function jsonObjectGrammar(options: JsonSchemaOptions = {}): Grammar {
  const ctx = contextOf(options, {});
  return {
    key: `json-object:${optionsKey(options)}`,
    node: objectNode(ctx, [], { key: STRING, value: anyValue(ctx, ctx.maxDepth - 1) }),
  };
}

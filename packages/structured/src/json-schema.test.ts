import { Ajv2020 as Ajv } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidGrammarError, UnsupportedSchemaError } from './errors.js';
import {
  compileGrammar,
  jsonObjectGrammar,
  jsonSchemaGrammar,
  matches,
  repeatGrammar,
  sequenceGrammar,
  literalGrammar,
  choiceGrammar,
} from './grammar.js';
import { UNSUPPORTED_KEYWORDS } from './json-schema.js';
import { mulberry, schemaArb } from './testing/schemas.js';
import type { ByteAutomaton } from './types.js';

const ajv = new Ajv({ strict: false });
(formats as unknown as { default: (a: Ajv) => void }).default(ajv);

/** A random word: random allowed bytes until an accepting state (stopping there with probability `stop`). */
function walk(automaton: ByteAutomaton, random: () => number, stop = 0.5, limit = 2000): Uint8Array | undefined {
  let state = automaton.start;
  const out: number[] = [];
  const options: number[] = [];
  for (let i = 0; i < limit; i++) {
    if (automaton.isAccepting(state) && (automaton.isFinal(state) || random() < stop)) return Uint8Array.from(out);
    options.length = 0;
    for (let byte = 0; byte < 256; byte++) if (automaton.step(state, byte) >= 0) options.push(byte);
    // Never a dead end: some byte leads on from every state that is not accepting.
    expect(options.length).toBeGreaterThan(0);
    // Prefer closing bytes so that words end in a few hundred bytes.
    const closing = options.filter((b) => b === 0x22 || b === 0x5d || b === 0x7d || b === 0x2c);
    const pool = closing.length > 0 && random() < 0.5 ? closing : options;
    const byte = pool[Math.floor(random() * pool.length)] as number;
    out.push(byte);
    state = automaton.step(state, byte);
    expect(state).toBeGreaterThanOrEqual(0);
  }
  return undefined;
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

describe('jsonSchemaGrammar: random walks produce valid instances', () => {
  it('walks of random schemas parse and validate with ajv', () => {
    let checked = 0;
    fc.assert(
      fc.property(
        schemaArb,
        fc.integer(),
        fc.constantFrom<'flexible' | 'compact'>('flexible', 'compact'),
        (schema, seed, whitespace) => {
          const automaton = compileGrammar(jsonSchemaGrammar(schema, { whitespace, maxDepth: 3 }));
          const validate = ajv.compile(schema);
          const random = mulberry(seed);
          for (let i = 0; i < 5; i++) {
            const bytes = walk(automaton, random);
            if (bytes === undefined) continue;
            const text = decoder.decode(bytes);
            const value: unknown = JSON.parse(text);
            expect(validate(value), `${JSON.stringify(schema)}\n${text}\n${JSON.stringify(validate.errors)}`).toBe(
              true,
            );
            checked++;
          }
        },
      ),
      { numRuns: 150 },
    );
    expect(checked).toBeGreaterThan(300);
  });

  it('jsonObjectGrammar walks are JSON objects', () => {
    const automaton = compileGrammar(jsonObjectGrammar({ maxDepth: 3 }));
    const random = mulberry(7);
    for (let i = 0; i < 100; i++) {
      const bytes = walk(automaton, random);
      if (bytes === undefined) continue;
      const value: unknown = JSON.parse(decoder.decode(bytes));
      expect(typeof value === 'object' && value !== null && !Array.isArray(value)).toBe(true);
    }
  });
});

describe('jsonSchemaGrammar: valid instances are accepted', () => {
  const person = {
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 20 },
      age: { type: 'integer', minimum: 0, maximum: 150 },
      email: { type: 'string', format: 'email' },
      tags: { type: 'array', items: { type: 'string' }, maxItems: 3 },
      kind: { enum: ['a', 'b', 'ü'] },
      score: { type: 'number' },
      address: {
        type: 'object',
        properties: { city: { type: 'string' } },
        required: ['city'],
        additionalProperties: false,
      },
      nick: { type: ['string', 'null'] },
    },
    required: ['name', 'age'],
    additionalProperties: false,
  };
  const personArb = fc.record(
    {
      name: fc.string({ minLength: 1, maxLength: 20, unit: 'grapheme' }).filter((s) => [...s].length <= 20),
      age: fc.integer({ min: 0, max: 150 }),
      email: fc.constantFrom('a@b.co', 'first.last+x@mail.example.org'),
      tags: fc.array(fc.string({ unit: 'binary' }), { maxLength: 3 }),
      kind: fc.constantFrom('a', 'b', 'ü'),
      score: fc
        .double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 })
        .filter((x) => !/e/.test(String(x)) || true),
      address: fc.record({ city: fc.string() }),
      nick: fc.option(fc.string(), { nil: null }),
    },
    { requiredKeys: ['name', 'age'] },
  );
  const automaton = compileGrammar(jsonSchemaGrammar(person));
  const order = Object.keys(person.properties);
  it('JSON.stringify and 2-space indented forms of ajv-valid instances', () => {
    const validate = ajv.compile(person);
    fc.assert(
      fc.property(personArb, (value) => {
        const ordered = Object.fromEntries(
          order.filter((k) => k in value).map((k) => [k, (value as Record<string, unknown>)[k]]),
        );
        fc.pre(validate(ordered) === true);
        const compact = JSON.stringify(ordered);
        fc.pre(!/e[+-]?\d{4}|\d{17}|\.\d{17}/.test(compact)); // documented number bounds
        expect(matches(automaton, compact), compact).toBe(true);
        expect(matches(automaton, JSON.stringify(ordered, null, 2)), compact).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('integer ranges are exact', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -2000, max: 2000 }),
        fc.nat(3000),
        fc.integer({ min: -6000, max: 6000 }),
        (lo, span, n) => {
          const hi = lo + span;
          const a = compileGrammar(jsonSchemaGrammar({ type: 'integer', minimum: lo, maximum: hi }));
          expect(matches(a, String(n)), `${n} in [${lo}, ${hi}]`).toBe(n >= lo && n <= hi);
          expect(matches(a, '-0')).toBe(false);
          expect(matches(a, `0${Math.max(lo, 1)}`)).toBe(false);
        },
      ),
      { numRuns: 200 },
    );
    const e = compileGrammar(jsonSchemaGrammar({ type: 'integer', exclusiveMinimum: 0, exclusiveMaximum: 10 }));
    expect(['0', '1', '9', '10'].map((t) => matches(e, t))).toEqual([false, true, true, false]);
    const big = compileGrammar(jsonSchemaGrammar({ type: 'integer' }));
    expect(matches(big, '9'.repeat(16))).toBe(true);
    expect(matches(big, '9'.repeat(17))).toBe(false);
  });

  it('multi-byte UTF-8 in strings, enums, keys and patterns', () => {
    const a = compileGrammar(
      jsonSchemaGrammar({
        type: 'object',
        properties: { 日本: { enum: ['日本', 'üü'] }, b: { type: 'string', maxLength: 2 } },
        required: ['日本'],
        additionalProperties: false,
      }),
    );
    expect(matches(a, '{"日本": "üü", "b": "😀é"}')).toBe(true);
    expect(matches(a, '{"日本": "ü"}')).toBe(false);
    expect(matches(a, '{"日本": "日本", "b": "😀éx"}')).toBe(false);
    const search = compileGrammar(jsonSchemaGrammar({ type: 'string', pattern: 'a"b' }));
    expect(matches(search, '"xxa\\"byy"')).toBe(true);
    expect(matches(search, '"xxab"')).toBe(false);
    const anchored = compileGrammar(jsonSchemaGrammar({ type: 'string', pattern: '^\\d{3}$' }));
    expect(matches(anchored, '"123"')).toBe(true);
    expect(matches(anchored, '"1234"')).toBe(false);
    const cls = compileGrammar(jsonSchemaGrammar({ type: 'string', pattern: '^[^a]$' }));
    expect(['"é"', '"😀"', '"\\n"', '"\\""', '"a"'].map((t) => matches(cls, t))).toEqual([
      true,
      true,
      true,
      true,
      false,
    ]);
  });

  it('{} and an object schema without properties are free-form', () => {
    const any = compileGrammar(jsonSchemaGrammar({}));
    for (const text of ['3', '"x"', 'null', '[1, {"b": [true]}]', '{"a": [1, {"b": null}]}'])
      expect(matches(any, text), text).toBe(true);
    const object = compileGrammar(jsonSchemaGrammar({ type: 'object' }));
    expect(matches(object, '{"k": 1, "l": {"m": "n"}}')).toBe(true);
    expect(matches(object, '[1]')).toBe(false);
    const closed = compileGrammar(jsonSchemaGrammar({ type: 'object', properties: { a: { type: 'null' } } }));
    expect(matches(closed, '{"a": null}')).toBe(true);
    expect(matches(closed, '{"b": null}')).toBe(false);
  });

  it('extra properties never repeat a declared key', () => {
    const a = compileGrammar(
      jsonSchemaGrammar({
        type: 'object',
        properties: { ab: { type: 'integer' }, é: { type: 'integer' } },
        additionalProperties: { type: 'string' },
      }),
    );
    expect(matches(a, '{"ab": 1, "a": "x", "abc": "y", "è": "z"}')).toBe(true);
    expect(matches(a, '{"ab": 1, "ab": "x"}')).toBe(false);
    expect(matches(a, '{"é": "x"}')).toBe(false);
  });

  it('$ref, recursion, oneOf with discriminators, allOf merge', () => {
    const tree = {
      $defs: {
        node: {
          type: 'object',
          properties: { v: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/node' } } },
          required: ['v'],
          additionalProperties: false,
        },
      },
      $ref: '#/$defs/node',
    };
    const a = compileGrammar(jsonSchemaGrammar(tree, { maxDepth: 3 }));
    expect(matches(a, '{"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}]}')).toBe(true);
    expect(matches(a, '{"v": 1, "kids": [{"v": 2, "kids": [{"v": 3, "kids": [{"v": 4}]}]}]}')).toBe(false);
    const one = {
      oneOf: [
        {
          type: 'object',
          properties: { t: { const: 'a' }, x: { type: 'integer' } },
          required: ['t'],
          additionalProperties: false,
        },
        { type: 'object', properties: { t: { const: 'b' } }, required: ['t'], additionalProperties: false },
      ],
    };
    const o = compileGrammar(jsonSchemaGrammar(one));
    expect(matches(o, '{"t": "a", "x": 1}')).toBe(true);
    expect(() => jsonSchemaGrammar({ oneOf: [{ type: 'string' }, { type: 'string', maxLength: 3 }] })).toThrow(
      UnsupportedSchemaError,
    );
    expect(matches(compileGrammar(jsonSchemaGrammar({ oneOf: [{ type: 'string' }, { type: 'integer' }] })), '3')).toBe(
      true,
    );
    const all = compileGrammar(
      jsonSchemaGrammar({
        allOf: [
          { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] },
          { properties: { b: { type: 'string' } }, required: ['b'] },
        ],
      }),
    );
    expect(matches(all, '{"a": 1, "b": "x"}')).toBe(true);
    expect(matches(all, '{"a": 1}')).toBe(false);
    expect(() =>
      jsonSchemaGrammar({
        allOf: [
          { type: 'string', pattern: 'a' },
          { type: 'string', pattern: 'b' },
        ],
      }),
    ).toThrow(UnsupportedSchemaError);
  });

  it('composition: repeated tool-call blocks', () => {
    const call = sequenceGrammar([
      literalGrammar('<tool_call>\n'),
      jsonSchemaGrammar({
        type: 'object',
        properties: { n: { type: 'integer' } },
        required: ['n'],
        additionalProperties: false,
      }),
      literalGrammar('\n</tool_call>'),
    ]);
    const g = choiceGrammar([repeatGrammar(call, 1, Infinity, literalGrammar('\n')), literalGrammar('none')]);
    const a = compileGrammar(g);
    expect(matches(a, '<tool_call>\n{"n": 1}\n</tool_call>\n<tool_call>\n{"n":2}\n</tool_call>')).toBe(true);
    expect(matches(a, 'none')).toBe(true);
    expect(matches(a, '<tool_call>\n{"n": 1}\n</tool_call>\n')).toBe(false);
    const lit = compileGrammar(literalGrammar('ok'));
    expect(lit.isFinal(lit.step(lit.step(lit.start, 0x6f), 0x6b))).toBe(true);
  });
});

describe('jsonSchemaGrammar: refusals', () => {
  const values: Record<string, unknown> = {
    multipleOf: 2,
    not: {},
    if: {},
    then: {},
    else: {},
    patternProperties: {},
    propertyNames: {},
    dependentRequired: {},
    dependentSchemas: {},
    dependencies: {},
    uniqueItems: true,
    contains: {},
    minContains: 1,
    maxContains: 1,
    minProperties: 1,
    maxProperties: 1,
    unevaluatedProperties: false,
    unevaluatedItems: false,
    additionalItems: false,
    $dynamicRef: '#x',
    $recursiveRef: '#',
    contentSchema: {},
  };
  for (const keyword of UNSUPPORTED_KEYWORDS) {
    it(`${keyword} throws UnsupportedSchemaError with its path`, () => {
      const schema = { type: 'object', properties: { inner: { type: 'array', [keyword]: values[keyword] ?? {} } } };
      let caught: unknown;
      try {
        jsonSchemaGrammar(schema);
      } catch (error) {
        caught = error;
      }
      expect(UnsupportedSchemaError.isInstance(caught)).toBe(true);
      expect((caught as UnsupportedSchemaError).keyword).toBe(keyword);
      expect((caught as UnsupportedSchemaError).schemaPath).toBe(`/properties/inner/${keyword}`);
    });
  }
  it('unknown keywords, unsupported formats, number bounds, remote refs', () => {
    const cases: [unknown, string, string][] = [
      [{ type: 'string', foo: 1 }, 'foo', '/foo'],
      [{ type: 'string', format: 'uri' }, 'format', '/format'],
      [{ type: 'number', minimum: 0.5 }, 'minimum', '/minimum'],
      [{ $ref: 'http://x/y' }, '$ref', '/$ref'],
      [{ type: 'array', items: [{}] }, 'items', '/items'],
      [{ type: 'string', pattern: '(?=a)' }, 'pattern', '/pattern'],
    ];
    for (const [schema, keyword, path] of cases) {
      try {
        jsonSchemaGrammar(schema);
        expect.unreachable(JSON.stringify(schema));
      } catch (error) {
        expect(UnsupportedSchemaError.isInstance(error)).toBe(true);
        expect((error as UnsupportedSchemaError).keyword).toBe(keyword);
        expect((error as UnsupportedSchemaError).schemaPath).toBe(path);
      }
    }
    expect(() => jsonSchemaGrammar({ type: 'string', foo: 1 }, { unknownKeywords: 'ignore' })).not.toThrow();
    expect(() => compileGrammar(jsonSchemaGrammar(false))).toThrow(InvalidGrammarError);
    expect(() => compileGrammar(jsonSchemaGrammar({ enum: [] }))).toThrow(InvalidGrammarError);
    expect(() =>
      compileGrammar(jsonSchemaGrammar({ type: 'string', maxLength: 100000 }), { maxNfaStates: 10000 }),
    ).toThrow(InvalidGrammarError);
  });
});

describe('compileGrammar: liveness', () => {
  it('every reachable state accepts or has a byte leading on (exhaustive over the first states)', () => {
    fc.assert(
      fc.property(schemaArb, (schema) => {
        const automaton = compileGrammar(jsonSchemaGrammar(schema, { maxDepth: 2, maxWhitespace: 2 }));
        const seen = new Set<number>([automaton.start]);
        const queue = [automaton.start];
        while (queue.length > 0 && seen.size < 3000) {
          const state = queue.shift() as number;
          let next = 0;
          for (let byte = 0; byte < 256; byte++) {
            const to = automaton.step(state, byte);
            if (to < 0) continue;
            next++;
            if (!seen.has(to)) {
              seen.add(to);
              queue.push(to);
            }
          }
          expect(next > 0 || automaton.isAccepting(state)).toBe(true);
          expect(automaton.isFinal(state)).toBe(next === 0);
        }
      }),
      { numRuns: 60 },
    );
    const a = compileGrammar(jsonSchemaGrammar({ type: 'string' }));
    expect(a.step(-1, 0x22)).toBe(-1);
  });
});

describe('number bounds', () => {
  it('are exact for integer bounds (decimals without exponent)', () => {
    const boundArb = fc.option(fc.tuple(fc.integer({ min: -30, max: 30 }), fc.boolean()), { nil: undefined });
    const numberText = fc
      .tuple(fc.boolean(), fc.nat(40), fc.option(fc.stringMatching(/^[0-9]{1,4}$/), { nil: undefined }))
      .map(([neg, i, f]) => `${neg ? '-' : ''}${i}${f === undefined ? '' : `.${f}`}`);
    fc.assert(
      fc.property(boundArb, boundArb, fc.array(numberText, { minLength: 20, maxLength: 20 }), (lower, upper, texts) => {
        const schema: Record<string, unknown> = { type: 'number' };
        if (lower !== undefined) schema[lower[1] ? 'exclusiveMinimum' : 'minimum'] = lower[0];
        if (upper !== undefined) schema[upper[1] ? 'exclusiveMaximum' : 'maximum'] = upper[0];
        const validate = ajv.compile(schema);
        let automaton: ByteAutomaton;
        try {
          automaton = compileGrammar(jsonSchemaGrammar(schema));
        } catch (error) {
          expect(InvalidGrammarError.isInstance(error)).toBe(true); // empty range
          return;
        }
        for (const text of texts) {
          const valid = validate(JSON.parse(text)) === true;
          const accepted = matches(automaton, text);
          if (accepted) expect(valid, `${JSON.stringify(schema)} ${text}`).toBe(true);
          // Negative zero (-0, -0.00) is not generated: a sound subset.
          else if (!Object.is(JSON.parse(text), -0)) expect(valid, `${JSON.stringify(schema)} ${text}`).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
    expect(() => jsonSchemaGrammar({ type: 'number', minimum: 0.5 })).toThrow(UnsupportedSchemaError);
  });
});

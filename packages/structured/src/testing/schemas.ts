/**
 * Test support (not part of the package's build): random JSON Schemas from the supported subset and a seeded
 * generator, shared by the grammar tests and the end-to-end constraint tests.
 */
import fc from 'fast-check';

/** A small seeded generator (mulberry32): numbers in [0, 1). */
export function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const names = fc.constantFrom('a', 'b', 'name', 'é', '日本', 'a b', 'q"x', 'ab');

/** Random schemas from the supported subset. */
export const schemaArb = fc.letrec<{ schema: Record<string, unknown> }>((tie) => ({
  schema: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant({ type: 'string' }),
    fc.tuple(fc.nat(3), fc.nat(4)).map(([min, extra]) => ({ type: 'string', minLength: min, maxLength: min + extra })),
    fc.constantFrom('date', 'time', 'date-time', 'uuid', 'email', 'ipv4').map((format) => ({ type: 'string', format })),
    fc.constantFrom('^[a-z]+$', 'ab', '^x\\d', '[é日]$').map((pattern) => ({ type: 'string', pattern })),
    fc.constant({ type: 'number' }),
    fc
      .tuple(fc.integer({ min: -20, max: 20 }), fc.nat(40))
      .map(([lo, span]) => ({ type: 'number', exclusiveMinimum: lo, maximum: lo + span + 1 })),
    fc.constant({ type: 'integer' }),
    fc
      .tuple(fc.integer({ min: -1000, max: 1000 }), fc.nat(5000))
      .map(([lo, span]) => ({ type: 'integer', minimum: lo, maximum: lo + span })),
    fc.integer({ min: -50, max: 50 }).map((lo) => ({ type: 'integer', exclusiveMinimum: lo })),
    fc.integer({ min: -50, max: 50 }).map((hi) => ({ type: 'integer', exclusiveMaximum: hi })),
    fc.constant({ type: 'boolean' }),
    fc.constant({ type: 'null' }),
    fc.constant({ type: ['string', 'null'] }),
    fc.constant({}),
    fc
      .array(fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.constant(null), fc.constant('日本')), {
        minLength: 1,
        maxLength: 4,
      })
      .map((values) => ({ enum: [...new Map(values.map((v) => [JSON.stringify(v), v])).values()] })),
    fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.boolean()).map((value) => ({ const: value })),
    fc
      .tuple(
        fc.uniqueArray(names, { maxLength: 4 }),
        fc.array(tie('schema'), { minLength: 4, maxLength: 4 }),
        fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        fc.constantFrom<unknown>(false, true, { type: 'integer' }, undefined),
      )
      .map(([keys, values, req, additional]) => {
        const schema: Record<string, unknown> = {
          type: 'object',
          properties: Object.fromEntries(keys.map((k, i) => [k, values[i]])),
          required: keys.filter((_, i) => req[i]),
        };
        if (additional !== undefined) schema.additionalProperties = additional;
        return schema;
      }),
    fc
      .tuple(tie('schema'), fc.nat(2), fc.nat(3))
      .map(([items, min, extra]) => ({ type: 'array', items, minItems: min, maxItems: min + extra })),
    fc
      .tuple(fc.array(tie('schema'), { minLength: 1, maxLength: 2 }), tie('schema'))
      .map(([prefixItems, items]) => ({ type: 'array', prefixItems, items })),
    fc.array(tie('schema'), { minLength: 1, maxLength: 3 }).map((anyOf) => ({ anyOf })),
  ),
})).schema;

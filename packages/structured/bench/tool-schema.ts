/**
 * The benchmarks' typical 20-property tool schema (strings, bounded integers, enums, a nested object, arrays of
 * strings) and one instance of it.
 *
 * @param required which properties are required: `even` (half of them, as compile.ts measures) or `all`.
 */
export function toolSchema(required: 'even' | 'all'): {
  schema: Record<string, unknown>;
  instance: Record<string, unknown>;
} {
  const properties: Record<string, unknown> = {};
  const instance: Record<string, unknown> = {};
  for (let i = 0; i < 20; i++) {
    const name = `field_${i}`;
    switch (i % 5) {
      case 0:
        properties[name] = { type: 'string', description: 'free text' };
        instance[name] = 'hello world';
        break;
      case 1:
        properties[name] = { type: 'integer', minimum: 0, maximum: 1000 };
        instance[name] = 42;
        break;
      case 2:
        properties[name] = { enum: ['low', 'medium', 'high'] };
        instance[name] = 'medium';
        break;
      case 3:
        properties[name] = {
          type: 'object',
          properties: { city: { type: 'string' }, zip: { type: 'string', maxLength: 10 } },
          required: ['city'],
          additionalProperties: false,
        };
        instance[name] = { city: 'Paris', zip: '75001' };
        break;
      default:
        properties[name] = { type: 'array', items: { type: 'string' }, maxItems: 8 };
        instance[name] = ['a', 'b'];
    }
  }
  const names = Object.keys(properties);
  const schema = {
    type: 'object',
    properties,
    required: required === 'all' ? names : names.filter((_, i) => i % 2 === 0),
    additionalProperties: false,
  };
  return { schema, instance };
}

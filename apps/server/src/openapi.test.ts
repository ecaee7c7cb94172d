/**
 * The OpenAPI document and the parsers agree, field by field: every field the document lists for a route body is
 * accepted by that route (never refused as unknown), every field it marks ignored has no effect, every field it
 * marks refused is refused by name, and a field it does not list is refused (OpenAI, Together) or ignored (TGI, as
 * TGI does). The document is the one the server serves, built from the same schemas the parsers check.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARAMETER_NAMES } from './wire/tgi.js';
import { postJson, send, startServer, tinyModel, type RunningServer } from './testing/harness.js';

interface JsonSchema {
  type?: string;
  anyOf?: JsonSchema[];
  const?: unknown;
  minimum?: number;
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  'x-gen-status'?: 'ignored' | 'refused';
}
interface Document {
  paths: Record<string, Record<string, { requestBody?: { content: { 'application/json': { schema: JsonSchema } } } }>>;
}

let server: RunningServer;
let doc: Document;

beforeAll(async () => {
  server = await startServer({ model: await tinyModel() });
  doc = (await send(server.url, { path: '/api-doc/openapi.json' })).json as Document;
});
afterAll(() => server?.close());

/** A value of the schema's type (the first non-null option of a union). */
function example(schema: JsonSchema): unknown {
  if (schema.const !== undefined) return schema.const;
  if (schema.anyOf !== undefined) return example(schema.anyOf.find((option) => option.type !== 'null')!);
  switch (schema.type) {
    case 'string':
      return 'x';
    case 'integer':
      return Math.max(schema.minimum ?? 1, 1);
    case 'number':
      return Math.max(schema.minimum ?? 0.5, 0.5);
    case 'boolean':
      return false;
    case 'array':
      return schema.items === undefined ? [] : [example(schema.items)];
    default:
      return {};
  }
}

function bodySchema(path: string): JsonSchema {
  return doc.paths[path]!['post']!.requestBody!.content['application/json'].schema;
}

const minimal: Record<string, Record<string, unknown>> = {
  '/v1/chat/completions': { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, temperature: 0 },
  '/v1/completions': { prompt: 'Hi', max_tokens: 2, temperature: 0 },
  '/inference': { prompt: 'Hi', max_tokens: 2, temperature: 0 },
};

function errorOf(answer: { json: unknown }): { message: string; param: string | null } | undefined {
  return (answer.json as { error?: { message: string; param: string | null } }).error;
}

describe.each(Object.keys(minimal))('%s: the document and the parser list the same fields', (path) => {
  it('every documented field is accepted, ignored without effect, or refused by name, as documented', async () => {
    const schema = bodySchema(path);
    expect(schema.additionalProperties).toBe(false);
    const base = minimal[path]!;
    const plain = await postJson(server.url, path, base);
    expect(plain.status).toBe(200);
    const names = Object.keys(schema.properties!);
    expect(names.length).toBeGreaterThan(5);
    for (const name of names) {
      const property = schema.properties![name]!;
      const value = name in base ? base[name] : example(property);
      const answer = await postJson(server.url, path, { ...base, [name]: value });
      const error = errorOf(answer);
      expect(error?.message ?? '', name).not.toMatch(/^Unrecognized request argument/);
      if (property['x-gen-status'] === 'refused') {
        expect(answer.status, name).toBe(400);
        expect(error!.param, name).toBe(name);
      }
      if (property['x-gen-status'] === 'ignored') {
        expect(answer.status, name).toBe(200);
        expect(JSON.stringify(choicesOf(answer.json)), name).toBe(JSON.stringify(choicesOf(plain.json)));
      }
      // Null is absent, for every field.
      expect(
        (await postJson(server.url, path, { ...base, [name]: name in base ? base[name] : null })).status,
        name,
      ).toBe(200);
    }
  });

  it('a field the document does not list is refused with OpenAI’s wording', async () => {
    const answer = await postJson(server.url, path, { ...minimal[path], undocumented_field: 1 });
    expect(answer.status).toBe(400);
    expect(errorOf(answer)).toMatchObject({
      message: 'Unrecognized request argument supplied: undocumented_field',
      param: 'undocumented_field',
    });
  });
});

function choicesOf(json: unknown): unknown {
  const body = json as {
    choices?: { text?: string; message?: unknown }[];
    output?: { choices: { text?: string; message?: unknown }[] };
  };
  const choices = body.choices ?? body.output?.choices ?? [];
  return choices.map((choice) => choice.text ?? choice.message);
}

describe('TGI parameters', () => {
  it('the document lists exactly the parameters the parser maps, plus the ones it refuses by name', () => {
    const parameters = bodySchema('/generate').properties!['parameters']!;
    const object = parameters.anyOf!.find((option) => option.type === 'object')!;
    const documented = Object.entries(object.properties!);
    const refused = documented.filter(([, p]) => p['x-gen-status'] === 'refused').map(([name]) => name);
    const accepted = documented.filter(([, p]) => p['x-gen-status'] === undefined).map(([name]) => name);
    expect(accepted.filter((name) => name !== 'grammar').sort()).toEqual(Object.keys(PARAMETER_NAMES).sort());
    expect(refused.sort()).toEqual(['adapter_id']);
    // `grammar` is read apart from the mapped parameters (it becomes a logits processor).
    expect(documented.map(([name]) => name)).toContain('grammar');
  });

  it('refused parameters are refused by name; undocumented ones are ignored, as TGI does', async () => {
    for (const name of ['adapter_id']) {
      const value = 'lora';
      const answer = await postJson(server.url, '/generate', { inputs: 'Hi', parameters: { [name]: value } });
      expect(answer.status, name).toBe(422);
      expect((answer.json as { error: string }).error, name).toContain(`\`${name}\``);
    }
    const base = { inputs: 'Hi', parameters: { max_new_tokens: 2 } };
    const plain = await postJson(server.url, '/generate', base);
    const extra = await postJson(server.url, '/generate', {
      ...base,
      undocumented_field: 1,
      parameters: { ...base.parameters, undocumented_parameter: true },
    });
    expect(extra.status).toBe(200);
    expect(extra.json).toEqual(plain.json);
  });
});

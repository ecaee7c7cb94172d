import { Type, type Static, type TObject, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import { validationError } from '../errors.js';

/**
 * What a declared field does, shown in the OpenAPI document (`x-gen-status`) and in docs/server.md's field tables:
 * - `accepted`: read, and it has an effect;
 * - `ignored`: accepted so that clients which always send it keep working, with no effect (the description says why);
 * - `refused`: declared so that its refusal is clear (the description says which values are refused and why).
 */
export type FieldStatus = 'accepted' | 'ignored' | 'refused';

/** Options every declared field takes. */
export interface FieldOptions {
  /** What the field does (OpenAPI `description`; the docs' field tables). */
  description: string;
  /** Default `accepted`. */
  status?: FieldStatus;
  /** Overrides the generated "must be ..." wording of a type error (for example "a non-empty array"). */
  expected?: string;
}

/** The schema keywords gen adds (OpenAPI allows `x-` extensions in schema objects). */
function annotations(options: FieldOptions): Record<string, unknown> {
  return {
    description: options.description,
    ...(options.status === undefined || options.status === 'accepted' ? {} : { 'x-gen-status': options.status }),
    ...(options.expected === undefined ? {} : { 'x-gen-expected': options.expected }),
  };
}

/**
 * An optional body field that may also be `null` (treated as absent, as TGI's serde `Option` and the OpenAI API do),
 * with its documentation.
 */
export function field<T extends TSchema>(schema: T, options: FieldOptions) {
  return Type.Optional(Type.Union([schema, Type.Null()], annotations(options)));
}

/** A required body field (never null), with its documentation. */
export function required<T extends TSchema>(schema: T, options: FieldOptions): T {
  return { ...schema, ...annotations(options) };
}

/** A closed request body: a field it does not declare is refused with OpenAI's wording. */
export function closedBody<T extends Parameters<typeof Type.Object>[0]>(properties: T, description: string) {
  return Type.Object(properties, { additionalProperties: false, description });
}

/** An open request body: fields it does not declare are ignored (TGI's behaviour, serde's default). */
export function openBody<T extends Parameters<typeof Type.Object>[0]>(properties: T, description: string) {
  return Type.Object(properties, { description });
}

const ARTICLE: Record<string, string> = { integer: 'an integer', object: 'a JSON object', array: 'an array' };
const PLURAL: Record<string, string> = {
  string: 'strings',
  integer: 'integers',
  number: 'numbers',
  boolean: 'booleans',
  object: 'objects',
};

function range(schema: Record<string, unknown>): string {
  const min = schema['minimum'] as number | undefined;
  const max = schema['maximum'] as number | undefined;
  const exclusiveMin = schema['exclusiveMinimum'] as number | undefined;
  if (min !== undefined && max !== undefined) return ` between ${min} and ${max}`;
  if (exclusiveMin !== undefined) return max === undefined ? ` > ${exclusiveMin}` : ` > ${exclusiveMin} and <= ${max}`;
  if (min !== undefined) return ` >= ${min}`;
  if (max !== undefined) return ` <= ${max}`;
  return '';
}

/** "a number", "an integer >= 1", "a string or an array of strings", `one of "text", "json_object"`... */
export function describeSchema(schema: TSchema): string {
  const s = schema as Record<string, unknown>;
  if (typeof s['x-gen-expected'] === 'string') return s['x-gen-expected'];
  if ('const' in s) return JSON.stringify(s['const']);
  const anyOf = s['anyOf'] as TSchema[] | undefined;
  if (anyOf !== undefined) {
    const options = anyOf.filter((option) => (option as { type?: unknown }).type !== 'null');
    if (options.every((option) => 'const' in option)) {
      const values = options.map((option) => JSON.stringify((option as unknown as { const: unknown }).const));
      return values.length === 2 ? `${values[0]} or ${values[1]}` : `one of ${values.join(', ')}`;
    }
    return options.map(describeSchema).join(' or ');
  }
  const type = s['type'] as string | undefined;
  if (type === 'array') {
    const items = s['items'] as Record<string, unknown> | undefined;
    const prefix = (s['minItems'] as number | undefined) === 1 ? 'a non-empty array' : 'an array';
    const itemType = items?.['type'] as string | undefined;
    const choices = items?.['anyOf'] as Record<string, unknown>[] | undefined;
    if (choices !== undefined && choices.every((choice) => 'const' in choice)) {
      return `${prefix} of ${choices.map((choice) => JSON.stringify(choice['const'])).join(', ')}`;
    }
    if (itemType === 'array') return `${prefix} of arrays`;
    return itemType !== undefined && PLURAL[itemType] !== undefined ? `${prefix} of ${PLURAL[itemType]}` : prefix;
  }
  if (type === 'string' && (s['minLength'] as number | undefined) === 1) return 'a non-empty string';
  if (type === undefined) return 'a value';
  return (ARTICLE[type] ?? `a ${type}`) + range(s);
}

/** `/messages/0/role` -> `messages[0].role`; the `flatten` containers' own name is left out (`parameters/top_p` -> `top_p`). */
function fieldPath(pointer: string, flatten: readonly string[]): string {
  const segments = pointer
    .split('/')
    .slice(1)
    .map((segment) => segment.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (segments.length > 1 && flatten.includes(segments[0]!)) segments.shift();
  let path = '';
  for (const segment of segments)
    path += /^\d+$/.test(segment) ? `[${segment}]` : path === '' ? segment : `.${segment}`;
  return path;
}

/** The schemas a value may match, `null` left out (a `field()` is its schema or null). */
function nonNull(schema: TSchema): TSchema[] {
  const anyOf = (schema as { anyOf?: TSchema[] }).anyOf;
  if (anyOf === undefined) return [schema];
  return anyOf.filter((option) => (option as { type?: unknown }).type !== 'null').flatMap(nonNull);
}

/**
 * The error to report. A union hides why its only non-null option failed (TypeBox reports the union itself), so for
 * a nullable object or array the option's own first error is reported, at its full path.
 */
function innermost(error: ValueError): ValueError {
  const options = nonNull(error.schema);
  if (error.type !== ValueErrorType.Union || options.length !== 1 || error.value === null) return error;
  const option = options[0]!;
  const type = (option as { type?: unknown }).type;
  if (type !== 'object' && type !== 'array') return error;
  if (type === 'object' && (typeof error.value !== 'object' || Array.isArray(error.value))) return error;
  if (type === 'array' && !Array.isArray(error.value)) return error;
  const inner = firstError(Value.Errors(option, error.value));
  if (inner === undefined) return error;
  return innermost({ ...inner, path: error.path + inner.path });
}

/** The first undeclared field if there is one (a misspelt name explains the rest), else the first error. */
function firstError(errors: Iterable<ValueError>): ValueError | undefined {
  let first: ValueError | undefined;
  for (const error of errors) {
    if (error.type === ValueErrorType.ObjectAdditionalProperties) return error;
    first ??= error;
  }
  return first;
}

function message(error: ValueError, flatten: readonly string[]): { text: string; param: string | null } {
  const path = fieldPath(error.path, flatten);
  if (error.type === ValueErrorType.ObjectAdditionalProperties) {
    return { text: `Unrecognized request argument supplied: ${path}`, param: path };
  }
  if (path === '') return { text: 'request body must be a JSON object', param: null };
  const param = path.split(/[.[]/)[0]!;
  const value = error.value;
  if ((error.type === ValueErrorType.ObjectRequiredProperty && value === undefined) || value === null) {
    return { text: `\`${path}\` is required: ${describeSchema(error.schema)}`, param };
  }
  // A number of the right type that is out of range: name the range and the value.
  if (typeof value === 'number' && (error.schema as Record<string, unknown>)['x-gen-expected'] === undefined) {
    const numeric = nonNull(error.schema).find((option) => {
      const type = (option as { type?: unknown }).type;
      return type === 'number' || (type === 'integer' && Number.isInteger(value));
    });
    const bounds = numeric === undefined ? '' : range(numeric as Record<string, unknown>);
    const article = (numeric as { type?: unknown } | undefined)?.type === 'integer' ? ' an integer' : '';
    if (bounds !== '') return { text: `\`${path}\` must be${article}${bounds}. Given: ${value}`, param };
  }
  const choices = nonNull(error.schema).every((option) => 'const' in option);
  const shown = choices && typeof value === 'string' ? `. Given: ${JSON.stringify(value)}` : '';
  return { text: `\`${path}\` must be ${describeSchema(error.schema)}${shown}`, param };
}

/** A compiled check of a request body against its declared schema. */
export interface BodyCheck<T extends TObject> {
  readonly schema: T;
  /** Throws the family-neutral validation error (422 TGI / 400 OpenAI) of the first problem; returns the typed body. */
  (body: unknown): Static<T>;
}

/**
 * Compiles the check of a route's body. The first undeclared field of a closed body is reported before any other
 * problem (a misspelt name explains the rest); otherwise the first problem in declaration order, by its path
 * (`messages[0].role`). `flatten` names
 * containers whose fields are reported by their own name (TGI's `parameters`, as TGI's messages do).
 */
export function compileBodyCheck<T extends TObject>(schema: T, flatten: readonly string[] = []): BodyCheck<T> {
  const compiled = TypeCompiler.Compile(schema);
  const check = (body: unknown): Static<T> => {
    if (compiled.Check(body)) return body;
    const { text, param } = message(innermost(firstError(compiled.Errors(body))!), flatten);
    throw validationError(text, param);
  };
  return Object.assign(check, { schema });
}

/** The names a body schema declares (what its parser accepts). */
export function declaredFields(schema: TObject): string[] {
  return Object.keys(schema.properties);
}

/** The fields of a body schema with the given status. */
export function fieldsWithStatus(schema: TObject, status: FieldStatus): string[] {
  return Object.entries(schema.properties)
    .filter(([, property]) => ((property as Record<string, unknown>)['x-gen-status'] ?? 'accepted') === status)
    .map(([name]) => name);
}

import type { TObject, TSchema } from '@sinclair/typebox';
import { describeSchema } from './check.js';
import { ROUTE_SCHEMAS } from './routes.js';

let currentRoute = '';

/** The schema behind a `field()` (its non-null option). */
function inner(schema: TSchema): TSchema {
  const anyOf = (schema as { anyOf?: TSchema[] }).anyOf;
  const options = anyOf?.filter((option) => (option as { type?: unknown }).type !== 'null');
  return options?.length === 1 ? options[0]! : schema;
}

function rows(schema: TObject, prefix: string, flatten: boolean, seen: Map<TSchema, string>): string[] {
  const lines: string[] = [];
  for (const [name, property] of Object.entries(schema.properties)) {
    const annotations = property as Record<string, unknown>;
    const status = (annotations['x-gen-status'] as string | undefined) ?? 'accepted';
    const required = (schema.required ?? []).includes(name);
    const type = describeSchema({ ...property, description: undefined } as TSchema).replace(/\|/g, '\\|');
    const description = String(annotations['description'] ?? '').replace(/\|/g, '\\|');
    const nested = inner(property) as TObject;
    if (
      flatten &&
      nested.type === 'object' &&
      nested.properties !== undefined &&
      Object.keys(nested.properties).length > 0
    ) {
      const earlier = seen.get(nested);
      if (earlier !== undefined) {
        lines.push(
          `| \`${prefix}${name}\` | a JSON object | ${status} | ${description} Its fields: as on \`${earlier}\`. |`,
        );
        continue;
      }
      seen.set(nested, currentRoute);
      lines.push(`| \`${prefix}${name}\` | a JSON object | ${status} | ${description} |`);
      lines.push(...rows(nested, `${prefix}${name}.`, true, seen));
      continue;
    }
    lines.push(`| \`${prefix}${name}\`${required ? ' (required)' : ''} | ${type} | ${status} | ${description} |`);
  }
  return lines;
}

/**
 * Markdown tables of every route body's fields (type, accepted / ignored / refused, description), generated from
 * the route schemas: docs/server.md holds this text (a test keeps it equal; `pnpm --filter @gen/server docs:fields`
 * rewrites it).
 */
export function fieldTables(): string {
  const sections: string[] = [];
  const seen = new Map<TSchema, string>();
  for (const [route, schema] of Object.entries(ROUTE_SCHEMAS)) {
    const body = (schema as { body?: TObject }).body;
    if (body === undefined) continue;
    const earlier = seen.get(body);
    if (earlier !== undefined) {
      sections.push(`#### \`${route}\`\n\nThe same fields as \`${earlier}\`.`);
      continue;
    }
    currentRoute = route;
    seen.set(body, route);
    const closed = body.additionalProperties === false;
    sections.push(
      [
        `#### \`${route}\``,
        '',
        closed
          ? 'Any other field is refused: 400 `Unrecognized request argument supplied: <field>`.'
          : 'Other fields are ignored, as TGI ignores them.',
        '',
        '| field | type | status | what it does |',
        '| --- | --- | --- | --- |',
        ...rows(body, '', true, seen),
      ].join('\n'),
    );
  }
  return sections.join('\n\n');
}

/** The markers around the generated tables in docs/server.md. */
export const FIELD_TABLES_BEGIN =
  '<!-- field tables: generated from apps/server/src/schemas (pnpm --filter @gen/server docs:fields) -->';
export const FIELD_TABLES_END = '<!-- end of field tables -->';

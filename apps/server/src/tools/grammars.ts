import {
  choiceGrammar,
  jsonObjectGrammar,
  jsonSchemaGrammar,
  literalGrammar,
  regexGrammar,
  repeatGrammar,
  sequenceGrammar,
  StructuredError,
  UnsupportedSchemaError,
  type Grammar,
} from '@gen/structured';
import { validationError } from '../errors.js';
import { argumentsKey, type ToolCallFormatName } from './formats.js';
import type { ToolChoice, ToolDefinition } from './tools-request.js';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Runs a grammar compilation step and turns the library's errors into a 4xx naming the request field: an
 * unsupported JSON Schema keyword is named with where it sits, so no request silently decodes unconstrained.
 */
export function grammarStep<T>(param: string, where: string, build: () => T): T {
  try {
    return build();
  } catch (error) {
    if (UnsupportedSchemaError.isInstance(error)) {
      throw validationError(
        `\`${where}\` uses the JSON Schema keyword \`${error.keyword}\` at ${error.schemaPath === '' ? '/' : error.schemaPath}, which this server cannot enforce: ${error.message}`,
        param,
      );
    }
    if (StructuredError.isInstance(error)) throw validationError(`\`${where}\`: ${error.message}`, param);
    throw error;
  }
}

/** A schema given as an object, or as JSON text (TGI accepts both). */
function schemaValue(value: unknown, param: string, where: string): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    throw validationError(`\`${where}\` must be a JSON Schema (an object, or JSON text of one)`, param);
  }
}

/** The grammar of a JSON Schema given as an object or JSON text; errors name `param` and the field `where`. */
export function schemaGrammar(value: unknown, param: string, where: string): Grammar {
  const schema = schemaValue(value, param, where);
  if (typeof schema !== 'object' && typeof schema !== 'boolean') {
    throw validationError(`\`${where}\` must be a JSON Schema object`, param);
  }
  return grammarStep(param, where, () => jsonSchemaGrammar(schema));
}

/** The grammar of a regular expression the whole output matches. */
export function patternGrammar(value: unknown, param: string, where: string): Grammar {
  if (typeof value !== 'string') throw validationError(`\`${where}\` must be a regular expression`, param);
  return grammarStep(param, where, () => regexGrammar(value));
}

/**
 * The grammar of a response format, OpenAI's or TGI's, or undefined for plain text:
 * - `{type: "text"}`;
 * - `{type: "json_object"}` (any JSON object), or TGI's `{type: "json_object", value: schema}`;
 * - `{type: "json_schema", json_schema: {name, schema, strict}}` (the schema is always enforced, strict or not);
 * - TGI's grammar shapes `{type: "json", value: schema}` and `{type: "regex", value: pattern}`.
 */
export function formatGrammar(format: unknown, param: string): Grammar | undefined {
  if (format === undefined || format === null) return undefined;
  if (!isRecord(format)) throw validationError(`\`${param}\` must be an object with a \`type\``, param);
  const type = format['type'];
  const value = format['value'];
  switch (type) {
    case 'text':
      return undefined;
    case 'json_object':
      if (value !== undefined && value !== null) {
        const schema = schemaValue(value, param, `${param}.value`);
        return grammarStep(param, `${param}.value`, () => jsonSchemaGrammar(schema));
      }
      return jsonObjectGrammar();
    case 'json':
    case 'json_schema': {
      let schema: unknown;
      let where: string;
      if (type === 'json_schema' && isRecord(format['json_schema'])) {
        const spec = format['json_schema'];
        if (typeof spec['name'] !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(spec['name'])) {
          throw validationError(
            `\`${param}.json_schema.name\` is required: ^[a-zA-Z0-9_-]{1,64}$. Given: ${JSON.stringify(spec['name'])}`,
            param,
          );
        }
        schema = spec['schema'] ?? {};
        where = `${param}.json_schema.schema`;
      } else if (value !== undefined && value !== null) {
        const given = schemaValue(value, param, `${param}.value`);
        // TGI's json_schema value is {name, schema}; its json value is the schema itself.
        schema = type === 'json_schema' && isRecord(given) && isRecord(given['schema']) ? given['schema'] : given;
        where = `${param}.value`;
      } else {
        throw validationError(
          type === 'json'
            ? `\`${param}.value\` is required: the JSON Schema`
            : `\`${param}.json_schema\` is required: {"name": ..., "schema": ...}`,
          param,
        );
      }
      if (!isRecord(schema) && typeof schema !== 'boolean') {
        throw validationError(`\`${where}\` must be a JSON Schema object`, param);
      }
      return grammarStep(param, where, () => jsonSchemaGrammar(schema));
    }
    case 'regex': {
      if (typeof value !== 'string') throw validationError(`\`${param}.value\` must be a regular expression`, param);
      return grammarStep(param, `${param}.value`, () => regexGrammar(value));
    }
    default:
      throw validationError(
        `\`${param}.type\` must be "text", "json_object", "json_schema", "json" or "regex". Given: ${JSON.stringify(type)}`,
        param,
      );
  }
}

/** One call of `tool` in `format`'s JSON: `{"name": "<name>", "<arguments key>": <arguments>}`. */
function callGrammar(format: ToolCallFormatName, tool: ToolDefinition, index: number): Grammar {
  const args = grammarStep('tools', `tools[${index}].function.parameters`, () => jsonSchemaGrammar(tool.parameters));
  return sequenceGrammar([
    literalGrammar(`{"name": ${JSON.stringify(tool.name)}, "${argumentsKey(format)}": `),
    args,
    literalGrammar('}'),
  ]);
}

/**
 * The language of the output when `choice` requires calls: one or more calls of the allowed functions in
 * `format` (one only without `parallel`, and exactly one call of the named function), nothing else. Undefined when
 * the choice leaves the model free (`auto`, `none`).
 */
export function toolCallGrammar(
  format: ToolCallFormatName,
  tools: readonly ToolDefinition[],
  choice: ToolChoice,
  parallel: boolean,
): Grammar | undefined {
  if (choice.mode === 'none' || choice.mode === 'auto') return undefined;
  const allowed = tools
    .map((tool, index) => ({ tool, index }))
    .filter(({ tool }) => choice.mode !== 'named' || tool.name === choice.name);
  const call = choiceGrammar(allowed.map(({ tool, index }) => callGrammar(format, tool, index)));
  const most = parallel && choice.mode === 'required' ? Infinity : 1;
  if (format === 'hermes') {
    const block = sequenceGrammar([literalGrammar('<tool_call>\n'), call, literalGrammar('\n</tool_call>')]);
    return repeatGrammar(block, 1, most, literalGrammar('\n'));
  }
  if (format === 'mistral') {
    return sequenceGrammar([
      literalGrammar('['),
      repeatGrammar(call, 1, most, literalGrammar(', ')),
      literalGrammar(']'),
    ]);
  }
  return repeatGrammar(call, 1, most, literalGrammar('; '));
}

/**
 * The constraint of a chat request, or undefined when the output is free: required or named tool calls; with
 * `auto`, calls or the response format when one is given (either is allowed, nothing else); otherwise the response
 * format. `param` is the field an error names.
 */
export function chatGrammar(
  format: ToolCallFormatName,
  request: {
    tools: readonly ToolDefinition[] | undefined;
    toolChoice: ToolChoice;
    parallelToolCalls: boolean;
    responseGrammar: Grammar | undefined;
  },
): { grammar: Grammar; param: string } | undefined {
  const { tools, toolChoice, parallelToolCalls, responseGrammar } = request;
  if (tools !== undefined) {
    const calls = toolCallGrammar(format, tools, toolChoice, parallelToolCalls);
    if (calls !== undefined) return { grammar: calls, param: 'tool_choice' };
    if (toolChoice.mode === 'auto' && responseGrammar !== undefined) {
      const anyCall = toolCallGrammar(format, tools, { mode: 'required' }, parallelToolCalls)!;
      return { grammar: choiceGrammar([anyCall, responseGrammar]), param: 'response_format' };
    }
  }
  return responseGrammar === undefined ? undefined : { grammar: responseGrammar, param: 'response_format' };
}

import { randomBytes } from 'node:crypto';
import { validationError } from '../errors.js';
import type { ToolCallFormatName } from './formats.js';

/** One function the model may call, from an OpenAI `tools` entry. */
export interface ToolDefinition {
  name: string;
  description: string | undefined;
  /** JSON Schema of the arguments object; `{type: object, properties: {}}` when the function takes none. */
  parameters: Record<string, unknown>;
}

/** What `tool_choice` asks: no call, the model's choice, at least one call, or a call of one function. */
export type ToolChoice = { mode: 'none' } | { mode: 'auto' } | { mode: 'required' } | { mode: 'named'; name: string };

const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks OpenAI `tools` (`[{type: "function", function: {name, description?, parameters?, strict?}}]`): names as
 * OpenAI allows them (`^[a-zA-Z0-9_-]{1,64}$`), unique, parameters a JSON Schema object.
 */
export function parseTools(tools: readonly unknown[]): ToolDefinition[] {
  const seen = new Set<string>();
  return tools.map((tool, index) => {
    const where = `tools[${index}]`;
    if (!isRecord(tool)) throw validationError(`\`${where}\` must be an object`, 'tools');
    if (tool['type'] !== undefined && tool['type'] !== 'function') {
      throw validationError(
        `\`${where}.type\` must be "function" (the only tool type this server calls). Given: ${JSON.stringify(tool['type'])}`,
        'tools',
      );
    }
    const fn = tool['function'];
    if (!isRecord(fn)) throw validationError(`\`${where}.function\` is required: an object with a \`name\``, 'tools');
    const name = fn['name'];
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw validationError(
        `\`${where}.function.name\` must match ^[a-zA-Z0-9_-]{1,64}$. Given: ${JSON.stringify(name)}`,
        'tools',
      );
    }
    if (seen.has(name)) throw validationError(`\`tools\` names the function \`${name}\` twice`, 'tools');
    seen.add(name);
    const parameters = fn['parameters'] ?? { type: 'object', properties: {} };
    if (!isRecord(parameters)) {
      throw validationError(`\`${where}.function.parameters\` must be a JSON Schema object`, 'tools');
    }
    const description = typeof fn['description'] === 'string' ? fn['description'] : undefined;
    return { name, description, parameters };
  });
}

/**
 * Reads `tool_choice`: "none", "auto", "required", `{type: "function", function: {name}}`, or (TGI) a function's
 * name as a plain string. A named function must be one of `tools`.
 */
export function parseToolChoice(choice: unknown, tools: readonly ToolDefinition[] | undefined): ToolChoice {
  if (choice === undefined || choice === null) return tools === undefined ? { mode: 'none' } : { mode: 'auto' };
  let name: string | undefined;
  if (choice === 'none' || choice === 'auto' || choice === 'required') {
    if (choice !== 'none' && tools === undefined) {
      throw validationError(`\`tool_choice\` "${choice}" needs \`tools\``, 'tool_choice');
    }
    return { mode: choice };
  }
  if (typeof choice === 'string') name = choice;
  else if (isRecord(choice) && isRecord(choice['function']) && typeof choice['function']['name'] === 'string') {
    if (choice['type'] !== undefined && choice['type'] !== 'function') {
      throw validationError('`tool_choice.type` must be "function"', 'tool_choice');
    }
    name = choice['function']['name'];
  } else {
    throw validationError(
      '`tool_choice` must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}',
      'tool_choice',
    );
  }
  if (tools === undefined || !tools.some((tool) => tool.name === name)) {
    throw validationError(`\`tool_choice\` names the function \`${name}\`, which is not in \`tools\``, 'tool_choice');
  }
  return { mode: 'named', name };
}

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/**
 * A new tool-call id: `call_` and 24 random letters and digits; Mistral's templates require exactly nine letters
 * and digits, so `mistral` gets those.
 */
export function toolCallId(format: ToolCallFormatName): string {
  const length = format === 'mistral' ? 9 : 24;
  const bytes = randomBytes(length);
  let id = '';
  for (const byte of bytes) id += ID_ALPHABET[byte % ID_ALPHABET.length];
  return format === 'mistral' ? id : `call_${id}`;
}

/**
 * The instruction a prompt gets when the chat template does not render `tools` itself (TGI's `tool_prompt`
 * plays the same part): the functions as JSON and how to write a call in `format`.
 */
export function toolPrompt(
  format: ToolCallFormatName,
  tools: readonly ToolDefinition[],
  preamble: string | undefined,
): string {
  const signatures = tools
    .map((tool) =>
      JSON.stringify({
        type: 'function',
        function: {
          name: tool.name,
          ...(tool.description === undefined ? {} : { description: tool.description }),
          parameters: tool.parameters,
        },
      }),
    )
    .join('\n');
  const how =
    format === 'hermes'
      ? 'For each function call, return a JSON object with the function name and arguments within <tool_call></tool_call> tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
      : format === 'mistral'
        ? 'To call functions, answer with a JSON array of calls: [{"name": <function-name>, "arguments": <args-json-object>}]'
        : 'To call a function, answer with a JSON object: {"name": <function-name>, "parameters": <args-json-object>}';
  return `${preamble ?? 'You may call one or more of these functions to answer the user.'}\n\n<tools>\n${signatures}\n</tools>\n\n${how}`;
}

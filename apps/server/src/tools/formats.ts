/**
 * Tool-call formats of the model families gen loads: how a model writes a call, how to find calls in its output,
 * and which language a constraint must enforce when a call is required.
 *
 * - `hermes`: Qwen2.5 / Qwen3 / Hermes, `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`, one block
 *   per call.
 * - `llama3`: Llama 3.1 / 3.2 / 3.3 JSON tool calling, `{"name": ..., "parameters": {...}}` (an optional
 *   `<|python_tag|>` before it is a special token, gone from the decoded text); several calls are separated by `; `.
 * - `mistral`: Mistral v3 tokenizers, `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]` (`[TOOL_CALLS]` is a
 *   special token too: the decoded text starts at the array).
 */

import { scanCall } from './scanner.js';

/** Names of the tool-call formats. */
export type ToolCallFormatName = 'hermes' | 'llama3' | 'mistral';

/** Every format name, for the CLI and errors. */
export const TOOL_CALL_FORMATS: readonly ToolCallFormatName[] = ['hermes', 'llama3', 'mistral'];

/** A call found in the output: the function's name and its arguments as the JSON text the model wrote. */
export interface ParsedToolCall {
  name: string;
  /** The arguments object as JSON text (OpenAI's `function.arguments` is a string). */
  arguments: string;
}

/** The output split into text content and tool calls. */
export interface ParsedOutput {
  /** Text outside the calls (null when there is none, as OpenAI sends with tool calls). */
  content: string | null;
  calls: ParsedToolCall[];
}

/** The key that holds the arguments in a format's call object. */
export function argumentsKey(format: ToolCallFormatName): 'arguments' | 'parameters' {
  return format === 'llama3' ? 'parameters' : 'arguments';
}

/**
 * The format a chat template writes tool calls in: `hermes` when it mentions `<tool_call>`, `mistral` for
 * `[TOOL_CALLS]`, `llama3` for `<|python_tag|>` or Llama's `Environment: ipython`; undefined when it shows none
 * (the server then uses `--tool-call-format`, or `hermes` as the most common one).
 */
export function detectToolCallFormat(chatTemplate: string | undefined): ToolCallFormatName | undefined {
  if (chatTemplate === undefined) return undefined;
  if (chatTemplate.includes('<tool_call>')) return 'hermes';
  if (chatTemplate.includes('[TOOL_CALLS]')) return 'mistral';
  if (chatTemplate.includes('<|python_tag|>') || chatTemplate.includes('Environment: ipython')) return 'llama3';
  return undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const OPEN = '<tool_call>';
const CLOSE = '</tool_call>';

/**
 * Splits a finished output into content and calls. Output that does not hold well-formed calls in the format is all
 * content (no call is invented from malformed text); a call to a function not in `toolNames` is content too.
 */
export function parseToolCalls(format: ToolCallFormatName, text: string, toolNames: ReadonlySet<string>): ParsedOutput {
  const none: ParsedOutput = { content: text, calls: [] };
  const known = (calls: ParsedToolCall[]) => calls.length > 0 && calls.every((call) => toolNames.has(call.name));
  if (format === 'hermes') {
    const first = text.indexOf(OPEN);
    if (first < 0) return none;
    const calls: ParsedToolCall[] = [];
    let rest = text.slice(first);
    let after = '';
    while (rest.startsWith(OPEN)) {
      const end = rest.indexOf(CLOSE);
      // An unclosed last block (the model stopped on EOS right after the JSON) still counts when the JSON is whole.
      const body = end < 0 ? rest.slice(OPEN.length) : rest.slice(OPEN.length, end);
      const call = scanCall(body.trim(), 'arguments');
      if (call === undefined) return none;
      calls.push(call);
      rest = end < 0 ? '' : rest.slice(end + CLOSE.length);
      const next = rest.indexOf(OPEN);
      if (next < 0) {
        after = rest;
        break;
      }
      if (rest.slice(0, next).trim() !== '') return none;
      rest = rest.slice(next);
    }
    if (!known(calls) || after.trim() !== '') return none;
    const before = text.slice(0, first).trim();
    return { content: before === '' ? null : before, calls };
  }
  const trimmed = text.trim();
  if (format === 'mistral') {
    const body = (trimmed.startsWith('[TOOL_CALLS]') ? trimmed.slice('[TOOL_CALLS]'.length) : trimmed).trim();
    if (!body.startsWith('[') || !body.endsWith(']') || !Array.isArray(parseJson(body))) return none;
    const calls = splitTopLevel(body.slice(1, -1), ',').map((item) => scanCall(item, 'arguments'));
    if (calls.some((call) => call === undefined)) return none;
    return known(calls as ParsedToolCall[]) ? { content: null, calls: calls as ParsedToolCall[] } : none;
  }
  const body = trimmed.startsWith('<|python_tag|>') ? trimmed.slice('<|python_tag|>'.length) : trimmed;
  if (!body.startsWith('{')) return none;
  const calls = splitTopLevel(body, ';').map((part) => scanCall(part, 'parameters'));
  if (calls.some((call) => call === undefined)) return none;
  return known(calls as ParsedToolCall[]) ? { content: null, calls: calls as ParsedToolCall[] } : none;
}

/** Splits `text` at `separator` characters outside strings, objects and arrays. */
function splitTopLevel(text: string, separator: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (char === '\\') escaped = true;
      else if (char === '"') inString = false;
    } else if (char === '"') inString = true;
    else if (char === '{' || char === '[') depth++;
    else if (char === '}' || char === ']') depth--;
    else if (char === separator && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { ChatTemplateError, TokenizerError } from './errors.js';
import { strftime } from './strftime.js';
import type { ChatMessage, ChatTemplateOptions } from './types.js';

/** Thrown by the template's `raise_exception`, to tell it apart from the interpreter's own errors. */
class TemplateException extends Error {}

/** The model's chat templates: one unnamed template, named ones, or none. */
export interface ChatTemplates {
  /** The single template (`chat_template` as a string). */
  single: string | undefined;
  /** Named templates (`chat_template` as `[{ name, template }]`). */
  named: ReadonlyMap<string, string>;
  /** Describes where the templates were looked for, for the "missing" error. */
  source: string;
}

/**
 * Reads `tokenizer_config.json`'s `chat_template`: a string, a list of `{ name, template }` (transformers' form for
 * several templates), or an object of name -> template.
 */
export function parseChatTemplates(value: unknown, source: string): ChatTemplates {
  const named = new Map<string, string>();
  if (value === undefined || value === null) return { single: undefined, named, source };
  if (typeof value === 'string') return { single: value, named, source };
  if (Array.isArray(value)) {
    for (const entry of value) {
      const record = entry as Record<string, unknown> | null;
      if (typeof record?.['name'] !== 'string' || typeof record['template'] !== 'string') {
        throw new TokenizerError(
          `${source}: each entry of chat_template must be { "name": string, "template": string }`,
        );
      }
      named.set(record['name'], record['template']);
    }
    return { single: undefined, named, source };
  }
  if (typeof value === 'object') {
    for (const [name, template] of Object.entries(value)) {
      if (typeof template !== 'string') throw new TokenizerError(`${source}: chat_template["${name}"] is not a string`);
      named.set(name, template);
    }
    return { single: undefined, named, source };
  }
  throw new TokenizerError(`${source}: chat_template must be a string or a list of named templates`);
}

/** The template transformers' `get_chat_template` picks, with its name when it is a named one. */
export function selectChatTemplate(
  templates: ChatTemplates,
  options: { chatTemplate?: string | undefined; tools?: unknown },
): { template: string; name: string | undefined } {
  const requested = options.chatTemplate;
  if (templates.named.size > 0) {
    if (requested !== undefined) {
      const template = templates.named.get(requested);
      return template === undefined ? { template: requested, name: undefined } : { template, name: requested };
    }
    const hasTools = options.tools !== undefined && options.tools !== null;
    for (const name of hasTools ? ['tool_use', 'default'] : ['default']) {
      const template = templates.named.get(name);
      if (template !== undefined) return { template, name };
    }
    throw new ChatTemplateError({
      kind: 'missing',
      message:
        `This model has several chat templates and none is named "default" (${templates.source}); pass ` +
        `chatTemplate with one of: ${[...templates.named.keys()].sort().join(', ')}`,
    });
  }
  if (requested !== undefined) return { template: requested, name: undefined };
  if (templates.single !== undefined) return { template: templates.single, name: undefined };
  throw new ChatTemplateError({
    kind: 'missing',
    message: `This model has no chat template: ${templates.source}. Use a model with a chat template (an instruct/chat model) or pass chatTemplate.`,
  });
}

/** Python's `range`, as the Jinja runtime's own global. */
function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) {
    stop = start;
    start = 0;
  }
  if (step === 0) throw new Error('range() step must not be zero');
  const result: number[] = [];
  for (let value = start; step > 0 ? value < stop : value > stop; value += step) result.push(value);
  return result;
}

/**
 * Renders a parsed template. `Template.render` cannot be used: it declares its own `raise_exception` (throwing a
 * plain Error) and `strftime_now` (locale-dependent month names) and refuses to redeclare them, so the globals are
 * set up here, the same ones plus ours.
 */
function renderProgram(template: Template, context: Record<string, unknown>): string {
  const environment = new Environment();
  const globals: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    False: false,
    True: true,
    None: null,
    range,
    ...context,
  };
  for (const [name, value] of Object.entries(globals)) environment.set(name, value);
  const result = new Interpreter(environment).run(template.parsed).value;
  return typeof result === 'string' ? result : String(result);
}

/** Deep copy of JSON-like data without `undefined` members, so `'tool_calls' in message` means what it says. */
function withoutUndefined(value: unknown, depth = 0): unknown {
  if (depth > MAX_NESTING) {
    throw new ChatTemplateError({
      kind: 'render',
      message: `chat template input is nested more than ${MAX_NESTING} levels deep`,
    });
  }
  if (Array.isArray(value)) return value.map((item) => withoutUndefined(item, depth + 1));
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    const copy: Record<string, unknown> = {};
    for (const [key, member] of Object.entries(value)) {
      if (member !== undefined) copy[key] = withoutUndefined(member, depth + 1);
    }
    return copy;
  }
  return value;
}

/** Deepest nesting of messages / tools accepted (real chat data is a few levels deep). */
const MAX_NESTING = 64;

/** Text of the final message, as transformers finds it for `continue_final_message`. */
function finalMessageText(messages: readonly ChatMessage[]): string {
  const content = messages.at(-1)?.content;
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    for (let k = content.length - 1; k >= 0; k--) {
      const text = (content[k] as { text?: unknown }).text;
      if (typeof text === 'string') return text;
    }
  }
  throw new TokenizerError('continueFinalMessage is set but the final message has no text to continue');
}

/** Renders chat templates, parsing each distinct template once. */
export class ChatTemplateRenderer {
  readonly #compiled = new Map<string, Template>();

  constructor(
    readonly templates: ChatTemplates,
    readonly specialTokenVariables: Readonly<Record<string, unknown>>,
  ) {}

  render(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    const addGenerationPrompt = options.addGenerationPrompt ?? false;
    const continueFinalMessage = options.continueFinalMessage ?? false;
    if (addGenerationPrompt && continueFinalMessage) {
      throw new TokenizerError(
        'continueFinalMessage and addGenerationPrompt are not compatible: the first continues the final message, ' +
          'the second starts a new assistant message',
      );
    }
    const { template, name } = selectChatTemplate(this.templates, options);
    const compiled = this.#compile(template, name);
    const now = options.now;
    const context: Record<string, unknown> = {
      ...this.specialTokenVariables,
      ...options.variables,
      messages: withoutUndefined(messages),
      tools: withoutUndefined(options.tools ?? null),
      documents: withoutUndefined(options.documents ?? null),
      add_generation_prompt: addGenerationPrompt,
      raise_exception: (message: unknown) => {
        throw new TemplateException(String(message));
      },
      strftime_now: (format: unknown) => strftime(now ?? new Date(), String(format)),
    };
    let rendered: string;
    try {
      rendered = renderProgram(compiled, context);
    } catch (error) {
      const label = name === undefined ? 'The chat template' : `The chat template "${name}"`;
      if (error instanceof TemplateException) {
        throw new ChatTemplateError({
          kind: 'exception',
          message: `${label} rejected the conversation: ${error.message}`,
          templateName: name,
          cause: error,
        });
      }
      throw new ChatTemplateError({
        kind: 'render',
        message: `${label} failed to render: ${error instanceof Error ? error.message : String(error)}`,
        templateName: name,
        cause: error,
      });
    }
    return continueFinalMessage ? cutAfterFinalMessage(rendered, finalMessageText(messages)) : rendered;
  }

  #compile(template: string, name: string | undefined): Template {
    let compiled = this.#compiled.get(template);
    if (compiled === undefined) {
      try {
        compiled = new Template(template);
      } catch (error) {
        throw new ChatTemplateError({
          kind: 'invalid',
          message: `The chat template${name === undefined ? '' : ` "${name}"`} is not valid Jinja: ${
            error instanceof Error ? error.message : String(error)
          }`,
          templateName: name,
          cause: error,
        });
      }
      this.#compiled.set(template, compiled);
    }
    return compiled;
  }
}

/** transformers' `continue_final_message` cut: keep the text up to the end of the final message's content. */
function cutAfterFinalMessage(rendered: string, finalMessage: string): string {
  const stripped = finalMessage.trim();
  const at = rendered.lastIndexOf(stripped);
  if (stripped === '' || at < 0) {
    throw new TokenizerError(
      'continueFinalMessage is set but the final message does not appear in the rendered chat template',
    );
  }
  const leftStripped = finalMessage.trimStart();
  if (rendered.slice(at, at + leftStripped.length) === finalMessage) return rendered.slice(0, at + leftStripped.length);
  return rendered.slice(0, at + stripped.length);
}

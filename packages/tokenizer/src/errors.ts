const marker = Symbol.for('gen.tokenizer.error');

/**
 * Base class of every error thrown by `@gen/tokenizer`: unreadable or invalid tokenizer files, misused options, and
 * (through {@link ChatTemplateError}) chat-template failures.
 *
 * Use {@link TokenizerError.isInstance} rather than `instanceof`: it also recognises errors thrown by another
 * installed copy of this package (the marker is a global `Symbol.for`).
 */
export class TokenizerError extends Error {
  readonly [marker] = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenizerError';
  }

  /** True when `error` is a {@link TokenizerError} from any copy of this package. */
  static isInstance(error: unknown): error is TokenizerError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }
}

const chatTemplateMarker = Symbol.for('gen.tokenizer.error.chat-template');

/**
 * Why a chat template could not be applied.
 * - `missing`: the model has no chat template (or none of its named templates fits and there is no `default`).
 * - `invalid`: the template does not parse as Jinja.
 * - `exception`: the template called `raise_exception(message)`, typically to reject the conversation
 *   ("Conversation roles must alternate user/assistant/user/assistant/..."); `message` includes the template's text.
 * - `render`: rendering failed otherwise (an unsupported filter, a type error inside the template, ...).
 *
 * All four are the client's problem for an HTTP server (TGI answers 422 "Template error: ...").
 */
export type ChatTemplateErrorKind = 'missing' | 'invalid' | 'exception' | 'render';

/** A chat template is missing, does not parse, raised an exception or failed to render. */
export class ChatTemplateError extends TokenizerError {
  readonly [chatTemplateMarker] = true;
  /** What went wrong; see {@link ChatTemplateErrorKind}. */
  readonly kind: ChatTemplateErrorKind;
  /** Name of the template involved (`default`, `tool_use`, ...), when the model has named templates. */
  readonly templateName: string | undefined;

  constructor(options: { kind: ChatTemplateErrorKind; message: string; templateName?: string; cause?: unknown }) {
    super(options.message, { cause: options.cause });
    this.name = 'ChatTemplateError';
    this.kind = options.kind;
    this.templateName = options.templateName;
  }

  /** True when `error` is a {@link ChatTemplateError} from any copy of this package. */
  static override isInstance(error: unknown): error is ChatTemplateError {
    return (
      typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[chatTemplateMarker] === true
    );
  }
}

import type { Tokenizer } from '@gen/tokenizer';

/** `--reasoning-parser`: `auto` splits `<think>` blocks off when the chat template writes them; `none` never does. */
export const REASONING_PARSERS = ['auto', 'none'] as const;

/** A value of `--reasoning-parser`. */
export type ReasoningParserName = (typeof REASONING_PARSERS)[number];

const OPEN = '<think>';
const CLOSE = '</think>';

/**
 * Whether the model thinks in `<think>…</think>` blocks (Qwen3, QwQ, DeepSeek-R1 distills): its chat template writes
 * `<think>` and its vocabulary has both tags as tokens.
 */
export function writesThinkBlocks(tokenizer: Tokenizer): boolean {
  return (
    (tokenizer.chatTemplate?.includes(OPEN) ?? false) &&
    tokenizer.tokenToId(OPEN) !== undefined &&
    tokenizer.tokenToId(CLOSE) !== undefined
  );
}

/**
 * Whether a chat request's output is split into reasoning and content: the parser is on, the template writes think
 * blocks, and the request did not turn thinking off (`chat_template_kwargs.enable_thinking: false`, which makes
 * Qwen3's template close an empty block in the prompt).
 */
export function reasoningApplies(
  parser: ReasoningParserName,
  tokenizer: Tokenizer,
  templateKwargs: Readonly<Record<string, unknown>>,
): boolean {
  return parser === 'auto' && templateKwargs['enable_thinking'] !== false && writesThinkBlocks(tokenizer);
}

/** Whether the rendered prompt leaves a `<think>` open, so the output starts inside the reasoning. */
export function promptOpensThinking(prompt: string): boolean {
  const open = prompt.lastIndexOf(OPEN);
  return open >= 0 && prompt.indexOf(CLOSE, open) < 0;
}

/** A piece of a split output. */
export interface ReasoningPiece {
  type: 'reasoning' | 'content';
  text: string;
}

/** The longest suffix of `text` that is a proper prefix of `tag`. */
function partialTagLength(text: string, tag: string): number {
  for (let length = Math.min(text.length, tag.length - 1); length > 0; length--) {
    if (tag.startsWith(text.slice(-length))) return length;
  }
  return 0;
}

/**
 * Splits generated text into reasoning (between `<think>` and `</think>`) and content (after `</think>`), as it
 * streams, the way vLLM's qwen3 reasoning parser does: the output opens the block itself (`<think>` first, after
 * whitespace) or the prompt already did; newlines right inside the tags and right after `</think>` are dropped
 * (Qwen3 writes `<think>\n…\n</think>\n\n`). Output that does not open a block is all content. A tag is never split
 * across pieces: a suffix that may begin `</think>` (or, at the start, `<think>`) is held until it is decided.
 *
 * The pieces of `push` + `finish` concatenate, per type, to {@link splitReasoning} of the whole text.
 */
export class ReasoningStream {
  private mode: 'start' | 'reasoning' | 'after' | 'content';
  private held = '';
  /** Whether nothing of the reasoning has been emitted yet (its leading newlines are dropped). */
  private reasoningStarted = false;
  private pieces: ReasoningPiece[] = [];

  constructor(startsInReasoning: boolean) {
    this.mode = startsInReasoning ? 'reasoning' : 'start';
  }

  /** Whether the output has reached the content (the reasoning is closed, or there was none). */
  get inContent(): boolean {
    return this.mode === 'after' || this.mode === 'content';
  }

  /** Feeds the next decoded text; returns what it completes. */
  push(text: string): ReasoningPiece[] {
    this.pieces = [];
    this.held += text;
    this.advance(false);
    return this.pieces;
  }

  /** The output ended: what was held is emitted (an unclosed reasoning stays reasoning). */
  finish(): ReasoningPiece[] {
    this.pieces = [];
    this.advance(true);
    return this.pieces;
  }

  private emit(type: ReasoningPiece['type'], text: string): void {
    if (text === '') return;
    const last = this.pieces.at(-1);
    if (last?.type === type) last.text += text;
    else this.pieces.push({ type, text });
  }

  private advance(final: boolean): void {
    for (;;) {
      if (this.mode === 'start') {
        const trimmed = this.held.trimStart();
        if (trimmed.startsWith(OPEN)) {
          this.held = trimmed.slice(OPEN.length);
          this.mode = 'reasoning';
          continue;
        }
        if (!final && (trimmed === '' || OPEN.startsWith(trimmed))) return;
        this.mode = 'content';
        continue;
      }
      if (this.mode === 'reasoning') {
        if (!this.reasoningStarted) {
          this.held = this.held.replace(/^\n+/, '');
          if (this.held === '') return;
        }
        const close = this.held.indexOf(CLOSE);
        if (close >= 0) {
          this.emitReasoning(this.held.slice(0, close).replace(/\n+$/, ''));
          this.held = this.held.slice(close + CLOSE.length);
          this.mode = 'after';
          continue;
        }
        if (final) {
          this.emitReasoning(this.held.replace(/\n+$/, ''));
          this.held = '';
          return;
        }
        // Hold a possible start of </think>, and newlines that may turn out to precede it.
        let keep = partialTagLength(this.held, CLOSE);
        const body = this.held.slice(0, this.held.length - keep);
        const newlines = body.length - body.replace(/\n+$/, '').length;
        keep += newlines;
        this.emitReasoning(this.held.slice(0, this.held.length - keep));
        this.held = this.held.slice(this.held.length - keep);
        return;
      }
      if (this.mode === 'after') {
        this.held = this.held.replace(/^\n+/, '');
        if (this.held === '') return;
        this.mode = 'content';
        continue;
      }
      this.emit('content', this.held);
      this.held = '';
      return;
    }
  }

  private emitReasoning(text: string): void {
    if (text === '') return;
    this.reasoningStarted = true;
    this.emit('reasoning', text);
  }
}

/** The reasoning (undefined when there is none) and the content of a whole output ({@link ReasoningStream} over it). */
export function splitReasoning(
  text: string,
  startsInReasoning: boolean,
): { reasoning: string | undefined; content: string } {
  const stream = new ReasoningStream(startsInReasoning);
  let reasoning: string | undefined;
  let content = '';
  for (const piece of [...stream.push(text), ...stream.finish()]) {
    if (piece.type === 'reasoning') reasoning = (reasoning ?? '') + piece.text;
    else content += piece.text;
  }
  return { reasoning, content };
}

/**
 * Tokens spent on the reasoning of an output (OpenAI's `completion_tokens_details.reasoning_tokens`): the tokens of
 * its text up to and including `</think>`, re-encoded (or all of it when the block never closed).
 */
export function countReasoningTokens(tokenizer: Tokenizer, text: string, startsInReasoning: boolean): number {
  const close = text.indexOf(CLOSE);
  const opened = startsInReasoning || text.trimStart().startsWith(OPEN);
  if (!opened) return 0;
  const section = close < 0 ? text : text.slice(0, close + CLOSE.length);
  return tokenizer.encode(section, { addSpecialTokens: false }).length;
}

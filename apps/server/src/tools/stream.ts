import { argumentsKey, type ToolCallFormatName } from './formats.js';
import { CallScanner } from './scanner.js';

/** What a piece of streamed output turned out to be. */
export type ToolStreamEvent =
  | { type: 'content'; text: string }
  /** A call began: its position among the choice's calls and the function's name (sent with a new call id). */
  | { type: 'call'; index: number; name: string }
  /** More of the call's arguments, as the model writes them (their concatenation is the arguments JSON). */
  | { type: 'arguments'; index: number; text: string };

/**
 * Splits a choice's streamed text into content and tool calls as it arrives, for OpenAI's `delta.tool_calls`
 * chunks: content passes through (text that may begin a call is held back), a call is announced once its name is
 * complete, and its arguments follow in fragments as the model writes them.
 *
 * `hermes` output may mix content and `<tool_call>` blocks; `llama3` and `mistral` output is calls when it starts
 * with `{` / `[`, content otherwise.
 */
export class ToolCallStream {
  private mode: 'undecided' | 'content' | 'between' | 'call' | 'tail' = 'undecided';
  private pending = '';
  private scanner: CallScanner | undefined;
  private count = 0;
  private events: ToolStreamEvent[] = [];
  private readonly argsKey: 'arguments' | 'parameters';
  /** Content seen before the first call (held while it is only whitespace). */
  private leading = '';
  /**
   * Arguments written as a JSON string (`"arguments": "{\"a\": 1}"`) are held until the call is complete and sent
   * as the string's content, so the fragments still concatenate to the non-streamed `arguments`.
   */
  private quotedArgs: { index: number; text: string } | undefined;

  constructor(private readonly format: ToolCallFormatName) {
    this.argsKey = argumentsKey(format);
  }

  /** Number of calls announced so far. */
  get calls(): number {
    return this.count;
  }

  /** Feeds the next piece of decoded text; returns what it completes. */
  push(text: string): ToolStreamEvent[] {
    this.events = [];
    for (const char of text) this.char(char);
    this.flushContent(false);
    return this.events;
  }

  /** The output ended: whatever was held back is content. */
  finish(): ToolStreamEvent[] {
    this.events = [];
    if (this.mode === 'call' && this.scanner !== undefined && this.scanner.name === undefined) {
      this.content(OPEN_FOR[this.format] + this.scanner.raw);
    }
    this.flushContent(true);
    return this.events;
  }

  private content(text: string): void {
    if (text === '') return;
    const last = this.events.at(-1);
    if (last?.type === 'content') last.text += text;
    else this.events.push({ type: 'content', text });
  }

  private startCall(): void {
    const index = this.count;
    let announced = false;
    let seen = '';
    this.quotedArgs = undefined;
    this.scanner = new CallScanner(this.argsKey, ({ name, args }) => {
      if (name !== undefined) {
        announced = true;
        this.count++;
        this.events.push({ type: 'call', index, name });
      }
      if (args !== undefined && announced) {
        if (seen.trim() === '' && (seen + args).trimStart().startsWith('"')) this.quotedArgs = { index, text: '' };
        seen += args;
        if (this.quotedArgs !== undefined) {
          this.quotedArgs.text += args;
          return;
        }
        const last = this.events.at(-1);
        if (last?.type === 'arguments' && last.index === index) last.text += args;
        else this.events.push({ type: 'arguments', index, text: args });
      }
    });
    this.mode = 'call';
  }

  private char(char: string): void {
    const format = this.format;
    if (this.mode === 'undecided') {
      if (format === 'hermes') {
        this.mode = 'content';
      } else {
        if (char.trim() === '') {
          this.leading += char;
          return;
        }
        if ((format === 'llama3' && char === '{') || (format === 'mistral' && char === '[')) {
          this.leading = '';
          if (format === 'mistral') {
            this.mode = 'between';
            return;
          }
          this.startCall();
          this.scanner!.push(char);
          return;
        }
        this.mode = 'content';
        this.pending += this.leading;
        this.leading = '';
      }
    }
    if (this.mode === 'content') {
      this.pending += char;
      if (format === 'hermes') {
        const at = this.pending.indexOf('<tool_call>');
        if (at >= 0) {
          const before = this.pending.slice(0, at);
          this.pending = '';
          if (this.count > 0 || before.trim() !== '') this.content(before);
          this.startCall();
        }
      }
      return;
    }
    if (this.mode === 'call') {
      const scanner = this.scanner!;
      scanner.push(char);
      if (scanner.state === 'broken') {
        // Not a call after all: what was read is content.
        if (scanner.name === undefined) {
          this.mode = 'content';
          this.pending += OPEN_FOR[format] + scanner.raw;
        } else this.mode = 'tail';
        return;
      }
      if (scanner.state === 'done') {
        this.mode = 'between';
        this.pending = '';
        const quoted = this.quotedArgs;
        this.quotedArgs = undefined;
        if (quoted !== undefined) {
          let text: unknown;
          try {
            text = JSON.parse(quoted.text);
          } catch {
            text = undefined;
          }
          if (typeof text === 'string') this.events.push({ type: 'arguments', index: quoted.index, text });
        }
      }
      return;
    }
    if (this.mode === 'between') {
      // After a call: the format's separators, then the next call or the end.
      if (format === 'hermes') {
        this.pending += char;
        const trimmed = this.pending.trimStart();
        if (trimmed.startsWith('</tool_call>')) {
          this.pending = trimmed.slice('</tool_call>'.length);
          this.mode = 'content';
          const rest = this.pending;
          this.pending = '';
          for (const c of rest) this.char(c);
        } else if (trimmed !== '' && !'</tool_call>'.startsWith(trimmed)) {
          this.mode = 'content';
        }
        return;
      }
      if (char.trim() === '') return;
      if (format === 'mistral') {
        if (char === ',') return;
        if (char === ']') {
          this.mode = 'tail';
          return;
        }
        if (char === '{') {
          this.startCall();
          this.scanner!.push(char);
          return;
        }
        this.mode = 'tail';
        return;
      }
      if (char === ';') return;
      if (char === '{') {
        this.startCall();
        this.scanner!.push(char);
        return;
      }
      this.mode = 'tail';
    }
    // 'tail': text after the calls that belongs to none; dropped, as the non-streamed parse does not keep it either.
  }

  /** Emits held content, keeping back a suffix that could still begin `<tool_call>` unless the output ended. */
  private flushContent(final: boolean): void {
    if (this.mode !== 'content' && !final) return;
    if (final && this.mode === 'undecided') {
      this.content(this.leading);
      this.leading = '';
    }
    let keep = 0;
    if (!final && this.format === 'hermes') {
      for (let length = Math.min(this.pending.length, OPEN_FOR.hermes.length - 1); length > 0; length--) {
        if (OPEN_FOR.hermes.startsWith(this.pending.slice(-length))) {
          keep = length;
          break;
        }
      }
    }
    const emit = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    if (this.count === 0 && this.format === 'hermes' && emit.trim() === '' && !final) {
      // Whitespace before a possible first call is held: with calls, OpenAI sends no content.
      this.pending = emit + this.pending;
      return;
    }
    if (this.mode === 'content' || final) this.content(emit);
  }
}

const OPEN_FOR: Record<ToolCallFormatName, string> = { hermes: '<tool_call>', llama3: '', mistral: '' };

/** One Server-Sent Event. */
export interface SseEvent {
  /** The `data` lines joined with `\n`. */
  data: string;
  /** The `event` field, `message` when absent. */
  event: string;
  /** The last `id` field seen so far, `''` when none. */
  id: string;
}

/**
 * Incremental Server-Sent Events parser (the WHATWG "event stream interpretation"), over text already decoded.
 * Lines end with CRLF, LF or CR, and any of these may be split between two `push` calls; `:` lines are comments
 * (keep-alives); a field without a colon has an empty value; one space after the colon is dropped; `data` lines
 * accumulate with `\n` between them; `retry` and unknown fields are ignored. Unlike the specification, `end`
 * dispatches a last event that lacks its blank line, since a server that closes right after its final `data:` line
 * still meant it to be read.
 */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private lastId = '';
  private started = false;
  /** The previous chunk ended with CR: an LF at the start of the next one belongs to the same line break. */
  private pendingCarriageReturn = false;

  /** Feeds decoded text; returns the events it completed. */
  push(text: string): SseEvent[] {
    if (text === '') return [];
    if (!this.started) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.pendingCarriageReturn && text.startsWith('\n')) text = text.slice(1);
    this.pendingCarriageReturn = false;
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (;;) {
      const lf = this.buffer.indexOf('\n', start);
      const cr = this.buffer.indexOf('\r', start);
      if (lf === -1 && cr === -1) break;
      let end: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        end = cr;
        if (cr + 1 === this.buffer.length) {
          // CR at the end of what we have: the line is complete, and an LF may follow in the next chunk.
          next = cr + 1;
          this.pendingCarriageReturn = true;
        } else {
          next = this.buffer.charCodeAt(cr + 1) === 0x0a ? cr + 2 : cr + 1;
        }
      } else {
        end = lf;
        next = lf + 1;
      }
      const event = this.line(this.buffer.slice(start, end));
      if (event !== undefined) events.push(event);
      start = next;
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** Ends the stream: processes a last unterminated line and returns the event it (or earlier lines) left open. */
  end(): SseEvent[] {
    const events: SseEvent[] = [];
    if (this.buffer !== '') {
      const event = this.line(this.buffer);
      if (event !== undefined) events.push(event);
      this.buffer = '';
    }
    const last = this.dispatch();
    if (last !== undefined) events.push(last);
    return events;
  }

  private line(line: string): SseEvent | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        break;
      case 'event':
        this.event = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
    }
    return undefined;
  }

  private dispatch(): SseEvent | undefined {
    const data = this.data;
    const event = this.event;
    this.data = [];
    this.event = '';
    if (data.length === 0) return undefined;
    return { data: data.join('\n'), event: event === '' ? 'message' : event, id: this.lastId };
  }
}

/**
 * Reads Server-Sent Events from a byte stream. Bytes are decoded as UTF-8 across chunk boundaries (a character split
 * between two chunks comes out whole). `onChunk` is called for every chunk received, keep-alives included.
 */
export async function* readSseEvents(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  onChunk: () => void = () => {},
): AsyncGenerator<SseEvent, void, undefined> {
  const decoder = new TextDecoder('utf-8');
  const parser = new SseParser();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    onChunk();
    yield* parser.push(decoder.decode(value, { stream: true }));
  }
  yield* parser.push(decoder.decode());
  yield* parser.end();
}

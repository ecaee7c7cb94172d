import { describe, expect, it } from 'vitest';
import { SseParser, readSseEvents, type SseEvent } from './sse.js';

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
}

async function collect(chunks: Uint8Array[]): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of readSseEvents(streamOf(chunks).getReader())) events.push(event);
  return events;
}

function splitAt(bytes: Uint8Array, offsets: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const end of [...offsets, bytes.length]) {
    chunks.push(bytes.subarray(start, end));
    start = end;
  }
  return chunks;
}

const encoder = new TextEncoder();

// Everything the parser has to cope with, in one stream: TGI events (no space after `data:`), a space after the
// colon, a keep-alive comment, `event:`/`id:`/`retry:` fields, multi-line data, CRLF and lone-CR line ends,
// multi-byte characters (3 and 4 bytes), a field without a colon, and a last event without its blank line.
const STREAM =
  ':\n\n' +
  'data:{"index":1,"token":{"id":1,"text":" 日本","logprob":-0.5,"special":false}}\n\n' +
  'event: message\r\nid: 7\r\ndata: {"index":2,"token":{"id":2,"text":" 👍","logprob":-0.25,"special":false}}\r\n\r\n' +
  ': keep-alive\r\rdata: first line\rdata:second line\r\r' +
  'retry: 1000\ndata\n\n' +
  'data:{"index":3,"generated_text":"日本 👍"}';

const EXPECTED: SseEvent[] = [
  { data: '{"index":1,"token":{"id":1,"text":" 日本","logprob":-0.5,"special":false}}', event: 'message', id: '' },
  { data: '{"index":2,"token":{"id":2,"text":" 👍","logprob":-0.25,"special":false}}', event: 'message', id: '7' },
  { data: 'first line\nsecond line', event: 'message', id: '7' },
  { data: '', event: 'message', id: '7' },
  { data: '{"index":3,"generated_text":"日本 👍"}', event: 'message', id: '7' },
];

describe('readSseEvents', () => {
  it('reads the stream in one chunk', async () => {
    expect(await collect([encoder.encode(STREAM)])).toEqual(EXPECTED);
  });

  it('gives the same events wherever the bytes are split once (inside characters, between CR and LF)', async () => {
    const bytes = encoder.encode(STREAM);
    for (let offset = 0; offset <= bytes.length; offset += 1) {
      expect(await collect(splitAt(bytes, [offset]))).toEqual(EXPECTED);
    }
  });

  it('gives the same events when every byte is its own chunk', async () => {
    const bytes = encoder.encode(STREAM);
    const offsets = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
    expect(await collect(splitAt(bytes, offsets))).toEqual(EXPECTED);
  });

  it('gives the same events for random splits, empty chunks included', async () => {
    const bytes = encoder.encode(STREAM);
    let state = 12345;
    const random = () => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state / 2 ** 31;
    };
    for (let trial = 0; trial < 200; trial += 1) {
      const offsets = Array.from({ length: 1 + Math.floor(random() * 12) }, () => Math.floor(random() * bytes.length));
      offsets.sort((a, b) => a - b);
      expect(await collect(splitAt(bytes, offsets))).toEqual(EXPECTED);
    }
  });

  it('strips a leading byte order mark', async () => {
    const chunks = [new Uint8Array([0xef, 0xbb]), new Uint8Array([0xbf]), encoder.encode('data:x\n\n')];
    expect(await collect(chunks)).toEqual([{ data: 'x', event: 'message', id: '' }]);
  });
});

describe('SseParser', () => {
  it('keeps a CR at the end of a chunk from doubling as a blank line when the LF comes next', () => {
    const parser = new SseParser();
    expect(parser.push('data: a\r')).toEqual([]);
    expect(parser.push('')).toEqual([]);
    expect(parser.push('\ndata: b\r')).toEqual([]);
    expect(parser.push('\n\r')).toEqual([{ data: 'a\nb', event: 'message', id: '' }]);
    expect(parser.push('\n')).toEqual([]);
    expect(parser.end()).toEqual([]);
  });

  it('ignores comments and events without data, and keeps the event name', () => {
    const parser = new SseParser();
    expect(parser.push(':a comment\n\nevent: error\nid: 1\n\nevent: error\ndata:{"error":"x"}\n\n')).toEqual([
      { data: '{"error":"x"}', event: 'error', id: '1' },
    ]);
  });

  it('drops only one space after the colon, and takes an id with NUL as no id', () => {
    const parser = new SseParser();
    expect(parser.push('id: a\0b\ndata:  two spaces\n\n')).toEqual([{ data: ' two spaces', event: 'message', id: '' }]);
  });

  it('dispatches a last event that lacks its blank line, or even its line end', () => {
    const withNewline = new SseParser();
    expect(withNewline.push('data: last\n')).toEqual([]);
    expect(withNewline.end()).toEqual([{ data: 'last', event: 'message', id: '' }]);
    const withoutNewline = new SseParser();
    expect(withoutNewline.push('data: last')).toEqual([]);
    expect(withoutNewline.end()).toEqual([{ data: 'last', event: 'message', id: '' }]);
  });
});

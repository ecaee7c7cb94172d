import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/**
 * How `data` lines are written. `openai`: `data: ` before every event, as OpenAI (and Together, vLLM) send.
 * `axum`: TGI's bytes, from axum 0.7: `data:` directly followed by JSON for JSON events, `data: ` for plain strings
 * such as `[DONE]`. Clients that match the exact line `data: [DONE]` (huggingface_hub) need the space.
 */
export type SseStyle = 'openai' | 'axum';

/**
 * Writes Server-Sent Events to a raw response: `data:` events, keep-alive comments while the stream is silent,
 * and backpressure (a write waits for `drain` when the socket buffer is full, so a slow client cannot make the
 * server buffer a whole generation).
 */
export class SseWriter {
  private keepAlive: NodeJS.Timeout | undefined;
  private lastWrite = Date.now();
  private closed = false;

  constructor(
    private readonly response: ServerResponse,
    private readonly keepAliveMs = 15_000,
    private readonly style: SseStyle = 'openai',
  ) {
    response.on('close', () => this.stopKeepAlive());
  }

  /**
   * Sends the status line and headers (200, text/event-stream, no caching or proxy buffering). Pass the headers
   * already set on the Fastify reply (`reply.getHeaders()`: CORS, x-request-id...): a hijacked reply does not send
   * them by itself.
   */
  start(headers: Record<string, number | string | string[] | undefined> = {}): void {
    this.response.writeHead(200, {
      ...(headers as OutgoingHttpHeaders),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    });
    this.response.flushHeaders();
    if (this.keepAliveMs > 0) {
      this.keepAlive = setInterval(
        () => {
          if (Date.now() - this.lastWrite >= this.keepAliveMs) void this.write(': keep-alive\n\n');
        },
        Math.max(250, Math.floor(this.keepAliveMs / 2)),
      );
      this.keepAlive.unref();
    }
  }

  /** Whether the client went away. */
  get isClosed(): boolean {
    return this.closed || this.response.destroyed || this.response.writableEnded;
  }

  /** Sends one `data:` event (a JSON value, or a raw string such as `[DONE]`), spaced as the writer's style says. */
  send(data: unknown): Promise<void> {
    if (typeof data === 'string') return this.write(`data: ${data}\n\n`);
    return this.write(`${this.style === 'axum' ? 'data:' : 'data: '}${JSON.stringify(data)}\n\n`);
  }

  /** Ends the response. */
  end(): void {
    this.stopKeepAlive();
    this.closed = true;
    if (!this.response.writableEnded) this.response.end();
  }

  private write(chunk: string): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    this.lastWrite = Date.now();
    if (this.response.write(chunk)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.response.off('drain', done);
        this.response.off('close', done);
        resolve();
      };
      this.response.once('drain', done);
      this.response.once('close', done);
    });
  }

  private stopKeepAlive(): void {
    if (this.keepAlive !== undefined) clearInterval(this.keepAlive);
    this.keepAlive = undefined;
  }
}

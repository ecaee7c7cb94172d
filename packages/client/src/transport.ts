import {
  ClientError,
  ConnectionError,
  IncompleteGenerationError,
  NotSupportedError,
  TimeoutError,
  UnknownError,
  isErrorPayload,
  parseError,
} from './errors.js';
import { readSseEvents } from './sse.js';
import type { ClientOptions } from './types.js';
import { WireFormatError } from './wire.js';

/** Default {@link ClientOptions.timeout}, in milliseconds. */
export const DEFAULT_TIMEOUT = 60_000;

/** A request's abort controller, its timer and the translation of whatever it throws into client errors. */
class Call {
  readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timedOut = false;
  private readonly onUserAbort = () => this.controller.abort(this.signal?.reason);

  constructor(
    readonly url: string,
    private readonly timeout: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    if (signal?.aborted === true) this.controller.abort(signal.reason);
    else signal?.addEventListener('abort', this.onUserAbort, { once: true });
    this.arm();
  }

  /** (Re)starts the timer. */
  arm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (!(this.timeout > 0 && Number.isFinite(this.timeout))) return;
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort();
    }, this.timeout);
  }

  finish(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.signal?.removeEventListener('abort', this.onUserAbort);
  }

  translate(error: unknown, waitingFor: string): unknown {
    if (this.timedOut) {
      return new TimeoutError(`${this.url}: received nothing for ${this.timeout} ms while waiting for ${waitingFor}`, {
        timeout: this.timeout,
        cause: error,
      });
    }
    if (this.signal?.aborted === true) return this.signal.reason;
    if (ClientError.isInstance(error)) return error;
    if (error instanceof WireFormatError) {
      return new UnknownError(`${this.url}: unexpected response: ${error.message}`, { status: 200 });
    }
    return new ConnectionError(`${this.url}: request failed: ${describe(error)}`, { cause: error });
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause: unknown = error.cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    const detail = cause.message !== '' ? cause.message : typeof code === 'string' ? code : cause.name;
    return `${error.message} (${detail})`;
  }
  return error.message;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** What a JSON request resolved to: its status and parsed body. */
export interface JsonResult {
  status: number;
  payload: unknown;
}

/** HTTP plumbing shared by the clients: headers, `fetch`, timeouts, error mapping and SSE reading. */
export class Transport {
  private readonly headers: Record<string, string>;
  private readonly timeout: number;
  private readonly fetchImpl: typeof globalThis.fetch | undefined;

  constructor(options: ClientOptions = {}, extraHeaders: Record<string, string> = {}) {
    // Lower-cased so that `Authorization` and `authorization` do not both get sent (fetch would join them).
    this.headers = {};
    for (const [name, value] of [...Object.entries(options.headers ?? {}), ...Object.entries(extraHeaders)]) {
      this.headers[name.toLowerCase()] = value;
    }
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT;
    this.fetchImpl = options.fetch;
  }

  private fetch(call: Call, method: string, body: unknown, accept: string): Promise<globalThis.Response> {
    // A local reference: calling `this.fetchImpl(...)` would call a browser's fetch with `this` bound to the
    // transport, which browsers refuse ("Illegal invocation").
    const fetchImpl = this.fetchImpl ?? globalThis.fetch;
    const headers: Record<string, string> = { accept, ...this.headers };
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetchImpl(call.url, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      signal: call.controller.signal,
    });
  }

  /**
   * Sends a request and reads a JSON answer. Statuses outside 2xx (except those in `acceptStatus`) become the
   * mapped {@link ClientError}; an error envelope in a 2xx body too.
   */
  async json(
    method: string,
    url: string,
    body: unknown,
    signal: AbortSignal | undefined,
    options: { acceptStatus?: readonly number[]; requireJson?: boolean } = {},
  ): Promise<JsonResult> {
    const call = new Call(url, this.timeout, signal);
    try {
      const response = await this.fetch(call, method, body, 'application/json');
      const text = await response.text();
      const payload = parseJson(text);
      if (!response.ok && !(options.acceptStatus ?? []).includes(response.status)) {
        throw parseError(response.status, payload ?? text, statusLine(response));
      }
      if (payload === undefined && response.ok && options.requireJson !== false) {
        throw new UnknownError(`${url}: the response is not JSON: ${text.slice(0, 200)}`, {
          status: response.status,
          payload: text,
        });
      }
      if (response.ok && isErrorPayload(payload)) throw parseError(response.status, payload);
      return { status: response.status, payload };
    } catch (error) {
      throw call.translate(error, 'the response');
    } finally {
      call.finish();
    }
  }

  /**
   * Sends a request and yields the `data` of its Server-Sent Events. Error statuses and a JSON answer instead of a
   * stream become client errors. Stopping the iteration early cancels the request.
   */
  async *events(url: string, body: unknown, signal: AbortSignal | undefined): AsyncGenerator<string, void, undefined> {
    const call = new Call(url, this.timeout, signal);
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    let completed = false;
    let waitingFor = 'the response headers';
    try {
      const response = await this.fetch(call, 'POST', body, 'text/event-stream');
      const contentType = response.headers.get('content-type') ?? '';
      if (!response.ok || contentType.includes('application/json')) {
        waitingFor = 'the response';
        const text = await response.text();
        const payload = parseJson(text);
        if (!response.ok) throw parseError(response.status, payload ?? text, statusLine(response));
        if (isErrorPayload(payload)) throw parseError(response.status, payload);
        throw new NotSupportedError(
          `${url} answered a streaming request with JSON instead of Server-Sent Events: the model is not served by text-generation-inference there`,
          { status: response.status, payload: payload ?? text },
        );
      }
      if (response.body === null) throw new UnknownError(`${url}: the response has no body`, { status: 200 });
      reader = response.body.getReader();
      waitingFor = 'the next event';
      call.arm();
      for await (const event of readSseEvents(reader, () => call.arm())) yield event.data;
      completed = true;
    } catch (error) {
      throw call.translate(error, waitingFor);
    } finally {
      call.finish();
      if (!completed) {
        reader?.cancel().catch(() => {});
        call.controller.abort();
      }
    }
  }
}

function statusLine(response: globalThis.Response): string {
  return `HTTP ${response.status}${response.statusText === '' ? '' : ` ${response.statusText}`}`;
}

/** Thrown when a stream ends without its final event (the one that carries `generated_text`). */
export function incompleteStream(url: string, events: number): IncompleteGenerationError {
  return new IncompleteGenerationError(
    `${url}: the stream ended after ${events} event(s) without the final one (the one with \`generated_text\`)`,
    { status: 200, errorType: 'incomplete_generation' },
  );
}

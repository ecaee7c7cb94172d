/**
 * Test helpers: real servers on 127.0.0.1 (random port) over the tiny model-kit model or a deterministic mock
 * backend, plus small HTTP / SSE readers. Everything here talks over loopback only.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ensureModelDir } from '@gen/model-kit';
import { createMockBackend, type MockBackend, type MockBackendSettings } from '@gen/testkit';
import { loadTokenizer, type Tokenizer } from '@gen/tokenizer';
import type { LoadedModel } from '../context.js';
import { loadModel } from '../model-loader.js';
import { createServer, type GenServer, type ServerOptions } from '../server.js';

/** The directory of model-kit's `tiny` preset (generated into the workspace cache on first use). */
export function tinyModelDir(): Promise<string> {
  return ensureModelDir('tiny');
}

/** The tiny model-kit model (Llama, vocab 512, 512 positions) on the pure-JS backend. */
export async function tinyModel(): Promise<LoadedModel> {
  const modelDir = await tinyModelDir();
  return loadModel({ modelDir, backend: 'js', modelId: 'tiny', log: () => undefined });
}

let tinyTokenizer: Promise<Tokenizer> | undefined;

/** The tiny model's tokenizer (byte-level BPE, vocab 512, EOS 508 and 511), loaded once per test file. */
export function tinyModelTokenizer(): Promise<Tokenizer> {
  tinyTokenizer ??= tinyModelDir().then((dir) => loadTokenizer(dir));
  return tinyTokenizer;
}

/** EOS ids of the tiny model. */
export const TINY_EOS = [508, 511] as const;

/** Varied, deterministic logits that never favour EOS: token counts do not depend on luck. */
export function noEosLogits(history: readonly number[], out: Float32Array): void {
  const last = history.at(-1) ?? 0;
  for (let v = 0; v < out.length; v++) out[v] = 3 * Math.sin(v * 0.7 + history.length * 1.3 + last * 0.11);
  for (const eos of TINY_EOS) out[eos] = -30;
}

/**
 * A model with the tiny model's real tokenizer and a mock backend (deterministic logits, optional latency): handy
 * when a test needs slow steps, exact token counts, or inspectable backend stats.
 */
export async function mockModel(settings: MockBackendSettings = {}): Promise<LoadedModel & { backend: MockBackend }> {
  const tokenizer = await tinyModelTokenizer();
  const backend = createMockBackend({
    vocabSize: 512,
    maxPositions: 512,
    eosTokenIds: TINY_EOS,
    bosTokenId: 507,
    logits: noEosLogits,
    ...settings,
  });
  return { backend, tokenizer, modelId: 'mock' };
}

/** A listening server and how to reach it. */
export interface RunningServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly gen: GenServer;
  /** Graceful close (drains, then disposes the backend). */
  close(): Promise<void>;
}

/** Creates a server and listens on 127.0.0.1 with a random port; waits for the model unless `waitReady` is false. */
export async function startServer(options: ServerOptions, waitReady = true): Promise<RunningServer> {
  const gen = createServer(options);
  await gen.app.listen({ host: '127.0.0.1', port: 0 });
  if (waitReady) await gen.ready;
  const port = (gen.app.server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, gen, close: () => gen.close({ timeoutMs: 2_000 }) };
}

/** A raw HTTP answer. */
export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

/**
 * Sends one request with node:http (no retries, no body rewriting: a string body is sent byte for byte).
 * Times out after `timeoutMs` (default 20 s).
 */
export function send(
  url: string,
  options: {
    method?: string;
    path?: string;
    body?: unknown;
    /** Extra headers; `null` leaves a header out (the JSON content type is sent by default with a body). */
    headers?: Record<string, string | null>;
    timeoutMs?: number;
  } = {},
): Promise<HttpAnswer> {
  const headers: Record<string, string> = options.body === undefined ? {} : { 'content-type': 'application/json' };
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (value === null) delete headers[name];
    else headers[name] = value;
  }
  const target = new URL(options.path ?? '', url);
  const body =
    options.body === undefined
      ? undefined
      : typeof options.body === 'string'
        ? options.body
        : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      target,
      {
        method: options.method ?? (body === undefined ? 'GET' : 'POST'),
        headers,
        timeout: options.timeoutMs ?? 20_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${target.pathname} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** POSTs JSON and returns the answer. */
export function postJson(url: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  return send(url, { path, body, headers });
}

/** The `data:` payloads of an SSE body, in order (comments and blank lines dropped). */
export function sseData(text: string): string[] {
  const events: string[] = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).replace(/^ /, ''));
    if (data.length > 0) events.push(data.join('\n'));
  }
  return events;
}

/** The JSON events of an SSE body (a `[DONE]` sentinel is returned as the string `'[DONE]'`). */
export function sseJson(text: string): unknown[] {
  return sseData(text).map((data) => (data === '[DONE]' ? data : (JSON.parse(data) as unknown)));
}

/** Polls `check` every `intervalMs` until it returns true, or throws after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs = 5_000, intervalMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A promise and its resolvers. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

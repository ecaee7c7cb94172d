/**
 * A small text-generation-inference server for tests, on 127.0.0.1 with node:http. It speaks TGI's wire format
 * as the Rust router does (router/src/server.rs, lib.rs, validation.rs): `POST /generate` -> `{generated_text,
 * details?}` with timing headers; `POST /generate_stream` -> `text/event-stream`, one `data:{json}\n\n` event per
 * token (`index`, `token`, `top_tokens` only when non-empty, `generated_text` and `details` null until the last
 * event), errors as HTTP 200 + `data:{"error","error_type"}` events, `:` keep-alive comments on silence; `POST /`
 * (and the hosted API's `POST /models/{id}`) -> a one-element ARRAY, or the stream when `stream` is true; `POST
 * /tokenize`, `GET /info`, `GET /health` (200 empty / 503), and the hosted API's
 * `GET /framework/text-generation-inference`. Validation failures use TGI's messages and 422 `validation`.
 *
 * The "model" continues every prompt with the same tokens (some multi-byte: `日本`, `👍`), then its EOS `</s>`.
 * Tests can replace any answer with {@link FakeTgiServer.override}.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The continuation the fake model generates: [id, text]. */
export const CONTINUATION: ReadonlyArray<readonly [number, string]> = [
  [6090, ' Ray'],
  [14671, 'leigh'],
  [22407, ' scattering'],
  [1763, ' —'],
  [30785, ' 日本'],
  [30601, '語'],
  [29871, ' 👍'],
  [29889, '.'],
];
/** The fake model's EOS token. */
export const EOS = { id: 2, text: '</s>' } as const;
/** The seed the fake reports for sampling requests without a seed (TGI draws a random u64). */
export const DRAWN_SEED = 3_141_592_653;

/** A request the fake received. */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body (`undefined` for GET or an empty body). */
  body: unknown;
  /** Set when the client closed the connection before the response ended. */
  closedEarly: boolean;
}

/** Replaces the fake's answer to one request. */
export type Override = (request: RecordedRequest, response: ServerResponse) => void | Promise<void>;

/** How to split a stream's bytes into writes: return the byte offsets where a write ends. */
export type Chunker = (body: Buffer) => number[];

/** Options of {@link startFakeTgiServer}. */
export interface FakeTgiOptions {
  /** Split each stream into these writes (default: one write per event, as TGI does). */
  chunker?: Chunker;
  /** Milliseconds between two writes of a stream (default 1). */
  writeDelayMs?: number;
  /** Milliseconds between two tokens (default 0). Keep-alive comments are sent when this is above `keepAliveMs`. */
  tokenDelayMs?: number;
  /** Keep-alive comment interval in milliseconds (TGI/axum: 15 s; default 15 000). */
  keepAliveMs?: number;
  /** `max_total_tokens` (default 2048) and `max_input_tokens` (default 1024). */
  maxTotalTokens?: number;
  maxInputTokens?: number;
}

/** A running fake. */
export interface FakeTgiServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Every request received, in order. */
  requests: RecordedRequest[];
  /** Whether `/health` answers 200 (`true`, default) or 503. */
  healthy: boolean;
  /** Answers the next request to `path` with `handler` instead (once). */
  override(path: string, handler: Override): void;
  /** Stops the server (closing open connections). */
  close(): Promise<void>;
}

interface WireParameters {
  [key: string]: unknown;
}

class HttpFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errorType: string,
    /** Answer in plain text, as axum's JSON extractor does for a body it cannot deserialize. */
    readonly plain = false,
  ) {
    super(message);
  }
}

function deserializeFailure(): HttpFailure {
  return new HttpFailure(
    422,
    'Failed to deserialize the JSON body into the target type: missing field `inputs` at line 1 column 2',
    'validation',
    true,
  );
}

type Settings = Required<Omit<FakeTgiOptions, 'chunker'>> & { chunker: Chunker | undefined };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Tokenizes like a word-level tokenizer with a BOS: `[{id: 1, text: '', start: 0, stop: 0}, ...]`, offsets in chars. */
export function fakeTokenize(inputs: string): Array<{ id: number; text: string; start: number; stop: number }> {
  const tokens = [{ id: 1, text: '', start: 0, stop: 0 }];
  const chars = [...inputs];
  let start = 0;
  for (const match of inputs.matchAll(/\s*\S+|\s+$/gu)) {
    const length = [...match[0]].length;
    const text = chars.slice(start, start + length).join('');
    let hash = 0;
    for (const char of text) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) % 32000;
    tokens.push({ id: 3 + hash, text, start, stop: start + length });
    start += length;
  }
  return tokens;
}

function token(id: number, text: string, step: number, special = false) {
  return { id, text, logprob: -0.25 * (step + 1), special };
}

function topTokens(step: number, n: number) {
  const chosen = CONTINUATION[step % CONTINUATION.length]!;
  const top = [token(chosen[0], chosen[1], step)];
  for (let k = 1; k < n; k += 1) top.push({ id: 100 + k, text: ` alt${k}`, logprob: -1 - k, special: false });
  return top;
}

interface Generation {
  tokens: ReturnType<typeof token>[];
  topTokens: ReturnType<typeof topTokens>[];
  text: string;
  finishReason: 'length' | 'eos_token' | 'stop_sequence';
  seed: number | null;
  inputLength: number;
}

function validate(inputs: unknown, p: WireParameters, stream: boolean, options: Settings): void {
  const fail = (message: string) => {
    throw new HttpFailure(422, message, 'validation');
  };
  if (typeof inputs !== 'string') throw deserializeFailure();
  if (inputs === '') fail('`inputs` cannot be empty');
  const bestOf = p['best_of'];
  if (typeof bestOf === 'number') {
    if (bestOf <= 0 || bestOf > 2) fail(`\`best_of\` must be > 0 and <= 2. Given: ${bestOf}`);
    if (bestOf > 1 && p['seed'] != null) fail('`seed` must not be set when `best_of` > 1');
    if (bestOf > 1 && stream) fail('`best_of` != 1 is not supported when streaming tokens');
  }
  if (stream && p['decoder_input_details'] === true) {
    fail('`decoder_input_details` == true is not supported when streaming tokens');
  }
  const temperature = p['temperature'];
  if (typeof temperature === 'number' && temperature <= 0) fail('`temperature` must be strictly positive');
  const topP = p['top_p'];
  if (typeof topP === 'number' && (topP <= 0 || topP >= 1)) fail('`top_p` must be > 0.0 and < 1.0');
  const stop = p['stop'];
  if (Array.isArray(stop) && stop.length > 4) fail(`\`stop\` supports up to 4 stop sequences. Given: ${stop.length}`);
  const topN = p['top_n_tokens'];
  if (typeof topN === 'number' && topN > 5) fail(`\`top_n_tokens\` must be >= 0 and <= 5. Given: ${topN}`);
  const inputLength = fakeTokenize(inputs).length;
  if (inputLength > options.maxInputTokens) {
    fail(`\`inputs\` tokens must be <= ${options.maxInputTokens}. Given: ${inputLength}`);
  }
  const maxNewTokens = typeof p['max_new_tokens'] === 'number' ? p['max_new_tokens'] : 100;
  if (inputLength + maxNewTokens > options.maxTotalTokens) {
    fail(
      `\`inputs\` tokens + \`max_new_tokens\` must be <= ${options.maxTotalTokens}. Given: ${inputLength} \`inputs\` tokens and ${maxNewTokens} \`max_new_tokens\``,
    );
  }
}

function generate(inputs: string, p: WireParameters, offset = 0): Generation {
  const maxNewTokens = typeof p['max_new_tokens'] === 'number' ? p['max_new_tokens'] : 100;
  const stop = Array.isArray(p['stop']) ? (p['stop'] as string[]) : [];
  const sampling =
    p['do_sample'] === true ||
    p['temperature'] != null ||
    p['top_k'] != null ||
    p['top_p'] != null ||
    p['typical_p'] != null;
  const topN = typeof p['top_n_tokens'] === 'number' ? p['top_n_tokens'] : 0;
  const generation: Generation = {
    tokens: [],
    topTokens: [],
    text: '',
    finishReason: 'length',
    seed: sampling ? (typeof p['seed'] === 'number' ? p['seed'] : DRAWN_SEED + offset) : null,
    inputLength: fakeTokenize(inputs).length,
  };
  for (let step = 0; step < maxNewTokens; step += 1) {
    const next = CONTINUATION[step];
    if (next === undefined) {
      generation.tokens.push(token(EOS.id, EOS.text, step, true));
      if (topN > 0) generation.topTokens.push([token(EOS.id, EOS.text, step, true)]);
      generation.finishReason = 'eos_token';
      break;
    }
    generation.tokens.push(token(next[0], next[1], step));
    if (topN > 0) generation.topTokens.push(topTokens(step, topN));
    generation.text += next[1];
    if (stop.some((sequence) => generation.text.endsWith(sequence))) {
      generation.finishReason = 'stop_sequence';
      break;
    }
  }
  return generation;
}

function details(generation: Generation, inputs: string, p: WireParameters) {
  return {
    finish_reason: generation.finishReason,
    generated_tokens: generation.tokens.length,
    seed: generation.seed,
    prefill:
      p['decoder_input_details'] === true
        ? fakeTokenize(inputs).map((t, i) => ({ id: t.id, text: t.text, logprob: i === 0 ? null : -1.5 }))
        : [],
    tokens: generation.tokens,
    ...(generation.topTokens.length > 0 ? { top_tokens: generation.topTokens } : {}),
  };
}

function generateResponse(inputs: string, p: WireParameters) {
  const generation = generate(inputs, p);
  const prefix = p['return_full_text'] === true ? inputs : '';
  const wantDetails = p['details'] === true || p['decoder_input_details'] === true;
  const bestOf = typeof p['best_of'] === 'number' ? p['best_of'] : 1;
  const body = {
    generated_text: prefix + generation.text,
    ...(wantDetails
      ? {
          details: {
            ...details(generation, inputs, p),
            ...(bestOf > 1
              ? {
                  best_of_sequences: Array.from({ length: bestOf - 1 }, (_, k) => {
                    const other = generate(inputs, p, k + 1);
                    return { generated_text: prefix + other.text, ...details(other, inputs, p) };
                  }),
                }
              : {}),
          },
        }
      : {}),
  };
  return { body, generation };
}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  response.end(text);
}

/** One SSE event as TGI's axum router writes it (no space after `data:`). */
export function sseEvent(data: unknown): string {
  return `data:${JSON.stringify(data)}\n\n`;
}

async function writeChunks(response: ServerResponse, body: Buffer, chunker: Chunker | undefined, delayMs: number) {
  const ends = chunker === undefined ? [body.length] : [...chunker(body), body.length];
  let start = 0;
  for (const end of ends) {
    if (end <= start) continue;
    if (response.destroyed) return;
    response.write(body.subarray(start, end));
    start = end;
    if (delayMs > 0 && end < body.length) await sleep(delayMs);
  }
}

async function stream(
  request: RecordedRequest,
  response: ServerResponse,
  inputs: unknown,
  p: WireParameters,
  options: Settings,
): Promise<void> {
  if (typeof inputs !== 'string') throw deserializeFailure();
  response.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    'x-compute-type': 'cpu',
    'x-accel-buffering': 'no',
  });
  response.flushHeaders();
  let lastWrite = Date.now();
  const keepAlive = setInterval(
    () => {
      if (Date.now() - lastWrite >= options.keepAliveMs && !response.destroyed) {
        response.write(':\n\n');
        lastWrite = Date.now();
      }
    },
    Math.max(5, Math.floor(options.keepAliveMs / 2)),
  );
  const send = async (data: unknown) => {
    await writeChunks(response, Buffer.from(sseEvent(data), 'utf8'), options.chunker, options.writeDelayMs);
    lastWrite = Date.now();
  };
  try {
    try {
      validate(inputs, p, true, options);
    } catch (error) {
      if (!(error instanceof HttpFailure)) throw error;
      await send({ error: error.message, error_type: error.errorType });
      return;
    }
    const text = inputs as string;
    const generation = generate(text, p);
    const prefix = p['return_full_text'] === true ? text : '';
    for (const [step, generated] of generation.tokens.entries()) {
      if (options.tokenDelayMs > 0) await sleep(options.tokenDelayMs);
      if (request.closedEarly) return;
      const last = step === generation.tokens.length - 1;
      const top = generation.topTokens[step] ?? [];
      await send({
        index: step + 1,
        token: generated,
        ...(top.length > 0 ? { top_tokens: top } : {}),
        generated_text: last ? prefix + generation.text : null,
        details:
          last && p['details'] === true
            ? {
                finish_reason: generation.finishReason,
                generated_tokens: generation.tokens.length,
                seed: generation.seed,
                input_length: generation.inputLength,
              }
            : null,
      });
    }
  } finally {
    clearInterval(keepAlive);
    if (!response.destroyed) response.end();
  }
}

const INFO = {
  model_id: 'fake/tiny-llama',
  model_sha: '0123456789abcdef0123456789abcdef01234567',
  model_pipeline_tag: 'text-generation',
  max_concurrent_requests: 128,
  max_best_of: 2,
  max_stop_sequences: 4,
  max_input_tokens: 1024,
  max_total_tokens: 2048,
  validation_workers: 2,
  max_client_batch_size: 4,
  router: 'text-generation-router',
  version: '2.4.1',
  sha: null,
  docker_label: null,
};

const DEPLOYED = [
  { model_id: 'bigscience/bloomz', sha: '2a3d62313bfd1f1b9e5e1d2c3c4e5f60718293a4' },
  { model_id: 'google/flan-t5-xxl', sha: 'ae8d6b1f0f1d3e4c5b6a7988796a5b4c3d2e1f00' },
];

/** Starts the fake on an ephemeral port of 127.0.0.1. */
export async function startFakeTgiServer(options: FakeTgiOptions = {}): Promise<FakeTgiServer> {
  const settings = {
    writeDelayMs: 1,
    tokenDelayMs: 0,
    keepAliveMs: 15_000,
    maxTotalTokens: 2048,
    maxInputTokens: 1024,
    ...options,
    chunker: options.chunker,
  };
  const requests: RecordedRequest[] = [];
  const overrides: Array<{ path: string; handler: Override }> = [];

  const handle = async (incoming: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of incoming) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const path = new URL(incoming.url ?? '/', 'http://127.0.0.1').pathname;
    const request: RecordedRequest = {
      method: incoming.method ?? 'GET',
      path,
      headers: incoming.headers,
      body: undefined,
      closedEarly: false,
    };
    requests.push(request);
    response.on('close', () => {
      if (!response.writableFinished) request.closedEarly = true;
    });
    if (raw !== '') {
      try {
        request.body = JSON.parse(raw);
      } catch {
        sendJson(response, 422, { error: 'Failed to parse the request body as JSON', error_type: 'validation' });
        return;
      }
    }
    const index = overrides.findIndex((override) => override.path === path);
    if (index !== -1) {
      const [override] = overrides.splice(index, 1);
      await override!.handler(request, response);
      return;
    }

    const body = (request.body ?? {}) as { inputs?: unknown; parameters?: WireParameters; stream?: unknown };
    const parameters = body.parameters ?? {};
    try {
      if (request.method === 'GET' && path === '/health') {
        if (server.healthy) {
          response.writeHead(200, { 'content-length': '0' });
          response.end();
        } else sendJson(response, 503, { error: 'unhealthy', error_type: 'healthcheck' });
      } else if (request.method === 'GET' && path === '/info') {
        sendJson(response, 200, INFO);
      } else if (request.method === 'GET' && path === '/framework/text-generation-inference') {
        sendJson(response, 200, DEPLOYED);
      } else if (request.method === 'POST' && path === '/tokenize') {
        if (typeof body.inputs !== 'string') throw new HttpFailure(422, '`inputs` must be a string', 'validation');
        sendJson(response, 200, fakeTokenize(body.inputs));
      } else if (request.method === 'POST' && path === '/generate_stream') {
        await stream(request, response, body.inputs, parameters, settings);
      } else if (request.method === 'POST' && path === '/generate') {
        validate(body.inputs, parameters, false, settings);
        const { body: answer, generation } = generateResponse(body.inputs as string, parameters);
        sendJson(response, 200, answer, timingHeaders(generation));
      } else if (request.method === 'POST' && (path === '/' || path.startsWith('/models/'))) {
        // compat_generate: the hosted API's route and TGI's `POST /`.
        if (body.stream === true) {
          await stream(request, response, body.inputs, parameters, settings);
        } else {
          validate(body.inputs, parameters, false, settings);
          const { body: answer, generation } = generateResponse(body.inputs as string, parameters);
          sendJson(response, 200, [answer], timingHeaders(generation));
        }
      } else {
        response.writeHead(404, { 'content-length': '0' });
        response.end();
      }
    } catch (error) {
      if (!(error instanceof HttpFailure)) throw error;
      if (error.plain) {
        response.writeHead(error.status, { 'content-type': 'text/plain; charset=utf-8' });
        response.end(error.message);
      } else sendJson(response, error.status, { error: error.message, error_type: error.errorType });
    }
  };

  const http = createServer((incoming, response) => {
    handle(incoming, response).catch((error: unknown) => {
      if (!response.headersSent) sendJson(response, 500, { error: String(error), error_type: 'internal' });
      else response.destroy();
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;

  const server: FakeTgiServer = {
    url: `http://127.0.0.1:${port}`,
    requests,
    healthy: true,
    override(path, handler) {
      overrides.push({ path, handler });
    },
    close() {
      http.closeAllConnections();
      return new Promise((resolve, reject) => http.close((error) => (error ? reject(error) : resolve())));
    },
  };
  return server;
}

function timingHeaders(generation: Generation): Record<string, string> {
  return {
    'x-compute-type': 'cpu',
    'x-compute-time': '0.012',
    'x-compute-characters': '20',
    'x-total-time': '12',
    'x-validation-time': '1',
    'x-queue-time': '0',
    'x-inference-time': '11',
    'x-time-per-token': '1',
    'x-prompt-tokens': String(generation.inputLength),
    'x-generated-tokens': String(generation.tokens.length),
  };
}

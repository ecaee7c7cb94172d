/**
 * TGI generation routes against a real server on 127.0.0.1 (tiny model-kit model, JS backend): exact wire shapes of
 * `/generate`, `/generate_stream` and `/`, as TGI's Python client and `@huggingface/inference` read them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, sseData, sseJson, startServer, tinyModel, type RunningServer } from './testing/harness.js';

let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ model: await tinyModel(), limits: { maxBestOf: 4 } });
});
afterAll(() => server?.close());

const TOKEN_KEYS = ['id', 'logprob', 'special', 'text'];

function expectToken(token: unknown): void {
  expect(Object.keys(token as object).sort()).toEqual(TOKEN_KEYS);
  const t = token as { id: number; text: string; logprob: number; special: boolean };
  expect(Number.isInteger(t.id) && t.id >= 0 && t.id < 512).toBe(true);
  expect(typeof t.text).toBe('string');
  expect(Number.isFinite(t.logprob) && t.logprob <= 0).toBe(true);
  expect(typeof t.special).toBe('boolean');
}

/**
 * The non-special token texts concatenated spell `generatedText` (what TGI's Python client does). The only allowed
 * difference is a trailing U+FFFD: a token whose UTF-8 bytes are incomplete has text "" (held back), and when the
 * generation ends there, `generated_text` (a full decode) shows the replacement character, as TGI's does.
 */
function expectTokensSpell(tokens: readonly { text: string; special: boolean }[], generatedText: string): void {
  const spelled = tokens.map((t) => (t.special ? '' : t.text)).join('');
  expect(generatedText.startsWith(spelled)).toBe(true);
  expect(generatedText.slice(spelled.length)).toMatch(/^\uFFFD*$/);
}

interface Details {
  finish_reason: string;
  generated_tokens: number;
  seed: number | null;
  prefill: { id: number; text: string; logprob: number | null }[];
  tokens: { id: number; text: string; logprob: number; special: boolean }[];
  top_tokens?: { id: number; text: string; logprob: number; special: boolean }[][];
  best_of_sequences?: (Omit<Details, 'best_of_sequences'> & { generated_text: string })[];
}

describe('POST /generate', () => {
  it('answers {generated_text} only, without details', async () => {
    const answer = await postJson(server.url, '/generate', { inputs: 'Hello', parameters: { max_new_tokens: 5 } });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    expect(Object.keys(answer.json as object)).toEqual(['generated_text']);
    expect(typeof (answer.json as { generated_text: unknown }).generated_text).toBe('string');
  });

  it('details: finish_reason, generated_tokens, seed, prefill [] and tokens; the x-* headers agree', async () => {
    const answer = await postJson(server.url, '/generate', {
      inputs: 'Hello world',
      parameters: { max_new_tokens: 6, details: true },
    });
    expect(answer.status).toBe(200);
    const body = answer.json as { generated_text: string; details: Details };
    expect(Object.keys(body).sort()).toEqual(['details', 'generated_text']);
    const details = body.details;
    expect(Object.keys(details).sort()).toEqual(['finish_reason', 'generated_tokens', 'prefill', 'seed', 'tokens']);
    expect(details.finish_reason).toBe('length');
    expect(details.generated_tokens).toBe(6);
    expect(details.seed).toBeNull(); // greedy
    expect(details.prefill).toEqual([]); // decoder_input_details not asked
    expect(details.tokens).toHaveLength(6);
    details.tokens.forEach(expectToken);
    expectTokensSpell(details.tokens, body.generated_text);

    const headers = answer.headers;
    for (const name of [
      'x-compute-time',
      'x-total-time',
      'x-validation-time',
      'x-queue-time',
      'x-inference-time',
      'x-time-per-token',
      'x-prompt-tokens',
      'x-generated-tokens',
    ]) {
      expect(headers[name], name).toMatch(/^\d+(\.\d+)?$/);
    }
    expect(headers['x-generated-tokens']).toBe('6');
    expect(Number(headers['x-prompt-tokens'])).toBeGreaterThan(0);
    expect(headers['x-compute-type']).toBe('gen');
    expect(headers['x-request-id']).toBeTruthy();
  });

  it('decoder_input_details: prefill holds every prompt token, the first with a null logprob', async () => {
    const answer = await postJson(server.url, '/generate', {
      inputs: 'The quick brown fox',
      parameters: { max_new_tokens: 2, details: true, decoder_input_details: true },
    });
    const details = (answer.json as { details: Details }).details;
    expect(details.prefill.length).toBe(Number(answer.headers['x-prompt-tokens']));
    expect(details.prefill[0]).toEqual({ id: 507, text: '<|begin_of_text|>', logprob: null });
    for (const token of details.prefill.slice(1)) {
      expect(Object.keys(token).sort()).toEqual(['id', 'logprob', 'text']);
      expect(token.logprob! <= 0 && Number.isFinite(token.logprob)).toBe(true);
    }
    expect(
      details.prefill
        .slice(1)
        .map((t) => t.text)
        .join(''),
    ).toBe('The quick brown fox');
  });

  it('top_n_tokens: one list per generated token, at most n each, sorted, the chosen token among them (greedy)', async () => {
    const answer = await postJson(server.url, '/generate', {
      inputs: 'Hello',
      parameters: { max_new_tokens: 4, details: true, top_n_tokens: 3 },
    });
    const details = (answer.json as { details: Details }).details;
    expect(details.top_tokens).toHaveLength(4);
    details.top_tokens!.forEach((step, i) => {
      expect(step.length).toBeGreaterThan(0);
      expect(step.length).toBeLessThanOrEqual(3);
      step.forEach(expectToken);
      for (let j = 1; j < step.length; j++) expect(step[j - 1]!.logprob).toBeGreaterThanOrEqual(step[j]!.logprob);
      expect(step[0]!.id).toBe(details.tokens[i]!.id);
    });
  });

  it('best_of: the best sequence first, the others in best_of_sequences, each with its own details', async () => {
    const answer = await postJson(server.url, '/generate', {
      inputs: 'Hello',
      parameters: { max_new_tokens: 5, details: true, best_of: 3, do_sample: true, seed: 7 },
    });
    expect(answer.status).toBe(200);
    const body = answer.json as { generated_text: string; details: Details };
    expect(body.details.seed).toBe(7);
    const others = body.details.best_of_sequences!;
    expect(others).toHaveLength(2);
    const sum = (d: Pick<Details, 'tokens'>) => d.tokens.reduce((s, t) => s + t.logprob, 0);
    for (const other of others) {
      expect(Object.keys(other).sort()).toEqual([
        'finish_reason',
        'generated_text',
        'generated_tokens',
        'prefill',
        'seed',
        'tokens',
      ]);
      expect(other.tokens).toHaveLength(other.generated_tokens);
      expect(sum(other)).toBeLessThanOrEqual(sum(body.details) + 1e-9);
    }
  });

  it('raw_logprobs adds raw_logprob (the model distribution) beside logprob (after temperature / top_k)', async () => {
    const answer = await postJson(server.url, '/generate', {
      inputs: 'Hello',
      parameters: { max_new_tokens: 4, details: true, raw_logprobs: true, do_sample: true, temperature: 0.5, seed: 3 },
    });
    const tokens = (answer.json as { details: { tokens: { logprob: number; raw_logprob: number }[] } }).details.tokens;
    for (const token of tokens) {
      expect(Object.keys(token).sort()).toEqual(['id', 'logprob', 'raw_logprob', 'special', 'text']);
      expect(token.raw_logprob).toBeLessThanOrEqual(0);
      expect(token.raw_logprob).not.toBeCloseTo(token.logprob, 6);
    }
    const stream = await postJson(server.url, '/generate_stream', {
      inputs: 'Hello',
      parameters: { max_new_tokens: 4, raw_logprobs: true, do_sample: true, temperature: 0.5, seed: 3 },
    });
    const streamed = (sseJson(stream.text) as { token: { raw_logprob: number } }[]).map((e) => e.token.raw_logprob);
    expect(streamed).toEqual(tokens.map((t) => t.raw_logprob));
  });

  it('return_full_text prepends the prompt', async () => {
    const plain = await postJson(server.url, '/generate', { inputs: 'Once upon', parameters: { max_new_tokens: 4 } });
    const full = await postJson(server.url, '/generate', {
      inputs: 'Once upon',
      parameters: { max_new_tokens: 4, return_full_text: true },
    });
    const text = (plain.json as { generated_text: string }).generated_text;
    expect((full.json as { generated_text: string }).generated_text).toBe(`Once upon${text}`);
  });

  it('a stop sequence ends the text with finish_reason stop_sequence, the stop text included (TGI)', async () => {
    const free = await postJson(server.url, '/generate', {
      inputs: 'Hello',
      parameters: { max_new_tokens: 20, details: true },
    });
    const text = (free.json as { generated_text: string }).generated_text;
    // Pick a stop string that the greedy text contains: two plain characters after the first few.
    const chars = Array.from(text);
    const at = chars.findIndex(
      (c, i) => i >= 3 && c !== '\uFFFD' && chars[i + 1] !== undefined && chars[i + 1] !== '\uFFFD',
    );
    expect(at).toBeGreaterThan(0);
    const stop = chars.slice(at, at + 2).join('');
    const stopped = await postJson(server.url, '/generate', {
      inputs: 'Hello',
      parameters: { max_new_tokens: 20, details: true, stop: [stop] },
    });
    const body = stopped.json as { generated_text: string; details: Details };
    expect(body.details.finish_reason).toBe('stop_sequence');
    // TGI keeps the stop text in generated_text: the greedy text, cut at the token that completed the stop.
    expect(text.startsWith(body.generated_text)).toBe(true);
    expect(body.generated_text.length).toBeGreaterThanOrEqual(text.indexOf(stop) + stop.length);
    expect(body.details.generated_tokens).toBeLessThan(20);
  });
});

describe('POST /generate_stream', () => {
  it('one event per token, index from 1; only the last carries generated_text and details; no [DONE]', async () => {
    const answer = await postJson(server.url, '/generate_stream', {
      inputs: 'Hello world',
      parameters: { max_new_tokens: 6, details: true },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(answer.text).not.toContain('[DONE]');
    const events = sseJson(answer.text) as {
      index: number;
      token: unknown;
      top_tokens: unknown[];
      generated_text: string | null;
      details: Record<string, unknown> | null;
    }[];
    expect(events).toHaveLength(6);
    events.forEach((event, i) => {
      expect(Object.keys(event).sort()).toEqual(['details', 'generated_text', 'index', 'token', 'top_tokens']);
      expect(event.index).toBe(i + 1);
      expectToken(event.token);
      if (i < events.length - 1) {
        expect(event.generated_text).toBeNull();
        expect(event.details).toBeNull();
      }
    });
    const last = events.at(-1)!;
    expect(last.details).toEqual({
      finish_reason: 'length',
      generated_tokens: 6,
      seed: null,
      input_length: Number(answer.headers['x-prompt-tokens']),
    });
    expectTokensSpell(
      events.map((e) => e.token as { text: string; special: boolean }),
      last.generated_text!,
    );

    // Same greedy text as /generate.
    const once = await postJson(server.url, '/generate', { inputs: 'Hello world', parameters: { max_new_tokens: 6 } });
    expect((once.json as { generated_text: string }).generated_text).toBe(last.generated_text);
  });

  it('without details the last event has generated_text and details null; top_tokens per event when asked', async () => {
    const answer = await postJson(server.url, '/generate_stream', {
      inputs: 'Hi',
      parameters: { max_new_tokens: 3, top_n_tokens: 2 },
    });
    const events = sseJson(answer.text) as { generated_text: string | null; details: unknown; top_tokens: unknown[] }[];
    expect(events).toHaveLength(3);
    expect(typeof events[2]!.generated_text).toBe('string');
    expect(events[2]!.details).toBeNull();
    for (const event of events) {
      expect(event.top_tokens.length).toBeGreaterThan(0);
      expect(event.top_tokens.length).toBeLessThanOrEqual(2);
      event.top_tokens.forEach(expectToken);
    }
  });

  it('every data line is one JSON object on one line (data:{...}\\n\\n framing)', async () => {
    const answer = await postJson(server.url, '/generate_stream', { inputs: 'a', parameters: { max_new_tokens: 3 } });
    const blocks = answer.text.split('\n\n').filter((b) => b.length > 0);
    expect(blocks).toHaveLength(3);
    for (const block of blocks) expect(block).toMatch(/^data:\{.*\}$/);
    expect(sseData(answer.text)).toHaveLength(3);
  });
});

describe('POST / (TGI compat route)', () => {
  it('answers an array [{generated_text, details}] when not streaming', async () => {
    const answer = await postJson(server.url, '/', {
      inputs: 'Hello',
      parameters: { max_new_tokens: 3, details: true },
    });
    expect(answer.status).toBe(200);
    const body = answer.json as { generated_text: string; details: Details }[];
    expect(Array.isArray(body)).toBe(true);
    expect(body).toHaveLength(1);
    expect(body[0]!.details.generated_tokens).toBe(3);
    const direct = await postJson(server.url, '/generate', { inputs: 'Hello', parameters: { max_new_tokens: 3 } });
    expect(body[0]!.generated_text).toBe((direct.json as { generated_text: string }).generated_text);
  });

  it('streams SSE when stream is true', async () => {
    const answer = await postJson(server.url, '/', {
      inputs: 'Hello',
      stream: true,
      parameters: { max_new_tokens: 3 },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^text\/event-stream/);
    const events = sseJson(answer.text) as { index: number; generated_text: string | null }[];
    expect(events.map((e) => e.index)).toEqual([1, 2, 3]);
    expect(typeof events[2]!.generated_text).toBe('string');
  });

  it('refuses a body sent as form encoding by curl -d with 415, as TGI does', async () => {
    const answer = await postJson(
      server.url,
      '/generate',
      { inputs: 'Hello', parameters: { max_new_tokens: 2 } },
      { 'content-type': 'application/x-www-form-urlencoded' },
    );
    expect(answer.status).toBe(415);
    expect(JSON.parse(answer.text)).toEqual({
      error: 'Expected request with `Content-Type: application/json`',
      error_type: 'validation',
    });
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startServer, tinyModel, type RunningServer } from './testing/harness.js';

// The prefix cache through the OpenAI routes: a repeated conversation prefix is reused (usage reports it as
// prompt_tokens_details.cached_tokens), answers are the same as without the cache, and /metrics counts the hits.
let cached: RunningServer;
let plain: RunningServer;
beforeAll(async () => {
  cached = await startServer({ model: await tinyModel() });
  plain = await startServer({ model: await tinyModel(), prefixCacheBytes: 0 });
});
afterAll(async () => {
  await cached?.close();
  await plain?.close();
});

interface Answer {
  choices: unknown[];
  usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } };
}

const system = 'You are a careful assistant. Answer in one short sentence, and never use more words than needed.';

describe('prefix cache on the OpenAI routes', () => {
  it('usage.prompt_tokens_details.cached_tokens counts the reused prefix; the answers do not change', async () => {
    const turn = (content: string) => ({
      messages: [
        { role: 'system', content: system },
        { role: 'user', content },
      ],
      max_tokens: 6,
      temperature: 0,
    });
    const first = (await postJson(cached.url, '/v1/chat/completions', turn('Hello there'))).json as Answer;
    expect(first.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 });
    const second = (await postJson(cached.url, '/v1/chat/completions', turn('What is two plus two?'))).json as Answer;
    const cachedTokens = second.usage.prompt_tokens_details.cached_tokens as number;
    expect(cachedTokens).toBeGreaterThan(16);
    expect(cachedTokens).toBeLessThan(second.usage.prompt_tokens);
    const reference = (await postJson(plain.url, '/v1/chat/completions', turn('What is two plus two?'))).json as Answer;
    expect(second.choices).toEqual(reference.choices);
    expect(reference.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 });
    const metrics = await fetch(`${cached.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/^gen_prefix_cache_hits [1-9]/m);
    expect(metrics).toMatch(/^gen_prefix_cache_entries [1-9]/m);
  });
});

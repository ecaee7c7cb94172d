import { fc, test } from '@fast-check/vitest';
import { createJsBackend } from '@gen/backend-js';
import { ensureModelDir } from '@gen/model-kit';
import { loadTokenizer, type Tokenizer } from '@gen/tokenizer';
import { beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine } from './engine.js';
import type { GenerationParameters, GenerationResult } from './types.js';

// Prefix caching on a real forward pass (backend-js, model-kit's tiny Llama): every output must be identical with
// the cache on and off (greedy and seeded sampling, shared random prefixes, concurrent requests, cancellations and
// evictions), cached tokens must be reported, and clearing the cache must return the backend to no sequences.
let modelDir: string;
let tokenizer: Tokenizer;

beforeAll(async () => {
  modelDir = await ensureModelDir('tiny');
  tokenizer = await loadTokenizer(modelDir);
});

async function engines(maxBytes: number, maxEntries = 16) {
  const cachedBackend = await createJsBackend({ modelDir });
  const plainBackend = await createJsBackend({ modelDir });
  return {
    cachedBackend,
    cached: createEngine({ backend: cachedBackend, tokenizer, prefixCache: { maxBytes, blockSize: 8, maxEntries } }),
    plain: createEngine({ backend: plainBackend, tokenizer }),
  };
}

/** What a result must equal with the cache on and off: every choice's tokens, text and finish reason. */
function essence(result: GenerationResult) {
  return result.choices.map((choice) => ({
    text: choice.generatedText,
    tokens: choice.tokens?.map((t) => [t.id, t.logprob]),
    finish: choice.finishReason,
  }));
}

const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'then', 'ran', 'home', 'quickly', 'today', '42', 'é'];
const sentence = fc.array(fc.constantFrom(...words), { minLength: 1, maxLength: 30 }).map((w) => w.join(' '));

interface Job {
  suffix: string;
  parameters: GenerationParameters;
  cancelAfter: number | undefined;
}

const job: fc.Arbitrary<Job> = fc.record({
  suffix: sentence,
  parameters: fc.oneof(
    fc.record({ maxNewTokens: fc.integer({ min: 1, max: 6 }), details: fc.constant(true) }),
    fc.record({
      maxNewTokens: fc.integer({ min: 1, max: 6 }),
      details: fc.constant(true),
      temperature: fc.constant(0.9),
      seed: fc.integer({ min: 1, max: 1000 }),
      n: fc.integer({ min: 1, max: 2 }),
    }),
  ),
  cancelAfter: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
});

/** Runs the jobs in waves (each wave concurrently); returns the results of the jobs that were not cancelled. */
async function runJobs(engine: Engine, prefix: string, waves: Job[][]): Promise<(GenerationResult | 'cancelled')[]> {
  const results: (GenerationResult | 'cancelled')[] = [];
  for (const wave of waves) {
    const settled = await Promise.all(
      wave.map(async (j) => {
        const stream = engine.generate({ inputs: `${prefix} ${j.suffix}`, parameters: j.parameters });
        if (j.cancelAfter === undefined) return stream.result();
        let events = 0;
        try {
          for await (const event of stream) {
            if (event.type === 'token' && ++events > j.cancelAfter) stream.cancel();
            if (event.type === 'done') return event.result;
          }
        } catch {
          // cancelled
        }
        return 'cancelled' as const;
      }),
    );
    results.push(...settled);
  }
  return results;
}

describe('prefix cache', () => {
  test.prop([sentence, fc.array(fc.array(job, { minLength: 1, maxLength: 3 }), { minLength: 2, maxLength: 4 })], {
    numRuns: 12,
  })(
    'outputs are identical with the cache on and off; later prompts reuse the shared prefix',
    async (prefix, waves) => {
      const { cached, plain, cachedBackend } = await engines(64 << 20);
      const system = `System: ${prefix}. Answer briefly and well.`;
      // Cancelled jobs are run uncancelled on the plain engine: a cancellation only cuts a choice short.
      const on = await runJobs(cached, system, waves);
      const off = await runJobs(
        plain,
        system,
        waves.map((w) => w.map((j) => ({ ...j, cancelAfter: undefined }))),
      );
      let reused = 0;
      on.forEach((result, i) => {
        if (result === 'cancelled') return;
        const reference = off[i] as GenerationResult;
        expect(essence(result)).toEqual(essence(reference));
        expect(result.inputIds).toEqual(reference.inputIds);
        expect(result.cachedTokens).toBeLessThan(result.inputTokens);
        reused += result.cachedTokens;
      });
      const stats = cached.stats().prefixCache!;
      expect(stats.hitTokens).toBeGreaterThanOrEqual(reused);
      // Every wave after the first starts with the shared system prompt (8-token blocks): something was reused.
      if (waves.flat().length > 1) expect(stats.hits).toBeGreaterThan(0);
      await cached.clearPrefixCache();
      expect(cachedBackend.stats()).toMatchObject({ sequences: 0, cachedTokens: 0, kvCacheBytes: 0 });
      await Promise.all([cached.close(), plain.close()]);
    },
  );

  it('evicts least recently used prompts under a small byte budget, and stays exact', async () => {
    const { cached, plain, cachedBackend } = await engines(1, 2);
    // 1 byte: nothing fits; every prompt is prefilled whole.
    const prompts = ['alpha beta gamma delta epsilon zeta eta theta', 'one two three four five six seven eight'];
    for (const inputs of prompts) {
      const parameters = { maxNewTokens: 4, details: true };
      const [a, b] = await Promise.all([
        cached.generate({ inputs, parameters }).result(),
        plain.generate({ inputs, parameters }).result(),
      ]);
      expect(essence(a)).toEqual(essence(b));
      expect(a.cachedTokens).toBe(0);
    }
    expect(cached.stats().prefixCache).toMatchObject({ entries: 0, hits: 0 });
    expect(cachedBackend.stats().sequences).toBe(0);

    const budget = await engines(1 << 30, 2);
    const base = 'a long shared system prompt that every request starts with, for sure';
    for (let i = 0; i < 5; i++) {
      const inputs = `${base} ${i} ${'x '.repeat(i + 3)}`;
      await budget.cached.generate({ inputs, parameters: { maxNewTokens: 2 } }).result();
    }
    const stats = budget.cached.stats().prefixCache!;
    expect(stats.entries).toBeLessThanOrEqual(2);
    expect(stats.evictions).toBeGreaterThan(0);
    expect(budget.cachedBackend.stats().sequences).toBe(stats.entries);
    await budget.cached.close();
    expect(budget.cachedBackend.stats().sequences).toBe(0);
    await Promise.all([cached.close(), plain.close(), budget.plain.close()]);
  });

  it('a repeated prompt reuses all but its last token; decoder input details turn the cache off for a request', async () => {
    const { cached } = await engines(64 << 20);
    const inputs = 'The quick brown fox jumps over the lazy dog, again and again and again.';
    const first = await cached.generate({ inputs, parameters: { maxNewTokens: 3 } }).result();
    expect(first.cachedTokens).toBe(0);
    const second = await cached.generate({ inputs, parameters: { maxNewTokens: 3 } }).result();
    expect(second.cachedTokens).toBe(second.inputTokens - 1);
    expect(second.choices[0]!.generatedText).toBe(first.choices[0]!.generatedText);
    const details = await cached
      .generate({ inputs, parameters: { maxNewTokens: 3, decoderInputDetails: true, details: true } })
      .result();
    expect(details.cachedTokens).toBe(0);
    expect(details.prefill).toHaveLength(details.inputTokens);
    await cached.close();
  });

  it('is off for a backend without forkPrefix (the engine falls back to whole prompts)', async () => {
    const backend = await createJsBackend({ modelDir });
    const limited = new Proxy(backend, {
      get: (target, key) =>
        key === 'capabilities' ? { ...target.capabilities, forkPrefix: false } : Reflect.get(target, key, target),
    });
    const engine = createEngine({ backend: limited, tokenizer, prefixCache: { maxBytes: 1 << 30 } });
    const inputs = 'The quick brown fox jumps over the lazy dog, again and again and again.';
    await engine.generate({ inputs, parameters: { maxNewTokens: 2 } }).result();
    const again = await engine.generate({ inputs, parameters: { maxNewTokens: 2 } }).result();
    expect(again.cachedTokens).toBe(0);
    expect(engine.stats().prefixCache).toBeUndefined();
    await engine.close();
  });
});

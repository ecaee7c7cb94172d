import { describe, expect, it } from 'vitest';
import { test, fc } from '@fast-check/vitest';
import { createMockBackend, type MockBackendSettings } from '@gen/testkit';
import { logSoftmax } from '@gen/sampling';
import { createEngine, type EngineSettings } from './engine.js';
import {
  CancelledError,
  EngineError,
  EngineValidationError,
  GenerationError,
  OverloadedError,
  ShutdownError,
} from './errors.js';
import { BYTE_TOKENIZER_EOS, createByteTokenizer } from './testing/byte-tokenizer.js';
import type { GenerationEvent, GenerationRequest } from './types.js';

const VOCAB = 300;
const tokenizer = createByteTokenizer(VOCAB);
const byteId = (byte: number) => byte + 3;

/** Logits that make the model "say" `text` (as bytes) in a loop: the next token is text[historyLength % length]. */
function spelling(text: string, eosAt?: number): NonNullable<MockBackendSettings['logits']> {
  const bytes = Array.from(new TextEncoder().encode(text), byteId);
  return (history, out) => {
    if (eosAt !== undefined && history.length >= eosAt) {
      out[BYTE_TOKENIZER_EOS] = 20;
      return;
    }
    out[bytes[history.length % bytes.length]!] = 20;
  };
}

/** Varied, deterministic logits that never favour EOS, so token counts in tests do not depend on luck. */
const noEos: NonNullable<MockBackendSettings['logits']> = (history, out) => {
  const last = history.at(-1) ?? 0;
  for (let v = 0; v < out.length; v++) out[v] = 3 * Math.sin(v * 0.7 + history.length * 1.3 + last * 0.11);
  out[BYTE_TOKENIZER_EOS] = -10;
};

function setup(backendSettings: MockBackendSettings = {}, engineSettings: Partial<EngineSettings> = {}) {
  const backend = createMockBackend({ vocabSize: VOCAB, maxPositions: 512, logits: noEos, ...backendSettings });
  const engine = createEngine({ backend, tokenizer, ...engineSettings });
  return { backend, engine };
}

async function collect(stream: AsyncIterable<GenerationEvent>): Promise<GenerationEvent[]> {
  const events: GenerationEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

describe('generation', () => {
  it('streams tokens, then choice-end, then done; text equals the decode of the tokens', async () => {
    const { engine } = setup({ logits: spelling('hello world, ') });
    const events = await collect(engine.generate({ inputs: 'ab', parameters: { maxNewTokens: 8, details: true } }));
    const tokens = events.filter((e) => e.type === 'token');
    expect(tokens).toHaveLength(8);
    expect(events.at(-2)!.type).toBe('choice-end');
    const done = events.at(-1)!;
    if (done.type !== 'done') throw new Error('expected done');
    const choice = done.result.choices[0]!;
    // prompt is [bos, a, b] (3 tokens), so generation starts at text[3]
    expect(choice.generatedText).toBe('lo world');
    expect(choice.text).toBe('lo world');
    expect(tokens.map((e) => (e.type === 'token' ? e.delta : '')).join('')).toBe('lo world');
    expect(choice.finishReason).toBe('length');
    expect(choice.generatedTokens).toBe(8);
    expect(choice.tokens!.map((t) => t.id)).toEqual(tokens.map((e) => (e.type === 'token' ? e.token.id : -1)));
    expect(done.result.inputTokens).toBe(3);
    expect(done.result.seed).toBeUndefined();
    expect(done.result.timings.totalMs).toBeGreaterThanOrEqual(done.result.timings.inferenceMs);
  });

  it('ends at EOS with eos_token, unless ignore_eos; length wins over EOS on the same token', async () => {
    const { engine } = setup({ logits: spelling('xyz', 6) });
    const eos = await engine.generate({ inputs: [5, 6, 7], parameters: { maxNewTokens: 20 } }).result();
    expect(eos.choices[0]!.finishReason).toBe('eos_token');
    expect(eos.choices[0]!.generatedTokens).toBe(4);
    expect(eos.choices[0]!.generatedText).toBe('xyz'); // the EOS token is special and skipped
    const ignored = await engine
      .generate({ inputs: [5, 6, 7], parameters: { maxNewTokens: 10, ignoreEos: true } })
      .result();
    expect(ignored.choices[0]!.finishReason).toBe('length');
    expect(ignored.choices[0]!.generatedTokens).toBe(10);
    const tie = await engine.generate({ inputs: [5, 6, 7], parameters: { maxNewTokens: 4 } }).result();
    expect(tie.choices[0]!.finishReason).toBe('length');
  });

  it('stops on stop sequences across token boundaries: TGI text keeps the stop, OpenAI text drops it', async () => {
    const { engine } = setup({ logits: spelling('The answer is 42.\n\nUser: next') });
    const events = await collect(
      engine.generate({ inputs: [9], parameters: { maxNewTokens: 60, stop: ['\n\nUser:', 'never'], details: true } }),
    );
    const done = events.at(-1)!;
    if (done.type !== 'done') throw new Error('expected done');
    const choice = done.result.choices[0]!;
    expect(choice.finishReason).toBe('stop_sequence');
    expect(choice.stopSequence).toBe('\n\nUser:');
    expect(choice.text).toBe('he answer is 42.');
    expect(choice.generatedText).toBe('he answer is 42.\n\nUser:');
    const deltas = events.flatMap((e) => (e.type === 'token' ? [e.delta] : []));
    expect(deltas.join('')).toBe('he answer is 42.');
    for (const delta of deltas) expect(delta).not.toContain('\n');
  });

  it('stop token ids end a choice with stop_sequence', async () => {
    const { engine } = setup({ logits: spelling('abcdef') });
    const result = await engine
      .generate({ inputs: [3], parameters: { maxNewTokens: 20, stopTokenIds: [byteId(0x64)] } })
      .result();
    expect(result.choices[0]!.finishReason).toBe('stop_sequence');
    expect(result.choices[0]!.generatedText).toBe('bcd');
  });

  it('never splits a UTF-8 character across deltas', async () => {
    const text = 'héllo 😀 日本語 ';
    const { engine } = setup({ logits: spelling(text) });
    // 22 bytes; starting after a 1-token prompt, 43 tokens end on a character boundary.
    const events = await collect(engine.generate({ inputs: [3], parameters: { maxNewTokens: 43 } }));
    const deltas = events.flatMap((e) => (e.type === 'token' ? [e.delta] : []));
    for (const delta of deltas) expect(delta).not.toContain('\uFFFD');
    const done = events.at(-1)!;
    if (done.type !== 'done') throw new Error('expected done');
    expect(deltas.join('')).toBe(done.result.choices[0]!.text);
    expect(done.result.choices[0]!.text).toBe(text.slice(1) + text);
    // each cycle holds back é (1 byte), 😀 (3) and 日本語 (2 each), and the text is spelled twice
    expect(deltas.filter((delta) => delta === '').length).toBe(2 * (1 + 3 + 3 * 2));
  });

  it('token texts spell the generated text, also when it ends inside a character', async () => {
    const { engine } = setup({ logits: spelling('aé') }); // bytes: a, 0xC3, 0xA9
    const result = await engine.generate({ inputs: [3], parameters: { maxNewTokens: 4, details: true } }).result();
    const choice = result.choices[0]!;
    expect(choice.generatedText).toBe('éa\uFFFD');
    expect(choice.tokens!.map((t) => t.text).join('')).toBe(choice.generatedText);
  });

  it('truncates inputs to the last tokens and returns the full text when asked', async () => {
    const { engine, backend } = setup({ logits: spelling('0123456789') });
    const result = await engine
      .generate({ inputs: 'abcdef', parameters: { maxNewTokens: 3, truncate: 4, returnFullText: true } })
      .result();
    expect(result.inputIds).toEqual(tokenizer.encode('cdef', { addSpecialTokens: false }));
    expect(result.choices[0]!.generatedText).toBe('abcdef456');
    expect(backend.calls[0]!.sequences[0]!.tokens).toEqual(result.inputIds);
  });

  it('reports prompt logprobs equal to log_softmax of the model rows (decoder_input_details)', async () => {
    const logits: MockBackendSettings['logits'] = (history, out) => {
      for (let v = 0; v < out.length; v++) out[v] = Math.sin(v * 0.37 + history.length * 1.1 + (history.at(-1) ?? 0));
    };
    const { engine } = setup({ logits }, { scheduler: { maxBatchTokens: 3 } });
    const prompt = [10, 20, 30, 40, 50, 60, 70];
    const result = await engine
      .generate({ inputs: prompt, parameters: { maxNewTokens: 1, decoderInputDetails: true } })
      .result();
    expect(result.prefill!.map((t) => t.id)).toEqual(prompt);
    expect(result.prefill![0]!.logprob).toBeUndefined();
    for (let i = 1; i < prompt.length; i++) {
      const row = new Float32Array(VOCAB);
      logits(prompt.slice(0, i), row);
      expect(result.prefill![i]!.logprob).toBeCloseTo(logSoftmax(row)[prompt[i]!]!, 5);
    }
  });

  it('returns top tokens per step with their logprobs', async () => {
    const { engine } = setup({ logits: spelling('ab') });
    const events = await collect(engine.generate({ inputs: [3], parameters: { maxNewTokens: 2, topNTokens: 3 } }));
    const first = events[0]!;
    if (first.type !== 'token') throw new Error('expected a token');
    // One strong token, then every other token ties at logit 0 with the 3rd: TGI's rule returns them all.
    expect(first.topTokens).toHaveLength(VOCAB);
    expect(first.topTokens![0]!.id).toBe(first.token.id);
    expect(first.topTokens![0]!.logprob).toBeCloseTo(first.token.logprob, 9);
  });
});

describe('choices', () => {
  it('n = 3 prefills once, forks, and returns three independently sampled choices', async () => {
    const { engine, backend } = setup({}, { limits: { maxBestOf: 4 } });
    const result = await engine
      .generate({ inputs: [4, 5, 6, 7], parameters: { n: 3, maxNewTokens: 6, temperature: 1.5, seed: 9 } }, {})
      .result();
    expect(result.choices).toHaveLength(3);
    expect(result.seed).toBe(9);
    const prefills = backend.calls.flatMap((call) => call.sequences).filter((s) => s.tokens.length === 4);
    expect(prefills).toHaveLength(1);
    const texts = new Set(result.choices.map((c) => c.generatedText));
    expect(texts.size).toBeGreaterThan(1);
    expect(backend.stats().sequences).toBe(0);
  });

  it('n > 1 works without fork by prefilling each choice', async () => {
    const { engine, backend } = setup({ fork: false });
    const result = await engine
      .generate({ inputs: [4, 5], parameters: { n: 2, maxNewTokens: 3, doSample: true, seed: 1 } })
      .result();
    expect(result.choices).toHaveLength(2);
    expect(backend.calls.flatMap((call) => call.sequences).filter((s) => s.tokens.length === 2)).toHaveLength(2);
  });

  it('best_of ranks choices by logprob sum and requires sampling', async () => {
    const { engine } = setup();
    const result = await engine
      .generate({ inputs: [4], parameters: { bestOf: 2, maxNewTokens: 5, doSample: true, seed: 3 } })
      .result();
    expect(result.choices).toHaveLength(2);
    const sums = result.choices.map((c) => c.logprobSum);
    expect(sums[result.best]).toBe(Math.max(...sums));
    expect(() => engine.generate({ inputs: [4], parameters: { bestOf: 2 } })).toThrow(
      'you must use sampling when `best_of` is > 1',
    );
  });
});

describe('scheduling', () => {
  it('turns the event loop at least every yieldIntervalMs while a main-thread backend computes (0: every step)', async () => {
    // Each forward pass busy-waits 1 ms on the main thread (as a CPU backend decoding there does): only the
    // engine's own yields let timers and I/O run.
    const busy: NonNullable<MockBackendSettings['logits']> = (history, out) => {
      const end = performance.now() + 1;
      while (performance.now() < end);
      noEos(history, out);
    };
    const turns = async (yieldIntervalMs: number) => {
      let longestStep = 0;
      const { engine, backend } = setup(
        { logits: busy },
        {
          scheduler: { yieldIntervalMs },
          onStep: (stats) => {
            longestStep = Math.max(longestStep, stats.forwardMs + stats.samplingMs + stats.otherMs);
          },
        },
      );
      const ticks: number[] = [];
      let running = true;
      const tick = () => {
        ticks.push(performance.now());
        if (running) setImmediate(tick);
      };
      setImmediate(tick);
      const start = performance.now();
      await engine.generate({ inputs: [3, 4], parameters: { maxNewTokens: 40 } }).result();
      const elapsed = performance.now() - start;
      running = false;
      let longestGap = 0;
      for (let i = 1; i < ticks.length; i++) longestGap = Math.max(longestGap, ticks[i]! - ticks[i - 1]!);
      return { ticks: ticks.length, elapsed, steps: backend.calls.length, longestGap, longestStep };
    };
    const everyStep = await turns(0);
    expect(everyStep.ticks).toBeGreaterThanOrEqual(everyStep.steps - 1);
    const bounded = await turns(8);
    expect(bounded.elapsed).toBeGreaterThanOrEqual(40);
    // A turn once 8 ms have passed since the last (so at most one step past 8 ms, with slack for a loaded
    // machine), and not a turn after every 1 ms step.
    expect(bounded.ticks).toBeGreaterThanOrEqual(2);
    expect(bounded.longestGap).toBeLessThanOrEqual(8 + 2 * bounded.longestStep + 10);
    expect(bounded.ticks).toBeLessThanOrEqual(Math.ceil(bounded.elapsed / 8) + 2);
    expect(() => setup({}, { scheduler: { yieldIntervalMs: -1 } })).toThrow(/yieldIntervalMs/);
    expect(() => setup({}, { scheduler: { yieldIntervalMs: Number.POSITIVE_INFINITY } })).toThrow(/finite/);
    expect(() => setup({}, { scheduler: { yieldIntervalMs: Number.NaN } })).toThrow(/yieldIntervalMs/);
  });

  it('admits a new request into the running batch at the next step (continuous batching)', async () => {
    const { engine, backend } = setup({ latencyMs: 2 });
    const first = engine.generate({ inputs: [3, 4], parameters: { maxNewTokens: 30 } });
    const firstDone = first.result();
    await new Promise((resolve) => setTimeout(resolve, 15));
    const second = await engine.generate({ inputs: [5, 6, 7], parameters: { maxNewTokens: 5 } }).result();
    const firstResult = await firstDone;
    expect(second.choices[0]!.generatedTokens).toBe(5);
    expect(firstResult.choices[0]!.generatedTokens).toBe(30);
    const mixed = backend.calls.find(
      (call) => call.sequences.some((s) => s.tokens.length === 3) && call.sequences.some((s) => s.tokens.length === 1),
    );
    expect(mixed, 'a step that decodes the first request while prefilling the second').toBeDefined();
    // and the second finished while the first was still running
    const secondLastCall = backend.calls.findLastIndex((call) =>
      call.sequences.some((s) => s.id.startsWith(second.id)),
    );
    const firstLastCall = backend.calls.findLastIndex((call) =>
      call.sequences.some((s) => s.id.startsWith(firstResult.id)),
    );
    expect(secondLastCall).toBeLessThan(firstLastCall);
  });

  it('prefills a long prompt in chunks within the token budget while running streams keep decoding', async () => {
    const { engine, backend } = setup({ latencyMs: 1 }, { scheduler: { maxBatchTokens: 32 } });
    const running = engine.generate({ id: 'running', inputs: [3], parameters: { maxNewTokens: 40 } });
    const runningDone = running.result();
    await new Promise((resolve) => setTimeout(resolve, 8));
    const long = await engine
      .generate({
        id: 'long',
        inputs: Array.from({ length: 200 }, (_, i) => 3 + (i % 50)),
        parameters: { maxNewTokens: 2 },
      })
      .result();
    await runningDone;
    const longCalls = backend.calls.filter((call) =>
      call.sequences.some((s) => s.id.startsWith('long') && s.tokens.length > 1),
    );
    expect(longCalls.length).toBeGreaterThanOrEqual(7);
    for (const call of backend.calls)
      expect(call.sequences.reduce((n, s) => n + s.tokens.length, 0)).toBeLessThanOrEqual(32);
    for (const call of longCalls.slice(0, -1)) {
      if (
        backend.calls.indexOf(call) <
        backend.calls.findLastIndex((c) => c.sequences.some((s) => s.id.startsWith('running')))
      )
        expect(call.sequences.some((s) => s.id.startsWith('running'))).toBe(true);
    }
    expect(long.inputTokens).toBe(200);
  });

  it('never exceeds the batch size; extra requests wait in the queue', async () => {
    const { engine, backend } = setup({ latencyMs: 1 }, { scheduler: { maxBatchSize: 2 } });
    const results = await Promise.all(
      [0, 1, 2, 3].map((i) => engine.generate({ inputs: [3 + i], parameters: { maxNewTokens: 4 } }).result()),
    );
    expect(results.every((r) => r.choices[0]!.generatedTokens === 4)).toBe(true);
    for (const call of backend.calls) expect(call.sequences.length).toBeLessThanOrEqual(2);
    expect(results[3]!.timings.queueMs).toBeGreaterThan(0);
  });

  it('rejects with overloaded beyond max concurrent requests and loses nothing admitted', async () => {
    const { engine } = setup({ latencyMs: 1 }, { limits: { maxConcurrentRequests: 2 } });
    const a = engine.generate({ inputs: [3], parameters: { maxNewTokens: 3 } });
    const b = engine.generate({ inputs: [4], parameters: { maxNewTokens: 3 } });
    expect(() => engine.generate({ inputs: [5], parameters: { maxNewTokens: 3 } })).toThrow(OverloadedError);
    const [ra, rb] = await Promise.all([a.result(), b.result()]);
    expect(ra.choices[0]!.generatedTokens + rb.choices[0]!.generatedTokens).toBe(6);
    await expect(engine.generate({ inputs: [5], parameters: { maxNewTokens: 1 } }).result()).resolves.toBeDefined();
  });

  it('a backend failure fails only the requests of that step; the engine keeps serving', async () => {
    let fail = true;
    const { engine, backend } = setup({
      latencyMs: 1,
      failure: (call) =>
        fail && call.sequences.some((s) => s.id.startsWith('doomed')) ? new Error('device lost') : undefined,
    });
    const doomed = engine.generate({ id: 'doomed', inputs: [3], parameters: { maxNewTokens: 5 } }).result();
    await expect(doomed).rejects.toThrow(GenerationError);
    await expect(doomed).rejects.toThrow('device lost');
    fail = false;
    const next = await engine.generate({ inputs: [3], parameters: { maxNewTokens: 5 } }).result();
    expect(next.choices[0]!.generatedTokens).toBe(5);
    expect(backend.stats().sequences).toBe(0);
  });

  it('cancellation by signal ends the stream with CancelledError and frees the cache', async () => {
    const { engine, backend } = setup({ latencyMs: 2 });
    const controller = new AbortController();
    const stream = engine.generate({ inputs: [3], parameters: { maxNewTokens: 200 } }, { signal: controller.signal });
    const other = engine.generate({ inputs: [4], parameters: { maxNewTokens: 20 } }).result();
    const events: GenerationEvent[] = [];
    for await (const event of stream) {
      events.push(event);
      if (events.length === 3) controller.abort();
    }
    const last = events.at(-1)!;
    expect(last.type).toBe('error');
    if (last.type === 'error') expect(last.error).toBeInstanceOf(CancelledError);
    expect((await other).choices[0]!.generatedTokens).toBe(20);
    expect(backend.stats().sequences).toBe(0);
    expect(() => engine.generate({ inputs: [3] }, { signal: AbortSignal.abort() })).toThrow(CancelledError);
  });

  it('breaking out of the stream cancels the request', async () => {
    const { engine, backend } = setup({ latencyMs: 1 });
    for await (const event of engine.generate({ inputs: [3], parameters: { maxNewTokens: 100 } })) {
      if (event.type === 'token') break;
    }
    await engine.generate({ inputs: [4], parameters: { maxNewTokens: 2 } }).result();
    expect(backend.stats().sequences).toBe(0);
    expect(engine.stats().runningRequests).toBe(0);
  });

  it('a seeded request yields the same tokens alone and among 15 concurrent requests', async () => {
    const request: GenerationRequest = {
      inputs: [7, 8, 9],
      parameters: { maxNewTokens: 16, temperature: 0.9, topK: 40, seed: 1234 },
    };
    const alone = await setup().engine.generate(request).result();
    const { engine } = setup({ latencyMs: 1 });
    const others = Array.from({ length: 15 }, (_, i) =>
      engine
        .generate({ inputs: [3 + i, 4 + i], parameters: { maxNewTokens: 5 + i, temperature: 1.3, seed: i } })
        .result(),
    );
    const together = engine.generate(request).result();
    await Promise.all(others);
    expect((await together).choices[0]!.generatedText).toBe(alone.choices[0]!.generatedText);
  });

  it('close() drains running requests and refuses new ones', async () => {
    const { engine } = setup({ latencyMs: 1 });
    const running = engine.generate({ inputs: [3], parameters: { maxNewTokens: 5 } }).result();
    const closed = engine.close({ timeoutMs: 5_000 });
    expect(() => engine.generate({ inputs: [3] })).toThrow(ShutdownError);
    await closed;
    expect((await running).choices[0]!.generatedTokens).toBe(5);
  });

  it('requests submitted together are prefilled together in the first step', async () => {
    const steps: Array<{ batchSize: number; prefillTokens: number }> = [];
    const { engine } = setup(
      {},
      { onStep: (s) => steps.push({ batchSize: s.batchSize, prefillTokens: s.prefillTokens }) },
    );
    const results = [[3, 4], [5, 6, 7], [8]].map((inputs) =>
      engine.generate({ inputs, parameters: { maxNewTokens: 3 } }).result(),
    );
    await Promise.all(results);
    expect(steps[0]).toEqual({ batchSize: 3, prefillTokens: 6 });
    expect(steps.slice(1).map((s) => s.batchSize)).toEqual([3, 3]);
  });

  it("prepares the tokenizer's stream decoding once, when it is created", () => {
    let prepared = 0;
    const backend = createMockBackend({ vocabSize: VOCAB, maxPositions: 512, logits: noEos });
    const withPrepare = Object.assign(Object.create(tokenizer) as typeof tokenizer, {
      prepareStreamDecoding: () => void prepared++,
    });
    createEngine({ backend, tokenizer: withPrepare });
    expect(prepared).toBe(1);
  });

  it('still serves when the tokenizer fails to prepare its stream decoding (an optimization only)', async () => {
    const backend = createMockBackend({ vocabSize: VOCAB, maxPositions: 512, logits: noEos });
    const failing = Object.assign(Object.create(tokenizer) as typeof tokenizer, {
      prepareStreamDecoding: () => {
        throw new Error('cannot prepare');
      },
    });
    const engine = createEngine({ backend, tokenizer: failing });
    const result = await engine.generate({ inputs: [3, 4], parameters: { maxNewTokens: 3 } }).result();
    expect(result.choices[0]!.generatedTokens).toBe(3);
  });

  it('reports step stats', async () => {
    const steps: number[] = [];
    const { engine } = setup({}, { onStep: (s) => steps.push(s.tokens) });
    await engine.generate({ inputs: [3, 4, 5], parameters: { maxNewTokens: 4 } }).result();
    expect(steps).toEqual([3, 1, 1, 1]);
    const stats = engine.stats();
    expect(stats.steps).toBe(4);
    expect(stats.totalTokens).toBe(6);
    expect(stats.queueSize + stats.runningRequests + stats.batchSize).toBe(0);
  });

  test.prop(
    [
      fc.array(
        fc.record({
          delay: fc.nat(6),
          maxNewTokens: fc.integer({ min: 1, max: 12 }),
          promptLength: fc.integer({ min: 1, max: 40 }),
          n: fc.integer({ min: 1, max: 2 }),
          cancelAfter: fc.option(fc.nat(10), { nil: undefined }),
          breakAfter: fc.option(fc.nat(4), { nil: undefined }),
        }),
        { minLength: 1, maxLength: 12 },
      ),
      fc.integer({ min: 4, max: 64 }),
    ],
    { numRuns: 25, seed: 21 },
  )(
    'any interleaving of arrivals and cancellations ends every request exactly once and frees every sequence',
    async (plans, budget) => {
      const { engine, backend } = setup(
        { latencyMs: 1 },
        { scheduler: { maxBatchTokens: budget, maxBatchSize: 6 }, limits: { maxConcurrentRequests: 8 } },
      );
      const outcomes = await Promise.all(
        plans.map(async (plan, i) => {
          await new Promise((resolve) => setTimeout(resolve, plan.delay));
          const controller = new AbortController();
          let stream;
          try {
            stream = engine.generate(
              {
                inputs: Array.from({ length: plan.promptLength }, (_, j) => 3 + ((i + j) % 200)),
                parameters: { maxNewTokens: plan.maxNewTokens, n: plan.n, doSample: true, seed: i },
              },
              { signal: controller.signal },
            );
          } catch (error) {
            expect(error).toBeInstanceOf(OverloadedError);
            return 'overloaded';
          }
          if (plan.cancelAfter !== undefined) setTimeout(() => controller.abort(), plan.cancelAfter);
          let ends = 0;
          let tokens = 0;
          for await (const event of stream) {
            if (event.type === 'done' || event.type === 'error') ends++;
            if (event.type === 'token') tokens++;
            if (plan.breakAfter !== undefined && tokens > plan.breakAfter) break;
          }
          if (plan.breakAfter !== undefined && tokens > plan.breakAfter) return 'broken';
          expect(ends).toBe(1);
          return 'ended';
        }),
      );
      expect(outcomes.length).toBe(plans.length);
      await engine.close({ timeoutMs: 5_000 });
      expect(backend.stats().sequences).toBe(0);
      expect(engine.stats().runningRequests + engine.stats().queueSize).toBe(0);
    },
  );
});

describe('validation (before anything is streamed)', () => {
  const { engine } = setup({}, { limits: { maxTotalTokens: 64, maxInputTokens: 32 } });
  const cases: [GenerationRequest, string, string | undefined][] = [
    [{ inputs: '' }, '`inputs` cannot be empty', 'inputs'],
    [{ inputs: [] }, '`inputs` cannot be empty', 'inputs'],
    [{ inputs: [VOCAB] }, '`inputs` token ids must be integers in [0, 299]', 'inputs'],
    [{ inputs: 42 as unknown as string }, '`inputs` must be a string or an array of token ids', 'inputs'],
    [{ inputs: 'x'.repeat(40) }, '`inputs` must have less than 32 tokens. Given: 41', 'inputs'],
    [{ inputs: 'hi', parameters: { maxNewTokens: 0 } }, '`max_new_tokens` must be strictly positive', 'max_new_tokens'],
    [
      { inputs: 'hi', parameters: { maxNewTokens: 1.5 } },
      '`max_new_tokens` must be strictly positive',
      'max_new_tokens',
    ],
    [
      { inputs: 'hi', parameters: { maxNewTokens: 62 } },
      '`inputs` tokens + `max_new_tokens` must be <= 64. Given: 3 `inputs` tokens and 62 `max_new_tokens`',
      'max_new_tokens',
    ],
    [
      { inputs: 'hi', parameters: { stop: ['a', 'b', 'c', 'd', 'e'] } },
      '`stop` supports up to 4 stop sequences. Given: 5',
      'stop',
    ],
    [{ inputs: 'hi', parameters: { stop: [''] } }, '`stop` sequences must not be empty', 'stop'],
    [
      { inputs: 'hi', parameters: { stop: [3] as unknown as string[] } },
      '`stop` must be a string or an array of strings',
      'stop',
    ],
    [
      { inputs: 'hi', parameters: { bestOf: 3, doSample: true } },
      '`best_of` must be > 0 and <= 2. Given: 3',
      'best_of',
    ],
    [{ inputs: 'hi', parameters: { n: 0 } }, '`n` must be > 0 and <= 16', 'n'],
    [{ inputs: 'hi', parameters: { n: 17 } }, '`n` must be > 0 and <= 16. Given: 17', 'n'],
    [
      { inputs: 'hi', parameters: { truncate: 0 } },
      '`truncate` must be strictly positive and less than 32',
      'truncate',
    ],
    [{ inputs: 'hi', parameters: { temperature: 0 } }, '`temperature` must be strictly positive', 'temperature'],
    [{ inputs: 'hi', parameters: { topNTokens: 6 } }, '`top_n_tokens` must be >= 0 and <= 5', 'top_n_tokens'],
    [{ inputs: 'hi', parameters: { details: 'yes' as unknown as boolean } }, '`details` must be a boolean', 'details'],
    [{ inputs: 'hi', parameters: { stopTokenIds: [-1] } }, '`stop_token_ids` must be integers', 'stop_token_ids'],
  ];
  for (const [request, message, parameter] of cases) {
    it(`${message} (${JSON.stringify(request).slice(0, 60)})`, () => {
      let error: unknown;
      try {
        engine.generate(request);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(EngineValidationError);
      expect(EngineError.isInstance(error)).toBe(true);
      expect((error as EngineValidationError).type).toBe('validation');
      expect((error as EngineValidationError).message).toContain(message);
      expect((error as EngineValidationError).parameter).toBe(parameter);
    });
  }

  it('accepts a single stop string', async () => {
    const { engine: e } = setup({ logits: spelling('abc.def') });
    const result = await e
      .generate({ inputs: [3], parameters: { stop: '.' as unknown as string[], maxNewTokens: 10 } })
      .result();
    expect(result.choices[0]!.text).toBe('bc');
  });
});

describe('logprobs: false', () => {
  it('generates the same greedy tokens and text without computing their logprobs', async () => {
    const { engine } = setup();
    const request = (logprobs?: boolean) =>
      engine
        .generate({
          inputs: [5, 6, 7],
          parameters: { maxNewTokens: 12, details: true, ...(logprobs === undefined ? {} : { logprobs }) },
        })
        .result();
    const full = await request();
    const lean = await request(false);
    expect(lean.choices[0]!.text).toBe(full.choices[0]!.text);
    expect(lean.choices[0]!.tokens!.map((t) => t.id)).toEqual(full.choices[0]!.tokens!.map((t) => t.id));
    expect(full.choices[0]!.tokens!.every((t) => Number.isFinite(t.logprob))).toBe(true);
    expect(lean.choices[0]!.tokens!.every((t) => Number.isNaN(t.logprob))).toBe(true);
    await engine.close();
  });

  it('is ignored for best_of > 1, which ranks choices by their logprobs', async () => {
    const { engine } = setup();
    const result = await engine
      .generate({
        inputs: [5, 6],
        parameters: { maxNewTokens: 4, bestOf: 2, doSample: true, seed: 3, logprobs: false },
      })
      .result();
    expect(result.choices.every((c) => Number.isFinite(c.logprobSum))).toBe(true);
    await engine.close();
  });

  it('rejects a non-boolean', async () => {
    const { engine } = setup();
    expect(() => engine.generate({ inputs: [5], parameters: { logprobs: 'no' as unknown as boolean } })).toThrow(
      EngineValidationError,
    );
    await engine.close();
  });
});

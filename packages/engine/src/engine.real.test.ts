import { beforeAll, describe, expect, it } from 'vitest';
import type { BackendV1 } from '@gen/backend';
import { createJsBackend } from '@gen/backend-js';
import { ensureModelDir } from '@gen/model-kit';
import { detectWatermark, logSoftmax, setWasmKernelsEnabled } from '@gen/sampling';
import { loadTokenizer, type Tokenizer } from '@gen/tokenizer';
import { createEngine, type EngineSettings } from './engine.js';
import type { GenerationParameters, GenerationResult } from './types.js';

/** Engine tests on a real forward pass: backend-js on model-kit's tiny Llama, with its real tokenizer. */
let modelDir: string;
let tokenizer: Tokenizer;

beforeAll(async () => {
  modelDir = await ensureModelDir('tiny');
  tokenizer = await loadTokenizer(modelDir);
});

async function setup(settings: Partial<EngineSettings> = {}) {
  const backend = await createJsBackend({ modelDir });
  return { backend, engine: createEngine({ backend, tokenizer, ...settings }) };
}

const PROMPT = 'The quick brown fox jumps over the lazy dog. Then';

async function run(
  parameters: GenerationParameters,
  settings: Partial<EngineSettings> = {},
  inputs: string = PROMPT,
): Promise<GenerationResult> {
  const { engine } = await setup(settings);
  return engine.generate({ inputs, parameters }).result();
}

/** A reference greedy loop written directly against the backend, without the engine. */
async function greedyByHand(backend: BackendV1, prompt: number[], steps: number): Promise<number[]> {
  const tokens: number[] = [];
  let next = prompt;
  for (let step = 0; step < steps; step++) {
    const output = await backend.doForward({ sequences: [{ id: 'reference', tokens: next }] });
    const row = output.sequences[0]!.logits;
    let best = 0;
    for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
    tokens.push(best);
    next = [best];
  }
  await backend.doRelease(['reference']);
  return tokens;
}

describe('engine on backend-js (tiny Llama)', () => {
  it('greedy output equals a hand-written greedy loop over the backend, with and without chunked prefill', async () => {
    const prompt = tokenizer.encode(PROMPT);
    const { backend } = await setup();
    const expected = await greedyByHand(backend, prompt, 12);
    const whole = await run({ maxNewTokens: 12, ignoreEos: true, details: true });
    expect(whole.choices[0]!.tokens!.map((t) => t.id)).toEqual(expected);
    const chunked = await run(
      { maxNewTokens: 12, ignoreEos: true, details: true },
      { scheduler: { maxBatchTokens: 3 } },
    );
    expect(chunked.choices[0]!.tokens!.map((t) => t.id)).toEqual(expected);
    expect(whole.choices[0]!.generatedText).toBe(tokenizer.decode(expected, { skipSpecialTokens: true }));
  });

  it('reuses one logitsBuffer across steps where the backend takes it, with the same results as without', async () => {
    const requests: Array<{ inputs: string; parameters: GenerationParameters }> = [
      { inputs: PROMPT, parameters: { maxNewTokens: 10, ignoreEos: true, details: true } },
      { inputs: 'Once upon a time', parameters: { maxNewTokens: 14, temperature: 1.2, seed: 5, n: 3 } },
      { inputs: 'A B C', parameters: { maxNewTokens: 6, bestOf: 2, doSample: true, seed: 9, topNTokens: 2 } },
    ];
    const generateAll = async (backend: BackendV1) => {
      const engine = createEngine({ backend, tokenizer, scheduler: { maxBatchSize: 8 } });
      const results = await Promise.all(requests.map((request) => engine.generate(request).result()));
      await engine.close();
      return results.map((result) =>
        result.choices.map((choice) => ({
          text: choice.generatedText,
          tokens: choice.tokens?.map((token) => [token.id, token.logprob]),
          top: choice.topTokens?.map((tokens) => tokens.map((token) => token.id)),
        })),
      );
    };
    const backend = await createJsBackend({ modelDir });
    const buffers: Array<Float32Array | undefined> = [];
    const forward = backend.doForward.bind(backend);
    const recording: BackendV1 = Object.assign(Object.create(backend) as BackendV1, {
      doForward: (options: Parameters<BackendV1['doForward']>[0]) => {
        buffers.push(options.logitsBuffer);
        return forward(options);
      },
    });
    const buffered = await generateAll(recording);
    expect(buffers.length).toBeGreaterThan(10);
    expect(buffers[0]).toBeInstanceOf(Float32Array);
    // Grown at most a few times (to powers of two of the batch), then the same array every step.
    expect(new Set(buffers).size).toBeLessThanOrEqual(4);
    expect(buffers.at(-1)!.length).toBeLessThanOrEqual(8 * backend.model.vocabSize);
    // The rows live in the sampling arena's WebAssembly memory (the kernels' scratch follows them there), where
    // greedy samplers read them in place; with the kernels off they are an ordinary array of their own.
    expect(buffers.at(-1)!.buffer.byteLength).toBeGreaterThan(buffers.at(-1)!.byteLength);
    setWasmKernelsEnabled(false);
    try {
      buffers.length = 0;
      const plain = await generateAll(recording);
      expect(buffers.at(-1)!.buffer.byteLength).toBe(buffers.at(-1)!.byteLength);
      expect(plain.map((choices) => choices.map((choice) => choice.text))).toEqual(
        buffered.map((choices) => choices.map((choice) => choice.text)),
      );
    } finally {
      setWasmKernelsEnabled(true);
    }
    const hidden: BackendV1 = Object.assign(Object.create(backend) as BackendV1, {
      capabilities: { ...backend.capabilities, logitsBuffer: false },
    });
    expect(await generateAll(hidden)).toEqual(buffered);
  });

  it('prompt logprobs equal log_softmax of the backend prompt logits', async () => {
    const prompt = tokenizer.encode(PROMPT);
    const { backend } = await setup();
    const output = await backend.doForward({ sequences: [{ id: 'p', tokens: prompt, wantPromptLogits: true }] });
    const promptLogits = output.sequences[0]!.promptLogits!;
    const vocabSize = backend.model.vocabSize;
    const result = await run({ maxNewTokens: 1, decoderInputDetails: true }, { scheduler: { maxBatchTokens: 4 } });
    expect(result.prefill!.map((t) => t.id)).toEqual(prompt);
    for (let i = 1; i < prompt.length; i++) {
      const row = promptLogits.subarray((i - 1) * vocabSize, i * vocabSize);
      expect(result.prefill![i]!.logprob).toBeCloseTo(logSoftmax(row)[prompt[i]!]!, 4);
    }
  });

  it('top_k = 1 is greedy; sampling with a seed is reproducible and differs from greedy', async () => {
    const greedy = await run({ maxNewTokens: 16, ignoreEos: true });
    expect((await run({ maxNewTokens: 16, ignoreEos: true, topK: 1, seed: 3 })).choices[0]!.generatedText).toBe(
      greedy.choices[0]!.generatedText,
    );
    const sampled = await run({ maxNewTokens: 16, ignoreEos: true, temperature: 1.5, seed: 42 });
    const again = await run({ maxNewTokens: 16, ignoreEos: true, temperature: 1.5, seed: 42 });
    expect(again.choices[0]!.generatedText).toBe(sampled.choices[0]!.generatedText);
    expect(sampled.seed).toBe(42);
    expect(sampled.choices[0]!.generatedText).not.toBe(greedy.choices[0]!.generatedText);
  });

  it('each sampling parameter shapes the output as specified', async () => {
    const base = { maxNewTokens: 24, ignoreEos: true, details: true } satisfies GenerationParameters;
    const ids = (result: GenerationResult) => result.choices[0]!.tokens!.map((t) => t.id);

    // logit_bias +100 forces a token; suppress_tokens / allowed_tokens exclude or restrict.
    const forced = ids(await run({ ...base, logitBias: { 300: 100 } }));
    expect(new Set(forced)).toEqual(new Set([300]));
    const greedy = ids(await run(base));
    const suppressed = ids(await run({ ...base, suppressTokens: [greedy[0]!] }));
    expect(suppressed).not.toContain(greedy[0]);
    const allowed = ids(await run({ ...base, allowedTokens: [100, 200] }));
    expect(allowed.every((id) => id === 100 || id === 200)).toBe(true);

    // no_repeat_ngram_size 2: no bigram occurs twice in prompt + output.
    const prompt = tokenizer.encode(PROMPT);
    const noRepeat = [...prompt, ...ids(await run({ ...base, noRepeatNgramSize: 2, maxNewTokens: 40 }))];
    const bigrams = new Set<string>();
    for (let i = 1; i < noRepeat.length; i++) {
      const bigram = `${noRepeat[i - 1]},${noRepeat[i]}`;
      if (i >= prompt.length) expect(bigrams.has(bigram), `bigram ${bigram} repeated`).toBe(false);
      bigrams.add(bigram);
    }

    // A strong repetition penalty avoids every prompt token that greedy decoding repeats.
    const penalized = ids(await run({ ...base, repetitionPenalty: 100 }));
    expect(penalized.filter((id) => prompt.includes(id)).length).toBeLessThan(
      greedy.filter((id) => prompt.includes(id)).length + 1,
    );
    expect(new Set(penalized).size).toBeGreaterThanOrEqual(new Set(greedy).size);

    // presence / frequency penalties reduce repeats of generated tokens.
    const repeats = (tokens: number[]) => tokens.length - new Set(tokens).size;
    expect(repeats(ids(await run({ ...base, presencePenalty: 2, frequencyPenalty: 2 })))).toBeLessThanOrEqual(
      repeats(greedy),
    );

    // top_p / min_p / typical_p with a seed all produce valid, reproducible output with processed logprobs <= 0.
    for (const extra of [
      { topP: 0.5 },
      { minP: 0.2 },
      { typicalP: 0.5 },
      { temperature: 0.7, topK: 5, topP: 0.9 },
    ] as GenerationParameters[]) {
      const a = await run({ ...base, ...extra, seed: 9 });
      const b = await run({ ...base, ...extra, seed: 9 });
      expect(a.choices[0]!.generatedText).toBe(b.choices[0]!.generatedText);
      for (const token of a.choices[0]!.tokens!) expect(token.logprob).toBeLessThanOrEqual(1e-9);
    }
  });

  it('min_new_tokens holds back EOS; stop sequences and truncation apply to real tokenizer text', async () => {
    const eos = tokenizer.eosTokenIds();
    const early = await run({
      maxNewTokens: 30,
      minNewTokens: 10,
      logitBias: Object.fromEntries(eos.map((id) => [id, 50])),
    });
    expect(early.choices[0]!.generatedTokens).toBe(11);
    expect(early.choices[0]!.finishReason).toBe('eos_token');

    const free = await run({ maxNewTokens: 30, ignoreEos: true });
    const text = free.choices[0]!.generatedText;
    const stop = text.slice(5, 8);
    const stopped = await run({ maxNewTokens: 30, ignoreEos: true, stop: [stop] });
    expect(stopped.choices[0]!.finishReason).toBe('stop_sequence');
    expect(stopped.choices[0]!.text).toBe(text.slice(0, text.indexOf(stop)));
    expect(stopped.choices[0]!.generatedText.startsWith(text.slice(0, text.indexOf(stop) + stop.length))).toBe(true);

    const truncated = await run({ maxNewTokens: 2, truncate: 5, decoderInputDetails: true });
    expect(truncated.inputIds).toEqual(tokenizer.encode(PROMPT).slice(-5));
  });

  it('n = 2 forks the prompt and best_of ranks by logprob', async () => {
    const { engine, backend } = await setup({ limits: { maxBestOf: 3 } });
    const result = await engine
      .generate({ inputs: PROMPT, parameters: { n: 3, maxNewTokens: 8, temperature: 1.2, seed: 5, ignoreEos: true } })
      .result();
    expect(result.choices).toHaveLength(3);
    expect(new Set(result.choices.map((c) => c.generatedText)).size).toBeGreaterThan(1);
    const best = await engine
      .generate({
        inputs: PROMPT,
        parameters: { bestOf: 3, maxNewTokens: 8, doSample: true, seed: 5, ignoreEos: true },
      })
      .result();
    expect(best.choices[best.best]!.logprobSum).toBe(Math.max(...best.choices.map((c) => c.logprobSum)));
    expect(backend.stats().sequences).toBe(0);
  });

  it('watermarked generations are detected; plain ones are not', async () => {
    const { engine, backend } = await setup();
    const vocabSize = backend.model.vocabSize;
    const generate = async (watermark: boolean) => {
      const result = await engine
        .generate({
          inputs: PROMPT,
          parameters: { maxNewTokens: 120, ignoreEos: true, doSample: true, seed: 1, watermark, details: true },
        })
        .result();
      return detectWatermark(
        result.choices[0]!.tokens!.map((t) => t.id),
        { vocabSize, prefixToken: result.inputIds.at(-1)! },
      );
    };
    expect((await generate(true)).zScore).toBeGreaterThan(4);
    expect((await generate(false)).zScore).toBeLessThan(4);
  });

  it('a seeded request yields identical tokens alone and among 15 concurrent requests', async () => {
    const request = {
      inputs: PROMPT,
      parameters: { maxNewTokens: 20, temperature: 0.9, topP: 0.95, seed: 77, ignoreEos: true },
    };
    const alone = await (await setup()).engine.generate(request).result();
    const { engine } = await setup({ scheduler: { maxBatchTokens: 16 } });
    const others = Array.from({ length: 15 }, (_, i) =>
      engine
        .generate({
          inputs: `${i} ${PROMPT.slice(i)}`,
          parameters: { maxNewTokens: 10 + i, temperature: 1.1, seed: i, ignoreEos: true },
        })
        .result(),
    );
    const together = engine.generate(request).result();
    await Promise.all(others);
    expect((await together).choices[0]!.generatedText).toBe(alone.choices[0]!.generatedText);
  });
});

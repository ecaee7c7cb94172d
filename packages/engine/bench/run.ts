/**
 * Engine benchmark on the model-kit `bench` preset (~125M parameters) with backend-onnx:
 *  1. aggregate decode tokens/s with 1, 4, 16 and 64 concurrent requests;
 *  2. the share of a step spent outside the forward pass at batch 16;
 *  3. time to first token of a request arriving while 15 others decode;
 *  4. inter-token latency of running streams while a 2,000-token prompt is prefilled.
 *
 *   pnpm --filter @gen/engine bench [--threads 2] [--new-tokens 32] [--max-batch-tokens 512] [--json out.json]
 */
import { loadavg } from 'node:os';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createOnnxBackend } from '@gen/backend-onnx';
import { ensureModelDir } from '@gen/model-kit';
import { loadTokenizer } from '@gen/tokenizer';
import { createEngine, type Engine, type StepStats } from '../src/index.js';

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    'new-tokens': { type: 'string', default: '32' },
    'max-batch-tokens': { type: 'string', default: '512' },
    json: { type: 'string' },
  },
});
const threads = Number(values.threads);
const newTokens = Number(values['new-tokens']);
const maxBatchTokens = Number(values['max-batch-tokens']);

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
const sortNumbers = (xs: number[]) => [...xs].sort((a, b) => a - b);

const modelDir = await ensureModelDir('bench');
const tokenizer = await loadTokenizer(modelDir);
const backend = await createOnnxBackend({ modelDir, intraOpThreads: threads, maxBatchSize: 64 });
const steps: StepStats[] = [];
const engine: Engine = createEngine({
  backend,
  tokenizer,
  scheduler: { maxBatchTokens },
  onStep: (s) => steps.push(s),
});
const vocabSize = backend.model.vocabSize;
const prompt = (length: number, salt: number) =>
  Array.from({ length }, (_, i) => 1 + ((i * 7919 + salt * 104729) % (tokenizer.vocabSize - 1)));

console.log(
  `engine bench: preset bench (${backend.model.numLayers} layers, vocab ${vocabSize}), backend ${backend.backendId}, ${threads} threads, step budget ${maxBatchTokens} tokens, load average ${loadavg()[0]!.toFixed(2)}`,
);

// Warm up the sessions and the sampler.
await engine.generate({ inputs: prompt(32, 0), parameters: { maxNewTokens: 4, ignoreEos: true } }).result();

// 1 + 2: throughput by concurrency, and the share of each step outside the forward pass.
const throughput: Record<number, { tokensPerSecond: number; outsideForward: number; stepMs: number }> = {};
for (const concurrency of [1, 4, 16, 64]) {
  steps.length = 0;
  const start = performance.now();
  const results = await Promise.all(
    Array.from({ length: concurrency }, (_, i) =>
      engine
        .generate({
          inputs: prompt(32, i + 1),
          parameters: { maxNewTokens: newTokens, ignoreEos: true, temperature: 0.8, topK: 50, topP: 0.9, seed: i },
        })
        .result(),
    ),
  );
  const seconds = (performance.now() - start) / 1000;
  const generated = results.reduce((sum, r) => sum + r.choices[0]!.generatedTokens, 0);
  const decodeSteps = steps.filter((s) => s.prefillTokens === 0 && s.batchSize === concurrency);
  const forward = decodeSteps.reduce((sum, s) => sum + s.forwardMs, 0);
  const outside = decodeSteps.reduce((sum, s) => sum + s.samplingMs + s.otherMs, 0);
  throughput[concurrency] = {
    tokensPerSecond: generated / seconds,
    outsideForward: outside / (forward + outside),
    stepMs:
      sortNumbers(decodeSteps.map((s) => s.forwardMs + s.samplingMs + s.otherMs))[Math.floor(decodeSteps.length / 2)] ??
      Number.NaN,
  };
  console.log(
    `concurrency ${String(concurrency).padStart(2)}: ${throughput[concurrency]!.tokensPerSecond.toFixed(1).padStart(7)} tokens/s, ` +
      `median decode step ${throughput[concurrency]!.stepMs.toFixed(1)} ms, outside the forward pass ${(throughput[concurrency]!.outsideForward * 100).toFixed(2)}%`,
  );
}

// 3: time to first token of a request arriving while 15 others decode.
async function withBackground(count: number, body: () => Promise<void>): Promise<number[][]> {
  const controllers: AbortController[] = [];
  const tokenTimes: number[][] = [];
  const background = Array.from({ length: count }, async (_, i) => {
    const controller = new AbortController();
    controllers.push(controller);
    const times: number[] = [];
    tokenTimes.push(times);
    try {
      for await (const event of engine.generate(
        { inputs: prompt(32, 100 + i), parameters: { maxNewTokens: 1500, ignoreEos: true } },
        { signal: controller.signal },
      )) {
        if (event.type === 'token') times.push(performance.now());
      }
    } catch {
      // cancelled at the end
    }
  });
  while (tokenTimes.length < count || tokenTimes.some((t) => t.length < 3))
    await new Promise((resolve) => setTimeout(resolve, 5));
  await body();
  for (const controller of controllers) controller.abort();
  await Promise.all(background);
  return tokenTimes;
}

let ttft = Number.NaN;
let stepAt16 = Number.NaN;
let prefillChunkMs = Number.NaN;
await withBackground(15, async () => {
  steps.length = 0;
  const submitted = performance.now();
  for await (const event of engine.generate({
    inputs: prompt(128, 999),
    parameters: { maxNewTokens: 2, ignoreEos: true },
  })) {
    if (event.type === 'token' && Number.isNaN(ttft)) ttft = performance.now() - submitted;
  }
  const decode = steps.filter((s) => s.prefillTokens === 0).map((s) => s.forwardMs + s.samplingMs + s.otherMs);
  const prefill = steps.filter((s) => s.prefillTokens > 0).map((s) => s.forwardMs + s.samplingMs + s.otherMs);
  stepAt16 = sortNumbers(decode)[Math.floor(decode.length / 2)] ?? Number.NaN;
  prefillChunkMs = Math.max(...prefill);
});
console.log(
  `time to first token while 15 decode: ${ttft.toFixed(1)} ms (prefill step ${prefillChunkMs.toFixed(1)} ms + decode step ${stepAt16.toFixed(1)} ms = ${(prefillChunkMs + stepAt16).toFixed(1)} ms budget)`,
);

// 4: inter-token latency of 8 running streams, without and with a 2,000-token prompt being prefilled.
const gaps = (times: number[][], from: number, to: number) =>
  sortNumbers(
    times.flatMap((t) =>
      t
        .slice(1)
        .map((time, i) => (time >= from && time <= to ? time - t[i]! : Number.NaN))
        .filter((g) => !Number.isNaN(g)),
    ),
  );
let quiet: number[] = [];
let busy: number[] = [];
let prefillWindow = [0, 0];
const times = await withBackground(8, async () => {
  const quietStart = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const quietEnd = performance.now();
  const start = performance.now();
  let first = Number.NaN;
  for await (const event of engine.generate({
    inputs: prompt(2000, 4242),
    parameters: { maxNewTokens: 1, ignoreEos: true },
  })) {
    if (event.type === 'token') first = performance.now();
  }
  prefillWindow = [start, first];
  quiet = [quietStart, quietEnd];
});
const quietGaps = gaps(times, quiet[0]!, quiet[1]!);
busy = gaps(times, prefillWindow[0]!, prefillWindow[1]!);
console.log(
  `inter-token latency of 8 streams: quiet p50 ${quantile(quietGaps, 0.5).toFixed(1)} / p99 ${quantile(quietGaps, 0.99).toFixed(1)} ms; ` +
    `while a 2,000-token prompt prefills (${(prefillWindow[1]! - prefillWindow[0]!).toFixed(0)} ms): p50 ${quantile(busy, 0.5).toFixed(1)} / p99 ${quantile(busy, 0.99).toFixed(1)} ms`,
);

const report = {
  date: new Date().toISOString(),
  loadAverage: loadavg()[0],
  threads,
  newTokens,
  maxBatchTokens,
  throughput,
  ratio16to1: throughput[16]!.tokensPerSecond / throughput[1]!.tokensPerSecond,
  timeToFirstTokenMs: ttft,
  prefillStepMs: prefillChunkMs,
  decodeStepAt16Ms: stepAt16,
  interTokenQuiet: { p50: quantile(quietGaps, 0.5), p99: quantile(quietGaps, 0.99) },
  interTokenDuringLongPrefill: {
    p50: quantile(busy, 0.5),
    p99: quantile(busy, 0.99),
    windowMs: prefillWindow[1]! - prefillWindow[0]!,
  },
};
console.log(
  `16 concurrent vs 1: ${report.ratio16to1.toFixed(2)}x (target >= 6x); outside forward at 16: ${(throughput[16]!.outsideForward * 100).toFixed(2)}% (target <= 5%)`,
);
if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(report, null, 2));
await backend.doDispose();

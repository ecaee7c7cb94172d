/**
 * Server benchmark: a loopback load test of `gen serve` on model-kit's tiny model (JS backend), and the same load
 * on the engine called in-process, to measure what HTTP + SSE cost per token.
 *
 *   pnpm --filter @gen/server bench [--duration 20] [--warmup 3] [--rounds 3] [--concurrency 64]
 *                                   [--max-new-tokens 64] [--only engine|http] [--json out.json] [--markdown out.md]
 *
 * Both modes, alternating `rounds` times: `concurrency` clients, each sending its next request as soon as the
 * previous one ends (closed loop), greedy, `max_new_tokens` tokens each (EOS ignored, so every request has the same
 * length), for `duration` seconds after `warmup` seconds that are not counted. The HTTP mode's clients live in
 * another process (bench/load-client.ts) and stream `POST /generate_stream` over keep-alive connections; the
 * in-process mode iterates `engine.generate()`. Besides throughput and latency, each mode measures the CPU time of
 * the process running the engine per token, which machine load disturbs much less than wall-clock throughput.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createEngine } from '@gen/engine';
import { ensureModelDir } from '@gen/model-kit';
import { loadModel } from '../src/model-loader.js';
import { createServer } from '../src/server.js';
import type { LoadClientSettings } from './load-client.js';
import { Recorder, cpuMeter, quantile, type LoadResult } from './stats.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '64' },
    'max-new-tokens': { type: 'string', default: '64' },
    json: { type: 'string' },
    markdown: { type: 'string' },
    only: { type: 'string' },
    rounds: { type: 'string', default: '3' },
  },
});
const durationMs = Number(values.duration) * 1000;
const warmupMs = Number(values.warmup) * 1000;
const concurrency = Number(values.concurrency);
const maxNewTokens = Number(values['max-new-tokens']);
const rounds = Number(values.rounds);
for (const [name, value] of Object.entries({ durationMs, warmupMs, concurrency, maxNewTokens, rounds })) {
  if (!Number.isFinite(value) || value < 0) throw new Error(`bad --${name}: ${value}`);
}

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const prompts = Array.from(
  { length: concurrency },
  (_, i) => `Client ${i} asks: what would you do with ${i + 1} apples and a long afternoon?`,
);

async function model() {
  const modelDir = await ensureModelDir('tiny');
  return loadModel({ modelDir, backend: 'js', maxBatchSize: concurrency, modelId: 'tiny', log: () => undefined });
}

/** The load on the engine, in-process: the same clients, iterating the generation events. */
async function inProcess(): Promise<LoadResult> {
  const loaded = await model();
  const engine = createEngine({
    backend: loaded.backend,
    tokenizer: loaded.tokenizer,
    limits: { maxConcurrentRequests: 4 * concurrency },
  });
  const start = performance.now() + warmupMs;
  const end = start + durationMs;
  const recorder = new Recorder(start, end);
  let stopping = false;
  const live = new Set<{ cancel(): void }>();
  const client = async (index: number) => {
    while (!stopping && performance.now() < end) {
      const sentAt = performance.now();
      const tracked = recorder.request(sentAt);
      const stream = engine.generate({
        inputs: prompts[index]!,
        parameters: { maxNewTokens, ignoreEos: true },
      });
      live.add(stream);
      try {
        for await (const event of stream) {
          const at = performance.now();
          if (event.type === 'token') tracked.token(at);
          else if (event.type === 'done') tracked.done(at);
          else if (event.type === 'error' && !stopping) tracked.failed(at, event.error.message);
        }
      } finally {
        live.delete(stream);
      }
    }
  };
  const cpu = cpuMeter();
  setTimeout(() => cpu.begin(), Math.max(0, start - performance.now()));
  const clients = Array.from({ length: concurrency }, (_, i) => client(i));
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, end - performance.now())));
  cpu.finish();
  stopping = true;
  for (const stream of live) stream.cancel();
  await Promise.all(clients);
  await engine.close({ timeoutMs: 1_000 });
  await loaded.backend.doDispose();
  return { ...recorder.result, cpuMs: cpu.ms };
}

/** The load over HTTP: `gen serve`'s server in this process, the clients in another. */
async function overHttp(): Promise<LoadResult> {
  const server = createServer({ model: await model(), limits: { maxConcurrentRequests: 4 * concurrency } });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  await server.ready;
  const { port } = server.app.server.address() as AddressInfo;
  const settings: LoadClientSettings = {
    url: `http://127.0.0.1:${port}`,
    concurrency,
    warmupMs,
    durationMs,
    bodies: prompts.map((inputs) => ({ inputs, parameters: { max_new_tokens: maxNewTokens, ignore_eos: true } })),
  };
  const cpu = cpuMeter();
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=@gen/source', '--import', 'tsx', join(BENCH_DIR, 'load-client.ts'), JSON.stringify(settings)],
      { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] },
    );
    child.on('message', (message) => {
      if (message === 'window-start') cpu.begin();
      if (message === 'window-end') cpu.finish();
    });
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`load client exited with ${code}`))));
  });
  await server.close({ timeoutMs: 2_000 });
  return { ...(JSON.parse(output) as LoadResult), cpuMs: cpu.ms };
}

const ms = (value: number) => (Number.isNaN(value) ? 'n/a' : `${value.toFixed(1)} ms`);

function summary(result: LoadResult) {
  return {
    tokensPerSecond: result.tokens / result.seconds,
    requestsPerSecond: result.completed / result.seconds,
    ttftP50: quantile(result.ttftMs, 0.5),
    ttftP99: quantile(result.ttftMs, 0.99),
    itlP50: quantile(result.itlMs, 0.5),
    itlP99: quantile(result.itlMs, 0.99),
    cpuPerTokenUs: ((result.cpuMs ?? Number.NaN) * 1000) / result.tokens,
    tokens: result.tokens,
    completed: result.completed,
    errors: result.errors,
    errorSamples: result.errorSamples,
  };
}

const machine = `${cpus().length} x ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${process.platform} ${process.arch}, Node ${process.versions.node}`;
const loadBefore = loadavg().map((l) => l.toFixed(2));
process.stderr.write(
  `server bench: ${concurrency} clients, ${maxNewTokens} tokens per request, ${warmupMs / 1000} s warm-up + ${durationMs / 1000} s per run\n` +
    `machine: ${machine}; load average before: ${loadBefore.join(' ')}\n`,
);
/** Several runs as one: tokens and time add up, latencies are pooled. */
function merge(results: LoadResult[]): LoadResult {
  return {
    seconds: results.reduce((sum, r) => sum + r.seconds, 0),
    tokens: results.reduce((sum, r) => sum + r.tokens, 0),
    completed: results.reduce((sum, r) => sum + r.completed, 0),
    errors: results.reduce((sum, r) => sum + r.errors, 0),
    errorSamples: results.flatMap((r) => r.errorSamples).slice(0, 5),
    ttftMs: results.flatMap((r) => r.ttftMs),
    itlMs: results.flatMap((r) => r.itlMs),
    cpuMs: results.reduce((sum, r) => sum + (r.cpuMs ?? Number.NaN), 0),
  };
}

// Rounds alternate (engine, HTTP, engine, HTTP...) so that drift in the machine's load hits both alike.
const engineRuns: LoadResult[] = [];
const httpRuns: LoadResult[] = [];
for (let round = 1; round <= rounds; round++) {
  if (values.only !== 'http') {
    process.stderr.write(`round ${round}/${rounds}: in-process engine...\n`);
    engineRuns.push(await inProcess());
  }
  if (values.only !== 'engine') {
    process.stderr.write(`round ${round}/${rounds}: HTTP + SSE...\n`);
    httpRuns.push(await overHttp());
  }
  const e = engineRuns.at(-1);
  const h = httpRuns.at(-1);
  if (e !== undefined && h !== undefined) {
    process.stderr.write(
      `  tokens/s: engine ${(e.tokens / e.seconds).toFixed(0)}, HTTP ${(h.tokens / h.seconds).toFixed(0)} (ratio ${(h.tokens / h.seconds / (e.tokens / e.seconds)).toFixed(3)}); load ${loadavg()[0]!.toFixed(2)}\n`,
    );
  }
}
const empty: LoadResult = { seconds: 1, tokens: 0, completed: 0, errors: 0, errorSamples: [], ttftMs: [], itlMs: [] };
const engineRun = summary(engineRuns.length === 0 ? empty : merge(engineRuns));
const httpRun = summary(httpRuns.length === 0 ? empty : merge(httpRuns));
const roundRatios = engineRuns.map((e, i) => {
  const h = httpRuns[i];
  return h === undefined ? Number.NaN : h.tokens / h.seconds / (e.tokens / e.seconds);
});
const cpuRatios = engineRuns.map((e, i) => {
  const h = httpRuns[i];
  return h === undefined ? Number.NaN : (h.cpuMs ?? Number.NaN) / h.tokens / ((e.cpuMs ?? Number.NaN) / e.tokens);
});
const loadAfter = loadavg().map((l) => l.toFixed(2));

const ratio = httpRun.tokensPerSecond / engineRun.tokensPerSecond;
const cpuOverhead = httpRun.cpuPerTokenUs / engineRun.cpuPerTokenUs - 1;
const overhead = engineRun.tokensPerSecond / httpRun.tokensPerSecond - 1;
const date = new Date().toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
const rows: [string, string, string][] = [
  ['tokens/s (all clients)', engineRun.tokensPerSecond.toFixed(0), httpRun.tokensPerSecond.toFixed(0)],
  ['requests/s', engineRun.requestsPerSecond.toFixed(1), httpRun.requestsPerSecond.toFixed(1)],
  ['time to first token p50', ms(engineRun.ttftP50), ms(httpRun.ttftP50)],
  ['time to first token p99', ms(engineRun.ttftP99), ms(httpRun.ttftP99)],
  ['inter-token latency p50', ms(engineRun.itlP50), ms(httpRun.itlP50)],
  ['inter-token latency p99', ms(engineRun.itlP99), ms(httpRun.itlP99)],
  [
    'CPU time of the engine process per token',
    `${engineRun.cpuPerTokenUs.toFixed(1)} µs`,
    `${httpRun.cpuPerTokenUs.toFixed(1)} µs`,
  ],
  ['requests completed', String(engineRun.completed), String(httpRun.completed)],
  ['errors', String(engineRun.errors), String(httpRun.errors)],
];
const markdown = [
  `**Run:** ${date}; ${machine}; load average (1, 5, 15 min) ${loadBefore.join(' / ')} before, ${loadAfter.join(' / ')} after.`,
  `${concurrency} concurrent streaming clients, ${maxNewTokens} tokens per request (greedy, EOS ignored); ${rounds} alternating rounds of ${durationMs / 1000} s measured (after ${warmupMs / 1000} s of warm-up) per mode; figures pool the rounds.`,
  '',
  '| | engine in-process | HTTP + SSE (`/generate_stream`) |',
  '| --- | ---: | ---: |',
  ...rows.map(([name, a, b]) => `| ${name} | ${a} | ${b} |`),
  '',
  `**HTTP + SSE overhead per token** (target <= 10%):`,
  '',
  `- wall clock: ${(overhead * 100).toFixed(1)}% (pooled HTTP tokens/s / in-process tokens/s = ${ratio.toFixed(3)}; per round: ${roundRatios.map((r) => r.toFixed(3)).join(', ')}; median ${quantile(roundRatios, 0.5).toFixed(3)});`,
  `- CPU time of the process running the engine: +${(cpuOverhead * 100).toFixed(1)}% (per round: ${cpuRatios.map((r) => `+${((r - 1) * 100).toFixed(1)}%`).join(', ')}; median +${((quantile(cpuRatios, 0.5) - 1) * 100).toFixed(1)}%): what HTTP + SSE cost the server itself, whatever else runs on the machine (the load client has its own process).`,
].join('\n');
process.stdout.write(`\n${markdown}\n`);
if (httpRun.errorSamples.length > 0) process.stderr.write(`HTTP errors: ${httpRun.errorSamples.join(' | ')}\n`);
if (values.json !== undefined) {
  writeFileSync(
    values.json,
    JSON.stringify(
      {
        date,
        machine,
        loadBefore,
        loadAfter,
        concurrency,
        maxNewTokens,
        durationMs,
        warmupMs,
        rounds,
        engine: engineRun,
        http: httpRun,
        ratio,
        overhead,
        cpuOverhead,
        roundRatios,
        cpuRatios,
      },
      null,
      2,
    ),
  );
}
if (values.markdown !== undefined) writeFileSync(values.markdown, `${markdown}\n`);
if (httpRun.errors > 0 || engineRun.errors > 0) process.exitCode = 1;

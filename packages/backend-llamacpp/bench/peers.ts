/**
 * gen on llama.cpp against bare llama.cpp, in one process and one run, on the same GGUF files (model-kit's
 * `bench` preset by default: llama, 124.7M parameters, hidden 768, 12 layers, vocab 32,000; seed 0), for F32,
 * Q8_0 and Q4_0:
 *
 * - `gen`: `@gen/engine` over this package's backend, with `@gen/tokenizer`'s tokenizer of the GGUF file; greedy,
 *   `ignoreEos`, `logprobs: false` (what an OpenAI request without `logprobs` asks), `--tokens` new tokens per
 *   request. Decode tok/s of one request, aggregate decode tok/s of 4 and 16
 *   concurrent requests, and the time to first token of a `--prefill`-token prompt. The backend's `doForward` is
 *   wrapped with a timer: the engine's share of a decode step is the part of the decode phase's wall time spent
 *   outside `doForward` (scheduling, sampling, detokenizing, events, the event-loop yield between steps).
 * - `bare`: the same libllama through the same koffi binding (`loadLlamaCApi`), no gen code: model, context (the
 *   same `llama_context_params` the backend sets, the same kind of thread pool attached), one `llama_batch`,
 *   `llama_decode` one token per sequence per
 *   call with a greedy argmax over `llama_get_logits_ith`, at 1, 4 and 16 sequences (seq_ids 0..n-1), and a
 *   `--prefill`-token prefill (one `llama_decode`, logits of the last token only).
 *
 * Decode tok/s is measured after the prompt: (tokens - 1) steps per sequence over the time from the first token to
 * the last, on both sides. Each measurement (decode at one concurrency, prefill) runs gen and bare back to back, in
 * an order that alternates between rounds, so a pair sees the same machine. A decode measurement is itself
 * `--repeats` runs of each side interleaved A B B A ..., and its ratio is the median over every adjacent pair of
 * runs (rounds × repeats) of gen / bare, so a drift of the shared machine's speed falls on both sides; prefill and
 * mixed (one run per side and round) take the median over rounds. Besides wall-clock tok/s, tokens per second of
 * process CPU time (`process.cpuUsage`) are reported: on a loaded machine they move much less than wall time (a descheduled thread costs wall time, not CPU
 * time), and with `--threads 1` the decode runs on the calling thread, so the process's CPU time is the work done.
 *
 *   pnpm --filter @gen/backend-llamacpp bench:peers [--preset bench] [--types f32,q8_0,q4_0] [--threads 2]
 *     [--thread-pool persistent|per-decode] [--thread-poll 0]
 *     [--tokens 32] [--prompt 16] [--prefill 512] [--concurrency 1,4,16] [--rounds 3] [--repeats 4] [--json out.json]
 *
 * - `onnx`: the same engine over `@gen/backend-onnx` on model-kit's fused ONNX export of the same seeded weights
 *   (fp32 for F32; for Q8_0 / Q4_0 the int8 / q4 `MatMulNBits` files, block 32: the same float weights quantized
 *   by onnxruntime's 8- and 4-bit block formats instead of ggml's).
 * - `transformers.js`: `@huggingface/transformers` on the standard ONNX export of the same weights, greedy
 *   `generate` (decode tok/s = (newTokens - 1) / (time of generate(newTokens) - time of generate(1)); batch 1
 *   only, since its generate takes one padded batch, not concurrent requests).
 *
 * `--peers onnx,transformers` (default) picks the extra contenders; `--peers none` runs gen and bare only.
 * Ratios are against `bare`, per round, medians over rounds. Two phases: gen and bare alone, every weight type
 * (the targets are judged there), then the other engines, loaded only then, each round paired with bare again:
 * sharing the process with more engines (their thread pools, heaps) measurably slows llama.cpp and gen's steps, so
 * they do not overlap, nor precede a phase 1.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ensureGgufModel, type GgufWeightType, type PresetName } from '@gen/model-kit';
// Development dependencies (a benchmark only). `bench:peers` builds the workspace and runs on the built packages
// (dist), as `gen serve` does: through tsx's source transform gen's JavaScript measured 2-4% slower per step.
import { createEngine, type Engine, type StepStats } from '@gen/engine';
import { loadTokenizer } from '@gen/tokenizer';
import { createOnnxBackend } from '@gen/backend-onnx';
import { ensureModelDir } from '@gen/model-kit';
import type { BackendV1 } from '@gen/backend';
import { loadTransformersModel } from '../../backend-onnx/bench/transformers-js.js';
import { createLlamaCppBackend, loadLlamaCApi } from '@gen/backend-llamacpp';
import type { LlamaBatch, LlamaContextParams, LlamaModelParams, Pointer } from '../src/llama-c-api.js';

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'bench' },
    types: { type: 'string', default: 'f32,q8_0,q4_0' },
    threads: { type: 'string', default: '2' },
    tokens: { type: 'string', default: '32' },
    prompt: { type: 'string', default: '16' },
    prefill: { type: 'string', default: '512' },
    concurrency: { type: 'string', default: '1,4,16' },
    rounds: { type: 'string', default: '3' },
    repeats: { type: 'string', default: '4' },
    json: { type: 'string' },
    peers: { type: 'string', default: 'onnx,transformers' },
    'mixed-requests': { type: 'string', default: '48' },
    'mixed-tokens': { type: 'string', default: '8-64' },
    'thread-pool': { type: 'string', default: 'persistent' },
    'thread-poll': { type: 'string', default: '0' },
  },
});
const peers = new Set(values.peers === 'none' ? [] : values.peers.split(','));
const preset = values.preset as PresetName;
const types = values.types.split(',') as GgufWeightType[];
const threads = Number(values.threads);
const newTokens = Number(values.tokens);
const promptLength = Number(values.prompt);
const prefillLength = Number(values.prefill);
const concurrencies = values.concurrency.split(',').map(Number);
const rounds = Number(values.rounds);
const repeats = Number(values.repeats);
if (!(Number.isInteger(repeats) && repeats >= 1)) throw new RangeError('--repeats must be an integer >= 1');
if (values['thread-pool'] !== 'persistent' && values['thread-pool'] !== 'per-decode') {
  throw new RangeError('--thread-pool must be persistent or per-decode');
}
const threadPool = values['thread-pool'] === 'persistent';
const threadPoll = Number(values['thread-poll']);
const maxConcurrency = Math.max(...concurrencies);
const mixedRequests = Number(values['mixed-requests']);
const [mixedMin, mixedMax] = values['mixed-tokens'].split('-').map(Number) as [number, number];
if (!(mixedMin >= 1 && mixedMax >= mixedMin)) throw new RangeError('--mixed-tokens must be min-max, 1 <= min <= max');
/**
 * New tokens of request `r` of the mixed workload: spread over [mixedMin, mixedMax] by a fixed permutation, so
 * every batch of `maxConcurrency` consecutive requests mixes short and long ones.
 */
const mixedLength = (r: number) => mixedMin + ((r * 37) % (mixedMax - mixedMin + 1));
if (newTokens < 2) throw new RangeError('--tokens must be at least 2');
if (maxConcurrency * promptLength > 512) throw new RangeError('concurrency × prompt must fit one 512-token batch');

/** Context shared by both contenders: room for every sequence of the largest batch, or the long prompt. */
const batchTokens = 512;
const maxSequences = 32;
const contextSize =
  Math.max(maxConcurrency * (promptLength + Math.max(newTokens, mixedMax)), prefillLength + newTokens) + 64;

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' / ');
/** Process CPU time (user + system, all threads), ms. */
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
/**
 * A full garbage collection before every measurement (with `--expose-gc`, as `bench:peers` runs), so no contender
 * pays for the garbage the one before it left.
 */
const collectGarbage = () => (globalThis as { gc?: () => void }).gc?.();
/** Prompt token ids of one sequence (no special tokens: ids 3 and up). */
const promptIds = (length: number, salt: number, vocab: number) =>
  Array.from({ length }, (_, i) => 3 + ((i * 7919 + salt * 104729) % (vocab - 3)));

/**
 * [start, end] of every `llama_decode` call, gen's and bare's (the C API's function is wrapped once, before
 * either contender loads: both call it through the same `loadLlamaCApi()` object).
 */
const decodeCalls: Array<[number, number]> = [];
{
  const fn = loadLlamaCApi().fn as Record<string, unknown>;
  const decode = fn['llama_decode'] as ((...args: unknown[]) => unknown) & { async: unknown };
  const timed = (...args: unknown[]) => {
    const start = performance.now();
    try {
      return decode(...args);
    } finally {
      decodeCalls.push([start, performance.now()]);
    }
  };
  fn['llama_decode'] = Object.assign(timed, { async: decode.async });
}
/** ms per step inside `llama_decode` between `from` and `to` (wall ms), over `steps` steps. */
const decodeMsPerStep = (from: number, to: number, steps: number) =>
  decodeCalls.filter(([start, end]) => start >= from && end <= to).reduce((sum, [start, end]) => sum + end - start, 0) /
  steps;

/** One measurement: tokens per wall-clock second and per second of process CPU time. */
interface Rate {
  wall: number;
  cpu: number;
}
interface DecodeRun extends Rate {
  /** Share of the decode phase's wall time outside `doForward` (gen only). */
  outside?: number;
  /**
   * gen only: ms per decode step, from the engine's `onStep` stats: wall time, in `doForward`, sampling, the rest
   * of the step (planning, detokenizing, events), and between steps (the event-loop yield, stream consumers).
   */
  split?: { wall: number; forward: number; sampling: number; other: number; between: number };
  /** ms per decode step inside `llama_decode` (gen and bare): the same kernels, so a difference is interference. */
  decodeMs?: number;
  /** Greedy tokens of the first sequence. */
  tokens: number[];
}

interface Contender {
  readonly name: string;
  /**
   * `concurrency` sequences of `promptLength` tokens, then `newTokens` greedy tokens each; `undefined` when the
   * contender cannot run that concurrency.
   */
  decode(concurrency: number, salt: number): Promise<DecodeRun | undefined>;
  /** One `prefillLength`-token prompt to its first token. */
  prefill(salt: number): Promise<Rate>;
  /**
   * The mixed workload: `mixedRequests` requests of `promptLength` tokens and `mixedLength(r)` new tokens, at most
   * `maxConcurrency` at a time. Generated tokens (all of them) per second from the first request to the last
   * token; `undefined` when the contender cannot serve concurrent requests.
   */
  mixed(salt: number): Promise<Rate | undefined>;
  dispose(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// gen: engine + backend-llamacpp

async function genContender(file: string): Promise<Contender> {
  const backend = await createLlamaCppBackend({
    modelPath: file,
    threads,
    maxBatchSize: maxConcurrency,
    maxSequences,
    contextSize,
    batchTokens,
    maxPositions: contextSize,
    threadPool,
    threadPoll,
  });
  return engineContender('gen', backend, await loadTokenizer(file));
}

const onnxDtypes = { f32: 'fp32', q8_0: 'int8', q4_0: 'q4' } as const;

/** gen's engine over backend-onnx on the fused export of the same seeded weights. */
async function onnxContender(type: GgufWeightType): Promise<Contender | undefined> {
  const dtype = onnxDtypes[type as keyof typeof onnxDtypes];
  if (dtype === undefined) return undefined;
  const dir = await ensureModelDir(preset, { onnxGraphStyle: 'fused', onnxVariants: ['fp32', dtype] });
  const backend = await createOnnxBackend({
    modelDir: dir,
    dtype,
    intraOpThreads: threads,
    maxBatchSize: maxConcurrency,
  });
  return engineContender('onnx', backend, await loadTokenizer(dir));
}

/** transformers.js on the standard export of the same weights; batch 1 only. */
async function transformersContender(type: GgufWeightType): Promise<Contender | undefined> {
  const dtype = onnxDtypes[type as keyof typeof onnxDtypes];
  if (dtype === undefined) return undefined;
  const dir = await ensureModelDir(preset, { onnxGraphStyle: 'standard', onnxVariants: ['fp32', dtype] });
  // Without spin-waiting threads: they would take CPU from the contender measured next.
  const model = await loadTransformersModel(dir, dtype, threads, { spinning: false });
  const vocab = (JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')) as { vocab_size: number }).vocab_size;
  await model.generate(promptIds(promptLength, 0, vocab), 4);
  await model.generate(promptIds(prefillLength, 99, vocab), 1);
  const timed = async (prompt: number[], n: number) => {
    const wall = performance.now();
    const cpu = cpuMs();
    const tokens = await model.generate(prompt, n);
    return { wall: performance.now() - wall, cpu: cpuMs() - cpu, tokens };
  };
  return {
    name: 'transformers.js',
    async decode(c, salt) {
      if (c !== 1) return undefined;
      const prompt = promptIds(promptLength, salt * 100, vocab);
      const one = await timed(prompt, 1);
      const all = await timed(prompt, newTokens);
      return {
        wall: (newTokens - 1) / ((all.wall - one.wall) / 1000),
        cpu: (newTokens - 1) / ((all.cpu - one.cpu) / 1000),
        tokens: all.tokens,
      };
    },
    async prefill(salt) {
      const run = await timed(promptIds(prefillLength, salt * 100 + 50, vocab), 1);
      return { wall: prefillLength / (run.wall / 1000), cpu: prefillLength / (run.cpu / 1000) };
    },
    mixed: () => Promise.resolve(undefined),
    dispose: () => model.dispose(),
  };
}

/** `@gen/engine` over `backend`, with `doForward` timed. */
async function engineContender(
  name: string,
  backend: BackendV1,
  tokenizer: Awaited<ReturnType<typeof loadTokenizer>>,
): Promise<Contender> {
  // Time inside doForward: [start, end] of every call. The engine awaits the backend's own promise (an async
  // wrapper would add microtask hops to every step that the bare loop does not pay: a few us at batch 1); the end
  // is taken in a reaction registered before the engine's, so it runs first.
  const forwards: Array<[number, number]> = [];
  const forward = backend.doForward.bind(backend);
  backend.doForward = (options) => {
    const start = performance.now();
    const result = forward(options);
    result.then(
      () => forwards.push([start, performance.now()]),
      () => undefined,
    );
    return result;
  };
  const steps: StepStats[] = [];
  const engine: Engine = createEngine({
    backend,
    tokenizer,
    scheduler: { maxBatchTokens: batchTokens },
    onStep: (stats) => steps.push(stats),
  });
  const vocab = backend.model.vocabSize;

  /**
   * Runs the requests to the end. `first` is when the last of them got its first token, `last` when the last
   * token of all arrived (wall and CPU ms, taken in the token events); `ids` the tokens of the first request.
   */
  const run = async (prompts: number[][], maxNewTokens: number | ((r: number) => number)) => {
    const lengthOf = typeof maxNewTokens === 'number' ? () => maxNewTokens : maxNewTokens;
    const total = prompts.reduce((sum, _, r) => sum + lengthOf(r), 0);
    let firsts = 0;
    let tokens = 0;
    const first = { wall: 0, cpu: 0 };
    const last = { wall: 0, cpu: 0 };
    const ids: number[] = [];
    await Promise.all(
      prompts.map(async (inputs, r) => {
        const length = lengthOf(r);
        // As an OpenAI request without `logprobs` (the common case): no per-token log-sum-exp, like the bare argmax.
        const stream = engine.generate({
          inputs,
          parameters: { maxNewTokens: length, ignoreEos: true, logprobs: false },
        });
        let count = 0;
        for await (const event of stream) {
          if (event.type === 'token') {
            // process.cpuUsage (getrusage over every thread of the process) only where it is recorded: per
            // token it cost gen microseconds per event that the bare loop, which reads it twice, does not pay.
            const wall = performance.now();
            if (count++ === 0 && ++firsts === prompts.length) Object.assign(first, { wall, cpu: cpuMs() });
            if (++tokens === total) Object.assign(last, { wall, cpu: cpuMs() });
            if (r === 0) ids.push(event.token.id);
          } else if (event.type === 'error') throw event.error;
        }
        if (count !== length) throw new Error(`${name}: ${count} tokens, expected ${length}`);
      }),
    );
    return { first, last, ids, total };
  };

  // Warm-up: graph shapes of every batch size and of the long prefill.
  for (const c of concurrencies) {
    await run(
      Array.from({ length: c }, (_, i) => promptIds(promptLength, i, vocab)),
      4,
    );
  }
  await run([promptIds(prefillLength, 99, vocab)], 1);

  return {
    name,
    async decode(c, salt) {
      const prompts = Array.from({ length: c }, (_, i) => promptIds(promptLength, salt * 100 + i, vocab));
      forwards.length = 0;
      steps.length = 0;
      decodeCalls.length = 0;
      const { first, last, ids } = await run(prompts, newTokens);
      const tokens = c * (newTokens - 1);
      const decodeSteps = steps.filter((step) => step.prefillTokens === 0);
      const perStep = (field: 'forwardMs' | 'samplingMs' | 'otherMs') =>
        decodeSteps.reduce((sum, step) => sum + step[field], 0) / decodeSteps.length;
      const stepWall = (last.wall - first.wall) / (newTokens - 1);
      const split = {
        wall: stepWall,
        forward: perStep('forwardMs'),
        sampling: perStep('samplingMs'),
        other: perStep('otherMs'),
        between: stepWall - perStep('forwardMs') - perStep('samplingMs') - perStep('otherMs'),
      };
      const inForward = forwards
        .filter(([start, end]) => start >= first.wall && end <= last.wall)
        .reduce((sum, [start, end]) => sum + (end - start), 0);
      return {
        wall: tokens / ((last.wall - first.wall) / 1000),
        cpu: tokens / ((last.cpu - first.cpu) / 1000),
        outside: 1 - inForward / (last.wall - first.wall),
        split,
        decodeMs: decodeMsPerStep(first.wall, last.wall, newTokens - 1),
        tokens: ids,
      };
    },
    async prefill(salt) {
      const wall = performance.now();
      const cpu = cpuMs();
      const { first } = await run([promptIds(prefillLength, salt * 100 + 50, vocab)], 1);
      return {
        wall: prefillLength / ((first.wall - wall) / 1000),
        cpu: prefillLength / ((first.cpu - cpu) / 1000),
      };
    },
    async mixed(salt) {
      // All requests at once: the engine admits them as sequences finish (continuous batching), at most
      // maxConcurrency (the backend's maxBatchSize) live.
      const prompts = Array.from({ length: mixedRequests }, (_, r) => promptIds(promptLength, salt * 1000 + r, vocab));
      const wall = performance.now();
      const cpu = cpuMs();
      const { last, total } = await run(prompts, mixedLength);
      return { wall: total / ((last.wall - wall) / 1000), cpu: total / ((last.cpu - cpu) / 1000) };
    },
    async dispose() {
      await engine.close();
      await backend.doDispose();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// bare: libllama through koffi, no gen code

function bareContender(file: string): Contender {
  const api = loadLlamaCApi();
  const { fn, koffi } = api;
  const modelParams = fn.llama_model_default_params() as LlamaModelParams;
  modelParams.n_gpu_layers = 0;
  const model = fn.llama_model_load_from_file(file, modelParams) as Pointer;
  if (model === null) throw new Error(`bare: llama.cpp could not load ${file}`);
  const params = fn.llama_context_default_params() as LlamaContextParams;
  // The same context the backend creates (see createLlamaCppBackend).
  Object.assign(params, {
    n_ctx: contextSize,
    n_batch: batchTokens,
    n_ubatch: batchTokens,
    n_seq_max: maxSequences,
    n_outputs_max: Math.max(batchTokens, maxSequences),
    n_outputs_max_per_seq: 0,
    n_threads: threads,
    n_threads_batch: threads,
    flash_attn_type: 0,
    type_k: 1,
    type_v: 1,
    no_perf: true,
    kv_unified: true,
    offload_kqv: false,
    op_offload: false,
  });
  const context = fn.llama_init_from_model(model, params) as Pointer;
  if (context === null) throw new Error('bare: llama.cpp could not create a context');
  // The same thread pool as the backend's (llama.cpp's CLI tools attach one too).
  const pool = threadPool ? api.threadPools?.create(threads, threadPoll) : undefined;
  if (pool != null) fn.llama_attach_threadpool(context, pool, pool);
  const memory = fn.llama_get_memory(context) as Pointer;
  const vocab = fn.llama_vocab_n_tokens(fn.llama_model_get_vocab(model)) as number;
  const batch = fn.llama_batch_init(batchTokens, 0, 1) as LlamaBatch;
  const token = new Int32Array(koffi.view(batch.token, batchTokens * 4));
  const pos = new Int32Array(koffi.view(batch.pos, batchTokens * 4));
  new Int32Array(koffi.view(batch.n_seq_id, batchTokens * 4)).fill(1);
  const seq = (koffi.decode(batch.seq_id, 'void *', batchTokens) as Pointer[]).map(
    (pointer) => new Int32Array(koffi.view(pointer, 4)),
  );
  const wantLogits = new Int8Array(koffi.view(batch.logits, batchTokens));

  const decode = (count: number) => {
    batch.n_tokens = count;
    const status = fn.llama_decode(context, batch) as number;
    if (status !== 0) throw new Error(`bare: llama_decode returned ${status}`);
  };
  // One view per output row address (llama.cpp reuses its output buffer): no garbage per step, as the backend.
  const views = new Map<bigint, Float32Array>();
  const argmaxAt = (k: number) => {
    const pointer = fn.llama_get_logits_ith(context, k) as Pointer;
    const address = koffi.address(pointer);
    let logits = views.get(address);
    if (logits === undefined) views.set(address, (logits = new Float32Array(koffi.view(pointer, vocab * 4))));
    let best = 0;
    for (let v = 1; v < vocab; v++) if (logits[v]! > logits[best]!) best = v;
    return best;
  };
  /** Prefills `prompts` (one sequence each, one llama_decode) from an empty cache; the first token of each. */
  const prefill = (prompts: number[][]) => {
    fn.llama_memory_clear(memory, true);
    let count = 0;
    const last: number[] = [];
    prompts.forEach((prompt, s) => {
      prompt.forEach((id, j) => {
        token[count] = id;
        pos[count] = j;
        seq[count]![0] = s;
        wantLogits[count] = j === prompt.length - 1 ? 1 : 0;
        count++;
      });
      last.push(count - 1);
    });
    decode(count);
    return last.map(argmaxAt);
  };
  /** `steps` decode steps of every sequence, one token each per llama_decode; the first sequence's tokens. */
  const decodeSteps = (next: number[], start: number, steps: number) => {
    const n = next.length;
    const ids = [next[0]!];
    for (let step = 0; step < steps; step++) {
      for (let s = 0; s < n; s++) {
        token[s] = next[s]!;
        pos[s] = start + step;
        seq[s]![0] = s;
        wantLogits[s] = 1;
      }
      decode(n);
      for (let s = 0; s < n; s++) next[s] = argmaxAt(s);
      ids.push(next[0]!);
    }
    return ids;
  };
  const prompts = (c: number, salt: number) =>
    Array.from({ length: c }, (_, i) => promptIds(promptLength, salt * 100 + i, vocab));

  // Warm-up, as for gen.
  for (const c of concurrencies) decodeSteps(prefill(prompts(c, 0)), promptLength, 3);
  prefill([promptIds(prefillLength, 99, vocab)]);

  return {
    name: 'bare',
    decode(c, salt) {
      const first = prefill(prompts(c, salt));
      decodeCalls.length = 0;
      const wall = performance.now();
      const cpu = cpuMs();
      const ids = decodeSteps(first, promptLength, newTokens - 1);
      const tokens = c * (newTokens - 1);
      const end = performance.now();
      return Promise.resolve({
        decodeMs: decodeMsPerStep(wall, end, newTokens - 1),
        wall: tokens / ((end - wall) / 1000),
        cpu: tokens / ((cpuMs() - cpu) / 1000),
        tokens: ids,
      });
    },
    mixed(salt) {
      // Static batches, as a plain batched loop (llama.cpp's `batched` example) runs them: the requests in groups
      // of maxConcurrency, each group prefilled in one llama_decode and decoded until its longest request ends;
      // a finished request leaves the batch, but its slot stays empty until the next group.
      const wall = performance.now();
      const cpu = cpuMs();
      let total = 0;
      for (let group = 0; group < mixedRequests; group += maxConcurrency) {
        const members = Array.from({ length: Math.min(maxConcurrency, mixedRequests - group) }, (_, i) => group + i);
        const next = prefill(members.map((r) => promptIds(promptLength, salt * 1000 + r, vocab)));
        const remaining = members.map((r) => mixedLength(r) - 1);
        total += members.length;
        for (let step = 0; remaining.some((n) => n > 0); step++) {
          let count = 0;
          const rows: number[] = [];
          members.forEach((_, s) => {
            if (remaining[s]! <= 0) return;
            token[count] = next[s]!;
            pos[count] = promptLength + step;
            seq[count]![0] = s;
            wantLogits[count] = 1;
            rows.push(s);
            count++;
          });
          decode(count);
          rows.forEach((s, k) => {
            next[s] = argmaxAt(k);
            remaining[s]!--;
          });
          total += count;
        }
      }
      return Promise.resolve({
        wall: total / ((performance.now() - wall) / 1000),
        cpu: total / ((cpuMs() - cpu) / 1000),
      });
    },
    prefill(salt) {
      const wall = performance.now();
      const cpu = cpuMs();
      prefill([promptIds(prefillLength, salt * 100 + 50, vocab)]);
      return Promise.resolve({
        wall: prefillLength / ((performance.now() - wall) / 1000),
        cpu: prefillLength / ((cpuMs() - cpu) / 1000),
      });
    },
    dispose() {
      fn.llama_memory_clear(memory, true);
      fn.llama_batch_free(batch);
      fn.llama_free(context);
      if (pool != null) api.threadPools!.free(pool);
      fn.llama_model_free(model);
      return Promise.resolve();
    },
  };
}

/**
 * One side's runs of a decode measurement as one: tok/s = all tokens over all time (every run decodes the same
 * number of tokens, so the harmonic mean of the rates), shares and ms per step averaged; the tokens are the first
 * run's, or empty when the runs disagree (so the same-tokens check fails).
 */
function combineRuns(runs: readonly DecodeRun[]): DecodeRun {
  const harmonic = (rate: (run: DecodeRun) => number) =>
    runs.length / runs.reduce((sum, run) => sum + 1 / rate(run), 0);
  const mean = (value: (run: DecodeRun) => number) => runs.reduce((sum, run) => sum + value(run), 0) / runs.length;
  const first = runs[0]!;
  const same = runs.every((run) => run.tokens.join() === first.tokens.join());
  return {
    wall: harmonic((run) => run.wall),
    cpu: harmonic((run) => run.cpu),
    ...(first.outside === undefined ? {} : { outside: mean((run) => run.outside!) }),
    ...(first.split === undefined
      ? {}
      : {
          split: {
            wall: mean((run) => run.split!.wall),
            forward: mean((run) => run.split!.forward),
            sampling: mean((run) => run.split!.sampling),
            other: mean((run) => run.split!.other),
            between: mean((run) => run.split!.between),
          },
        }),
    ...(first.decodeMs === undefined ? {} : { decodeMs: mean((run) => run.decodeMs!) }),
    tokens: same ? first.tokens : [],
  };
}

// ---------------------------------------------------------------------------------------------------------------

/** Per measurement (`x1`, `x4`, ..., `prefill`): every round's figures of both contenders. */
type Measurement = {
  gen: Array<Rate & Partial<Pick<DecodeRun, 'outside' | 'split' | 'decodeMs'>>>;
  bare: Array<Rate & Partial<Pick<DecodeRun, 'decodeMs'>>>;
  /**
   * Decode only: gen / bare of every adjacent pair of runs (run `i` of each side, back to back), `repeats` per
   * round. Their median is the decode ratio: the host's speed drifts within a round, and a pair is close in time.
   */
  pairs?: Rate[];
  sameTokens?: boolean;
  /** The other contenders (onnx, transformers.js): per round, with bare's figure of the same round. */
  others: Record<string, Array<{ rate: Rate; bare: Rate }>>;
};

interface Summary {
  gen: Rate;
  bare: Rate;
  /**
   * gen / bare: for decode the median over every adjacent pair of runs (`Measurement.pairs`), for prefill and
   * mixed the median over rounds.
   */
  ratio: Rate;
  /** Decode only: the median over rounds of the round's gen / bare (all of a round's runs pooled per side). */
  ratioByRound?: Rate;
  /** Median share of gen's decode phase outside doForward. */
  outside?: number;
  /** Medians of gen's ms per decode step (see DecodeRun.split). */
  split?: NonNullable<DecodeRun['split']>;
  /** Median ms per decode step inside `llama_decode`, gen's and bare's. */
  decodeMs?: { gen: number; bare: number };
  sameTokens?: boolean;
  /** Other contenders: median tok/s and median ratio to bare. */
  others: Record<string, { rate: Rate; ratio: Rate }>;
}

interface TypeResult {
  type: GgufWeightType;
  file: string;
  load: string;
  measurements: Record<string, Measurement>;
  summary: Record<string, Summary>;
}

const started = performance.now();
const loadStart = load();
const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical CPUs, Node ${process.version}`;
console.log(
  `gen on llama.cpp vs bare llama.cpp: preset ${preset}, ${types.join(' / ')}, ${threads} threads (${values['thread-pool']} pool), prompt ${promptLength}, ` +
    `${newTokens} new tokens, concurrency ${concurrencies.join(' / ')}, prefill ${prefillLength}, ${rounds} rounds, decode runs ${repeats}x per side and round (A B B A)`,
);
console.log(`${machine}; load average ${loadStart}`);

const keys = [...concurrencies.map((c) => `x${c}`), 'prefill', 'mixed'];
/** Keys of measurements that are not decode runs at one concurrency. */
const notDecode = (key: string) => key === 'prefill' || key === 'mixed';
const results: TypeResult[] = [];
let libraryInfo: Record<string, unknown> = {};
/** Phase 1's measurements per weight type, completed by phase 2. */
const phases: Array<{ type: GgufWeightType; file: string; measurements: Record<string, Measurement> }> = [];
for (const type of types) {
  const { file } = await ensureGgufModel(preset, { type });
  const gen = await genContender(file);
  const bare = bareContender(file);
  const api = loadLlamaCApi();
  libraryInfo = { library: api.library, packageVersion: api.packageVersion, cpuVariants: api.cpuVariants };
  console.log(`\n${type}: ${file}; load average ${load()}`);
  const measurements: Record<string, Measurement> = Object.fromEntries(
    keys.map((key) => [
      key,
      { gen: [], bare: [], others: {}, ...(notDecode(key) ? {} : { pairs: [], sameTokens: true }) },
    ]),
  );
  // Phase 1: gen against bare, alone in the process (the targets are judged here).
  for (let round = 0; round < rounds; round++) {
    const salt = round + 1;
    const order = round % 2 === 0 ? [gen, bare] : [bare, gen];
    const line: string[] = [];
    for (const c of concurrencies) {
      const all: Record<string, DecodeRun[]> = { gen: [], bare: [] };
      for (let repeat = 0; repeat < repeats; repeat++) {
        for (const contender of repeat % 2 === 0 ? order : [...order].reverse()) {
          collectGarbage();
          all[contender.name]!.push((await contender.decode(c, salt))!);
        }
      }
      const runs: Record<string, DecodeRun> = { gen: combineRuns(all['gen']!), bare: combineRuns(all['bare']!) };
      const m = measurements[`x${c}`]!;
      m.gen.push({
        wall: runs['gen']!.wall,
        cpu: runs['gen']!.cpu,
        outside: runs['gen']!.outside!,
        split: runs['gen']!.split!,
        decodeMs: runs['gen']!.decodeMs,
      });
      m.bare.push({ wall: runs['bare']!.wall, cpu: runs['bare']!.cpu, decodeMs: runs['bare']!.decodeMs });
      all['gen']!.forEach((g, i) => {
        const b = all['bare']![i]!;
        m.pairs!.push({ wall: g.wall / b.wall, cpu: g.cpu / b.cpu });
      });
      m.sameTokens &&= runs['gen']!.tokens.length > 0 && runs['gen']!.tokens.join() === runs['bare']!.tokens.join();
      line.push(
        `x${c} ${runs['gen']!.wall.toFixed(1)} / ${runs['bare']!.wall.toFixed(1)} (outside ${(runs['gen']!.outside! * 100).toFixed(1)}%)`,
      );
    }
    const prefills: Record<string, Rate> = {};
    for (const contender of order) {
      collectGarbage();
      prefills[contender.name] = await contender.prefill(salt);
    }
    measurements['prefill']!.gen.push(prefills['gen']!);
    measurements['prefill']!.bare.push(prefills['bare']!);
    line.push(`prefill ${prefills['gen']!.wall.toFixed(0)} / ${prefills['bare']!.wall.toFixed(0)}`);
    const mixed: Record<string, Rate> = {};
    for (const contender of order) {
      collectGarbage();
      mixed[contender.name] = (await contender.mixed(salt))!;
    }
    measurements['mixed']!.gen.push(mixed['gen']!);
    measurements['mixed']!.bare.push(mixed['bare']!);
    line.push(`mixed ${mixed['gen']!.wall.toFixed(0)} / ${mixed['bare']!.wall.toFixed(0)}`);
    console.log(`  round ${round} (${order[0]!.name} first), tok/s gen / bare: ${line.join(', ')}; load ${load()}`);
  }
  await gen.dispose();
  await bare.dispose();
  phases.push({ type, file, measurements });
}
// Phase 2, after phase 1 of every type: the other engines (loaded only now, so their threads and memory cannot
// disturb any phase 1: measured, gen's steps after an ONNX phase spent 2-3x longer between steps), each round
// paired with a bare run of the same round.
for (const { type, file, measurements } of phases) {
  const bare = bareContender(file);
  console.log(`\n${type}, other engines; load average ${load()}`);
  const others: Contender[] = [];
  if (peers.has('onnx')) {
    const onnx = await onnxContender(type);
    if (onnx !== undefined) others.push(onnx);
  }
  if (peers.has('transformers')) {
    const transformers = await transformersContender(type);
    if (transformers !== undefined) others.push(transformers);
  }
  for (const key of keys) for (const other of others) measurements[key]!.others[other.name] = [];
  for (let round = 0; round < rounds && others.length > 0; round++) {
    const salt = round + 1;
    const order = round % 2 === 0 ? [bare, ...others] : [...others].reverse().concat([bare]);
    const line: string[] = [];
    for (const c of concurrencies) {
      const runs: Record<string, DecodeRun> = {};
      for (const contender of order) {
        const run = await contender.decode(c, salt);
        if (run !== undefined) runs[contender.name] = run;
      }
      for (const other of others) {
        const run = runs[other.name];
        if (run !== undefined) measurements[`x${c}`]!.others[other.name]!.push({ rate: run, bare: runs['bare']! });
      }
      line.push(`x${c} ${order.map((o) => `${o.name} ${runs[o.name]?.wall.toFixed(1) ?? 'n/a'}`).join(' / ')}`);
    }
    const prefills: Record<string, Rate> = {};
    for (const contender of order) prefills[contender.name] = await contender.prefill(salt);
    for (const other of others) {
      measurements['prefill']!.others[other.name]!.push({ rate: prefills[other.name]!, bare: prefills['bare']! });
    }
    const mixed: Record<string, Rate> = {};
    for (const contender of order) {
      const rate = await contender.mixed(salt);
      if (rate !== undefined) mixed[contender.name] = rate;
    }
    for (const other of others) {
      const rate = mixed[other.name];
      if (rate !== undefined) measurements['mixed']!.others[other.name]!.push({ rate, bare: mixed['bare']! });
    }
    line.push(`mixed ${order.map((o) => `${o.name} ${mixed[o.name]?.wall.toFixed(0) ?? 'n/a'}`).join(' / ')}`);
    console.log(`  peers round ${round}, tok/s: ${line.join(', ')}; load ${load()}`);
  }
  for (const other of others) await other.dispose();
  await bare.dispose();
}
for (const { type, file, measurements } of phases) {
  const summary: Record<string, Summary> = {};
  for (const key of keys) {
    const m = measurements[key]!;
    const med = (xs: Rate[], field: keyof Rate) => median(xs.map((x) => x[field]));
    const byRound = (field: keyof Rate) => median(m.gen.map((g, i) => g[field] / m.bare[i]![field]));
    const ratio = (field: keyof Rate) =>
      m.pairs === undefined ? byRound(field) : median(m.pairs.map((pair) => pair[field]));
    summary[key] = {
      gen: { wall: med(m.gen, 'wall'), cpu: med(m.gen, 'cpu') },
      bare: { wall: med(m.bare, 'wall'), cpu: med(m.bare, 'cpu') },
      ratio: { wall: ratio('wall'), cpu: ratio('cpu') },
      ...(m.pairs === undefined ? {} : { ratioByRound: { wall: byRound('wall'), cpu: byRound('cpu') } }),
      others: Object.fromEntries(
        Object.entries(m.others)
          .filter(([, runs]) => runs.length > 0)
          .map(([name, runs]) => [
            name,
            {
              rate: { wall: median(runs.map((r) => r.rate.wall)), cpu: median(runs.map((r) => r.rate.cpu)) },
              ratio: {
                wall: median(runs.map((r) => r.rate.wall / r.bare.wall)),
                cpu: median(runs.map((r) => r.rate.cpu / r.bare.cpu)),
              },
            },
          ]),
      ),
      ...(notDecode(key)
        ? {}
        : {
            outside: median(m.gen.map((g) => g.outside!)),
            split: {
              wall: median(m.gen.map((g) => g.split!.wall)),
              forward: median(m.gen.map((g) => g.split!.forward)),
              sampling: median(m.gen.map((g) => g.split!.sampling)),
              other: median(m.gen.map((g) => g.split!.other)),
              between: median(m.gen.map((g) => g.split!.between)),
            },
            decodeMs: { gen: median(m.gen.map((g) => g.decodeMs!)), bare: median(m.bare.map((b) => b.decodeMs!)) },
            sameTokens: m.sameTokens!,
          }),
    };
  }
  results.push({ type, file, load: load(), measurements, summary });
}

const loadEnd = load();
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const headers = [
  ...concurrencies.map((c) => `decode x${c}`),
  `prefill ${prefillLength} (gen TTFT ms)`,
  `mixed: ${mixedRequests} requests, ${mixedMin}-${mixedMax} tokens, ${maxConcurrency} at a time`,
  `gen outside doForward ${concurrencies.map((c) => `x${c}`).join(' / ')}`,
  'same greedy tokens',
];
const lines = [
  '',
  `${machine}; ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; llama.cpp ${String(libraryInfo['packageVersion'])} ` +
    `(${String(libraryInfo['cpuVariants'])}); ${threads} threads, ${threadPool ? `a persistent thread pool (poll ${threadPoll})` : 'threads started per decode'}; load average (1 / 5 / 15 min) ${loadStart} at the start, ` +
    `${loadEnd} at the end; ${((performance.now() - started) / 1000).toFixed(0)} s. Medians of ${rounds} rounds (decode: ${repeats} interleaved runs per side in each); ` +
    `cells: gen / bare tok/s (gen / bare: decode, the median of the ${rounds * repeats} adjacent pairs of runs; prefill and mixed, of the rounds).`,
  '',
  `| weights | ${headers.join(' | ')} |`,
  `|---|${headers.map(() => '---').join('|')}|`,
  ...results.map((r) => {
    const cell = (key: string) => {
      const s = r.summary[key]!;
      return `${s.gen.wall.toFixed(1)} / ${s.bare.wall.toFixed(1)} (${s.ratio.wall.toFixed(3)})`;
    };
    const p = r.summary['prefill']!;
    return (
      `| ${r.type.toUpperCase()} | ${concurrencies.map((c) => cell(`x${c}`)).join(' | ')} | ` +
      `${p.gen.wall.toFixed(0)} / ${p.bare.wall.toFixed(0)} (${p.ratio.wall.toFixed(3)}; ${((prefillLength / p.gen.wall) * 1000).toFixed(0)}) | ` +
      `${cell('mixed')} | ` +
      `${concurrencies.map((c) => pct(r.summary[`x${c}`]!.outside!)).join(' / ')} | ` +
      `${concurrencies.map((c) => `x${c} ${r.summary[`x${c}`]!.sameTokens ? 'yes' : 'no'}`).join(', ')} |`
    );
  }),
  '',
  "Decode gen / bare by round instead (each round's runs pooled per side, median over rounds), wall clock: " +
    results
      .map(
        (r) =>
          `${r.type.toUpperCase()} ${concurrencies.map((c) => `x${c} ${r.summary[`x${c}`]!.ratioByRound!.wall.toFixed(3)}`).join(', ')}`,
      )
      .join('; ') +
    '.',
  '',
  'The same per second of process CPU time: gen / bare tok/s (median ratio).',
  '',
  `| weights | ${[...concurrencies.map((c) => `decode x${c}`), `prefill ${prefillLength}`, 'mixed'].join(' | ')} |`,
  `|---|${keys.map(() => '---').join('|')}|`,
  ...results.map(
    (r) =>
      `| ${r.type.toUpperCase()} | ${keys
        .map((key) => {
          const s = r.summary[key]!;
          return `${s.gen.cpu.toFixed(1)} / ${s.bare.cpu.toFixed(1)} (${s.ratio.cpu.toFixed(3)})`;
        })
        .join(' | ')} |`,
  ),
  '',
  'gen, ms per decode step (medians): wall / in doForward / sampling / rest of the step / between steps; then ms',
  "per step inside llama_decode, gen's / bare's (the same kernels: a difference is what gen's threads cost them).",
  '',
  `| weights | ${concurrencies.map((c) => `x${c}`).join(' | ')} |`,
  `|---|${concurrencies.map(() => '---').join('|')}|`,
  ...results.map(
    (r) =>
      `| ${r.type.toUpperCase()} | ${concurrencies
        .map((c) => {
          const x = r.summary[`x${c}`]!.split!;
          const d = r.summary[`x${c}`]!.decodeMs!;
          return `${[x.wall, x.forward, x.sampling, x.other, x.between].map((v) => v.toFixed(2)).join(' / ')}; ${d.gen.toFixed(2)} / ${d.bare.toFixed(2)}`;
        })
        .join(' | ')} |`,
  ),
  '',
  'All contenders in the same run: tok/s wall clock (median ratio to bare llama.cpp of the same round). gen on llama.cpp',
  'from phase 1 (gen and bare alone), onnx and transformers.js from phase 2 (loaded after phase 1, each round paired',
  "with a bare run). onnx: gen on backend-onnx's fused export (fp32 / int8 / q4 MatMulNBits for F32 / Q8_0 / Q4_0);",
  'transformers.js on the standard export, batch 1 only.',
  '',
  `| weights | contender | ${[...concurrencies.map((c) => `decode x${c}`), `prefill ${prefillLength}`, 'mixed'].join(' | ')} |`,
  `|---|---|${keys.map(() => '---').join('|')}|`,
  ...results.flatMap((r) => {
    const names = ['gen', 'bare', ...new Set(keys.flatMap((key) => Object.keys(r.summary[key]!.others)))];
    return names.map((name) => {
      const cells = keys.map((key) => {
        const s = r.summary[key]!;
        if (name === 'gen') return `${s.gen.wall.toFixed(1)} (${s.ratio.wall.toFixed(3)})`;
        if (name === 'bare') return s.bare.wall.toFixed(1);
        const o = s.others[name];
        return o === undefined ? 'n/a' : `${o.rate.wall.toFixed(1)} (${o.ratio.wall.toFixed(3)})`;
      });
      const label = name === 'gen' ? 'gen on llama.cpp' : name === 'bare' ? 'bare llama.cpp' : name;
      return `| ${r.type.toUpperCase()} | ${label} | ${cells.join(' | ')} |`;
    });
  }),
  '',
  `Targets: gen / bare >= 0.97 at batch 1 and >= 1.0 at batch ${maxConcurrency} (x${maxConcurrency}: the same requests at once; mixed: ` +
    `continuous batching against static batches) (wall clock; CPU time in brackets); engine share outside doForward < 5%.`,
  ...results.map((r) => {
    const verdict = (key: string, target: number) => {
      const s = r.summary[key];
      if (s === undefined) return '';
      return `${key} ${s.ratio.wall.toFixed(3)} ${s.ratio.wall >= target ? 'met' : 'missed'} (${s.ratio.cpu.toFixed(3)} ${s.ratio.cpu >= target ? 'met' : 'missed'}); `;
    };
    const outside = Math.max(...concurrencies.map((c) => r.summary[`x${c}`]!.outside!));
    return `  ${r.type}: ${verdict('x1', 0.97)}${verdict(`x${maxConcurrency}`, 1)}${verdict('mixed', 1)}largest share outside doForward ${pct(outside)} ${outside < 0.05 ? 'met' : 'missed'}`;
  }),
];
console.log(lines.join('\n'));
if (values.json !== undefined) {
  writeFileSync(
    values.json,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        machine,
        library: libraryInfo,
        settings: {
          preset,
          threads,
          newTokens,
          promptLength,
          prefillLength,
          concurrencies,
          rounds,
          repeats,
          contextSize,
          mixed: { requests: mixedRequests, tokens: [mixedMin, mixedMax] },
        },
        loadStart,
        loadEnd,
        results,
      },
      null,
      2,
    )}\n`,
  );
}

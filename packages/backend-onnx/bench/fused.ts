/**
 * `pnpm --filter @gen/backend-onnx bench fused`: the fused ONNX export (model-kit's `fused` graph style:
 * GroupQueryAttention with a shared KV buffer, SkipSimplifiedLayerNormalization, MatMulNBits) against the standard
 * export of the same weights, through @gen/backend-onnx and through transformers.js, on model-kit's `bench` preset
 * (llama, hidden 768, 12 layers, 12 / 4 heads, vocab 32,000; ~125M parameters), for fp32, int8 and q4, side by side
 * in one run; with the memory roofline measured in the same run and onnxruntime's profile of a fused decode step.
 * llama.cpp is not in this report: it is measured in its own run, next to gen on llama.cpp and on the same
 * weights, by `pnpm --filter @gen/backend-llamacpp bench:peers` (no figures are taken from a file).
 *
 * Options: `--threads N` (default 2), `--rounds N` (default 3; decode figures are the median and the best of the
 * rounds, every engine once per round), `--dtypes fp32,int8,q4`, `--no-transformers`, `--markdown FILE`,
 * `--json FILE`.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ensureModelDir, planModelDir } from '@gen/model-kit';
import * as ort from 'onnxruntime-node';
import { DirectSession } from '../src/direct/direct-session.js';
import { createOnnxBackend } from '../src/index.js';
import type { OnnxSession } from '../src/onnx-session.js';
import { measureReadBandwidth } from './bandwidth.js';
import {
  argmax,
  batchedDecode,
  gb,
  greedyDecode,
  insideRunMs,
  log,
  median,
  prefillTokensPerSecond,
  prompt,
} from './common.js';
import { loadTransformersModel, type TransformersModel } from './transformers-js.js';

type Dtype = 'fp32' | 'int8' | 'q4';

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    dtypes: { type: 'string', default: 'fp32,int8,q4' },
    'no-transformers': { type: 'boolean', default: false },
    markdown: { type: 'string' },
    json: { type: 'string' },
  },
});
const threads = Number(values.threads);
const rounds = Number(values.rounds);
const dtypes = values.dtypes.split(',') as Dtype[];
const context = 128;
const newTokens = 64;
const prefillLength = 512;
const batchSizes = [1, 4, 16];

const targets: Record<Dtype, number> = { fp32: 65, int8: 170, q4: 250 };

/** transformers.js: decode time per token = (generate 64 - generate 1) / 63. */
async function transformersDecode(model: TransformersModel, tokens: number[]) {
  let start = performance.now();
  let before = insideRunMs();
  await model.generate(tokens, 1);
  const one = performance.now() - start;
  const oneRun = insideRunMs() - before;
  start = performance.now();
  before = insideRunMs();
  const generated = await model.generate(tokens, newTokens);
  const all = performance.now() - start;
  const allRun = insideRunMs() - before;
  const stepMs = (all - one) / (newTokens - 1);
  const runMs = (allRun - oneRun) / (newTokens - 1);
  return { stepMs, runMs, betweenMs: stepMs - runMs, generated };
}

interface Profile {
  batch: number;
  nodesPerRun: number;
  /** ms per step inside `session.run`: `modelRunMs` plus onnxruntime-node's input and output conversions. */
  runMs: number;
  modelRunMs: number;
  kernelsMs: number;
  ops: { op: string; ms: number; nodes: number }[];
}

/** The KV shape of the `bench` model. */
interface Shape {
  layers: number;
  kvHeads: number;
  headDim: number;
}

/**
 * A bare onnxruntime-node loop over the fused file, what the backend does without its bookkeeping: one buffer of
 * `context + newTokens` slots per row, a `context`-token prefill of `batch` rows, then greedy decode steps (argmax
 * included). Returns ms per decode step and, of it, ms inside `session.run`.
 */
async function bareFused(
  session: OnnxSession,
  shape: Shape,
  steps: number,
  batch = 1,
): Promise<{ stepMs: number; runMs: number }> {
  const { layers, kvHeads, headDim } = shape;
  const capacity = context + newTokens;
  const buffers = Array.from(
    { length: 2 * layers },
    () =>
      new ort.Tensor('float32', new Float32Array(batch * kvHeads * capacity * headDim), [
        batch,
        kvHeads,
        capacity,
        headDim,
      ]),
  );
  const step = async (tokens: number[][], past: number) => {
    const seq = tokens[0]!.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens.flat(), BigInt), [batch, seq]),
      seqlens_k: new ort.Tensor('int32', new Int32Array(batch).fill(past + seq - 1), [batch]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(past + seq), []),
      num_logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(1n), []),
    };
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    for (let i = 0; i < layers; i++) {
      feeds[`past_key_values.${i}.key`] = fetches[`present.${i}.key`] = buffers[2 * i]!;
      feeds[`past_key_values.${i}.value`] = fetches[`present.${i}.value`] = buffers[2 * i + 1]!;
    }
    const out = await session.run(feeds, fetches);
    const logits = out['logits']!.data as Float32Array;
    const vocab = logits.length / batch;
    return Array.from({ length: batch }, (_, b) => [argmax(logits.subarray(b * vocab, (b + 1) * vocab))]);
  };
  let next = await step(
    Array.from({ length: batch }, (_, b) => prompt(context, 9 + b)),
    0,
  );
  const before = insideRunMs();
  const start = performance.now();
  for (let k = 0; k < steps; k++) next = await step(next, context + k);
  return { stepMs: (performance.now() - start) / steps, runMs: (insideRunMs() - before) / steps };
}

/**
 * {@link bareFused} with onnxruntime's profiler on (32 decode steps): the per-node kernel times of the decode runs,
 * summed by operator type.
 */
async function profileFused(file: string, shape: Shape, batch = 1): Promise<Profile> {
  const prefix = path.join(os.tmpdir(), `gen-fused-profile-${process.pid}`);
  const session = DirectSession.create(file, { intraOpThreads: threads, profileFilePrefix: prefix });
  const { runMs } = await bareFused(session, shape, 32, batch);
  const profile = session.endProfiling();
  await session.release();
  const events = JSON.parse(await readFile(profile, 'utf8')) as {
    cat: string;
    name: string;
    dur: number;
    args?: { op_name?: string };
  }[];
  await rm(profile, { force: true });
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
  const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
  const nodesPerRun = nodes.length / runs.length;
  const decodeNodes = nodes.slice(nodesPerRun); // the first run is the prefill
  const decodeRuns = runs.length - 1;
  const byOp = new Map<string, { us: number; nodes: number }>();
  for (const e of decodeNodes) {
    const op = e.args?.op_name ?? '?';
    const entry = byOp.get(op) ?? { us: 0, nodes: 0 };
    entry.us += e.dur;
    entry.nodes++;
    byOp.set(op, entry);
  }
  return {
    batch,
    nodesPerRun,
    runMs,
    modelRunMs: median(runs.slice(1).map((e) => e.dur / 1000)),
    kernelsMs: decodeNodes.reduce((sum, e) => sum + e.dur, 0) / decodeRuns / 1000,
    ops: [...byOp]
      .map(([op, x]) => ({ op, ms: x.us / decodeRuns / 1000, nodes: x.nodes / decodeRuns }))
      .sort((a, b) => b.ms - a.ms),
  };
}

interface Decode {
  stepMs: number[];
  runMs: number[];
  betweenMs: number[];
  argmaxMs: number[];
}
const emptyDecode = (): Decode => ({ stepMs: [], runMs: [], betweenMs: [], argmaxMs: [] });
const record = (d: Decode, m: { stepMs: number; runMs: number; betweenMs: number; argmaxMs?: number }) => {
  d.stepMs.push(m.stepMs);
  d.runMs.push(m.runMs);
  d.betweenMs.push(m.betweenMs);
  if (m.argmaxMs !== undefined) d.argmaxMs.push(m.argmaxMs);
};

interface DtypeResult {
  dtype: Dtype;
  fileMB: { fused: number; standard: number };
  bytesPerToken: number;
  decode: { fused: Decode; fusedNode: Decode; standard: Decode; transformers: Decode | undefined };
  /** ms per decode step of {@link bareFused}, per round. */
  bare: number[];
  prefill: { fused: number[]; standard: number[]; transformers: number[] };
  batch: { fused: number[]; fusedNode: number[]; standard: number[] };
  sameTokens: boolean;
  profile: Profile;
  batchProfile: Profile;
}

async function main(): Promise<void> {
  const loadStart = os.loadavg();
  const started = performance.now();
  const variants = ['fp32', ...dtypes.filter((d) => d !== 'fp32')] as Dtype[];
  const progress = (p: { file: string; bytesWritten: number; totalBytes: number }) => {
    if (p.bytesWritten === p.totalBytes) log(`  wrote ${p.file} (${(p.totalBytes / 1e6).toFixed(0)} MB)`);
  };
  let start = performance.now();
  const fusedDir = await ensureModelDir('bench', {
    onnxVariants: variants,
    onnxGraphStyle: 'fused',
    onProgress: progress,
  });
  const standardDir = await ensureModelDir('bench', {
    onnxVariants: variants,
    onnxGraphStyle: 'standard',
    onProgress: progress,
  });
  const modelSeconds = (performance.now() - start) / 1000;
  log(`model directories ready in ${modelSeconds.toFixed(0)} s: ${fusedDir}, ${standardDir}`);

  log('measuring memory read bandwidth...');
  let bandwidth1 = await measureReadBandwidth(1);
  let bandwidth = await measureReadBandwidth(threads);
  log(`read bandwidth ${gb(bandwidth1)} GB/s (1 thread), ${gb(bandwidth)} GB/s (${threads} threads)`);

  const { config } = planModelDir({ preset: 'bench' });
  const h = config.hiddenSize;
  const headDim = config.headDim!;
  const q = config.numAttentionHeads * headDim;
  const kv = config.numKeyValueHeads * headDim;
  const linearParameters =
    config.numHiddenLayers * (h * q + 2 * h * kv + q * h + 3 * h * config.intermediateSize) + config.vocabSize * h;
  const kvBytesPerPosition = 2 * config.numHiddenLayers * kv * 4;
  const bytesPerWeight: Record<Dtype, number> = { fp32: 4, int8: 1 + 4 / 32, q4: 0.5 + 4 / 32 };

  const results: DtypeResult[] = [];
  for (const dtype of dtypes) {
    log(`\n== ${dtype} ==`);
    const settings = { dtype, intraOpThreads: threads, maxBatchSize: 16 } as const;
    const fused = await createOnnxBackend({ modelDir: fusedDir, ...settings });
    const fusedNode = await createOnnxBackend({ modelDir: fusedDir, ...settings, binding: 'onnxruntime-node' });
    const standard = await createOnnxBackend({ modelDir: standardDir, ...settings });
    const transformers = values['no-transformers']
      ? undefined
      : await loadTransformersModel(standardDir, dtype, threads);
    const file = path.join(
      fusedDir,
      'onnx',
      { fp32: 'model.onnx', int8: 'model_quantized.onnx', q4: 'model_q4.onnx' }[dtype],
    );
    const shape = { layers: config.numHiddenLayers, kvHeads: config.numKeyValueHeads, headDim };
    const bare = await ort.InferenceSession.create(file, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    const warm = prompt(context, 1);
    for (const backend of [fused, fusedNode, standard]) await greedyDecode(backend, warm, 4, 'warm');
    await transformers?.generate(warm, 4);

    const result: DtypeResult = {
      dtype,
      fileMB: {
        fused: Number(fused.capabilities.details?.['fileBytes']) / 1e6,
        standard: Number(standard.capabilities.details?.['fileBytes']) / 1e6,
      },
      bytesPerToken: linearParameters * bytesPerWeight[dtype] + kvBytesPerPosition * (context + newTokens / 2),
      decode: {
        fused: emptyDecode(),
        fusedNode: emptyDecode(),
        standard: emptyDecode(),
        transformers: transformers === undefined ? undefined : emptyDecode(),
      },
      bare: [],
      prefill: { fused: [], standard: [], transformers: [] },
      batch: { fused: [], fusedNode: [], standard: [] },
      sameTokens: true,
      profile: { batch: 1, nodesPerRun: 0, runMs: 0, modelRunMs: 0, kernelsMs: 0, ops: [] },
      batchProfile: { batch: 1, nodesPerRun: 0, runMs: 0, modelRunMs: 0, kernelsMs: 0, ops: [] },
    };
    for (let round = 0; round < rounds; round++) {
      const tokens = prompt(context, 2 + round);
      const a = await greedyDecode(fused, tokens, newTokens, `f${round}`);
      record(result.decode.fused, a);
      const b = await greedyDecode(fusedNode, tokens, newTokens, `n${round}`);
      record(result.decode.fusedNode, b);
      result.sameTokens &&= a.generated.join() === b.generated.join();
      result.bare.push((await bareFused(bare, shape, newTokens)).stepMs);
      const c = await greedyDecode(standard, tokens, newTokens, `d${round}`);
      record(result.decode.standard, c);
      result.sameTokens &&= a.generated.join() === c.generated.join();
      if (transformers !== undefined) {
        const t = await transformersDecode(transformers, tokens);
        record(result.decode.transformers!, t);
        result.sameTokens &&= t.generated.join() === c.generated.join();
      }
      result.prefill.fused.push(await prefillTokensPerSecond(fused, prefillLength, 50 + round));
      result.prefill.standard.push(await prefillTokensPerSecond(standard, prefillLength, 50 + round));
      if (transformers !== undefined) {
        start = performance.now();
        await transformers.generate(prompt(prefillLength, 50 + round), 1);
        result.prefill.transformers.push(prefillLength / ((performance.now() - start) / 1000));
      }
      log(
        `round ${round}: fused ${a.stepMs.toFixed(2)} ms/token (between runs ${a.betweenMs.toFixed(2)}), ` +
          `on onnxruntime-node ${b.stepMs.toFixed(2)} (between runs ${b.betweenMs.toFixed(2)}), bare loop ${result.bare.at(-1)!.toFixed(2)}, standard ${c.stepMs.toFixed(2)}` +
          (transformers === undefined
            ? ''
            : `, transformers.js ${result.decode.transformers!.stepMs.at(-1)!.toFixed(2)}`) +
          `; prefill ${prefillLength}: fused ${result.prefill.fused.at(-1)!.toFixed(0)} tok/s, standard ` +
          `${result.prefill.standard.at(-1)!.toFixed(0)}`,
      );
    }
    for (const size of batchSizes) {
      result.batch.fused.push((await batchedDecode(fused, size, context, 32)).tokensPerSecond);
      result.batch.fusedNode.push((await batchedDecode(fusedNode, size, context, 32)).tokensPerSecond);
      result.batch.standard.push((await batchedDecode(standard, size, context, 32)).tokensPerSecond);
      log(
        `batch ${size}: fused ${result.batch.fused.at(-1)!.toFixed(0)} tok/s, on onnxruntime-node ${result.batch.fusedNode.at(-1)!.toFixed(0)}, standard ${result.batch.standard.at(-1)!.toFixed(0)}`,
      );
    }
    await transformers?.dispose();
    for (const backend of [fused, fusedNode, standard]) await backend.doDispose();
    await bare.release();
    result.profile = await profileFused(file, shape);
    result.batchProfile = await profileFused(file, shape, batchSizes.at(-1));
    log(`profile: ${result.profile.nodesPerRun} nodes per run, model_run ${result.profile.modelRunMs.toFixed(2)} ms`);
    results.push(result);
  }

  bandwidth1 = Math.max(bandwidth1, await measureReadBandwidth(1));
  bandwidth = Math.max(bandwidth, await measureReadBandwidth(threads));
  const loadEnd = os.loadavg();
  const seconds = (performance.now() - started) / 1000;
  const markdown = report(results, { bandwidth1, bandwidth, loadStart, loadEnd, seconds, modelSeconds });
  process.stdout.write(`${markdown}\n`);
  if (values.markdown !== undefined) await writeFile(values.markdown, `${markdown}\n`);
  if (values.json !== undefined) await writeFile(values.json, `${JSON.stringify({ bandwidth, results }, null, 2)}\n`);
}

function report(
  results: readonly DtypeResult[],
  run: {
    bandwidth1: number;
    bandwidth: number;
    loadStart: number[];
    loadEnd: number[];
    seconds: number;
    modelSeconds: number;
  },
): string {
  const best = (xs: readonly number[]) => Math.min(...xs);
  const top = (xs: readonly number[]) => Math.max(...xs);
  const rate = (ms: readonly number[]) => `${(1000 / median(ms)).toFixed(1)} (${(1000 / best(ms)).toFixed(1)})`;
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
  const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, Node ${process.version}, onnxruntime-node ${ort.env.versions.node ?? ''}`;
  const lines = [
    `${machine}; ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; ${threads} intra-op threads, ` +
      `context ${context}, ${newTokens} new tokens, greedy; ${rounds} rounds, figures "median (best)". Load average ` +
      `(1 / 5 / 15 min) ${load(run.loadStart)} at the start, ${load(run.loadEnd)} at the end; run ${run.seconds.toFixed(0)} s` +
      `${run.modelSeconds > 5 ? ` (${run.modelSeconds.toFixed(0)} s of it writing the model files)` : ''}. Memory read ` +
      `bandwidth measured in the run: ${gb(run.bandwidth1)} GB/s (1 thread), ${gb(run.bandwidth)} GB/s (${threads} threads).`,
    'llama.cpp is measured in its own run, on the same weights as GGUF: `pnpm --filter @gen/backend-llamacpp bench:peers`.',
    '',
    '| dtype | fused tok/s | target | roofline tok/s | fused / roofline | fused, onnxruntime-node binding | bare onnxruntime-node loop, fused file | standard (ours) tok/s | transformers.js (standard file) tok/s | fused / standard | same greedy tokens |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...results.map((r) => {
      const rooflineMs = (r.bytesPerToken / run.bandwidth) * 1000;
      const t = r.decode.transformers;
      return (
        `| ${r.dtype} | ${rate(r.decode.fused.stepMs)} | ${targets[r.dtype]} | ${(1000 / rooflineMs).toFixed(1)} | ` +
        `${((rooflineMs / best(r.decode.fused.stepMs)) * 100).toFixed(0)}% | ${rate(r.decode.fusedNode.stepMs)} | ${rate(r.bare)} | ${rate(r.decode.standard.stepMs)} | ` +
        `${t === undefined ? 'not run' : rate(t.stepMs)} | ` +
        `${(median(r.decode.standard.stepMs) / median(r.decode.fused.stepMs)).toFixed(2)}x | ${r.sameTokens ? 'yes' : 'no'} |`
      );
    }),
    '',
    `| dtype | file MB fused / standard | read per token | prefill ${prefillLength} tok/s fused | standard | transformers.js | ${batchSizes.map((b) => `batch ${b} fused tok/s (onnxruntime-node binding / standard)`).join(' | ')} | batch ${batchSizes.at(-1)} / batch 1 |`,
    `|---|---|---|---|---|---|${batchSizes.map(() => '---').join('|')}|---|`,
    ...results.map(
      (r) =>
        `| ${r.dtype} | ${r.fileMB.fused.toFixed(0)} / ${r.fileMB.standard.toFixed(0)} | ${(r.bytesPerToken / 1e6).toFixed(0)} MB | ` +
        `${median(r.prefill.fused).toFixed(0)} (${top(r.prefill.fused).toFixed(0)}) | ${median(r.prefill.standard).toFixed(0)} | ` +
        `${r.prefill.transformers.length === 0 ? 'not run' : median(r.prefill.transformers).toFixed(0)} | ` +
        `${r.batch.fused.map((x, i) => `${x.toFixed(0)} (${r.batch.fusedNode[i]!.toFixed(0)} / ${r.batch.standard[i]!.toFixed(0)})`).join(' | ')} | ` +
        `${(r.batch.fused.at(-1)! / r.batch.fused[0]!).toFixed(1)}x |`,
    ),
    '',
    '| dtype | ms per decode step, fused: all / in session.run / JavaScript between runs (of it argmax) | the same on the onnxruntime-node binding |',
    '|---|---|---|',
    ...results.map((r) => {
      const d = r.decode.fused;
      const s = r.decode.fusedNode;
      const split = (x: Decode) =>
        `${median(x.stepMs).toFixed(2)} / ${median(x.runMs).toFixed(2)} / ${median(x.betweenMs).toFixed(2)} (${median(x.argmaxMs).toFixed(3)})`;
      return `| ${r.dtype} | ${split(d)} | ${split(s)} |`;
    }),
    '',
    "onnxruntime profile of a bare decode loop over the fused file on the direct binding (context 128; profiling on): ms per step inside `session.run`, of it in onnxruntime's `model_run` and in kernels; the rest of `session.run` is the binding describing the tensors and copying the logits out.",
    '',
    '| dtype | batch | nodes per run | session.run ms | model_run ms | kernels ms | top operators (ms per step, nodes) |',
    '|---|---|---|---|---|---|---|',
    ...results.flatMap((r) =>
      [r.profile, r.batchProfile].map(
        (p) =>
          `| ${r.dtype} | ${p.batch} | ${p.nodesPerRun} | ${p.runMs.toFixed(2)} | ${p.modelRunMs.toFixed(2)} | ${p.kernelsMs.toFixed(2)} | ` +
          `${p.ops
            .slice(0, 6)
            .map((o) => `${o.op} ${o.ms.toFixed(2)} (${o.nodes})`)
            .join(', ')} |`,
      ),
    ),
  ];
  return lines.join('\n');
}

await main();

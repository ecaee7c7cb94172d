/**
 * `pnpm --filter @gen/backend-onnx bench`: decode and prefill speed of @gen/backend-onnx against transformers.js
 * and against the memory roofline, on model-kit's `bench` preset (llama, hidden 768, 12 layers, 12 heads / 4 KV
 * heads, vocab 32,000; ~125M parameters) in its fp32, int8 and q4 files, all in one run.
 *
 * Ours runs twice per dtype: with the default settings (intra-op spinning off) and with `intraOpSpinning: true`
 * (onnxruntime's own default, which transformers.js keeps).
 *
 * Options: `--threads N` (default 2), `--rounds N` (default 3; each figure is the median over rounds, ours and
 * transformers.js interleaved), `--dtypes fp32,int8,q4`, `--markdown FILE`, `--json FILE`.
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { BackendV1 } from '@gen/backend';
import { ensureModelDir, planModelDir } from '@gen/model-kit';
import * as ort from 'onnxruntime-node';
import { createOnnxBackend } from '../src/index.js';
import { measureReadBandwidth } from './bandwidth.js';
import type { transformersDtype } from './transformers-js.js';
import { loadTransformersModel } from './transformers-js.js';

type Dtype = keyof typeof transformersDtype;

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    dtypes: { type: 'string', default: 'fp32,int8,q4' },
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

// Time spent inside onnxruntime (session.run, for ours and for transformers.js alike): the rest of a step is glue.
let insideRun = 0;
const sessionPrototype = (ort.InferenceSession as unknown as { prototype: unknown }).prototype as {
  run: (...args: unknown[]) => Promise<unknown>;
};
const originalRun = sessionPrototype.run;
sessionPrototype.run = async function (this: unknown, ...args: unknown[]) {
  const start = performance.now();
  try {
    return await originalRun.apply(this, args);
  } finally {
    insideRun += performance.now() - start;
  }
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const log = (message: string) => process.stderr.write(`${message}\n`);

function prompt(length: number, salt: number): number[] {
  // Ids the tokenizer knows (the bench tokenizer has 763 tokens), deterministic.
  return Array.from({ length }, (_, i) => (i * 131 + salt * 977 + 11) % 760);
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
  return best;
}

/** Our greedy loop: prefill, then one doForward per token. Returns timings and the tokens. */
async function oursGreedy(backend: BackendV1, tokens: number[], steps: number, id: string) {
  let start = performance.now();
  let result = await backend.doForward({ sequences: [{ id, tokens }] });
  const prefillMs = performance.now() - start;
  const generated: number[] = [];
  const runBefore = insideRun;
  start = performance.now();
  for (let s = 0; s < steps; s++) {
    generated.push(argmax(result.sequences[0]!.logits));
    result = await backend.doForward({ sequences: [{ id, tokens: [generated[s]!] }] });
  }
  const decodeMs = (performance.now() - start) / steps;
  const glueMs = decodeMs - (insideRun - runBefore) / steps;
  await backend.doRelease([id]);
  return { prefillMs, decodeMs, glueMs, generated };
}

/** Aggregate decode tokens/s with `batch` sequences stepping together (after a batched prefill). */
async function oursBatch(backend: BackendV1, batch: number) {
  const ids = Array.from({ length: batch }, (_, i) => `b${batch}-${i}`);
  let result = await backend.doForward({
    sequences: ids.map((id, i) => ({ id, tokens: prompt(context, 100 + i) })),
  });
  const start = performance.now();
  for (let s = 0; s < newTokens; s++) {
    result = await backend.doForward({
      sequences: ids.map((id, i) => ({ id, tokens: [argmax(result.sequences[i]!.logits)] })),
    });
  }
  const seconds = (performance.now() - start) / 1000;
  const stats = backend.stats();
  await backend.doRelease(ids);
  return { tokensPerSecond: (batch * newTokens) / seconds, stats, after: backend.stats() };
}

interface DtypeResult {
  dtype: Dtype;
  fileMB: number;
  bytesPerToken: number;
  rooflineMs: number;
  ours: {
    decodeMs: number;
    spinningDecodeMs: number;
    glueMs: number;
    prefill128Ms: number;
    prefill512TokensPerSecond: number;
  };
  transformers: { decodeMs: number; glueMs: number; prefill512TokensPerSecond: number };
  sameGreedyTokens: boolean;
  batch: { batch: number; tokensPerSecond: number }[];
  kv: { bytesPerToken: number; formula: number; baselineAfterRelease: boolean };
}

async function main(): Promise<void> {
  const loadStart = os.loadavg()[0]!;
  let start = performance.now();
  const modelDir = await ensureModelDir('bench', {
    onnxVariants: ['fp32', ...dtypes.filter((d) => d !== 'fp32')],
    onProgress: (p) => {
      if (p.bytesWritten === p.totalBytes) log(`  wrote ${p.file} (${(p.totalBytes / 1e6).toFixed(0)} MB)`);
    },
  });
  const modelSeconds = (performance.now() - start) / 1000;
  log(`model directory ${modelDir} ready in ${modelSeconds.toFixed(1)} s`);

  log('measuring memory read bandwidth...');
  const bandwidth1 = await measureReadBandwidth(1);
  const bandwidth = await measureReadBandwidth(threads);
  log(
    `read bandwidth: ${(bandwidth1 / 1e9).toFixed(1)} GB/s (1 thread), ${(bandwidth / 1e9).toFixed(1)} GB/s (${threads})`,
  );

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
    const backend = await createOnnxBackend({ modelDir, dtype, intraOpThreads: threads, maxBatchSize: 16 });
    const spinningBackend = await createOnnxBackend({
      modelDir,
      dtype,
      intraOpThreads: threads,
      intraOpSpinning: true,
    });
    const transformers = await loadTransformersModel(modelDir, dtype, threads);
    const warm = prompt(context, 1);
    await oursGreedy(backend, warm, 8, 'warm');
    await oursGreedy(spinningBackend, warm, 8, 'warm');
    await transformers.generate(warm, 8);

    const ours = { decode: [] as number[], glue: [] as number[], prefill: [] as number[], prefill512: [] as number[] };
    const spinningDecode: number[] = [];
    const theirs = { decode: [] as number[], glue: [] as number[], prefill512: [] as number[] };
    let sameGreedyTokens = true;
    for (let round = 0; round < rounds; round++) {
      const tokens = prompt(context, 2 + round);
      const mine = await oursGreedy(backend, tokens, newTokens, `r${round}`);
      ours.decode.push(mine.decodeMs);
      ours.glue.push(mine.glueMs);
      ours.prefill.push(mine.prefillMs);
      spinningDecode.push((await oursGreedy(spinningBackend, tokens, newTokens, `s${round}`)).decodeMs);

      // transformers.js: decode time per token = (generate 64 - generate 1) / 63; its glue = that minus its runs.
      start = performance.now();
      let runBefore = insideRun;
      await transformers.generate(tokens, 1);
      const one = performance.now() - start;
      const oneRun = insideRun - runBefore;
      start = performance.now();
      runBefore = insideRun;
      const generated = await transformers.generate(tokens, newTokens);
      const all = performance.now() - start;
      const allRun = insideRun - runBefore;
      theirs.decode.push((all - one) / (newTokens - 1));
      theirs.glue.push((all - one - (allRun - oneRun)) / (newTokens - 1));
      sameGreedyTokens &&= generated.join() === mine.generated.join();

      const long = prompt(prefillLength, 50 + round);
      start = performance.now();
      await backend.doForward({ sequences: [{ id: 'long', tokens: long }] });
      ours.prefill512.push(prefillLength / ((performance.now() - start) / 1000));
      await backend.doRelease(['long']);
      start = performance.now();
      await transformers.generate(long, 1);
      theirs.prefill512.push(prefillLength / ((performance.now() - start) / 1000));
      log(
        `round ${round}: ours ${mine.decodeMs.toFixed(2)} ms/token (glue ${mine.glueMs.toFixed(2)}), ` +
          `spinning ${spinningDecode.at(-1)!.toFixed(2)}, ` +
          `transformers.js ${theirs.decode.at(-1)!.toFixed(2)} ms/token (glue ${theirs.glue.at(-1)!.toFixed(2)})`,
      );
    }
    await transformers.dispose();
    await spinningBackend.doDispose();

    const batch: { batch: number; tokensPerSecond: number }[] = [];
    let kvResult = { bytesPerToken: 0, formula: kvBytesPerPosition, baselineAfterRelease: false };
    for (const size of batchSizes) {
      const measured = await oursBatch(backend, size);
      batch.push({ batch: size, tokensPerSecond: measured.tokensPerSecond });
      log(`batch ${size}: ${measured.tokensPerSecond.toFixed(1)} tokens/s`);
      if (size === batchSizes.at(-1)) {
        kvResult = {
          bytesPerToken: measured.stats.kvCacheBytes! / measured.stats.cachedTokens,
          formula: kvBytesPerPosition,
          baselineAfterRelease: measured.after.kvCacheBytes === 0 && measured.after.sequences === 0,
        };
      }
    }
    const fileMB = Number(backend.capabilities.details?.['fileBytes']) / 1e6;
    await backend.doDispose();

    const averageContext = context + newTokens / 2;
    const bytesPerToken = linearParameters * bytesPerWeight[dtype] + kvBytesPerPosition * averageContext;
    results.push({
      dtype,
      fileMB,
      bytesPerToken,
      rooflineMs: (bytesPerToken / bandwidth) * 1000,
      ours: {
        decodeMs: median(ours.decode),
        spinningDecodeMs: median(spinningDecode),
        glueMs: median(ours.glue),
        prefill128Ms: median(ours.prefill),
        prefill512TokensPerSecond: median(ours.prefill512),
      },
      transformers: {
        decodeMs: median(theirs.decode),
        glueMs: median(theirs.glue),
        prefill512TokensPerSecond: median(theirs.prefill512),
      },
      sameGreedyTokens,
      batch,
      kv: kvResult,
    });
  }

  const loadEnd = os.loadavg()[0]!;
  const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, onnxruntime-node ${ort.env.versions.node ?? ''}`;
  const lines = [
    `Machine: ${machine}. Date: ${new Date().toISOString().slice(0, 10)}. ${threads} intra-op threads (ours: intra-op spinning off by default, and on; transformers.js: onnxruntime's default, on), context ${context}, ${newTokens} new tokens, greedy, median of ${rounds} interleaved rounds. Load average ${loadStart.toFixed(1)} at start, ${loadEnd.toFixed(1)} at end.`,
    `Memory read bandwidth (WebAssembly SIMD read loop over 256 MiB per thread, this run): ${(bandwidth1 / 1e9).toFixed(1)} GB/s with 1 thread, ${(bandwidth / 1e9).toFixed(1)} GB/s with ${threads}. Model directory ready in ${modelSeconds.toFixed(1)} s${modelSeconds < 1 ? ' (cached)' : ''}.`,
    '',
    '| dtype | file MB | bytes read / token | roofline ms/token | ours ms/token | ours, spinning on | transformers.js ms/token | transformers.js / ours (spinning off, on) | roofline / ours | glue ms/step ours / transformers.js | same greedy tokens |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.dtype} | ${r.fileMB.toFixed(0)} | ${(r.bytesPerToken / 1e6).toFixed(0)} MB | ${r.rooflineMs.toFixed(2)} | ${r.ours.decodeMs.toFixed(2)} | ${r.ours.spinningDecodeMs.toFixed(2)} | ${r.transformers.decodeMs.toFixed(2)} | ${(r.transformers.decodeMs / r.ours.decodeMs).toFixed(2)}x, ${(r.transformers.decodeMs / r.ours.spinningDecodeMs).toFixed(2)}x | ${(r.rooflineMs / r.ours.decodeMs).toFixed(2)} | ${r.ours.glueMs.toFixed(2)} / ${r.transformers.glueMs.toFixed(2)} | ${r.sameGreedyTokens ? 'yes' : 'no'} |`,
    ),
    '',
    `| dtype | prefill ${prefillLength} tokens: ours tok/s | transformers.js tok/s | ratio | ${batchSizes.map((b) => `decode batch ${b} tok/s`).join(' | ')} | batch ${batchSizes.at(-1)} / batch 1 | KV bytes / token (batch ${batchSizes.at(-1)}) vs 2·layers·kv_heads·head_dim·4 | back to 0 after release |`,
    `|---|---|---|---|${batchSizes.map(() => '---').join('|')}|---|---|---|`,
    ...results.map(
      (r) =>
        `| ${r.dtype} | ${r.ours.prefill512TokensPerSecond.toFixed(0)} | ${r.transformers.prefill512TokensPerSecond.toFixed(0)} | ${(r.ours.prefill512TokensPerSecond / r.transformers.prefill512TokensPerSecond).toFixed(2)}x | ${r.batch.map((b) => b.tokensPerSecond.toFixed(0)).join(' | ')} | ${(r.batch.at(-1)!.tokensPerSecond / r.batch[0]!.tokensPerSecond).toFixed(1)}x | ${r.kv.bytesPerToken.toFixed(0)} vs ${r.kv.formula} | ${r.kv.baselineAfterRelease ? 'yes' : 'no'} |`,
    ),
  ];
  const markdown = lines.join('\n');
  process.stdout.write(`${markdown}\n`);
  if (values.markdown !== undefined) await writeFile(values.markdown, `${markdown}\n`);
  if (values.json !== undefined) {
    await writeFile(
      values.json,
      JSON.stringify(
        { machine, threads, rounds, bandwidth1, bandwidth, modelSeconds, loadStart, loadEnd, results },
        null,
        2,
      ),
    );
  }
}

await main();

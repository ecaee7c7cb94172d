/**
 * `pnpm --filter @gen/backend-onnx bench`: decode and prefill speed of @gen/backend-onnx against transformers.js
 * and against the memory roofline, on model-kit's `bench` preset (llama, hidden 768, 12 layers, 12 heads / 4 KV
 * heads, vocab 32,000; ~125M parameters) in its fp32, int8 and q4 files, all in one run.
 *
 * Ours runs twice per dtype: with the default settings (intra-op spinning off) and with `intraOpSpinning: true`
 * (onnxruntime's own default, which transformers.js keeps).
 *
 * Options: `--threads N` (default 2), `--rounds N` (default 5; decode figures are the median and the best over
 * rounds, ours and transformers.js interleaved within each round), `--dtypes fp32,int8,q4`, `--markdown FILE`,
 * `--json FILE`.
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { BackendV1 } from '@gen/backend';
import { ensureModelDir, planModelDir } from '@gen/model-kit';
import * as ort from 'onnxruntime-node';
import { createOnnxBackend } from '../src/index.js';
import { measureReadBandwidth } from './bandwidth.js';
import { batchedDecode, gb, greedyDecode, insideRunMs, log, median, prompt } from './common.js';
import type { transformersDtype } from './transformers-js.js';
import { loadTransformersModel } from './transformers-js.js';

type Dtype = keyof typeof transformersDtype;

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '5' },
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

/** KV-cache bytes per cached token for a batch of prompts of different lengths (left padding included). */
async function paddedKvBytes(backend: BackendV1): Promise<number> {
  const lengths = [32, 64, 96, 128];
  const ids = lengths.map((_, i) => `pad${i}`);
  await backend.doForward({ sequences: ids.map((id, i) => ({ id, tokens: prompt(lengths[i]!, 300 + i) })) });
  await backend.doForward({ sequences: ids.map((id) => ({ id, tokens: [1] })) });
  const stats = backend.stats();
  await backend.doRelease(ids);
  return stats.kvCacheBytes! / stats.cachedTokens;
}

interface Spread {
  median: number;
  best: number;
}

const spread = (xs: number[], better: 'low' | 'high' = 'low'): Spread => ({
  median: median(xs),
  best: better === 'low' ? Math.min(...xs) : Math.max(...xs),
});

interface DtypeResult {
  dtype: Dtype;
  fileMB: number;
  bytesPerToken: number;
  rooflineMs: number;
  ours: { decodeMs: Spread; spinningDecodeMs: Spread; glueMs: number; prefill512TokensPerSecond: Spread };
  transformers: { decodeMs: Spread; glueMs: number; prefill512TokensPerSecond: Spread };
  /** Median over rounds of transformers.js time / ours in the same round (spinning on, and off). */
  pairedRatio: { spinning: number; default: number };
  sameGreedyTokens: boolean;
  batch: { batch: number; tokensPerSecond: number; glueMs: number }[];
  kv: { bytesPerToken: number; formula: number; paddedBytesPerToken: number; baselineAfterRelease: boolean };
}

async function main(): Promise<void> {
  const loadStart = os.loadavg()[0]!;
  const started = performance.now();
  let start = performance.now();
  // The standard (Optimum) graphs: transformers.js loads the same files. The fused export has its own bench.
  const modelDir = await ensureModelDir('bench', {
    onnxVariants: ['fp32', ...dtypes.filter((d) => d !== 'fp32')],
    onnxGraphStyle: 'standard',
    onProgress: (p) => {
      if (p.bytesWritten === p.totalBytes) log(`  wrote ${p.file} (${(p.totalBytes / 1e6).toFixed(0)} MB)`);
    },
  });
  const modelSeconds = (performance.now() - start) / 1000;
  log(`model directory ${modelDir} ready in ${modelSeconds.toFixed(1)} s`);

  log('measuring memory read bandwidth...');
  let bandwidth1 = await measureReadBandwidth(1);
  let bandwidth = await measureReadBandwidth(threads);
  log(`read bandwidth: ${gb(bandwidth1)} GB/s (1 thread), ${gb(bandwidth)} GB/s (${threads})`);

  const { config } = planModelDir({ preset: 'bench' });
  const h = config.hiddenSize;
  const headDim = config.headDim!;
  const q = config.numAttentionHeads * headDim;
  const kv = config.numKeyValueHeads * headDim;
  const linearParameters =
    config.numHiddenLayers * (h * q + 2 * h * kv + q * h + 3 * h * config.intermediateSize) + config.vocabSize * h;
  const kvBytesPerPosition = 2 * config.numHiddenLayers * kv * 4;
  const bytesPerWeight: Record<Dtype, number> = { fp32: 4, int8: 1 + 4 / 32, q4: 0.5 + 4 / 32 };

  const results: Omit<DtypeResult, 'rooflineMs'>[] = [];
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
    await greedyDecode(backend, warm, 8, 'warm');
    await greedyDecode(spinningBackend, warm, 8, 'warm');
    await transformers.generate(warm, 8);

    const ours = { decode: [] as number[], glue: [] as number[], prefill512: [] as number[] };
    const spinningDecode: number[] = [];
    const theirs = { decode: [] as number[], glue: [] as number[], prefill512: [] as number[] };
    let sameGreedyTokens = true;
    for (let round = 0; round < rounds; round++) {
      const tokens = prompt(context, 2 + round);
      const mine = await greedyDecode(spinningBackend, tokens, newTokens, `s${round}`);
      spinningDecode.push(mine.stepMs);
      ours.glue.push(mine.glueMs);

      // transformers.js: decode time per token = (generate 64 - generate 1) / 63; its glue = that minus its runs.
      start = performance.now();
      let runBefore = insideRunMs();
      await transformers.generate(tokens, 1);
      const one = performance.now() - start;
      const oneRun = insideRunMs() - runBefore;
      start = performance.now();
      runBefore = insideRunMs();
      const generated = await transformers.generate(tokens, newTokens);
      const all = performance.now() - start;
      const allRun = insideRunMs() - runBefore;
      theirs.decode.push((all - one) / (newTokens - 1));
      theirs.glue.push((all - one - (allRun - oneRun)) / (newTokens - 1));
      sameGreedyTokens &&= generated.join() === mine.generated.join();

      const quiet = await greedyDecode(backend, tokens, newTokens, `r${round}`);
      ours.decode.push(quiet.stepMs);
      ours.glue.push(quiet.glueMs);
      sameGreedyTokens &&= quiet.generated.join() === mine.generated.join();

      const long = prompt(prefillLength, 50 + round);
      start = performance.now();
      await spinningBackend.doForward({ sequences: [{ id: 'long', tokens: long }] });
      ours.prefill512.push(prefillLength / ((performance.now() - start) / 1000));
      await spinningBackend.doRelease(['long']);
      start = performance.now();
      await transformers.generate(long, 1);
      theirs.prefill512.push(prefillLength / ((performance.now() - start) / 1000));
      log(
        `round ${round}: ours ${quiet.stepMs.toFixed(2)} ms/token, spinning ${mine.stepMs.toFixed(2)} ` +
          `(glue ${mine.glueMs.toFixed(2)}), transformers.js ${theirs.decode.at(-1)!.toFixed(2)} ms/token ` +
          `(glue ${theirs.glue.at(-1)!.toFixed(2)})`,
      );
    }
    await transformers.dispose();
    await spinningBackend.doDispose();

    const batch: DtypeResult['batch'] = [];
    let kvResult: DtypeResult['kv'] = {
      bytesPerToken: 0,
      formula: kvBytesPerPosition,
      paddedBytesPerToken: 0,
      baselineAfterRelease: false,
    };
    for (const size of batchSizes) {
      const measured = await batchedDecode(backend, size, context, newTokens);
      batch.push({ batch: size, tokensPerSecond: measured.tokensPerSecond, glueMs: measured.glueMs });
      log(`batch ${size}: ${measured.tokensPerSecond.toFixed(1)} tokens/s`);
      if (size === batchSizes.at(-1)) {
        kvResult = {
          bytesPerToken: measured.stats.kvCacheBytes! / measured.stats.cachedTokens,
          formula: kvBytesPerPosition,
          paddedBytesPerToken: await paddedKvBytes(backend),
          baselineAfterRelease: false,
        };
        const after = backend.stats();
        kvResult.baselineAfterRelease = after.kvCacheBytes === 0 && after.sequences === 0;
      }
    }
    const fileMB = Number(backend.capabilities.details?.['fileBytes']) / 1e6;
    await backend.doDispose();

    const averageContext = context + newTokens / 2;
    results.push({
      dtype,
      fileMB,
      bytesPerToken: linearParameters * bytesPerWeight[dtype] + kvBytesPerPosition * averageContext,
      ours: {
        decodeMs: spread(ours.decode),
        spinningDecodeMs: spread(spinningDecode),
        glueMs: median(ours.glue),
        prefill512TokensPerSecond: spread(ours.prefill512, 'high'),
      },
      transformers: {
        decodeMs: spread(theirs.decode),
        glueMs: median(theirs.glue),
        prefill512TokensPerSecond: spread(theirs.prefill512, 'high'),
      },
      sameGreedyTokens,
      batch,
      kv: kvResult,
      pairedRatio: {
        spinning: median(theirs.decode.map((t, i) => t / spinningDecode[i]!)),
        default: median(theirs.decode.map((t, i) => t / ours.decode[i]!)),
      },
    });
  }

  // The roofline uses the best bandwidth seen (start and end of the run): a lower bound on the time per token.
  bandwidth1 = Math.max(bandwidth1, await measureReadBandwidth(1));
  bandwidth = Math.max(bandwidth, await measureReadBandwidth(threads));
  const final: DtypeResult[] = results.map((r) => ({ ...r, rooflineMs: (r.bytesPerToken / bandwidth) * 1000 }));
  const loadEnd = os.loadavg()[0]!;
  const totalSeconds = (performance.now() - started) / 1000;
  const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, onnxruntime-node ${ort.env.versions.node ?? ''}`;
  const ms = (x: Spread) => `${x.median.toFixed(2)} (${x.best.toFixed(2)})`;
  const rate = (x: Spread) => `${x.median.toFixed(0)} (${x.best.toFixed(0)})`;
  const lines = [
    `Machine: ${machine}. Date: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. ${threads} intra-op threads, context ${context}, ${newTokens} new tokens, greedy. Figures are "median (best)" of ${rounds} rounds; within a round ours (spinning on), transformers.js and ours (default) run one after the other, and ratios are medians of the per-round ratios. 1-minute load average ${loadStart.toFixed(1)} at start, ${loadEnd.toFixed(1)} at end; whole run ${totalSeconds.toFixed(0)} s.`,
    `Memory read bandwidth (WebAssembly SIMD read loop over 256 MiB per thread, best of the start and the end of this run): ${gb(bandwidth1)} GB/s with 1 thread, ${gb(bandwidth)} GB/s with ${threads}. Model directory ready in ${modelSeconds.toFixed(1)} s${modelSeconds < 1 ? ' (cached)' : ''}.`,
    '',
    '| dtype | file MB | read / token | roofline ms/token | ours, spinning on (as transformers.js) | transformers.js | transformers.js / ours, same round | ours, spinning off (default) | transformers.js / ours (default), same round | roofline / ours (best) | glue ms/step ours / transformers.js | same greedy tokens |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...final.map(
      (r) =>
        `| ${r.dtype} | ${r.fileMB.toFixed(0)} | ${(r.bytesPerToken / 1e6).toFixed(0)} MB | ${r.rooflineMs.toFixed(2)} | ${ms(r.ours.spinningDecodeMs)} | ${ms(r.transformers.decodeMs)} | ${r.pairedRatio.spinning.toFixed(2)}x | ${ms(r.ours.decodeMs)} | ${r.pairedRatio.default.toFixed(2)}x | ${(r.rooflineMs / Math.min(r.ours.spinningDecodeMs.best, r.ours.decodeMs.best)).toFixed(2)} | ${r.ours.glueMs.toFixed(2)} / ${r.transformers.glueMs.toFixed(2)} | ${r.sameGreedyTokens ? 'yes' : 'no'} |`,
    ),
    '',
    `| dtype | prefill ${prefillLength} tokens, ours tok/s | transformers.js tok/s | ours / transformers.js | ${batchSizes.map((b) => `decode batch ${b} tok/s`).join(' | ')} | batch ${batchSizes.at(-1)} / batch 1 | glue ms/step at batch ${batchSizes.at(-1)} |`,
    `|---|---|---|---|${batchSizes.map(() => '---').join('|')}|---|---|`,
    ...final.map(
      (r) =>
        `| ${r.dtype} | ${rate(r.ours.prefill512TokensPerSecond)} | ${rate(r.transformers.prefill512TokensPerSecond)} | ${(r.ours.prefill512TokensPerSecond.median / r.transformers.prefill512TokensPerSecond.median).toFixed(2)}x | ${r.batch.map((b) => b.tokensPerSecond.toFixed(0)).join(' | ')} | ${(r.batch.at(-1)!.tokensPerSecond / r.batch[0]!.tokensPerSecond).toFixed(1)}x | ${r.batch.at(-1)!.glueMs.toFixed(2)} |`,
    ),
    '',
    `| dtype | KV bytes / cached token, batch ${batchSizes.at(-1)} of equal prompts | 2 · layers · kv_heads · head_dim · 4 | batch of prompts of 32, 64, 96, 128 tokens (left padding held) | stats back to 0 after release |`,
    '|---|---|---|---|---|',
    ...final.map(
      (r) =>
        `| ${r.dtype} | ${r.kv.bytesPerToken.toFixed(0)} | ${r.kv.formula} | ${r.kv.paddedBytesPerToken.toFixed(0)} | ${r.kv.baselineAfterRelease ? 'yes' : 'no'} |`,
    ),
  ];
  const markdown = lines.join('\n');
  process.stdout.write(`${markdown}\n`);
  if (values.markdown !== undefined) await writeFile(values.markdown, `${markdown}\n`);
  if (values.json !== undefined) {
    await writeFile(
      values.json,
      JSON.stringify(
        { machine, threads, rounds, bandwidth1, bandwidth, modelSeconds, loadStart, loadEnd, totalSeconds, final },
        null,
        2,
      ),
    );
  }
}

await main();

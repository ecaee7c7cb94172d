// Speed of @gen/backend-tfjs on the model-kit `bench` preset (llama, hidden 768, 12 layers, 12 heads / 4 KV heads,
// intermediate 2048, vocab 32,000: 124.7M parameters), next to @gen/backend-onnx when it is in the workspace.
//
//   pnpm --filter @gen/backend-tfjs bench            (all tfjs backends that load here, then onnx)
//   pnpm --filter @gen/backend-tfjs bench wasm       (only the named ones: wasm, cpu, node, node-gpu, onnx)
//
// Per backend: decode ms/token at batch 1, aggregate tokens/s at batch 16 (decode steps of 16 live sequences),
// prefill tokens/s on one 512-token prompt; for tfjs, the time of a decode step's matrix products alone (the same
// weights, run as bare tf.matMul calls) and the step / products ratio, and a per-kernel profile of one step.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readModelConfig, type BackendV1 } from '@gen/backend';
import { ensureModelDir } from '@gen/model-kit';
import * as tf from '@tensorflow/tfjs-core';
import { createTfjsBackend, type TfjsBackendKind } from '../src/index.js';
import { selectBackend } from '../src/select-backend.js';
import { loadModelTensors, type ModelTensors } from '../src/weights.js';

const requested = process.argv.slice(2);
const wants = (name: string) => requested.length === 0 || requested.includes(name);
const load = () =>
  execFileSync('uptime', { encoding: 'utf8' })
    .trim()
    .replace(/^.*load average/, 'load average');

interface Row {
  backend: string;
  decodeMs: number | undefined;
  batch16: number | undefined;
  prefill: number | undefined;
  prefillTokens: number;
  productsMs?: number;
  notes: string;
}

function tokens(length: number, seed: number, vocab: number): number[] {
  let state = seed >>> 0;
  return Array.from({ length }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % vocab;
  });
}

async function time(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

/** The three numbers every backend gets. `scale` shrinks the work for slow backends (reported in the notes). */
async function measure(
  backend: BackendV1,
  options: { decodeSteps: number; batchSteps: number; prefillTokens: number },
) {
  const vocab = backend.model.vocabSize;
  // Warm-up: first calls create kernels / operators.
  await backend.doForward({ sequences: [{ id: 'warm', tokens: tokens(32, 9, vocab) }] });
  await backend.doForward({ sequences: [{ id: 'warm', tokens: [1] }] });
  await backend.doRelease(['warm']);

  await backend.doForward({ sequences: [{ id: 'one', tokens: tokens(16, 1, vocab) }] });
  await backend.doForward({ sequences: [{ id: 'one', tokens: [5] }] });
  const decodeMs =
    (await time(async () => {
      for (let s = 0; s < options.decodeSteps; s++) {
        await backend.doForward({ sequences: [{ id: 'one', tokens: [(s * 7) % vocab] }] });
      }
    })) / options.decodeSteps;
  await backend.doRelease(['one']);

  const ids = Array.from({ length: 16 }, (_, i) => `b${i}`);
  await backend.doForward({ sequences: ids.map((id, i) => ({ id, tokens: tokens(16, 10 + i, vocab) })) });
  await backend.doForward({ sequences: ids.map((id, i) => ({ id, tokens: [i] })) });
  const batchMs = await time(async () => {
    for (let s = 0; s < options.batchSteps; s++) {
      await backend.doForward({ sequences: ids.map((id, i) => ({ id, tokens: [(s + i) % vocab] })) });
    }
  });
  await backend.doRelease(ids);

  const prefillMs = await time(() =>
    backend.doForward({ sequences: [{ id: 'long', tokens: tokens(options.prefillTokens, 3, vocab) }] }),
  );
  await backend.doRelease(['long']);
  return {
    decodeMs,
    batch16: (16 * options.batchSteps * 1000) / batchMs,
    prefill: (options.prefillTokens * 1000) / prefillMs,
  };
}

/**
 * The matrix products of one decode step (q/k/v, o, gate, up, down per layer, then lm_head) on the model's own
 * weight tensors, as bare `tf.matMul` calls with nothing in between: the floor a decode step is compared with.
 */
function productsMs(weights: ModelTensors, rows: number, repeats: number, headRows = rows): number {
  const run = () =>
    tf.tidy(() => {
      let last: tf.Tensor | undefined;
      for (const layer of weights.layers) {
        for (const w of [layer.qkv, layer.output, layer.gate, layer.up, layer.down]) {
          last = tf.matMul(tf.ones([rows, w.shape[0]]), w);
        }
      }
      return tf.add(tf.matMul(tf.ones([headRows, weights.lmHead.shape[0]]), weights.lmHead), tf.sum(last!));
    });
  run().dispose();
  const start = performance.now();
  for (let r = 0; r < repeats; r++) {
    const out = run();
    out.dataSync();
    out.dispose();
  }
  return (performance.now() - start) / repeats;
}

/** Per-kernel time of one decode step (batch `rows`), summed by kernel name. */
async function profileStep(backend: BackendV1, rows: number): Promise<string> {
  const vocab = backend.model.vocabSize;
  const ids = Array.from({ length: rows }, (_, i) => `p${i}`);
  await backend.doForward({ sequences: ids.map((id, i) => ({ id, tokens: tokens(16, 50 + i, vocab) })) });
  const started = performance.now();
  let wall = 0;
  const info = await tf.profile(async () => {
    await backend.doForward({ sequences: ids.map((id) => ({ id, tokens: [3] })) });
    wall = performance.now() - started;
    return [];
  });
  await backend.doRelease(ids);
  const byName = new Map<string, { ms: number; count: number }>();
  let kernelMs = 0;
  for (const kernel of info.kernels) {
    const ms = Number(kernel.kernelTimeMs) || 0;
    kernelMs += ms;
    const entry = byName.get(kernel.name) ?? { ms: 0, count: 0 };
    entry.ms += ms;
    entry.count++;
    byName.set(kernel.name, entry);
  }
  const top = [...byName.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 6);
  return (
    `batch ${rows}: ${info.kernels.length} kernels, ${kernelMs.toFixed(1)} ms in kernels of ${wall.toFixed(1)} ms ` +
    `(profiled step; the rest is JavaScript between kernels: dispatch, host-side mask / rotary tables, cache ` +
    `writes, logits read-back); top: ` +
    top.map(([name, e]) => `${name} ${e.ms.toFixed(1)} ms / ${e.count}`).join(', ')
  );
}

async function benchTfjs(kind: TfjsBackendKind, modelDir: string): Promise<Row | undefined> {
  let backend: BackendV1;
  const loadStart = performance.now();
  try {
    backend = await createTfjsBackend({ modelDir, tfjsBackend: kind, maxBatchSize: 16 });
  } catch (error) {
    const reasons = (error as Error).message.split('\n').slice(1);
    console.log(`tfjs ${kind}: does not load here (${reasons.map((r) => r.replace(/^\s*- /, '')).join('; ')})`);
    return undefined;
  }
  const loadMs = performance.now() - loadStart;
  const slow = kind === 'cpu';
  const options = slow
    ? { decodeSteps: 3, batchSteps: 1, prefillTokens: 64 }
    : { decodeSteps: 24, batchSteps: 6, prefillTokens: 512 };
  console.log(`tfjs ${kind}: loaded in ${(loadMs / 1000).toFixed(1)} s; measuring (${load()})`);
  const result = await measure(backend, options);
  const profiles = slow ? [] : [await profileStep(backend, 1), await profileStep(backend, 16)];
  const tfjsBackend = String(backend.capabilities.details?.['tfjsBackend']);
  await backend.doDispose();

  await selectBackend({ order: [kind] });
  const config = await readModelConfig(modelDir);
  const weights = await loadModelTensors(modelDir, config);
  const products1 = productsMs(weights, 1, slow ? 2 : 10);
  const products16 = slow ? undefined : productsMs(weights, 16, 4);
  // A prefill computes logits for its last row only.
  const productsPrefill = slow ? undefined : productsMs(weights, options.prefillTokens, 1, 1);
  weights.dispose();
  const matvec = tf.tidy(() => {
    const w = tf.ones([768, 3072]);
    const x = tf.ones([1, 768]);
    tf.matMul(x, w).dataSync();
    const start = performance.now();
    for (let r = 0; r < 50; r++) tf.matMul(x, w).dataSync();
    return (2 * 768 * 3072 * 50) / ((performance.now() - start) * 1e6);
  });
  for (const line of profiles) console.log(`  profile ${line}`);
  console.log(
    `  products alone: ${products1.toFixed(1)} ms at batch 1` +
      (products16 === undefined ? '' : `, ${products16.toFixed(1)} ms at batch 16`) +
      (productsPrefill === undefined
        ? ''
        : `, ${productsPrefill.toFixed(0)} ms for a ${options.prefillTokens}-token prefill`) +
      `; 768x3072 matrix-vector product: ${matvec.toFixed(1)} GFLOP/s (cached weights)`,
  );
  const notes = [
    `step / products ${(result.decodeMs / products1).toFixed(2)} at batch 1`,
    products16 === undefined ? '' : `${((16 * 1000) / result.batch16 / products16).toFixed(2)} at batch 16`,
    productsPrefill === undefined
      ? ''
      : `${((options.prefillTokens * 1000) / result.prefill / productsPrefill).toFixed(2)} for the prefill`,
    slow ? `reduced run (${options.decodeSteps} decode steps, ${options.batchSteps} batch step, prefill of 64)` : '',
  ].filter(Boolean);
  return {
    backend: `tfjs ${kind} (${tfjsBackend})`,
    ...result,
    prefillTokens: options.prefillTokens,
    productsMs: products1,
    notes: notes.join('; '),
  };
}

async function benchOnnx(modelDir: string): Promise<Row> {
  type Factory = (settings: { modelDir: string; maxBatchSize?: number }) => Promise<BackendV1>;
  let create: Factory | undefined;
  const sibling = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../backend-onnx/src/index.ts');
  for (const specifier of ['@gen/backend-onnx', ...(existsSync(sibling) ? [sibling] : [])]) {
    try {
      create = ((await import(specifier)) as { createOnnxBackend?: Factory }).createOnnxBackend;
      if (create !== undefined) break;
    } catch {
      // Not installed / not in this workspace: n/a.
    }
  }
  const row: Row = {
    backend: 'onnx (cpu)',
    decodeMs: undefined,
    batch16: undefined,
    prefill: undefined,
    prefillTokens: 512,
    notes: '',
  };
  if (create === undefined) return { ...row, notes: '@gen/backend-onnx not available: n/a' };
  try {
    const backend = await create({ modelDir, maxBatchSize: 16 });
    console.log(`onnx: loaded; measuring (${load()})`);
    const result = await measure(backend, { decodeSteps: 24, batchSteps: 6, prefillTokens: 512 });
    await backend.doDispose();
    return { ...row, ...result, notes: `device ${backend.capabilities.device}` };
  } catch (error) {
    return { ...row, notes: `failed: ${(error as Error).message.split('\n')[0]}` };
  }
}

const started = performance.now();
console.log(`bench preset: generating or reusing the model directory (${load()})`);
const modelDir = await ensureModelDir('bench');
const rows: Row[] = [];
for (const kind of ['node-gpu', 'node', 'wasm', 'cpu'] satisfies TfjsBackendKind[]) {
  if (!wants(kind)) continue;
  const row = await benchTfjs(kind, modelDir);
  if (row !== undefined) rows.push(row);
}
if (wants('onnx')) rows.push(await benchOnnx(modelDir));

const format = (value: number | undefined, digits: number) => (value === undefined ? 'n/a' : value.toFixed(digits));
console.log(
  `\nbench preset (124.7M parameters, float32), ${load()}, ${((performance.now() - started) / 1000).toFixed(0)} s\n`,
);
console.log('| backend | decode ms/token (batch 1) | tokens/s (batch 16) | prefill tokens/s | notes |');
console.log('| --- | --- | --- | --- | --- |');
for (const row of rows) {
  const prefill = `${format(row.prefill, 0)}${row.prefillTokens === 512 ? '' : ` (${row.prefillTokens} tokens)`}`;
  console.log(
    `| ${row.backend} | ${format(row.decodeMs, 1)} | ${format(row.batch16, 1)} | ${prefill} | ${row.notes} |`,
  );
}

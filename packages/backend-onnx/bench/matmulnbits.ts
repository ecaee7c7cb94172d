/**
 * `pnpm --filter @gen/backend-onnx bench:matmulnbits`: where a quantized decode step goes, and how fast onnxruntime's
 * `MatMulNBits` is on this machine (issue #14).
 *
 * 1. Exports the fused decoder (model-kit's `fused` graph, the one the backend runs) of the `bench` preset (llama,
 *    hidden 768, 12 layers, vocab 32,000) as 4-bit (`q4`) and 8-bit (`int8`) `MatMulNBits` files for every block
 *    size of `--blocks` and `accuracy_level` of `--levels` (0 and 1: float32 activations; 4: activations quantized
 *    to int8 per block, int8 dot products). Files are cached under the system temp directory.
 * 2. Decodes at batch 1 with a bare loop on the direct binding (as `bench/fused.ts`: a 128-token prefill, then
 *    `--tokens` greedy steps; median of `--rounds` rounds, the variants alternating within each round), then profiles
 *    `--tokens` steps of each variant with onnxruntime's profiler: `MatMulNBits` time per step (by projection) against
 *    the rest of the kernels and `model_run`.
 * 3. The bandwidth roofline per variant: bytes a step reads (every initializer but the embedding table and the
 *    rotary caches, one embedding row, the KV cache at the mean context) / the read bandwidth `bench/bandwidth.ts`
 *    measures in the same run.
 * 4. One isolated `MatMulNBits` node per setting, for the qkv (`[1, 768] x [768, 1280]`) and `lm_head`
 *    (`[1, 768] x [768, 32000]`) shapes: "cold" (a graph of independent copies of the node with their own weights,
 *    >= 96 MB in all, so every call streams its weights from memory as in a decode step) and "hot" (one node called
 *    repeatedly; weights in cache): kernel µs per call from the profiler and GB/s of weight bytes.
 *
 * Options: `--preset bench|tiny`, `--threads N` (2), `--rounds N` (3), `--tokens N` (32), `--bits 4,8`,
 * `--blocks 32,64,128`, `--levels 0,1,4`, `--no-node`, `--no-decode`, `--fresh` (re-export), `--json FILE`,
 * `--markdown FILE`.
 *
 * model-kit exposes `accuracyLevel` only on `buildFusedDecoderGraph` (not on `ensureModelDir`), so the files are built
 * from model-kit's sources directly.
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { planModelDir, type PresetName } from '@gen/model-kit';
import * as ort from 'onnxruntime-node';
import { parseHfConfig } from '../../model-kit/src/hf-config.js';
import { contribOpsets, decoderOpsetVersion } from '../../model-kit/src/onnx/decoder-graph.js';
import { buildFusedDecoderGraph } from '../../model-kit/src/onnx/fused-decoder-graph.js';
import { attr, GraphBuilder } from '../../model-kit/src/onnx/graph-builder.js';
import { DataType, type GraphSpec } from '../../model-kit/src/onnx/onnx-proto.js';
import { quantizeBlockwise } from '../../model-kit/src/onnx/quantize.js';
import { writeOnnxModel } from '../../model-kit/src/onnx/write-onnx.js';
import { seededWeights } from '../../model-kit/src/weights.js';
import type { WeightSource } from '../../model-kit/src/weights.js';
import { DirectSession } from '../src/direct/direct-session.js';
import { measureReadBandwidth } from './bandwidth.js';
import { argmax, gb, log, median, prompt } from './common.js';

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'bench' },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    tokens: { type: 'string', default: '32' },
    bits: { type: 'string', default: '4,8' },
    blocks: { type: 'string', default: '32,64,128' },
    levels: { type: 'string', default: '0,1,4' },
    'no-node': { type: 'boolean', default: false },
    'no-decode': { type: 'boolean', default: false },
    fresh: { type: 'boolean', default: false },
    json: { type: 'string' },
    markdown: { type: 'string' },
  },
});
const preset = values.preset as PresetName;
const threads = Number(values.threads);
const rounds = Number(values.rounds);
const tokens = Number(values.tokens);
const numbers = (s: string) => s.split(',').map(Number);
const bitsList = numbers(values.bits) as (4 | 8)[];
const blocks = numbers(values.blocks);
const levels = numbers(values.levels) as (0 | 1 | 4)[];
const context = 128;
const warmSteps = 4;
const cacheDir = path.join(os.tmpdir(), `gen-matmulnbits-${preset}`);

interface Setting {
  bits: 4 | 8;
  block: number;
  level: 0 | 1 | 4;
}
const label = (s: Setting) => `${s.bits === 4 ? 'q4' : 'int8'} b${s.block} a${s.level}`;
const settings: Setting[] = bitsList.flatMap((bits) =>
  blocks.flatMap((block) => levels.map((level) => ({ bits, block, level }))),
);

/** Bytes of a `MatMulNBits` weight `[n, k]`: codes and float32 scales (no zero points: symmetric). */
const nbitsBytes = (n: number, k: number, s: Pick<Setting, 'bits' | 'block'>) => {
  const blocksPerColumn = Math.ceil(k / s.block);
  return n * blocksPerColumn * ((s.block * s.bits) / 8 + 4);
};

// ---------------------------------------------------------------------------------------------------------------
// Profiles

interface ProfileEvent {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}

async function readProfile(session: DirectSession): Promise<ProfileEvent[]> {
  const file = session.endProfiling();
  const events = JSON.parse(await readFile(file, 'utf8')) as ProfileEvent[];
  await rm(file, { force: true });
  return events;
}

const profilePrefix = () => path.join(os.tmpdir(), `gen-matmulnbits-profile-${process.pid}`);

// ---------------------------------------------------------------------------------------------------------------
// Decode

interface Shape {
  layers: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
}

/** Timed work per measurement: variants slower than `tokens` steps in this time run fewer steps (at least 3). */
const budgetMs = 2000;
const stepsWithin = (msPerStep: number, most: number) =>
  Math.max(3, Math.min(most, Math.floor(budgetMs / Math.max(msPerStep, 1e-3))));

/**
 * A bare decode loop over a fused file (what the backend does without its bookkeeping): a `context`-token prefill,
 * `warmSteps` untimed steps, then up to `steps` timed greedy steps (fewer when the warm-up shows they would take
 * more than `budgetMs`). Returns ms per timed step and the number of timed steps.
 */
async function decode(session: DirectSession, shape: Shape, most: number): Promise<{ ms: number; steps: number }> {
  const { layers, kvHeads, headDim } = shape;
  const capacity = context + warmSteps + most;
  const buffers = Array.from(
    { length: 2 * layers },
    () => new ort.Tensor('float32', new Float32Array(kvHeads * capacity * headDim), [1, kvHeads, capacity, headDim]),
  );
  const step = async (ids: number[], past: number): Promise<number> => {
    const seq = ids.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, seq]),
      seqlens_k: new ort.Tensor('int32', Int32Array.of(past + seq - 1), [1]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(past + seq), []),
      num_logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(1n), []),
    };
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    for (let i = 0; i < layers; i++) {
      feeds[`past_key_values.${i}.key`] = fetches[`present.${i}.key`] = buffers[2 * i]!;
      feeds[`past_key_values.${i}.value`] = fetches[`present.${i}.value`] = buffers[2 * i + 1]!;
    }
    const out = await session.run(feeds, fetches);
    return argmax(out['logits']!.data as Float32Array);
  };
  let next = await step(
    prompt(context, 7).map((id) => id % shape.vocab),
    0,
  );
  let past = context;
  let start = performance.now();
  for (let k = 0; k < warmSteps; k++) next = await step([next], past++);
  const steps = stepsWithin((performance.now() - start) / warmSteps, most);
  start = performance.now();
  for (let k = 0; k < steps; k++) next = await step([next], past++);
  return { ms: (performance.now() - start) / steps, steps };
}

/** Which projection a `MatMulNBits` node of the fused graph is, from its name. */
const roles = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj', 'lm_head'] as const;
type Role = (typeof roles)[number];
const roleOf = (name: string): Role | undefined => roles.find((r) => name.includes(`/${r}/`));

interface DecodeProfile {
  modelRunMs: number;
  kernelsMs: number;
  matMulNBitsMs: number;
  /** µs per call and the node's weight bytes, by projection. */
  byRole: Partial<Record<Role, { us: number; bytes: number; perStep: number }>>;
}

async function profileDecode(file: string, shape: Shape, roleBytes: Record<Role, number>): Promise<DecodeProfile> {
  const session = DirectSession.create(file, { intraOpThreads: threads, profileFilePrefix: profilePrefix() });
  await decode(session, shape, tokens);
  const events = await readProfile(session);
  await session.release();
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
  const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
  const perRun = nodes.length / runs.length;
  // Skip the prefill and the warm-up steps.
  const skip = 1 + warmSteps;
  const timed = nodes.slice(perRun * skip);
  const steps = runs.length - skip;
  // Per step: the sum of its kernels (all, and MatMulNBits only); the medians over the steps are reported.
  const perStep = (keep: (e: ProfileEvent) => boolean) =>
    Array.from({ length: steps }, (_, i) =>
      timed.slice(i * perRun, (i + 1) * perRun).reduce((sum, e) => sum + (keep(e) ? e.dur : 0), 0),
    );
  const nbits = timed.filter((e) => e.args?.op_name === 'MatMulNBits');
  const byRole: DecodeProfile['byRole'] = {};
  for (const role of roles) {
    const mine = nbits.filter((e) => roleOf(e.name) === role);
    if (mine.length === 0) continue;
    byRole[role] = { us: median(mine.map((e) => e.dur)), bytes: roleBytes[role], perStep: mine.length / steps };
  }
  return {
    modelRunMs: median(runs.slice(skip).map((e) => e.dur / 1000)),
    kernelsMs: median(perStep(() => true)) / 1000,
    matMulNBitsMs: median(perStep((e) => e.args?.op_name === 'MatMulNBits')) / 1000,
    byRole,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Files

interface Variant extends Setting {
  file: string;
  /** Bytes a decode step reads from memory (weights, one embedding row, the KV cache at the mean context). */
  bytesPerToken: number;
  /** `MatMulNBits` weight bytes per step. */
  nbitsBytes: number;
}

/** A weight source that generates each tensor once (every file is written from the same weights). */
function memoized(source: WeightSource): WeightSource {
  const cache = new Map<string, Promise<Float32Array>>();
  return {
    read(name) {
      let value = cache.get(name);
      if (value === undefined) cache.set(name, (value = source.read(name)));
      return value;
    },
  };
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    (s) => s.size > 0,
    () => false,
  );
}

async function exportVariants(): Promise<{
  variants: Variant[];
  shape: Shape;
  roleBytes: (s: Setting) => Record<Role, number>;
}> {
  const { hfConfig } = planModelDir({ preset });
  const spec = parseHfConfig(hfConfig);
  const weights = memoized(seededWeights(spec, 0, 'float32'));
  const shape = { layers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, vocab: spec.vocabSize };
  const h = spec.hiddenSize;
  const qkvOut = (spec.numHeads + 2 * spec.numKvHeads) * spec.headDim;
  const roleBytes = (s: Setting): Record<Role, number> => ({
    qkv_proj: nbitsBytes(qkvOut, h, s),
    o_proj: nbitsBytes(h, spec.numHeads * spec.headDim, s),
    gate_up_proj: nbitsBytes(2 * spec.intermediateSize, h, s),
    down_proj: nbitsBytes(h, spec.intermediateSize, s),
    lm_head: nbitsBytes(spec.vocabSize, h, s),
  });
  const kvBytesPerPosition = 2 * spec.numLayers * spec.numKvHeads * spec.headDim * 4;
  const meanContext = context + warmSteps + tokens / 2;
  await mkdir(cacheDir, { recursive: true });
  const variants: Variant[] = [];
  for (const s of settings) {
    const file = path.join(cacheDir, `${label(s).replaceAll(' ', '-')}.onnx`);
    const graph: GraphSpec = buildFusedDecoderGraph(spec, weights, {
      variant: s.bits === 4 ? 'q4' : 'int8',
      accuracyLevel: s.level,
      quantBlockSize: s.block,
    });
    // Everything a step reads but the embedding table (one row is gathered) and the rotary tables (one row each).
    const skipped = new Set(['model.embed_tokens.weight', 'cos_cache', 'sin_cache']);
    const initializerBytes = graph.initializers
      .filter((t) => !skipped.has(t.name))
      .reduce((sum, t) => sum + t.data.byteLength, 0);
    const nbits = graph.initializers
      .filter((t) => /weight_Q\d$|weight_scales$/.test(t.name))
      .reduce((sum, t) => sum + t.data.byteLength, 0);
    const bytesPerToken = initializerBytes + h * 4 + 2 * spec.headDim * 2 + kvBytesPerPosition * meanContext;
    if (values.fresh || !(await exists(file))) {
      const start = performance.now();
      await writeOnnxModel({
        modelPath: file,
        graph,
        opsetVersion: decoderOpsetVersion,
        extraOpsets: contribOpsets,
        producerVersion: 'bench',
        externalData: 'never',
      });
      log(`  wrote ${file} in ${((performance.now() - start) / 1000).toFixed(1)} s`);
    }
    variants.push({ ...s, file, bytesPerToken, nbitsBytes: nbits });
  }
  return { variants, shape, roleBytes };
}

// ---------------------------------------------------------------------------------------------------------------
// Isolated node

interface NodeResult extends Setting {
  shape: string;
  k: number;
  n: number;
  bytes: number;
  cold: { copies: number; kernelUs: number; gbPerS: number; overheadUs: number };
  hot: { kernelUs: number; gbPerS: number; runUs: number };
}

/** `copies` independent `MatMulNBits` nodes `[1, k] x [k, n]` on one input, each with its own initializers. */
function nodeGraph(k: number, n: number, s: Setting, copies: number): GraphSpec {
  const random = new Float32Array(n * k);
  let seed = 12345;
  for (let i = 0; i < random.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    random[i] = (seed / 2 ** 32 - 0.5) * 0.1;
  }
  const q = quantizeBlockwise(random, n, k, { bits: s.bits, blockSize: s.block });
  const g = new GraphBuilder();
  const outputs: string[] = [];
  for (let c = 0; c < copies; c++) {
    const codes = g.tensor(`w${c}_Q`, DataType.UINT8, [n, q.blocksPerColumn, (s.block * s.bits) / 8], q.packed);
    const scales = g.tensor(`w${c}_scales`, DataType.FLOAT, [n * q.blocksPerColumn], {
      byteLength: q.scales.byteLength,
      produce: () => new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength),
    });
    const out = `y${c}`;
    g.opNamed(
      `/node${c}`,
      'MatMulNBits',
      ['a', codes, scales],
      [out],
      {
        K: attr.int(k),
        N: attr.int(n),
        bits: attr.int(s.bits),
        block_size: attr.int(s.block),
        accuracy_level: attr.int(s.level),
      },
      'com.microsoft',
    );
    outputs.push(out);
  }
  return {
    name: 'matmulnbits',
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [{ name: 'a', elemType: DataType.FLOAT, dims: [1, k] }],
    outputs: outputs.map((name) => ({ name, elemType: DataType.FLOAT, dims: [1, n] })),
  };
}

async function nodeRun(
  k: number,
  n: number,
  s: Setting,
  copies: number,
  calls: number,
): Promise<{ kernelUs: number; modelRunUs: number; runUs: number }> {
  const file = path.join(cacheDir, `node-${k}x${n}-${label(s).replaceAll(' ', '-')}-x${copies}.onnx`);
  await writeOnnxModel({
    modelPath: file,
    graph: nodeGraph(k, n, s, copies),
    opsetVersion: decoderOpsetVersion,
    extraOpsets: contribOpsets,
    producerVersion: 'bench',
    externalData: 'never',
  });
  const session = DirectSession.create(file, { intraOpThreads: threads, profileFilePrefix: profilePrefix() });
  const a = new Float32Array(k);
  for (let i = 0; i < k; i++) a[i] = Math.sin(i);
  const feeds = { a: new ort.Tensor('float32', a, [1, k]) };
  const fetches = Array.from({ length: copies }, (_, c) => `y${c}`);
  const warm = 3;
  const warmStart = performance.now();
  for (let i = 0; i < warm; i++) await session.run(feeds, fetches);
  const count = Math.min(calls, stepsWithin((performance.now() - warmStart) / warm, calls));
  const wall: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await session.run(feeds, fetches);
    wall.push((performance.now() - start) * 1000);
  }
  const events = await readProfile(session);
  await session.release();
  await rm(file, { force: true });
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(warm);
  const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time')).slice(warm * copies);
  return {
    kernelUs: median(nodes.map((e) => e.dur)),
    modelRunUs: median(runs.map((e) => e.dur)),
    runUs: median(wall),
  };
}

async function isolatedNodes(spec: { hidden: number; qkvOut: number; vocab: number }): Promise<NodeResult[]> {
  const shapes = [
    { shape: 'qkv', k: spec.hidden, n: spec.qkvOut },
    { shape: 'lm_head', k: spec.hidden, n: spec.vocab },
  ];
  const results: NodeResult[] = [];
  for (const { shape, k, n } of shapes) {
    for (const s of settings) {
      const bytes = nbitsBytes(n, k, s);
      const copies = Math.min(256, Math.max(2, Math.ceil(96e6 / bytes)));
      const cold = await nodeRun(k, n, s, copies, Math.max(10, Math.ceil(4000 / copies)));
      const hot = await nodeRun(k, n, s, 1, 200);
      const result: NodeResult = {
        ...s,
        shape,
        k,
        n,
        bytes,
        cold: {
          copies,
          kernelUs: cold.kernelUs,
          gbPerS: bytes / cold.kernelUs / 1e3,
          overheadUs: cold.modelRunUs / copies - cold.kernelUs,
        },
        hot: { kernelUs: hot.kernelUs, gbPerS: bytes / hot.kernelUs / 1e3, runUs: hot.runUs },
      };
      log(
        `  node ${shape} [1, ${k}] x [${k}, ${n}] ${label(s)}: cold ${cold.kernelUs.toFixed(0)} µs ` +
          `(${result.cold.gbPerS.toFixed(1)} GB/s, ${copies} copies), hot ${hot.kernelUs.toFixed(0)} µs ` +
          `(${result.hot.gbPerS.toFixed(1)} GB/s), session.run ${hot.runUs.toFixed(0)} µs`,
      );
      results.push(result);
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------------------------

interface DecodeResult extends Setting {
  bytesPerToken: number;
  nbitsBytes: number;
  stepMs: number[];
  /** Timed steps per round (fewer than `--tokens` for slow variants). */
  steps: number;
  profile: DecodeProfile;
}

async function main(): Promise<void> {
  const loadStart = os.loadavg();
  const started = performance.now();
  log(`exporting ${settings.length} fused variants of ${preset} to ${cacheDir}...`);
  const { variants, shape, roleBytes } = await exportVariants();
  const { hfConfig } = planModelDir({ preset });
  const spec = parseHfConfig(hfConfig);

  log('measuring memory read bandwidth...');
  let bandwidth1 = await measureReadBandwidth(1);
  let bandwidth = await measureReadBandwidth(threads);
  log(`read bandwidth ${gb(bandwidth1)} GB/s (1 thread), ${gb(bandwidth)} GB/s (${threads} threads)`);

  const decodes: DecodeResult[] = [];
  if (!values['no-decode']) {
    const stepMs = variants.map((): number[] => []);
    const timedSteps = variants.map(() => tokens);
    for (let round = 0; round < rounds; round++) {
      // Alternate: each round starts at another variant, and every other round runs them backwards.
      const order = variants.map((_, i) => (i + round * 5) % variants.length);
      if (round % 2 === 1) order.reverse();
      for (const i of order) {
        const session = DirectSession.create(variants[i]!.file, { intraOpThreads: threads });
        const measured = await decode(session, shape, tokens);
        stepMs[i]!.push(measured.ms);
        log(`  ${label(variants[i]!)}: ${(1000 / measured.ms).toFixed(1)} tok/s over ${measured.steps} steps`);
        timedSteps[i] = Math.min(timedSteps[i]!, measured.steps);
        await session.release();
      }
      log(
        `round ${round}: ${variants.map((v, i) => `${label(v)} ${(1000 / stepMs[i]!.at(-1)!).toFixed(0)}`).join(', ')} tok/s`,
      );
    }
    for (const [i, v] of variants.entries()) {
      const profile = await profileDecode(v.file, shape, roleBytes(v));
      log(
        `profile ${label(v)}: model_run ${profile.modelRunMs.toFixed(2)} ms, kernels ${profile.kernelsMs.toFixed(2)}, MatMulNBits ${profile.matMulNBitsMs.toFixed(2)}`,
      );
      decodes.push({
        bits: v.bits,
        block: v.block,
        level: v.level,
        bytesPerToken: v.bytesPerToken,
        nbitsBytes: v.nbitsBytes,
        stepMs: stepMs[i]!,
        steps: timedSteps[i]!,
        profile,
      });
    }
  }

  const nodes = values['no-node']
    ? []
    : await isolatedNodes({
        hidden: spec.hiddenSize,
        qkvOut: (spec.numHeads + 2 * spec.numKvHeads) * spec.headDim,
        vocab: spec.vocabSize,
      });

  bandwidth1 = Math.max(bandwidth1, await measureReadBandwidth(1));
  bandwidth = Math.max(bandwidth, await measureReadBandwidth(threads));
  const loadEnd = os.loadavg();
  const run = {
    date: new Date().toISOString(),
    machine: `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, Node ${process.version}, onnxruntime-node ${ort.env.versions.node ?? ''}`,
    preset,
    threads,
    rounds,
    tokens,
    context,
    loadStart,
    loadEnd,
    seconds: (performance.now() - started) / 1000,
    bandwidth1,
    bandwidth,
  };
  const markdown = report(run, decodes, nodes);
  process.stdout.write(`${markdown}\n`);
  if (values.markdown !== undefined) await writeFile(values.markdown, `${markdown}\n`);
  if (values.json !== undefined) {
    await writeFile(values.json, `${JSON.stringify({ run, decodes, nodes }, null, 2)}\n`);
  }
}

function report(
  run: {
    date: string;
    machine: string;
    threads: number;
    rounds: number;
    tokens: number;
    context: number;
    loadStart: number[];
    loadEnd: number[];
    seconds: number;
    bandwidth1: number;
    bandwidth: number;
  },
  decodes: readonly DecodeResult[],
  nodes: readonly NodeResult[],
): string {
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
  const lines = [
    `${run.machine}; ${run.date.slice(0, 16).replace('T', ' ')} UTC; preset ${preset}; ${run.threads} intra-op threads; ` +
      `batch 1, context ${run.context}, ${run.tokens} timed tokens per round, ${run.rounds} rounds (median). Load average ` +
      `(1 / 5 / 15 min) ${load(run.loadStart)} at the start, ${load(run.loadEnd)} at the end; run ${run.seconds.toFixed(0)} s. ` +
      `Read bandwidth: ${gb(run.bandwidth1)} GB/s (1 thread), ${gb(run.bandwidth)} GB/s (${run.threads} threads).`,
  ];
  if (decodes.length > 0) {
    lines.push(
      '',
      '| variant | read / token MB | timed steps | decode tok/s (median) | roofline tok/s | of roofline | model_run ms | kernels ms | MatMulNBits ms | MatMulNBits share of model_run | MatMulNBits GB/s | rest of kernels ms |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...decodes.map((d) => {
        const ms = median(d.stepMs);
        const roofline = run.bandwidth / d.bytesPerToken;
        const p = d.profile;
        return (
          `| ${label(d)} | ${(d.bytesPerToken / 1e6).toFixed(1)} | ${d.steps} | ${(1000 / ms).toFixed(1)} | ${roofline.toFixed(0)} | ` +
          `${((1000 / ms / roofline) * 100).toFixed(0)}% | ${p.modelRunMs.toFixed(2)} | ${p.kernelsMs.toFixed(2)} | ` +
          `${p.matMulNBitsMs.toFixed(2)} | ${((p.matMulNBitsMs / p.modelRunMs) * 100).toFixed(0)}% | ` +
          `${(d.nbitsBytes / p.matMulNBitsMs / 1e6).toFixed(1)} | ${(p.kernelsMs - p.matMulNBitsMs).toFixed(2)} |`
        );
      }),
      '',
      "In-graph `MatMulNBits` per projection (profiled decode; median µs per call, GB/s of the node's weight bytes):",
      '',
      `| variant | ${roles.join(' | ')} |`,
      `|---|${roles.map(() => '---').join('|')}|`,
      ...decodes.map(
        (d) =>
          `| ${label(d)} | ${roles
            .map((r) => {
              const x = d.profile.byRole[r];
              return x === undefined ? '-' : `${x.us.toFixed(0)} µs, ${(x.bytes / x.us / 1e3).toFixed(1)} GB/s`;
            })
            .join(' | ')} |`,
      ),
    );
  }
  if (nodes.length > 0) {
    lines.push(
      '',
      'Isolated `MatMulNBits` node, batch 1: cold = a graph of independent copies (weights streamed from memory), ' +
        'kernel µs per call (profiler), GB/s of weight bytes, and per-node time in `model_run` beyond the kernel; ' +
        'hot = one node called repeatedly (weights in cache), kernel µs and `session.run` µs on the direct binding.',
      '',
      '| shape | variant | weight KB | cold µs | cold GB/s | per-node overhead µs | hot µs | hot GB/s | hot session.run µs |',
      '|---|---|---|---|---|---|---|---|---|',
      ...nodes.map(
        (r) =>
          `| ${r.shape} [1, ${r.k}] x [${r.k}, ${r.n}] | ${label(r)} | ${(r.bytes / 1e3).toFixed(0)} | ` +
          `${r.cold.kernelUs.toFixed(0)} | ${r.cold.gbPerS.toFixed(1)} | ${r.cold.overheadUs.toFixed(1)} | ` +
          `${r.hot.kernelUs.toFixed(0)} | ${r.hot.gbPerS.toFixed(1)} | ${r.hot.runUs.toFixed(0)} |`,
      ),
    );
  }
  return lines.join('\n');
}

await main();

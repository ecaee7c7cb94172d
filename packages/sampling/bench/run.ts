/**
 * Sampling benchmark: @gen/sampling against transformers.js on the same rows of logits.
 *
 *   pnpm --filter @gen/sampling bench [-- --json PATH] [--markdown PATH] [--quick] [--no-peer] [--vocab 32000,...]
 *
 * Prints a table of median / p90 microseconds per call at each vocabulary size, the peer's figures and ratios,
 * static reference figures, the heap check and the targets at V = 151,936.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

import { wasmKernelsEnabled } from '@gen/sampling';

import { runHeapCheck, type HeapCheck } from './heap.js';
import { describePool, makeLogitsPool, type PoolShape } from './logits.js';
import type { Budget, Stats } from './measure.js';
import {
  BATCH_ROWS,
  SCENARIOS,
  measureBatch,
  measureBatchManual,
  measureCopy,
  measurePasses,
  measureScenario,
  measureWatermarkCold,
  warmUpAll,
  type Passes,
  type WatermarkCold,
} from './ours.js';
import { PEER_SCENARIOS, PEER_UNSUPPORTED, loadPeer, measurePeer, peerArgmax } from './peer.js';
import {
  REFERENCES,
  TARGET_VOCAB,
  evaluateTargets,
  formatMarkdown,
  formatText,
  ourMedian,
  type BatchSummary,
  type BenchOutput,
  type OurResult,
  type PeerResult,
} from './report.js';

interface Options {
  json: string | undefined;
  markdown: string | undefined;
  quick: boolean;
  peer: boolean;
  vocabSizes: number[];
  heapSteps: number;
  /** Skip the mixed warm-up of every scenario (each is then timed right after its own warm-up only). */
  isolated: boolean;
}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = {
    json: undefined,
    markdown: undefined,
    quick: false,
    peer: true,
    vocabSizes: [32000, 128256, 151936],
    heapSteps: 10000,
    isolated: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === '--') continue;
    else if (arg === '--json') options.json = value();
    else if (arg === '--markdown') options.markdown = value();
    else if (arg === '--quick') options.quick = true;
    else if (arg === '--no-peer') options.peer = false;
    else if (arg === '--isolated') options.isolated = true;
    else if (arg === '--vocab') options.vocabSizes = value().split(',').map(Number);
    else if (arg === '--heap-steps') options.heapSteps = Number(value());
    else if (arg === '--help' || arg === '-h') {
      console.log(
        'usage: bench/run.ts [--json PATH] [--markdown PATH] [--quick] [--no-peer] [--isolated] [--vocab 32000,128256,151936] [--heap-steps 10000]',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}`);
  }
  if (options.vocabSizes.some((v) => !Number.isInteger(v) || v < 64)) throw new Error('bad --vocab');
  return options;
}

/** Scenarios with a target, timed a second time once the peer is loaded. */
const RETIMED_WITH_PEER: readonly string[] = ['greedy-top5', 'tgi', 'top-p-t1', 'top-p-t08', 'typical-p'];

function budget(base: Budget, quick: boolean): Budget {
  if (!quick) return base;
  return {
    warmupMs: base.warmupMs / 5,
    measureMs: base.measureMs / 5,
    minIterations: Math.max(5, Math.ceil(base.minIterations / 3)),
    maxIterations: base.maxIterations,
  };
}

/** Runs the heap check in this process when `gc` is exposed, else in a child `node --expose-gc`. */
function heapCheck(vocabSize: number, steps: number): { heap: HeapCheck | { error: string }; how: string } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) return { heap: runHeapCheck(gc, vocabSize, steps), how: 'in process, gc exposed' };
  const script = fileURLToPath(new URL('./heap-child.ts', import.meta.url));
  const child = spawnSync(
    process.execPath,
    [...process.execArgv, '--expose-gc', script, String(vocabSize), String(steps)],
    { encoding: 'utf8' },
  );
  const how = 'child `node --expose-gc` (this process has no gc)';
  const line = child.stdout.trim().split('\n').at(-1) ?? '';
  if (child.status !== 0 || line === '') {
    return { heap: { error: `child exited ${child.status}: ${child.stderr.trim().slice(0, 300)}` }, how };
  }
  return { heap: JSON.parse(line) as HeapCheck, how };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const oursBudget = budget({ warmupMs: 150, measureMs: 1000, minIterations: 30, maxIterations: 5000 }, options.quick);
  const batchBudget = budget({ warmupMs: 200, measureMs: 1200, minIterations: 20, maxIterations: 1000 }, options.quick);
  const peerBudget = budget({ warmupMs: 200, measureMs: 1000, minIterations: 15, maxIterations: 5000 }, options.quick);
  const copyBudget = budget({ warmupMs: 50, measureMs: 200, minIterations: 30, maxIterations: 5000 }, options.quick);
  const warmUpMs = options.quick ? 50 : 250;

  const loadBefore = os.loadavg()[0]!;
  const rows = new Map<number, Float32Array[]>();
  const pools: Record<number, PoolShape> = {};
  const copy: Record<number, Stats> = {};
  const ours: OurResult[] = [];
  const peerResults: PeerResult[] = [];
  const watermarkCold: Record<number, WatermarkCold> = {};
  const batch: BatchSummary[] = [];
  const passes: Record<number, Passes> = {};
  const argmaxAgrees: Record<number, boolean> = {};
  const withPeerLoaded: OurResult[] = [];

  // 1. Ours, before transformers.js is imported: importing any large module (onnxruntime-node, onnxruntime-web,
  // sharp, transformers.js) into the process slows these loops by 15-20% (see docs/benchmarks.md), so the peer
  // comes second and a few of our scenarios are timed again with it loaded (step 3).
  for (const vocabSize of options.vocabSizes) {
    const pool = makeLogitsPool(vocabSize, BATCH_ROWS);
    rows.set(vocabSize, pool);
    pools[vocabSize] = describePool(pool);
    copy[vocabSize] = measureCopy(pool, copyBudget);
    // Before anything else touches the watermark at this size, so the first call is really the first.
    watermarkCold[vocabSize] = measureWatermarkCold(pool, 20);
    if (!options.isolated) {
      process.stderr.write(`vocab ${vocabSize}: warming up every scenario\n`);
      warmUpAll(pool, warmUpMs);
    }
    passes[vocabSize] = measurePasses(pool, copyBudget);
    for (const scenario of SCENARIOS) {
      process.stderr.write(`vocab ${vocabSize}: ${scenario.label}\n`);
      let stats: Stats;
      if (scenario.id === 'batch16') {
        stats = measureBatch(scenario, pool, batchBudget);
        const manual = measureBatchManual(scenario, pool, batchBudget);
        const oneRowMedian = ourMedian({ ours }, 'tgi', vocabSize);
        batch.push({
          vocabSize,
          perBatchMedian: stats.median,
          perRowMedian: stats.median / BATCH_ROWS,
          oneRowMedian,
          ratioTo16xOneRow: stats.median / (BATCH_ROWS * oneRowMedian),
          manualLoopMedian: manual.median,
        });
      } else {
        stats = measureScenario(scenario, pool, oursBudget);
      }
      ours.push({ scenario: scenario.id, label: scenario.label, vocabSize, stats });
    }
  }

  // 2. The peer, in the same process, on the same rows.
  const peer = options.peer ? await loadPeer() : ({ ok: false, error: 'skipped (--no-peer)' } as const);
  if (peer.ok) {
    for (const vocabSize of options.vocabSizes) {
      const pool = rows.get(vocabSize)!;
      for (const scenario of PEER_SCENARIOS) {
        process.stderr.write(`vocab ${vocabSize}: transformers.js ${scenario.label}\n`);
        const stats = await measurePeer(peer.api, scenario, pool, peerBudget);
        const { id, against, label, note } = scenario;
        const ratio = stats.median / ourMedian({ ours }, against, vocabSize);
        peerResults.push({ id, against, label, note, vocabSize, stats, ratio });
      }
      let ourArgmax = 0;
      const row0 = pool[0]!;
      for (let i = 1; i < row0.length; i++) if (row0[i]! > row0[ourArgmax]!) ourArgmax = i;
      argmaxAgrees[vocabSize] = (await peerArgmax(peer.api, row0)) === ourArgmax;
    }

    // 3. Ours again at the target size, now that transformers.js and onnxruntime are loaded in this process.
    const pool = rows.get(TARGET_VOCAB);
    if (pool !== undefined) {
      for (const scenario of SCENARIOS.filter((s) => RETIMED_WITH_PEER.includes(s.id))) {
        process.stderr.write(`vocab ${TARGET_VOCAB}: ${scenario.label} (transformers.js loaded)\n`);
        const stats = measureScenario(scenario, pool, oursBudget);
        withPeerLoaded.push({ scenario: scenario.id, label: scenario.label, vocabSize: TARGET_VOCAB, stats });
      }
    }
  }

  process.stderr.write(`heap check: ${options.heapSteps} TGI-style steps\n`);
  const heapVocab = options.vocabSizes.includes(TARGET_VOCAB) ? TARGET_VOCAB : options.vocabSizes.at(-1)!;
  const { heap, how } = heapCheck(heapVocab, options.heapSteps);

  const cpus = os.cpus();
  const partial: Omit<BenchOutput, 'targets'> = {
    meta: {
      date: new Date().toISOString(),
      node: process.versions.node,
      v8: process.versions.v8,
      platform: `${process.platform}-${process.arch}`,
      cpu: cpus[0]?.model.trim() ?? 'unknown',
      cpus: cpus.length,
      loadAverage: `${loadBefore.toFixed(2)} before, ${os.loadavg()[0]!.toFixed(2)} after (1-minute)`,
      quick: options.quick,
      isolated: options.isolated,
      peer: peer.ok
        ? `@huggingface/transformers ${peer.api.version}, loaded from ${peer.api.loadedFrom}`
        : `n/a (${peer.error})`,
      kernels: wasmKernelsEnabled()
        ? 'WebAssembly SIMD kernels'
        : 'JS paths (GEN_SAMPLING_WASM=0, or no WebAssembly SIMD)',
    },
    vocabSizes: options.vocabSizes,
    pools,
    copy,
    ours,
    peer: peerResults,
    ...(peer.ok ? {} : { peerError: peer.error }),
    peerUnsupported: PEER_UNSUPPORTED,
    argmaxAgrees,
    watermarkCold,
    batch,
    passes,
    withPeerLoaded,
    heap,
    heapHow: how,
    references: REFERENCES,
  };
  const output: BenchOutput = { ...partial, targets: evaluateTargets(partial) };
  console.log(formatText(output));
  if (options.json !== undefined) {
    writeFileSync(options.json, `${JSON.stringify(output, null, 2)}\n`);
    console.log(`\nraw results written to ${options.json}`);
  }
  if (options.markdown !== undefined) {
    writeFileSync(options.markdown, `${formatMarkdown(output)}\n`);
    console.log(`markdown tables written to ${options.markdown}`);
  }
}

await main();

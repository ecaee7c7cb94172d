/**
 * Result types, targets, the static reference figures, and the text / Markdown renderings.
 */
import type { HeapCheck } from './heap.js';
import type { PoolShape } from './logits.js';
import type { Stats } from './measure.js';
import type { Passes, ScenarioId, WatermarkCold } from './ours.js';

export const TARGET_VOCAB = 151936;

export interface OurResult {
  scenario: ScenarioId;
  label: string;
  vocabSize: number;
  stats: Stats;
}

export interface PeerResult {
  id: string;
  against: ScenarioId;
  label: string;
  note: string;
  vocabSize: number;
  stats: Stats;
  /** Peer median / our median for `against` at the same vocabulary size. */
  ratio: number;
}

export interface BatchSummary {
  vocabSize: number;
  perBatchMedian: number;
  perRowMedian: number;
  /** Median of the one-row TGI-style scenario at the same vocabulary size. */
  oneRowMedian: number;
  /** Batch median / (16 x one-row TGI-style median). */
  ratioTo16xOneRow: number;
  /** The same 16 sample() calls on the same fresh block, without sampleBatch. */
  manualLoopMedian: number;
}

export interface TargetResult {
  name: string;
  limit: string;
  measured: string;
  pass: boolean;
  /** How far over the limit, when missed (for example "1.3x"). */
  miss?: string;
}

export interface Reference {
  what: string;
  micros: string;
}

/** Figures measured earlier on this machine, printed for context only. */
export const REFERENCES: readonly Reference[] = [
  { what: 'transformers.js: repetition + temperature + top_k 50 (ignores top_p)', micros: '550' },
  { what: 'transformers.js: top_k = 0 (full vocabulary)', micros: '28,000' },
  { what: 'llama.cpp C++ chain: top_k 50 + top_p + temperature', micros: '90' },
  { what: 'llama.cpp C++ default chain with penalties', micros: '550' },
  { what: 'llama.cpp C++ top_p without top_k', micros: '1,400-9,800' },
  { what: 'llama.cpp C++ typical_p', micros: '14,000' },
];

export interface BenchOutput {
  meta: {
    date: string;
    node: string;
    v8: string;
    platform: string;
    cpu: string;
    cpus: number;
    /** 1-minute load average before and after the run: other work on the machine skews the figures. */
    loadAverage: string;
    quick: boolean;
    isolated: boolean;
    peer: string;
    /** Which paths the sampler ran: the WebAssembly SIMD kernels, or the JS paths. */
    kernels: string;
  };
  vocabSizes: number[];
  pools: Record<number, PoolShape>;
  copy: Record<number, Stats>;
  ours: OurResult[];
  peer: PeerResult[];
  peerError?: string;
  peerUnsupported: Partial<Record<ScenarioId, string>>;
  argmaxAgrees: Record<number, boolean>;
  watermarkCold: Record<number, WatermarkCold>;
  batch: BatchSummary[];
  passes: Record<number, Passes>;
  /** Some of our scenarios at the target size, timed again after transformers.js was imported. */
  withPeerLoaded: OurResult[];
  heap: HeapCheck | { error: string };
  heapHow: string;
  targets: TargetResult[];
  references: readonly Reference[];
}

const us = (value: number): string => (value >= 100 ? value.toFixed(0) : value.toFixed(1));
const group = (value: number): string => value.toLocaleString('en-US');

export function ourMedian(output: Pick<BenchOutput, 'ours'>, scenario: ScenarioId, vocabSize: number): number {
  const found = output.ours.find((r) => r.scenario === scenario && r.vocabSize === vocabSize);
  return found === undefined ? Number.NaN : found.stats.median;
}

/** How far over a limit a measured / limit ratio is: "+0.4%" near it, "2.93x" far from it. */
function over(ratio: number): string {
  return ratio < 1.5 ? `+${((ratio - 1) * 100).toFixed(1)}% over` : `${ratio.toFixed(2)}x the limit`;
}

/** Evaluates the targets at {@link TARGET_VOCAB}. */
export function evaluateTargets(output: Omit<BenchOutput, 'targets'>): TargetResult[] {
  const targets: TargetResult[] = [];
  const limit = (name: string, scenario: ScenarioId, max: number): void => {
    const median = ourMedian(output, scenario, TARGET_VOCAB);
    if (Number.isNaN(median)) return;
    const pass = median <= max;
    targets.push({
      name,
      limit: `<= ${group(max)} µs`,
      measured: `${us(median)} µs`,
      pass,
      ...(pass ? {} : { miss: over(median / max) }),
    });
  };
  limit('TGI-style', 'tgi', 300);
  limit('greedy + logprob + top-5', 'greedy-top5', 200);
  limit('top_p without top_k (T 1)', 'top-p-t1', 1000);
  limit('top_p without top_k (T 0.8)', 'top-p-t08', 1000);
  limit('typical_p', 'typical-p', 3000);
  const batch = output.batch.find((b) => b.vocabSize === TARGET_VOCAB);
  if (batch !== undefined) {
    const pass = batch.ratioTo16xOneRow <= 1;
    targets.push({
      name: '16 rows <= 16x one row',
      limit: '<= 1.00',
      measured: `${batch.ratioTo16xOneRow.toFixed(2)} (${us(batch.perBatchMedian)} vs 16 x ${us(batch.oneRowMedian)} µs)`,
      pass,
      ...(pass ? {} : { miss: over(batch.ratioTo16xOneRow) }),
    });
  }
  if ('pass' in output.heap) {
    targets.push({
      name: `no heap growth (${group(output.heap.steps)} TGI-style steps)`,
      limit: `< ${output.heap.thresholdBytes / 1024} KiB`,
      measured: `${(output.heap.heapUsedDelta / 1024).toFixed(1)} KiB`,
      pass: output.heap.pass,
    });
  } else {
    targets.push({ name: 'no heap growth', limit: '-', measured: output.heap.error, pass: false });
  }
  return targets;
}

const pad = (text: string, width: number): string => text.padEnd(width);
const padLeft = (text: string, width: number): string => text.padStart(width);

/** The plain-text report for stdout. */
export function formatText(output: BenchOutput): string {
  const lines: string[] = [];
  const m = output.meta;
  lines.push(`@gen/sampling benchmark  ${m.date}  Node ${m.node} (V8 ${m.v8})  ${m.platform}  ${m.cpus} x ${m.cpu}`);
  lines.push(`peer: ${m.peer}`);
  lines.push(`load average: ${m.loadAverage}`);
  lines.push(`full-vocabulary passes: ${m.kernels}`);
  lines.push('times are microseconds per call (median / p90); the fresh-row copy before each call is not included');
  lines.push(
    m.isolated
      ? 'isolated: each scenario timed after its own warm-up only'
      : 'every scenario warmed up once before any is timed (a server mixes requests; see --isolated)',
  );
  for (const vocabSize of output.vocabSizes) {
    const pool = output.pools[vocabSize]!;
    const copy = output.copy[vocabSize]!;
    lines.push('');
    lines.push(
      `== vocab ${group(vocabSize)}: ${pool.rows} rows, median p(top) ${pool.medianTopProbability.toFixed(2)}, ` +
        `top_p 0.9 nucleus median ${group(pool.medianNucleus)} / max ${group(pool.maxNucleus)} tokens; ` +
        `row copy ${us(copy.median)} µs (excluded)`,
    );
    lines.push(`${pad('scenario', 62)}${padLeft('median', 10)}${padLeft('p90', 10)}${padLeft('iters', 7)}  notes`);
    for (const row of output.ours.filter((r) => r.vocabSize === vocabSize)) {
      const notes: string[] = [];
      if (row.scenario === 'batch16') {
        const batch = output.batch.find((b) => b.vocabSize === vocabSize);
        if (batch !== undefined) {
          notes.push(
            `${us(batch.perRowMedian)} µs/row, ${batch.ratioTo16xOneRow.toFixed(2)} x (16 x one row); ` +
              `16 plain sample() calls on the same block: ${us(batch.manualLoopMedian)} µs`,
          );
        }
      }
      if (row.scenario === 'watermark') {
        const cold = output.watermarkCold[vocabSize];
        if (cold !== undefined) {
          notes.push(
            `uncached: first call ${us(cold.firstCallMicros)} µs, later misses ${us(cold.missMedianMicros)} µs`,
          );
        }
      }
      const unsupported = output.peerUnsupported[row.scenario];
      if (unsupported !== undefined) notes.push(`transformers.js: n/a (${unsupported})`);
      lines.push(
        `${pad(`ours  ${row.label}`, 62)}${padLeft(us(row.stats.median), 10)}${padLeft(us(row.stats.p90), 10)}` +
          `${padLeft(String(row.stats.iterations), 7)}  ${notes.join('; ')}`,
      );
      for (const peer of output.peer.filter((p) => p.vocabSize === vocabSize && p.against === row.scenario)) {
        lines.push(
          `${pad(`  tjs ${peer.label}`, 62)}${padLeft(us(peer.stats.median), 10)}${padLeft(us(peer.stats.p90), 10)}` +
            `${padLeft(String(peer.stats.iterations), 7)}  ratio ${peer.ratio.toFixed(2)}x (theirs/ours); ${peer.note}`,
        );
      }
    }
    const passes = output.passes[vocabSize];
    if (passes !== undefined) {
      lines.push(
        `single full-vocabulary passes: JS max ${us(passes.max.median)} µs, exp-sum (fast-math) ${us(passes.expSum.median)} µs` +
          (passes.simd === undefined
            ? ''
            : `; SIMD kernels: copy in ${us(passes.simd.copy.median)} µs, max ${us(passes.simd.max.median)} µs, ` +
              `exp-sum ${us(passes.simd.expSum.median)} µs`),
      );
    }
    lines.push(`greedy argmax agrees with transformers.js on row 0: ${output.argmaxAgrees[vocabSize] ?? 'n/a'}`);
  }
  if (output.peerError !== undefined) lines.push(`\ntransformers.js: n/a (${output.peerError})`);
  lines.push('');
  lines.push(`== reference, not measured in this run (vocab ${group(TARGET_VOCAB)}, same machine, earlier)`);
  for (const ref of REFERENCES) lines.push(`${pad(`  ${ref.what}`, 72)}${padLeft(ref.micros, 12)} µs`);
  lines.push('');
  lines.push(`== heap (${output.heapHow})`);
  if ('pass' in output.heap) {
    const h = output.heap;
    lines.push(
      `  TGI-style x ${group(h.steps)} after ${group(h.warmupSteps)} warm-up, vocab ${group(h.vocabSize)}: heapUsed ` +
        `${(h.heapUsedDelta / 1024).toFixed(1)} KiB (quarters: ${h.checkpoints.map((c) => (c / 1024).toFixed(1)).join(', ')} KiB), arrayBuffers ${(h.arrayBuffersDelta / 1024).toFixed(1)} KiB; ` +
        `accepting every token (history +${group(h.steps)}): heapUsed ${(h.acceptingHeapUsedDelta / 1024).toFixed(1)} KiB; ` +
        `short-lived garbage ${group(Math.round(h.allocatedPerStep))} bytes per step`,
    );
  } else lines.push(`  failed: ${output.heap.error}`);
  lines.push('');
  lines.push(`== targets at vocab ${group(TARGET_VOCAB)}`);
  for (const t of output.targets) {
    lines.push(
      `  ${pad(t.name, 44)}${pad(t.limit, 14)}${pad(t.measured, 34)}${t.pass ? 'PASS' : `MISS (${t.miss ?? ''})`}`,
    );
  }
  if (output.withPeerLoaded.length > 0) {
    lines.push('');
    lines.push(`== ours again at vocab ${group(TARGET_VOCAB)} with transformers.js imported into this process`);
    for (const row of output.withPeerLoaded) {
      const first = ourMedian(output, row.scenario, row.vocabSize);
      lines.push(
        `${pad(`ours  ${row.label}`, 62)}${padLeft(us(row.stats.median), 10)}${padLeft(us(row.stats.p90), 10)}` +
          `${padLeft(String(row.stats.iterations), 7)}  ${(row.stats.median / first).toFixed(2)}x the figure above`,
      );
    }
  }
  return lines.join('\n');
}

/** The Markdown tables for docs/benchmarks.md. */
export function formatMarkdown(output: BenchOutput): string {
  const v = output.vocabSizes;
  const lines: string[] = [];
  /** Header row; `text` columns are left-aligned, the others (numbers) right-aligned. */
  const head = (cells: string[], text: readonly number[] = [0]): void => {
    lines.push(`| ${cells.join(' | ')} |`);
    lines.push(`| ${cells.map((_, i) => (text.includes(i) ? '---' : '---:')).join(' | ')} |`);
  };
  lines.push('Our medians, µs per call (p90 in parentheses):', '');
  head(['scenario', ...v.map((s) => `V = ${group(s)}`)]);
  const scenarios = [...new Set(output.ours.map((r) => r.scenario))];
  for (const scenario of scenarios) {
    const label = output.ours.find((r) => r.scenario === scenario)!.label;
    const cells = v.map((s) => {
      const row = output.ours.find((r) => r.scenario === scenario && r.vocabSize === s);
      return row === undefined ? '-' : `${us(row.stats.median)} (${us(row.stats.p90)})`;
    });
    lines.push(`| ${label} | ${cells.join(' | ')} |`);
  }
  const batchCells = v.map((s) => {
    const b = output.batch.find((x) => x.vocabSize === s);
    return b === undefined ? '-' : `${us(b.perRowMedian)}, ${b.ratioTo16xOneRow.toFixed(2)}x`;
  });
  lines.push(`| sampleBatch per row, and batch / (16 x one row) | ${batchCells.join(' | ')} |`);
  const coldCells = v.map((s) => {
    const c = output.watermarkCold[s];
    return c === undefined ? '-' : `${us(c.firstCallMicros)} / ${us(c.missMedianMicros)}`;
  });
  lines.push(`| watermark uncached: first call / later misses | ${coldCells.join(' | ')} |`);
  const passCells = v.map((s) => {
    const p = output.passes[s];
    return p === undefined ? '-' : `${us(p.max.median)} / ${us(p.expSum.median)}`;
  });
  lines.push(`| (one full-vocabulary pass in JS: max / exp-sum) | ${passCells.join(' | ')} |`);
  if (v.some((s) => output.passes[s]?.simd !== undefined)) {
    const simdCells = v.map((s) => {
      const p = output.passes[s]?.simd;
      return p === undefined ? '-' : `${us(p.copy.median)} / ${us(p.max.median)} / ${us(p.expSum.median)}`;
    });
    lines.push(`| (SIMD kernels: copy into wasm memory / max / exp-sum) | ${simdCells.join(' | ')} |`);
  }
  const copyCells = v.map((s) => us(output.copy[s]!.median));
  lines.push(`| (row copy, excluded from all figures) | ${copyCells.join(' | ')} |`);
  lines.push('');
  lines.push('transformers.js: medians, µs per call, and in parentheses the ratio theirs / ours:', '');
  head(['peer scenario', 'compared with', ...v.map((s) => `V = ${group(s)}`), 'notes'], [0, 1, v.length + 2]);
  const peerIds = [...new Set(output.peer.map((p) => p.id))];
  for (const id of peerIds) {
    const first = output.peer.find((p) => p.id === id)!;
    const against = output.ours.find((r) => r.scenario === first.against)?.label ?? first.against;
    const cells = v.map((s) => {
      const p = output.peer.find((x) => x.id === id && x.vocabSize === s);
      return p === undefined ? '-' : `${us(p.stats.median)} (${p.ratio.toFixed(1)}x)`;
    });
    lines.push(`| ${first.label} | ${against} | ${cells.join(' | ')} | ${first.note} |`);
  }
  for (const [scenario, why] of Object.entries(output.peerUnsupported)) {
    const label = output.ours.find((r) => r.scenario === scenario)?.label ?? scenario;
    lines.push(`| n/a | ${label} | ${v.map(() => 'n/a').join(' | ')} | ${why} |`);
  }
  if (output.peerError !== undefined) lines.push('', `transformers.js could not be loaded: ${output.peerError}`);
  lines.push('');
  lines.push(`Targets at V = ${group(TARGET_VOCAB)}:`, '');
  head(['target', 'limit', 'measured', 'result'], [0, 3]);
  for (const t of output.targets) {
    lines.push(`| ${t.name} | ${t.limit} | ${t.measured} | ${t.pass ? 'PASS' : `MISS (${t.miss ?? ''})`} |`);
  }
  if (output.withPeerLoaded.length > 0) {
    lines.push('');
    lines.push(
      `Ours again at V = ${group(TARGET_VOCAB)} after transformers.js was imported into the same process:`,
      '',
    );
    head(['scenario', 'median (p90)', 'vs first timing']);
    for (const row of output.withPeerLoaded) {
      const first = ourMedian(output, row.scenario, row.vocabSize);
      lines.push(
        `| ${row.label} | ${us(row.stats.median)} (${us(row.stats.p90)}) | ${(row.stats.median / first).toFixed(2)}x |`,
      );
    }
  }
  lines.push('');
  lines.push(`Reference, not measured in this run (V = ${group(TARGET_VOCAB)}, measured earlier on this machine):`, '');
  head(['implementation and chain', 'µs per token'], [0]);
  for (const ref of REFERENCES) lines.push(`| ${ref.what} | ${ref.micros} |`);
  return lines.join('\n');
}

/** The top-n tokens of a step (ties with the n-th included), from a dense row or the SIMD top-n kernel. */
import type { WasmKernels } from './wasm/kernels.js';
import type { Workspace } from './workspace.js';

/** One of the most likely tokens at a step, with its log-probability. */
export interface TopToken {
  id: number;
  logprob: number;
}

/**
 * The n most likely tokens of a dense row (ties with the n-th included, -Infinity and NaN excluded), with
 * logprob = (s - center) * scale. When `buckets` is given and `limit >= 0`, only tokens with
 * `buckets[i] <= limit` count. One pass: a small sorted list plus the ids tied with its last entry.
 */
export function topTokensDense(
  logits: Float32Array,
  n: number,
  scale: number,
  center: number,
  limit: number,
  buckets: Uint16Array | undefined,
  w: Workspace,
  out: TopToken[],
): void {
  if (w.heapValues.length < n) {
    w.heapValues = new Float32Array(n);
    w.heapIds = new Int32Array(n);
  }
  const bestValues = w.heapValues;
  const bestIds = w.heapIds;
  const ties = w.ties;
  let tieCount = 0;
  let size = 0;
  let threshold = -Infinity;
  const useBuckets = buckets !== undefined && limit >= 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (!(v >= threshold) || v === -Infinity) continue;
    if (useBuckets && buckets[i]! > limit) continue;
    if (v === threshold && size === n) {
      ties[tieCount++] = i;
      continue;
    }
    let position: number;
    if (size < n) position = size++;
    else {
      position = n - 1;
      const evicted = bestIds[n - 1]!;
      const second = n >= 2 ? bestValues[n - 2]! : v;
      const next = v < second ? v : second;
      if (next > threshold) tieCount = 0;
      else ties[tieCount++] = evicted;
    }
    while (position > 0 && bestValues[position - 1]! < v) {
      bestValues[position] = bestValues[position - 1]!;
      bestIds[position] = bestIds[position - 1]!;
      position--;
    }
    bestValues[position] = v;
    bestIds[position] = i;
    if (size === n) threshold = bestValues[n - 1]!;
  }
  for (let j = 0; j < size; j++) out.push({ id: bestIds[j]!, logprob: (bestValues[j]! - center) * scale });
  for (let j = 0; j < tieCount; j++) out.push({ id: ties[j]!, logprob: (threshold - center) * scale });
}

/**
 * The n most likely tokens of the row at byte offset `region` among lo <= s <= hi (at s = lo, ids >= loId), with
 * logprob = (s - center) * scale: {@link topTokensDense} on the SIMD kernel.
 */
export function topTokensWasm(
  kernels: WasmKernels,
  region: number,
  padded: number,
  n: number,
  lo: number,
  hi: number,
  loId: number,
  scale: number,
  center: number,
  out: TopToken[],
): void {
  const size = kernels.k.topN(region, padded, n, lo, hi, loId, kernels.bestValues, kernels.bestIds, kernels.ids);
  emitTopTokens(kernels, n, size, scale, center, out);
}

/** Pushes the result of the last `topN` kernel call (its `size` entries, then the ties) onto `out`. */
export function emitTopTokens(
  kernels: WasmKernels,
  n: number,
  size: number,
  scale: number,
  center: number,
  out: TopToken[],
): void {
  const values = kernels.f32;
  const ids = kernels.i32;
  const valuesStart = kernels.bestValues >> 2;
  const idsStart = kernels.bestIds >> 2;
  for (let j = 0; j < size; j++) {
    out.push({ id: ids[idsStart + j]!, logprob: Math.min(0, (values[valuesStart + j]! - center) * scale) });
  }
  const ties = kernels.k.tieCount.value;
  if (ties > 0) {
    const logprob = Math.min(0, (values[valuesStart + n - 1]! - center) * scale);
    const tiesStart = kernels.ids >> 2;
    for (let j = 0; j < ties; j++) out.push({ id: ids[tiesStart + j]!, logprob });
  }
}

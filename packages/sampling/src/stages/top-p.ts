/** Top-p (nucleus): by buckets of probability mass on a dense row or the SIMD kernels, by a scan of sorted candidates. */
import { expNonPositive } from '../fast-math.js';
import { MASS_BUCKETS, EXP_PASS_BUCKETS, type WasmKernels } from '../wasm/kernels.js';
import { REMOVED, type Workspace } from '../workspace.js';
import {
  boundaryBucket,
  collectBucket,
  expsAndBuckets,
  wasmMax,
  withoutPadding,
  type DenseCut,
  type WasmCut,
} from './cuts.js';

/** Top-p on a dense row: keep a token iff the mass ranked strictly above it is < topP (ties: lower ids go first). */
export function denseTopP(logits: Float32Array, topP: number, scale: number, w: Workspace): DenseCut {
  const { max, total } = expsAndBuckets(logits, scale, w);
  const target = topP * total;
  const { bucket, before } = boundaryBucket(target, w.bucketMass);
  const n = collectBucket(logits.length, bucket, w);
  const order = w.order.subarray(0, n);
  order.sort((a, b) => logits[b]! - logits[a]! || b - a);
  let above = before;
  for (let j = 0; j < n; j++) {
    const id = order[j]!;
    if (above < target) above += w.exps[id]!;
    else {
      w.buckets[id] = REMOVED;
    }
  }
  return { max, bucket, mass: above };
}

/** Top-p on sorted candidates. */
export function sparseTopP(count: number, topP: number, scale: number, w: Workspace): number {
  const values = w.candidateValues;
  const exps = w.candidateExps;
  const max = values[0]!;
  let total = 0;
  for (let j = 0; j < count; j++) {
    const e = expNonPositive((values[j]! - max) * scale);
    exps[j] = e;
    total += e;
  }
  const target = topP * total;
  let above = 0;
  let kept = 0;
  while (kept < count && above < target) {
    above += exps[kept]!;
    kept++;
  }
  return Math.max(kept, 1);
}

/** Buckets (of 1/32 nat) that a first, partial scatter of top_p covers: tokens within 4 nats of the maximum. */
const PARTIAL_SCATTER_BUCKETS = 128;

/**
 * Top-p on the SIMD path, the same steps as {@link denseTopP}: one pass stores the exps and uint16 buckets, a
 * scalar pass adds the mass per bucket (first only near the maximum), only the boundary bucket is sorted. Its last kept token (s_b, id_b) makes
 * the cut: the kept tokens are those with s > s_b, or s = s_b and id >= id_b.
 */
export function wasmTopP(
  logits: Float32Array,
  topP: number,
  scale: number,
  kernels: WasmKernels,
  padded: number,
): WasmCut {
  const max = wasmMax(kernels, padded);
  const massStart = kernels.mass >> 3;
  kernels.f64.fill(0, massStart, massStart + MASS_BUCKETS);
  const k = kernels.k;
  const total = k.expPass(kernels.row, kernels.exps, kernels.buckets, padded, max, scale, -Infinity, EXP_PASS_BUCKETS);
  const target = topP * total;
  // Most rows are confident: first add up only the blocks that hold a token within 4 nats of the maximum; when the
  // boundary is not among those buckets, add up everything.
  k.scatter(kernels.buckets, kernels.exps, kernels.mass, padded, PARTIAL_SCATTER_BUCKETS);
  let { bucket, before } = boundaryBucket(target, kernels.f64, massStart);
  if (bucket >= PARTIAL_SCATTER_BUCKETS) {
    kernels.f64.fill(0, massStart, massStart + MASS_BUCKETS);
    k.scatter(kernels.buckets, kernels.exps, kernels.mass, padded, MASS_BUCKETS);
    ({ bucket, before } = boundaryBucket(target, kernels.f64, massStart));
  }
  const n = withoutPadding(kernels, k.collect(kernels.buckets, padded, bucket, kernels.ids), logits.length);
  if (n === 0) return { max, lo: -Infinity, hi: Infinity, loId: 0, topLo: -Infinity, mass: total }; // rounding only
  const idsStart = kernels.ids >> 2;
  const order = kernels.i32.subarray(idsStart, idsStart + n);
  order.sort((a, b) => logits[b]! - logits[a]! || b - a);
  const exps = kernels.f32;
  const expsStart = kernels.exps >> 2;
  let above = before;
  let last = order[0]!;
  for (let j = 0; j < n && above < target; j++) {
    last = order[j]!;
    above += exps[expsStart + last]!;
  }
  const lo = logits[last]!;
  return { max, lo, hi: Infinity, loId: last, topLo: lo, mass: above };
}

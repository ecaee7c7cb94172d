/** Typical-p: by buckets of mass over the distance to the entropy, dense, sparse or on the SIMD kernels. */
import { EXP_UNDERFLOW, expNonPositive, maxOf } from '../fast-math.js';
import { highestFloat32, lowestFloat32 } from '../float32.js';
import { EXP_PASS_WEIGHTED, MASS_BUCKETS, type WasmKernels } from '../wasm/kernels.js';
import { BUCKETS, BUCKETS_PER_NAT, REMOVED, type Workspace } from '../workspace.js';
import {
  boundaryBucket,
  collectBucket,
  noTokenError,
  wasmMax,
  withoutPadding,
  type DenseCut,
  type WasmCut,
} from './cuts.js';

/**
 * Typical-p on a dense row. With x = (s - max) * scale and probabilities p = exp(x) / Z, the distance of a token to
 * the entropy is |-log p - H| = |x - E_p[x]|: bucket the mass by that distance, sort only the boundary bucket.
 */
export function denseTypical(logits: Float32Array, mass: number, scale: number, w: Workspace): DenseCut {
  const max = maxOf(logits);
  if (max === -Infinity) throw noTokenError();
  const exps = w.exps;
  let total = 0;
  let weighted = 0;
  for (let i = 0; i < logits.length; i++) {
    const x = (logits[i]! - max) * scale;
    const e = expNonPositive(x);
    exps[i] = e;
    total += e;
    if (e > 0) weighted += e * x;
  }
  const mean = weighted / total;
  const buckets = w.buckets;
  const bucketMass = w.bucketMass;
  const distance = w.candidateExps; // a vocab-sized float64 buffer that is free in dense mode
  bucketMass.fill(0);
  const top = BUCKETS - 1;
  for (let i = 0; i < logits.length; i++) {
    const e = exps[i]!;
    if (e === 0) {
      buckets[i] = top;
      distance[i] = Infinity;
      continue;
    }
    const d = Math.abs((logits[i]! - max) * scale - mean);
    distance[i] = d;
    let bucket = (d * BUCKETS_PER_NAT) | 0;
    if (bucket > top) bucket = top;
    buckets[i] = bucket;
    bucketMass[bucket] = bucketMass[bucket]! + e;
  }
  const target = mass * total;
  const { bucket, before } = boundaryBucket(target, w.bucketMass);
  const n = collectBucket(logits.length, bucket, w);
  const order = w.order.subarray(0, n);
  order.sort((a, b) => distance[a]! - distance[b]! || a - b);
  let cumulative = before;
  let limit = Infinity;
  for (let j = 0; j < n; j++) {
    cumulative += exps[order[j]!]!;
    if (cumulative >= target) {
      limit = distance[order[j]!]!;
      break;
    }
  }
  let kept = before;
  for (let j = 0; j < n; j++) {
    const id = order[j]!;
    if (distance[id]! <= limit) kept += exps[id]!;
    else buckets[id] = REMOVED;
  }
  return { max, bucket, mass: kept };
}

/** Typical-p on candidates (order preserved). */
export function sparseTypical(count: number, mass: number, scale: number, w: Workspace): number {
  const ids = w.candidateIds;
  const values = w.candidateValues;
  const exps = w.candidateExps;
  let max = -Infinity;
  for (let j = 0; j < count; j++) if (values[j]! > max) max = values[j]!;
  let total = 0;
  let weighted = 0;
  for (let j = 0; j < count; j++) {
    const x = (values[j]! - max) * scale;
    const e = expNonPositive(x);
    exps[j] = e;
    total += e;
    if (e > 0) weighted += e * x;
  }
  const mean = weighted / total;
  const distance = w.exps; // vocab-sized float64 scratch, free in sparse mode
  for (let j = 0; j < count; j++) {
    distance[j] = exps[j]! > 0 ? Math.abs((values[j]! - max) * scale - mean) : Infinity;
  }
  const order = w.order.subarray(0, count);
  for (let j = 0; j < count; j++) order[j] = j;
  order.sort((a, b) => distance[a]! - distance[b]! || ids[a]! - ids[b]!);
  const target = mass * total;
  let cumulative = 0;
  let limit = distance[order[count - 1]!]!;
  for (let j = 0; j < count; j++) {
    cumulative += exps[order[j]!]!;
    if (cumulative >= target) {
      limit = distance[order[j]!]!;
      break;
    }
  }
  let kept = 0;
  for (let j = 0; j < count; j++) {
    if (distance[j]! <= limit) {
      ids[kept] = ids[j]!;
      values[kept] = values[j]!;
      kept++;
    }
  }
  return kept;
}

/**
 * Typical-p on the SIMD path, the same steps as {@link denseTypical}: an exp pass that also sums exp(x) * x (the
 * entropy), a pass that buckets the float64 distance |x - E[x]| exactly as the JS path computes it, the mass per
 * bucket, a sort of the boundary bucket only. The kept tokens are those within the largest kept distance, which is
 * an interval of logits: its float32 bounds make the cut.
 */
export function wasmTypical(
  logits: Float32Array,
  mass: number,
  scale: number,
  kernels: WasmKernels,
  padded: number,
  w: Workspace,
): WasmCut {
  const max = wasmMax(kernels, padded);
  const k = kernels.k;
  const total = k.expPass(kernels.row, kernels.exps, kernels.buckets, padded, max, scale, -Infinity, EXP_PASS_WEIGHTED);
  const mean = k.weighted.value / total;
  const massStart = kernels.mass >> 3;
  kernels.f64.fill(0, massStart, massStart + MASS_BUCKETS);
  k.distBuckets(kernels.row, kernels.exps, kernels.buckets, padded, max, scale, mean);
  k.scatter(kernels.buckets, kernels.exps, kernels.mass, padded, MASS_BUCKETS);
  const target = mass * total;
  const { bucket, before } = boundaryBucket(target, kernels.f64, massStart);
  const n = withoutPadding(kernels, k.collect(kernels.buckets, padded, bucket, kernels.ids), logits.length);
  if (n === 0) return { max, lo: -Infinity, hi: Infinity, loId: 0, topLo: -Infinity, mass: total }; // rounding only
  const idsStart = kernels.ids >> 2;
  const order = kernels.i32.subarray(idsStart, idsStart + n);
  const distance = w.candidateExps; // a vocab-sized float64 buffer that is free in dense mode
  for (let j = 0; j < n; j++) {
    const id = order[j]!;
    distance[id] = Math.abs((logits[id]! - max) * scale - mean);
  }
  order.sort((a, b) => distance[a]! - distance[b]! || a - b);
  const exps = kernels.f32;
  const expsStart = kernels.exps >> 2;
  let cumulative = before;
  let limit = Infinity;
  for (let j = 0; j < n; j++) {
    cumulative += exps[expsStart + order[j]!]!;
    if (cumulative >= target) {
      limit = distance[order[j]!]!;
      break;
    }
  }
  let kept = before;
  let bound = -Infinity; // the largest kept distance (every earlier bucket is closer, every later one farther)
  for (let j = 0; j < n; j++) {
    const d = distance[order[j]!]!;
    if (d <= limit) {
      kept += exps[expsStart + order[j]!]!;
      if (d > bound) bound = d;
    }
  }
  const within = (s: number): boolean => Math.abs((s - max) * scale - mean) <= bound;
  const witness = logits[order[0]!]!;
  const lo = lowestFloat32(within, witness);
  const hi = highestFloat32(within, witness);
  // Top tokens leave out the tokens whose exp underflows (as the JS path, which buckets them last).
  const scale32 = Math.fround(scale);
  const positive = (s: number): boolean => Math.fround(Math.fround(s - max) * scale32) >= EXP_UNDERFLOW;
  const topLo = Math.max(lo, lowestFloat32(positive, max));
  return { max, lo, hi, loId: 0, topLo, mass: kept };
}

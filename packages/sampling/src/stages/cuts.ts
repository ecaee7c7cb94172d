/**
 * What the truncation stages share: the dense cut (kept tokens marked in `w.buckets`) and the SIMD cut (float32
 * bounds), the mass histogram and its boundary bucket, and moving kept tokens into the sparse candidates.
 */
import { SamplingError } from '../errors.js';
import { EXP_UNDERFLOW, expNonPositive, maxOf } from '../fast-math.js';
import type { WasmKernels } from '../wasm/kernels.js';
import { BUCKETS, BUCKETS_PER_NAT, type Workspace } from '../workspace.js';

export function noTokenError(): SamplingError {
  return new SamplingError('no token can be chosen: every logit is -Infinity or NaN after processing');
}

/** Result of a dense truncation: tokens with `w.buckets[i] <= bucket` are kept; `mass` is their sum of exps. */
export interface DenseCut {
  /** Row maximum the exps in `w.exps` are relative to. */
  max: number;
  /** Largest kept bucket index; -1 means every token with a non-zero exp is kept. */
  bucket: number;
  /** Sum of `w.exps` over the kept tokens. */
  mass: number;
}

/**
 * Fills `w.exps` with exp((s - max) * scale) and `w.buckets` with floor((max - s) * scale * 32) (capped),
 * accumulating the mass per bucket. Returns the row maximum and the total mass.
 */
export function expsAndBuckets(logits: Float32Array, scale: number, w: Workspace): { max: number; total: number } {
  const max = maxOf(logits);
  if (max === -Infinity) throw noTokenError();
  const exps = w.exps;
  const buckets = w.buckets;
  const bucketMass = w.bucketMass;
  bucketMass.fill(0);
  let total = 0;
  const top = BUCKETS - 1;
  for (let i = 0; i < logits.length; i++) {
    const d = (max - logits[i]!) * scale;
    if (!(d <= -EXP_UNDERFLOW)) {
      exps[i] = 0;
      buckets[i] = top;
      continue;
    }
    const e = expNonPositive(-d);
    let bucket = (d * BUCKETS_PER_NAT) | 0;
    if (bucket > top) bucket = top;
    exps[i] = e;
    buckets[i] = bucket;
    bucketMass[bucket] = bucketMass[bucket]! + e;
    total += e;
  }
  return { max, total };
}

/**
 * First bucket at which the cumulative mass reaches `target`, and the mass of the buckets before it. The masses are
 * `bucketMass[start, start + BUCKETS)`.
 */
export function boundaryBucket(
  target: number,
  bucketMass: Float64Array,
  start = 0,
): { bucket: number; before: number } {
  let cumulative = 0;
  for (let bucket = 0; bucket < BUCKETS; bucket++) {
    const mass = bucketMass[start + bucket]!;
    if (cumulative + mass >= target) return { bucket, before: cumulative };
    cumulative += mass;
  }
  return { bucket: BUCKETS - 1, before: cumulative - bucketMass[start + BUCKETS - 1]! };
}

/** Ids in `bucket` into `w.order[0, n)`; returns n. */
export function collectBucket(length: number, bucket: number, w: Workspace): number {
  const buckets = w.buckets;
  const order = w.order;
  let n = 0;
  for (let i = 0; i < length; i++) if (buckets[i] === bucket) order[n++] = i;
  return n;
}

/** Copies the tokens kept by a dense cut into the sparse candidate arrays; returns their count. */
export function materialize(logits: Float32Array, cut: DenseCut, w: Workspace): number {
  const ids = w.candidateIds;
  const values = w.candidateValues;
  const buckets = w.buckets;
  let count = 0;
  for (let i = 0; i < logits.length; i++) {
    if (buckets[i]! <= cut.bucket && w.exps[i]! > 0) {
      ids[count] = i;
      values[count] = logits[i]!;
      count++;
    }
  }
  return count;
}

/** Sorts the candidates by value descending, equal values by id descending (the top-p rank order). */
export function sortCandidates(count: number, w: Workspace): void {
  const ids = w.candidateIds;
  const values = w.candidateValues;
  const order = w.order.subarray(0, count);
  for (let j = 0; j < count; j++) order[j] = j;
  order.sort((a, b) => values[b]! - values[a]! || ids[b]! - ids[a]!);
  const spareIds = w.spareIds;
  const spareValues = w.spareValues;
  for (let j = 0; j < count; j++) {
    spareIds[j] = ids[order[j]!]!;
    spareValues[j] = values[order[j]!]!;
  }
  ids.set(spareIds.subarray(0, count));
  values.set(spareValues.subarray(0, count));
}

/**
 * A dense cut on the SIMD path. The kept tokens are those with lo <= s <= hi (at s = lo, only ids >= loId: top_p's
 * order among equal logits) and a non-zero exp; `topLo` is the lower bound for the top tokens (above `lo` only
 * where typical_p's interval reaches tokens whose exp underflows). The bounds are float32 values, so the kernels
 * compare exactly what the JS path compares in float64.
 */
export interface WasmCut {
  /** Row maximum the exps are relative to. */
  max: number;
  lo: number;
  hi: number;
  loId: number;
  topLo: number;
  /** Sum of the kept tokens' exps. */
  mass: number;
}

/** Pads of the row (ids >= the vocabulary size) come last among collected ids: drop them. */
export function withoutPadding(kernels: WasmKernels, count: number, length: number): number {
  const start = kernels.ids >> 2;
  while (count > 0 && kernels.i32[start + count - 1]! >= length) count--;
  return count;
}

/** Row maximum on the SIMD path; throws when no token is left. */
export function wasmMax(kernels: WasmKernels, padded: number): number {
  const max = kernels.k.max(kernels.row, padded);
  if (max === -Infinity) throw noTokenError();
  return max;
}

/** Copies the tokens kept by a SIMD cut into the sparse candidate arrays (id order); returns their count. */
export function wasmMaterialize(
  logits: Float32Array,
  cut: WasmCut,
  w: Workspace,
  kernels: WasmKernels,
  padded: number,
): number {
  const found = kernels.k.keep(kernels.row, kernels.exps, padded, cut.lo, cut.hi, cut.loId, kernels.ids);
  const count = withoutPadding(kernels, found, logits.length);
  const start = kernels.ids >> 2;
  const ids = w.candidateIds;
  const values = w.candidateValues;
  for (let j = 0; j < count; j++) {
    const id = kernels.i32[start + j]!;
    ids[j] = id;
    values[j] = logits[id]!;
  }
  return count;
}

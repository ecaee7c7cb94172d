/** Min-p: a threshold in logit space, on a dense row, on candidates, or as a float32 bound on the SIMD kernels. */
import { expNonPositive, maxOf } from '../fast-math.js';
import { lowestFloat32 } from '../float32.js';
import { EXP_PASS_SKIP_BELOW, type WasmKernels } from '../wasm/kernels.js';
import { REMOVED, type Workspace } from '../workspace.js';
import { noTokenError, wasmMax, type DenseCut, type WasmCut } from './cuts.js';

/** Min-p on a dense row: keep tokens with (s - max) * scale >= ln(minP). */
export function denseMinP(logits: Float32Array, logMinP: number, scale: number, w: Workspace): DenseCut {
  const max = maxOf(logits);
  if (max === -Infinity) throw noTokenError();
  const exps = w.exps;
  const buckets = w.buckets;
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    const x = (logits[i]! - max) * scale;
    if (x >= logMinP) {
      const e = expNonPositive(x);
      exps[i] = e;
      buckets[i] = 0;
      total += e;
    } else {
      exps[i] = 0;
      buckets[i] = REMOVED;
    }
  }
  return { max, bucket: 0, mass: total };
}

/** Min-p on candidates (order preserved). */
export function sparseMinP(count: number, logMinP: number, scale: number, w: Workspace): number {
  const ids = w.candidateIds;
  const values = w.candidateValues;
  let max = -Infinity;
  for (let j = 0; j < count; j++) if (values[j]! > max) max = values[j]!;
  let kept = 0;
  for (let j = 0; j < count; j++) {
    if ((values[j]! - max) * scale >= logMinP) {
      ids[kept] = ids[j]!;
      values[kept] = values[j]!;
      kept++;
    }
  }
  return kept;
}

/** Min-p on the SIMD path: the float32 threshold of (s - max) * scale >= ln(minP), exps only where it holds. */
export function wasmMinP(logMinP: number, scale: number, kernels: WasmKernels, padded: number): WasmCut {
  const max = wasmMax(kernels, padded);
  const keep = (s: number): boolean => (s - max) * scale >= logMinP;
  if (!keep(max)) throw noTokenError(); // max = +Infinity
  const lo = lowestFloat32(keep, max);
  const mode = EXP_PASS_SKIP_BELOW;
  const mass = kernels.k.expPass(kernels.row, kernels.exps, kernels.buckets, padded, max, scale, lo, mode);
  return { max, lo, hi: Infinity, loId: 0, topLo: lo, mass };
}

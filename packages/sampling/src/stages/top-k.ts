/** Top-k: a bounded heap on a dense row, a cut of sorted candidates, the SIMD top-n scan. */
import type { WasmKernels } from '../wasm/kernels.js';
import type { Workspace } from '../workspace.js';

/**
 * Top-k on a dense row into the sparse candidates, in one pass: a min-heap of the k largest, plus the ids that were
 * rejected or evicted while equal to the heap's minimum (they survive if that value ends up being the k-th).
 */
export function denseTopK(logits: Float32Array, k: number, w: Workspace): number {
  if (w.heapValues.length < k) {
    w.heapValues = new Float32Array(k);
    w.heapIds = new Int32Array(k);
  }
  const heapValues = w.heapValues;
  const heapIds = w.heapIds;
  const ties = w.ties;
  let size = 0;
  let tieCount = 0;
  const length = logits.length;
  let i = 0;
  for (; i < length && size < k; i++) {
    const v = logits[i]!;
    if (v !== v) continue; // NaN never survives
    // sift up
    let child = size++;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (heapValues[parent]! <= v) break;
      heapValues[child] = heapValues[parent]!;
      heapIds[child] = heapIds[parent]!;
      child = parent;
    }
    heapValues[child] = v;
    heapIds[child] = i;
  }
  let minimum = size > 0 ? heapValues[0]! : -Infinity;
  for (; i < length; i++) {
    const v = logits[i]!;
    if (v < minimum) continue;
    if (v === minimum) {
      ties[tieCount++] = i;
      continue;
    }
    if (v !== v) continue;
    const evictedId = heapIds[0]!;
    // replace the root and sift down
    let parent = 0;
    for (;;) {
      let child = 2 * parent + 1;
      if (child >= size) break;
      if (child + 1 < size && heapValues[child + 1]! < heapValues[child]!) child++;
      if (heapValues[child]! >= v) break;
      heapValues[parent] = heapValues[child]!;
      heapIds[parent] = heapIds[child]!;
      parent = child;
    }
    heapValues[parent] = v;
    heapIds[parent] = i;
    const next = heapValues[0]!;
    if (next > minimum) tieCount = 0;
    else ties[tieCount++] = evictedId;
    minimum = next;
  }
  const ids = w.candidateIds;
  const values = w.candidateValues;
  let count = 0;
  for (let j = 0; j < size; j++) {
    ids[count] = heapIds[j]!;
    values[count] = heapValues[j]!;
    count++;
  }
  for (let j = 0; j < tieCount; j++) {
    const id = ties[j]!;
    if (logits[id] === minimum) {
      ids[count] = id;
      values[count] = minimum;
      count++;
    }
  }
  return count;
}

/** Top-k on sorted candidates (ties with the k-th kept). */
export function sparseTopK(count: number, k: number, w: Workspace): number {
  const values = w.candidateValues;
  const kth = values[k - 1]!;
  let kept = k;
  while (kept < count && values[kept] === kth) kept++;
  return kept;
}

/**
 * Largest top_k done by the SIMD top-n scan (its insertion is O(k) per entry; the JS heap is O(log k)). Only when
 * top_p follows top_k: the candidates come out in a different order than from the JS heap, and top_p sorts them.
 */
export const WASM_TOP_K_LIMIT = 256;

/**
 * Top-k on the SIMD path into the sparse candidates: the k largest values (NaN and -Infinity left out: they could
 * never be drawn nor listed) and every id tied with the k-th, as {@link denseTopK} keeps them.
 */
export function wasmTopK(length: number, k: number, w: Workspace, kernels: WasmKernels, padded: number): number {
  const size = kernels.k.topN(
    kernels.row,
    padded,
    k,
    -Infinity,
    Infinity,
    0,
    kernels.bestValues,
    kernels.bestIds,
    kernels.ids,
  );
  const ids = w.candidateIds;
  const values = w.candidateValues;
  const valuesStart = kernels.bestValues >> 2;
  const idsStart = kernels.bestIds >> 2;
  for (let j = 0; j < size; j++) {
    ids[j] = kernels.i32[idsStart + j]!;
    values[j] = kernels.f32[valuesStart + j]!;
  }
  const ties = kernels.k.tieCount.value;
  const tiesStart = kernels.ids >> 2;
  let count = size;
  if (ties > 0) {
    const threshold = kernels.f32[valuesStart + k - 1]!;
    for (let j = 0; j < ties; j++) {
      const id = kernels.i32[tiesStart + j]!;
      if (id >= length) continue;
      ids[count] = id;
      values[count] = threshold;
      count++;
    }
  }
  return count;
}

import * as ort from 'onnxruntime-node';
import type { FloatType } from './graph-signature.js';

/** Storage of one cache tensor: float32, or float16 as raw bits. */
export type KvArray = Float32Array | Uint16Array;

/**
 * The key / value caches of the sequences of one run, exactly as onnxruntime returned them (`present.*`): per
 * layer a key and a value tensor `[rows, kvHeads, width, headDim]`. Row `r`'s real tokens are the slots where
 * `mask[r * width + slot]` is 1, in order; the other slots are left padding (past caches of different lengths,
 * aligned on the right) or gaps (right padding of new tokens in a mixed batch).
 *
 * Groups are immutable: a run reads them as `past_key_values` and returns new tensors, so a group can be shared
 * by several sequences (a fork shares its source's group) and every sequence keeps a consistent view until it
 * is stepped again. A sequence is `(group, row, length)`; its cache is copied out (compacted) only when it runs
 * in a batch whose members differ from its group's rows.
 */
export class CacheGroup {
  constructor(
    /** `2 * layers` tensors: key of layer 0, value of layer 0, key of layer 1... */
    readonly tensors: readonly ort.Tensor[],
    readonly rows: number,
    readonly width: number,
    /** `[rows, width]`: 1 for a slot that holds a token of the row's sequence. */
    readonly mask: Uint8Array,
    /** Bytes held by `tensors`. */
    readonly bytes: number,
  ) {}
}

/** A live sequence: how many tokens it holds and where its cache lies. */
export interface SequenceState {
  readonly length: number;
  readonly group: CacheGroup;
  readonly row: number;
}

/** Shape facts needed to allocate and copy caches. */
export interface KvLayout {
  readonly layers: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly kvType: FloatType;
}

/** Bytes per cache element. */
export function bytesPerElement(kvType: FloatType): number {
  return kvType === 'float16' ? 2 : 4;
}

/** An empty typed array of the cache's element type. */
export function allocateKv(kvType: FloatType, length: number): KvArray {
  return kvType === 'float16' ? new Uint16Array(length) : new Float32Array(length);
}

/**
 * A typed array of the cache's element type whose contents are left as the allocator found them, for buffers that
 * onnxruntime overwrites whole (a standard graph's `present` outputs): skips zero-filling megabytes per step.
 */
export function allocateKvUninitialized(kvType: FloatType, length: number): KvArray {
  const bytes = Buffer.allocUnsafeSlow(length * bytesPerElement(kvType));
  return kvType === 'float16'
    ? new Uint16Array(bytes.buffer, bytes.byteOffset, length)
    : new Float32Array(bytes.buffer, bytes.byteOffset, length);
}

/** The CPU data of a cache tensor (downloaded first when it lives on a device). */
async function dataOf(tensor: ort.Tensor): Promise<KvArray> {
  return (tensor.location === 'cpu' ? tensor.data : await tensor.getData()) as KvArray;
}

/** The runs of consecutive real slots of one row: pairs `[start, end)` in slot numbers. */
function realRuns(group: CacheGroup, row: number): [number, number][] {
  const runs: [number, number][] = [];
  const base = row * group.width;
  let start = -1;
  for (let slot = 0; slot <= group.width; slot++) {
    const real = slot < group.width && group.mask[base + slot] === 1;
    if (real && start < 0) start = slot;
    else if (!real && start >= 0) {
      runs.push([start, slot]);
      start = -1;
    }
  }
  return runs;
}

/**
 * Builds the `past_key_values` of a batch whose rows are `states` (`undefined` for a new, empty sequence): the
 * first `state.length` real slots of each row (all of them for a live sequence; fewer for a prefix fork) copied,
 * in order and without gaps, right-aligned in `[rows, kvHeads, maxLength, headDim]` (left padding), with the
 * matching mask.
 */
export async function compactGroup(
  states: readonly (SequenceState | undefined)[],
  layout: KvLayout,
): Promise<CacheGroup> {
  const { layers, kvHeads, headDim, kvType } = layout;
  const rows = states.length;
  const width = states.reduce((max, s) => Math.max(max, s?.length ?? 0), 0);
  const mask = new Uint8Array(rows * width);
  const rowRuns = states.map((state) => (state === undefined ? [] : realRuns(state.group, state.row)));
  for (let r = 0; r < rows; r++) mask.fill(1, (r + 1) * width - (states[r]?.length ?? 0), (r + 1) * width);
  const tensors: ort.Tensor[] = [];
  for (let t = 0; t < 2 * layers; t++) {
    const target = allocateKv(kvType, rows * kvHeads * width * headDim);
    for (let r = 0; r < rows; r++) {
      const state = states[r];
      if (state === undefined || state.length === 0) continue;
      const source = await dataOf(state.group.tensors[t]!);
      const sourceWidth = state.group.width;
      for (let h = 0; h < kvHeads; h++) {
        let slot = (r * kvHeads + h) * width + (width - state.length);
        const sourceBase = (state.row * kvHeads + h) * sourceWidth;
        let left = state.length;
        for (const [start, end] of rowRuns[r]!) {
          const take = Math.min(end - start, left);
          if (take <= 0) break;
          target.set(
            source.subarray((sourceBase + start) * headDim, (sourceBase + start + take) * headDim),
            slot * headDim,
          );
          slot += take;
          left -= take;
        }
      }
    }
    tensors.push(new ort.Tensor(kvType, target, [rows, kvHeads, width, headDim]));
  }
  return new CacheGroup(tensors, rows, width, mask, groupBytes(layout, rows, width));
}

/** Bytes of a group of `rows` x `width` slots. */
export function groupBytes(layout: KvLayout, rows: number, width: number): number {
  return 2 * layout.layers * rows * layout.kvHeads * width * layout.headDim * bytesPerElement(layout.kvType);
}

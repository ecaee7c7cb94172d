import * as tf from '@tensorflow/tfjs-core';
import type { TensorMemory } from './tensor-memory.js';

/** Shape facts a cache needs. */
export interface KvShape {
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
}

/** The keys and values of one layer as the attention reads them. */
export interface LayerKv {
  /** `[kvHeads, positions, headDim]`. */
  readonly keys: tf.Tensor3D;
  /** Transposed: `[kvHeads, headDim, positions]` (so both attention products read rows contiguously). */
  readonly values: tf.Tensor3D;
  /**
   * Size of the positions axis. Positions at or past `start + n` of the current call are scratch (a preallocated
   * buffer) and must be masked; the attention mask does that, since they lie in every query's future.
   */
  readonly positions: number;
}

/**
 * The key / value cache of one sequence. A call appends `n` positions per layer with {@link KvCache.append}, then
 * either {@link KvCache.commit}s them (the call succeeded) or {@link KvCache.rollback}s (it failed or was aborted),
 * after which the cache is exactly as before the call.
 */
export interface KvCache {
  /** Committed positions. */
  readonly length: number;
  /** Bytes held by the cache tensors. */
  readonly bytes: number;
  /** Makes room for `positions` positions (at most `limit`); called before a call's first `append`. */
  reserve(positions: number, limit: number): void;
  /**
   * Stores the keys and values of rows `[row, row + n)` of `qkv` (`[rows, (heads + 2 * kvHeads) * headDim]`, rotary
   * embeddings applied; keys are heads `[heads, heads + kvHeads)`, values the last `kvHeads`) at positions
   * `[length, length + n)` of `layer`, and returns that layer's cache. Runs inside the caller's `tf.tidy`; what it
   * returns stays alive until commit / rollback / dispose.
   */
  append(layer: number, qkv: tf.Tensor2D, row: number, n: number): LayerKv;
  commit(n: number): void;
  rollback(): void;
  /** A copy holding the first `length` committed positions (default all), evolving independently afterwards. */
  clone(length?: number): KvCache;
  dispose(): void;
}

/** Creates an empty cache: written in place when `memory` is given (wasm, cpu), else grown by `tf.concat`. */
export function createKvCache(shape: KvShape, memory: TensorMemory | undefined): KvCache {
  return memory === undefined ? new ConcatKvCache(shape) : new InPlaceKvCache(shape, memory);
}

/** Capacity grows in blocks of this many positions: little masked waste, few reallocations. */
const BLOCK = 64;

/**
 * Preallocated `[kvHeads, capacity, headDim]` / `[kvHeads, headDim, capacity]` buffers per layer, written in place
 * through {@link TensorMemory} (no tfjs op, no copy of the existing positions per step). Grows by blocks.
 */
class InPlaceKvCache implements KvCache {
  length = 0;
  private capacity = 0;
  private keys: tf.Tensor3D[] = [];
  private values: tf.Tensor3D[] = [];

  constructor(
    private readonly shape: KvShape,
    private readonly memory: TensorMemory,
  ) {}

  get bytes(): number {
    const { numLayers, numKeyValueHeads, headDim } = this.shape;
    return this.keys.length === 0 ? 0 : numLayers * 2 * numKeyValueHeads * this.capacity * headDim * 4;
  }

  reserve(positions: number, limit: number): void {
    if (positions <= this.capacity) return;
    const capacity = Math.max(positions, Math.min(limit, Math.ceil(positions / BLOCK) * BLOCK));
    this.resize(capacity);
  }

  append(layer: number, qkv: tf.Tensor2D, row: number, n: number): LayerKv {
    const { numHeads, numKeyValueHeads: kvHeads, headDim } = this.shape;
    const keys = this.keys[layer]!;
    const values = this.values[layer]!;
    const capacity = this.capacity;
    const source = this.memory.view(qkv);
    const keyView = this.memory.view(keys);
    const valueView = this.memory.view(values);
    const width = (numHeads + 2 * kvHeads) * headDim;
    const src = source.array;
    const k = keyView.array;
    const v = valueView.array;
    for (let j = 0; j < n; j++) {
      const position = this.length + j;
      const base = source.offset + (row + j) * width;
      for (let h = 0; h < kvHeads; h++) {
        const from = base + (numHeads + h) * headDim;
        const to = keyView.offset + (h * capacity + position) * headDim;
        if (src === k) k.copyWithin(to, from, from + headDim);
        else k.set(src.subarray(from, from + headDim), to);
        const valueFrom = base + (numHeads + kvHeads + h) * headDim;
        const valueTo = valueView.offset + h * headDim * capacity + position;
        for (let d = 0; d < headDim; d++) v[valueTo + d * capacity] = src[valueFrom + d]!;
      }
    }
    return { keys, values, positions: capacity };
  }

  commit(n: number): void {
    this.length += n;
  }

  rollback(): void {
    // Positions past `length` are scratch; nothing to undo.
  }

  clone(length = this.length): KvCache {
    const copy = new InPlaceKvCache(this.shape, this.memory);
    if (length > 0) {
      copy.length = length;
      copy.keys = this.keys;
      copy.values = this.values;
      copy.capacity = this.capacity;
      // resize() allocates fresh buffers and copies the committed positions out of the shared ones.
      copy.resize(Math.ceil(length / BLOCK) * BLOCK, false);
    }
    return copy;
  }

  dispose(): void {
    for (const t of this.keys) t.dispose();
    for (const t of this.values) t.dispose();
    this.keys = [];
    this.values = [];
    this.capacity = 0;
  }

  private resize(capacity: number, disposeOld = true): void {
    const { numLayers, numKeyValueHeads: kvHeads, headDim } = this.shape;
    const old = this.capacity;
    const keep = this.length;
    const keys: tf.Tensor3D[] = [];
    const values: tf.Tensor3D[] = [];
    for (let l = 0; l < numLayers; l++) {
      // Zero-filled: masked positions must hold finite numbers (0 * NaN would poison the value product).
      const k = tf.zeros([kvHeads, capacity, headDim]) as tf.Tensor3D;
      const v = tf.zeros([kvHeads, headDim, capacity]) as tf.Tensor3D;
      if (keep > 0) {
        const oldKeys = this.memory.view(this.keys[l]!);
        const oldValues = this.memory.view(this.values[l]!);
        const newKeys = this.memory.view(k);
        const newValues = this.memory.view(v);
        for (let h = 0; h < kvHeads; h++) {
          copy(oldKeys, h * old * headDim, newKeys, h * capacity * headDim, keep * headDim);
          for (let d = 0; d < headDim; d++) {
            copy(oldValues, (h * headDim + d) * old, newValues, (h * headDim + d) * capacity, keep);
          }
        }
      }
      keys.push(k);
      values.push(v);
    }
    if (disposeOld) this.dispose();
    this.keys = keys;
    this.values = values;
    this.capacity = capacity;
  }
}

function copy(
  from: { array: Float32Array; offset: number },
  start: number,
  to: typeof from,
  at: number,
  count: number,
) {
  const a = from.offset + start;
  if (from.array === to.array) to.array.copyWithin(to.offset + at, a, a + count);
  else to.array.set(from.array.subarray(a, a + count), to.offset + at);
}

/**
 * Exactly sized immutable tensors per layer, replaced by `tf.concat([old, new])` on every call: the portable path
 * for backends whose memory this process cannot write (tfjs-node, tfjs-node-gpu).
 */
class ConcatKvCache implements KvCache {
  length = 0;
  private keys: (tf.Tensor3D | undefined)[];
  private values: (tf.Tensor3D | undefined)[];
  private pendingKeys: (tf.Tensor3D | undefined)[];
  private pendingValues: (tf.Tensor3D | undefined)[];

  constructor(private readonly shape: KvShape) {
    const empty = () => Array.from({ length: shape.numLayers }, (): tf.Tensor3D | undefined => undefined);
    this.keys = empty();
    this.values = empty();
    this.pendingKeys = empty();
    this.pendingValues = empty();
  }

  get bytes(): number {
    const { numLayers, numKeyValueHeads, headDim } = this.shape;
    return numLayers * 2 * numKeyValueHeads * this.length * headDim * 4;
  }

  reserve(): void {}

  append(layer: number, qkv: tf.Tensor2D, row: number, n: number): LayerKv {
    const { numHeads, numKeyValueHeads: kvHeads, headDim } = this.shape;
    const rows = tf.reshape(tf.slice(qkv, [row, 0], [n, qkv.shape[1]]), [n, numHeads + 2 * kvHeads, headDim]);
    const newKeys = tf.transpose(tf.slice(rows, [0, numHeads, 0], [n, kvHeads, headDim]), [1, 0, 2]);
    const newValues = tf.transpose(tf.slice(rows, [0, numHeads + kvHeads, 0], [n, kvHeads, headDim]), [1, 2, 0]);
    const oldKeys = this.keys[layer];
    const oldValues = this.values[layer];
    const keys = tf.keep(oldKeys === undefined ? newKeys : tf.concat([oldKeys, newKeys], 1)) as tf.Tensor3D;
    const values = tf.keep(oldValues === undefined ? newValues : tf.concat([oldValues, newValues], 2)) as tf.Tensor3D;
    this.pendingKeys[layer] = keys;
    this.pendingValues[layer] = values;
    return { keys, values, positions: this.length + n };
  }

  commit(n: number): void {
    for (let l = 0; l < this.shape.numLayers; l++) {
      if (this.pendingKeys[l] === undefined) continue;
      this.keys[l]?.dispose();
      this.values[l]?.dispose();
      this.keys[l] = this.pendingKeys[l];
      this.values[l] = this.pendingValues[l];
      this.pendingKeys[l] = undefined;
      this.pendingValues[l] = undefined;
    }
    this.length += n;
  }

  rollback(): void {
    for (let l = 0; l < this.shape.numLayers; l++) {
      this.pendingKeys[l]?.dispose();
      this.pendingValues[l]?.dispose();
      this.pendingKeys[l] = undefined;
      this.pendingValues[l] = undefined;
    }
  }

  clone(length = this.length): KvCache {
    const copy = new ConcatKvCache(this.shape);
    copy.length = length;
    if (length === this.length) {
      copy.keys = this.keys.map((t) => (t === undefined ? undefined : tf.clone(t)));
      copy.values = this.values.map((t) => (t === undefined ? undefined : tf.clone(t)));
    } else {
      // Keys are [kvHeads, length, headDim], values [kvHeads, headDim, length].
      copy.keys = this.keys.map((t) => (t === undefined ? undefined : tf.slice(t, [0, 0, 0], [-1, length, -1])));
      copy.values = this.values.map((t) => (t === undefined ? undefined : tf.slice(t, [0, 0, 0], [-1, -1, length])));
    }
    return copy;
  }

  dispose(): void {
    this.rollback();
    for (const t of this.keys) t?.dispose();
    for (const t of this.values) t?.dispose();
    this.keys.fill(undefined);
    this.values.fill(undefined);
  }
}

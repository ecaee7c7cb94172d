/**
 * Key / value cache of one sequence: per layer, keys and values `[kvHeads, capacity, headDim]` (head-major, so
 * attention streams one head's positions contiguously). Capacity grows by doubling up to the position limit.
 */
export class KvCache {
  /** Tokens committed to the cache (entries past it are scratch from an unfinished or aborted call). */
  length = 0;
  /** Positions allocated per head. */
  capacity = 0;
  keys: Float32Array[];
  values: Float32Array[];
  private readonly kvHeads: number;
  private readonly headDim: number;

  constructor(numLayers: number, kvHeads: number, headDim: number) {
    this.kvHeads = kvHeads;
    this.headDim = headDim;
    this.keys = Array.from({ length: numLayers }, () => new Float32Array(0));
    this.values = Array.from({ length: numLayers }, () => new Float32Array(0));
  }

  /** Bytes held by the cache arrays. */
  get bytes(): number {
    return this.keys.length * 2 * this.kvHeads * this.capacity * this.headDim * 4;
  }

  /** Makes room for `positions` positions (at most `limit`), keeping the first `length` entries. */
  reserve(positions: number, limit: number): void {
    if (positions <= this.capacity) return;
    const capacity = Math.min(limit, Math.max(positions, 2 * this.capacity, 16));
    this.keys = this.keys.map((array) => this.grow(array, capacity));
    this.values = this.values.map((array) => this.grow(array, capacity));
    this.capacity = capacity;
  }

  /** A copy holding exactly the committed positions, or only the first `length` of them. */
  clone(length = this.length): KvCache {
    const copy = new KvCache(this.keys.length, this.kvHeads, this.headDim);
    copy.length = length;
    if (length > 0) {
      copy.keys = this.keys.map((array) => this.grow(array, length));
      copy.values = this.values.map((array) => this.grow(array, length));
      copy.capacity = length;
    }
    return copy;
  }

  private grow(array: Float32Array, capacity: number): Float32Array {
    const { kvHeads, headDim } = this;
    const next = new Float32Array(kvHeads * capacity * headDim);
    const keep = Math.min(this.length, capacity) * headDim;
    for (let h = 0; h < kvHeads; h++) {
      const from = h * this.capacity * headDim;
      next.set(array.subarray(from, from + keep), h * capacity * headDim);
    }
    return next;
  }
}

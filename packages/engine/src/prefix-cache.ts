/**
 * The engine's prefix cache: prompts whose KV the backend keeps under their own sequence ids after a request has
 * prefilled them, found again by a hash of their leading token blocks. A new prompt that starts with a cached one
 * forks the cached sequence up to the common prefix (`doFork(id, newId, { length })`) and prefills only the rest.
 *
 * Entries are evicted least recently used first when the estimated KV bytes or the entry count go over the budget.
 */

/** Settings of the prefix cache (`EngineSettings.prefixCache`). */
export interface PrefixCacheSettings {
  /** KV bytes the cache may hold (estimated from the model's shape; see {@link kvBytesPerToken}). 0 turns it off. */
  maxBytes: number;
  /** Tokens per block: prompts are matched a block at a time, and at least one block must match. Default 16. */
  blockSize?: number;
  /** Most cached prompts (each is one backend sequence). Default 16. */
  maxEntries?: number;
}

/** Counters of the prefix cache, in `EngineStats.prefixCache`. */
export interface PrefixCacheStats {
  /** Cached prompts. */
  entries: number;
  /** Tokens they hold. */
  tokens: number;
  /** Their estimated KV bytes. */
  bytes: number;
  /** Prompts looked up (requests that could use the cache). */
  lookups: number;
  /** Lookups that reused a cached prefix. */
  hits: number;
  /** Prompt tokens not prefilled thanks to the cache. */
  hitTokens: number;
  /** Entries evicted for the budget. */
  evictions: number;
}

/** One cached prompt. */
export interface PrefixEntry {
  /** The backend sequence holding its KV. */
  readonly id: string;
  /** Its tokens (the sequence's whole history). */
  readonly tokens: readonly number[];
  /** Estimated KV bytes. */
  readonly bytes: number;
  lastUsed: number;
}

/**
 * Estimated KV bytes per token of a model: keys and values of every layer, float32 (backends that store f16 hold
 * less; the budget is then conservative).
 */
export function kvBytesPerToken(model: { numLayers?: number; numKeyValueHeads?: number; headDim?: number }): number {
  const layers = model.numLayers ?? 32;
  const heads = model.numKeyValueHeads ?? 8;
  const dim = model.headDim ?? 128;
  return 2 * layers * heads * dim * 4;
}

/** Block hashes of `tokens`: `keys[k]` identifies the first `(k + 1) * blockSize` tokens. */
function blockKeys(tokens: readonly number[], blockSize: number, blocks: number): string[] {
  const keys: string[] = [];
  let a = 0x811c9dc5;
  let b = 0x9e3779b9;
  for (let k = 0; k < blocks; k++) {
    for (let i = k * blockSize; i < (k + 1) * blockSize; i++) {
      const t = tokens[i]!;
      a = Math.imul(a ^ t, 0x01000193) >>> 0;
      b = Math.imul(b ^ (t + 0x632be5ab), 0x85ebca6b) >>> 0;
      b ^= b >>> 13;
    }
    keys.push(`${k}:${a.toString(36)}:${b.toString(36)}`);
  }
  return keys;
}

export class PrefixCache {
  readonly blockSize: number;
  readonly maxEntries: number;
  private readonly entries = new Map<string, PrefixEntry>();
  private readonly byBlock = new Map<string, PrefixEntry>();
  private bytes = 0;
  private clock = 0;
  private readonly counters = { lookups: 0, hits: 0, hitTokens: 0, evictions: 0 };

  constructor(
    readonly maxBytes: number,
    private readonly bytesPerToken: number,
    options: { blockSize?: number; maxEntries?: number } = {},
  ) {
    this.blockSize = options.blockSize ?? 16;
    this.maxEntries = options.maxEntries ?? 16;
    if (!Number.isInteger(this.blockSize) || this.blockSize < 1) throw new RangeError('blockSize must be >= 1');
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) throw new RangeError('maxEntries must be >= 1');
  }

  /**
   * The cached entry sharing the longest prefix with `prompt`, and that prefix's length (at least one block, at
   * most `prompt.length - 1`: the last prompt token is always run, for its logits). Counts a lookup.
   */
  lookup(prompt: readonly number[]): { entry: PrefixEntry; length: number } | undefined {
    this.counters.lookups++;
    const blocks = Math.floor((prompt.length - 1) / this.blockSize);
    if (blocks < 1 || this.entries.size === 0) return undefined;
    const keys = blockKeys(prompt, this.blockSize, blocks);
    for (let k = blocks - 1; k >= 0; k--) {
      const entry = this.byBlock.get(keys[k]!);
      if (entry === undefined) continue;
      // Verify (a hash collision must never reuse the wrong KV), then extend past the block boundary.
      let length = 0;
      const limit = Math.min(entry.tokens.length, prompt.length - 1);
      while (length < limit && entry.tokens[length] === prompt[length]) length++;
      if (length < (k + 1) * this.blockSize) continue;
      entry.lastUsed = ++this.clock;
      this.counters.hits++;
      this.counters.hitTokens += length;
      return { entry, length };
    }
    return undefined;
  }

  /**
   * Whether a prompt is worth caching: at least one block and one more token, and not already held whole by an
   * entry.
   */
  wants(prompt: readonly number[]): boolean {
    if (prompt.length <= this.blockSize) return false;
    const bytes = prompt.length * this.bytesPerToken;
    if (bytes > this.maxBytes) return false;
    for (const entry of this.entries.values()) {
      if (entry.tokens.length >= prompt.length && sharesPrefix(entry.tokens, prompt, prompt.length)) return false;
    }
    return true;
  }

  /**
   * Adds a cached prompt under backend sequence `id`. Returns the ids to release: entries it makes redundant (their
   * tokens are a prefix of `tokens`) and least recently used ones over the budget.
   */
  insert(id: string, tokens: readonly number[]): string[] {
    const release: string[] = [];
    for (const entry of [...this.entries.values()]) {
      if (entry.tokens.length <= tokens.length && sharesPrefix(entry.tokens, tokens, entry.tokens.length)) {
        this.remove(entry.id);
        release.push(entry.id);
      }
    }
    const entry: PrefixEntry = { id, tokens, bytes: tokens.length * this.bytesPerToken, lastUsed: ++this.clock };
    this.entries.set(id, entry);
    this.bytes += entry.bytes;
    const blocks = Math.floor(tokens.length / this.blockSize);
    for (const key of blockKeys(tokens, this.blockSize, blocks)) this.byBlock.set(key, entry);
    while (this.entries.size > this.maxEntries || this.bytes > this.maxBytes) {
      let oldest: PrefixEntry | undefined;
      for (const candidate of this.entries.values()) {
        if (candidate !== entry && (oldest === undefined || candidate.lastUsed < oldest.lastUsed)) oldest = candidate;
      }
      if (oldest === undefined) break;
      this.remove(oldest.id);
      this.counters.evictions++;
      release.push(oldest.id);
    }
    return release;
  }

  /** Forgets entry `id` (the caller releases its sequence). */
  remove(id: string): void {
    const entry = this.entries.get(id);
    if (entry === undefined) return;
    this.entries.delete(id);
    this.bytes -= entry.bytes;
    for (const [key, holder] of [...this.byBlock]) {
      if (holder === entry) this.byBlock.delete(key);
    }
    // Blocks another entry also covers point to it again.
    for (const other of this.entries.values()) {
      const blocks = Math.floor(other.tokens.length / this.blockSize);
      for (const key of blockKeys(other.tokens, this.blockSize, blocks))
        if (!this.byBlock.has(key)) this.byBlock.set(key, other);
    }
  }

  /** Every entry's sequence id (to release them all). */
  ids(): string[] {
    return [...this.entries.keys()];
  }

  stats(): PrefixCacheStats {
    let tokens = 0;
    for (const entry of this.entries.values()) tokens += entry.tokens.length;
    return { entries: this.entries.size, tokens, bytes: this.bytes, ...this.counters };
  }
}

function sharesPrefix(a: readonly number[], b: readonly number[], length: number): boolean {
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return false;
  return true;
}

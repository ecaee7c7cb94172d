import { describe, expect, it } from 'vitest';
import { PrefixCache, kvBytesPerToken } from './prefix-cache.js';

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('PrefixCache', () => {
  it('finds the longest shared prefix, at least one block, never the last prompt token', () => {
    const cache = new PrefixCache(1 << 20, 1, { blockSize: 4 });
    expect(cache.insert('a', range(0, 10))).toEqual([]);
    expect(cache.lookup([...range(0, 6), 99, 98])).toMatchObject({ length: 6 });
    expect(cache.lookup(range(0, 10))).toMatchObject({ length: 9 });
    expect(cache.lookup([0, 1, 2, 9, 9, 9])).toBeUndefined(); // less than a block in common
    expect(cache.lookup([0, 1, 2, 3])).toBeUndefined(); // one block, but it holds the last token
    expect(cache.stats()).toMatchObject({ entries: 1, tokens: 10, bytes: 10, lookups: 4, hits: 2, hitTokens: 15 });
  });

  it('a longer prompt replaces the entries it extends; LRU eviction over bytes or entries', () => {
    const cache = new PrefixCache(25, 1, { blockSize: 4, maxEntries: 2 });
    cache.insert('a', range(0, 8));
    expect(cache.wants(range(0, 6))).toBe(false); // held whole by a
    expect(cache.insert('b', range(0, 12))).toEqual(['a']);
    cache.insert('c', range(100, 10));
    cache.lookup([...range(0, 8), 7]); // touches b
    expect(cache.insert('d', range(200, 10))).toEqual(['c']); // 32 bytes > 25: c is the least recently used
    expect(cache.ids().sort()).toEqual(['b', 'd']);
    expect(cache.lookup([...range(100, 9), 0])).toBeUndefined();
    cache.remove('b');
    expect(cache.lookup([...range(0, 8), 7])).toBeUndefined();
    expect(cache.stats()).toMatchObject({ entries: 1, evictions: 1 });
  });

  it('a prompt larger than the budget is not cached; bytes per token from the model shape', () => {
    const cache = new PrefixCache(10, 1, { blockSize: 2 });
    expect(cache.wants(range(0, 11))).toBe(false);
    expect(cache.wants(range(0, 2))).toBe(false); // not more than a block
    expect(kvBytesPerToken({ numLayers: 2, numKeyValueHeads: 3, headDim: 4 })).toBe(2 * 2 * 3 * 4 * 4);
  });
});

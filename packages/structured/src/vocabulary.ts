import { InvalidGrammarError } from './errors.js';

/** What a vocabulary is made from: its size (the logits row length), each token's bytes, and the EOS ids. */
export interface VocabularySource {
  /** Number of logits per row (may exceed the tokenizer's vocabulary: the extra ids have no bytes). */
  size: number;
  /** The bytes a token adds mid-sequence, or undefined for special tokens (never allowed inside a constraint). */
  tokenBytes(id: number): Uint8Array | undefined;
  /** Tokens that end generation: allowed exactly where the constrained output is complete. */
  eosTokenIds: readonly number[];
}

/**
 * A vocabulary as a byte trie: the token ids ending at each node, children as first-child / next-sibling lists in
 * typed arrays. Built once per tokenizer (see {@link vocabularyFromTokenizer}); every token mask walks it.
 */
export class TokenVocabulary {
  /** Number of token ids (the logits row length). */
  readonly size: number;
  /** The EOS ids (kept out of the trie: allowed only where the output is complete). */
  readonly eosTokenIds: readonly number[];
  /** Per trie node: the byte on the edge into it. */
  readonly byte: Uint8Array;
  /** Per node: its first child, or -1. */
  readonly firstChild: Int32Array;
  /** Per node: its next sibling, or -1. */
  readonly nextSibling: Int32Array;
  /** Per node: range `[tokenStart[n], tokenStart[n + 1])` of {@link tokenIds} ending there. */
  readonly tokenStart: Int32Array;
  /** Token ids grouped by the trie node their bytes end at (see {@link tokenStart}). */
  readonly tokenIds: Int32Array;
  /**
   * Per node: the end of its subtree. Nodes are numbered in preorder, so the subtree of `n` is the nodes
   * `[n, subtreeEnd[n])` and its tokens are `tokenIds[tokenStart[n] .. tokenStart[subtreeEnd[n]])`.
   */
  readonly subtreeEnd: Int32Array;
  /**
   * Per node: 1 when every byte below it (its descendants' edges) is {@link isPlainByte}: a grammar state that loops
   * on all plain bytes allows the whole subtree without walking it (free text in JSON strings).
   */
  readonly plainBelow: Uint8Array;
  /** Number of tokens with bytes (the rest are special or unused ids). */
  readonly byteTokens: number;
  readonly #bytes: (Uint8Array | undefined)[];

  /**
   * Builds the trie: tokens sorted by their bytes, one node per distinct prefix. Tokens without bytes (special,
   * unused ids past the tokenizer's vocabulary) and EOS ids are left out.
   *
   * @throws {InvalidGrammarError} when `size` is not a positive integer.
   */
  constructor(source: VocabularySource) {
    const size = source.size;
    if (!Number.isInteger(size) || size < 1) throw new InvalidGrammarError(`vocabulary size must be >= 1, got ${size}`);
    this.size = size;
    this.eosTokenIds = source.eosTokenIds.filter((id) => Number.isInteger(id) && id >= 0 && id < size);
    const eos = new Set(this.eosTokenIds);
    this.#bytes = new Array<Uint8Array | undefined>(size);
    const ids: number[] = [];
    for (let id = 0; id < size; id++) {
      const bytes = eos.has(id) ? undefined : source.tokenBytes(id);
      if (bytes === undefined || bytes.length === 0) continue;
      this.#bytes[id] = bytes;
      ids.push(id);
    }
    this.byteTokens = ids.length;
    const all = this.#bytes;
    const order = sortByBytes(ids, all);
    // Build the trie from the sorted tokens: a node per distinct prefix.
    let capacity = 1024;
    let byte = new Uint8Array(capacity);
    let firstChild = new Int32Array(capacity).fill(-1);
    let nextSibling = new Int32Array(capacity).fill(-1);
    let lastChild = new Int32Array(capacity).fill(-1);
    // Per position in `order`: the node its token ends at.
    const endNode = new Int32Array(order.length);
    let nodes = 1;
    const path: number[] = [0];
    let previous: Uint8Array | undefined;
    for (let k = 0; k < order.length; k++) {
      const id = order[k]!;
      const bytes = all[id]!;
      let common = 0;
      if (previous !== undefined) {
        const n = Math.min(previous.length, bytes.length);
        while (common < n && previous[common] === bytes[common]) common++;
      }
      path.length = common + 1;
      for (let depth = common; depth < bytes.length; depth++) {
        if (nodes === capacity) {
          capacity *= 2;
          const grow = <T extends Uint8Array | Int32Array>(old: T, fill: number): T => {
            const next = new (old.constructor as new (n: number) => T)(capacity);
            next.fill(fill);
            next.set(old);
            return next;
          };
          byte = grow(byte, 0);
          firstChild = grow(firstChild, -1);
          nextSibling = grow(nextSibling, -1);
          lastChild = grow(lastChild, -1);
        }
        const parent = path[depth]!;
        const node = nodes++;
        byte[node] = bytes[depth]!;
        if (firstChild[parent] === -1) firstChild[parent] = node;
        else nextSibling[lastChild[parent]!] = node;
        lastChild[parent] = node;
        path.push(node);
      }
      endNode[k] = path[bytes.length]!;
      previous = bytes;
    }
    this.byte = byte.slice(0, nodes);
    this.firstChild = firstChild.slice(0, nodes);
    this.nextSibling = nextSibling.slice(0, nodes);
    // Counting sort of the tokens by end node.
    const tokenStart = new Int32Array(nodes + 1);
    for (let k = 0; k < order.length; k++) tokenStart[endNode[k]! + 1]!++;
    for (let node = 0; node < nodes; node++) tokenStart[node + 1]! += tokenStart[node]!;
    const fill = tokenStart.slice(0, nodes);
    const tokenIds = new Int32Array(order.length);
    for (let k = 0; k < order.length; k++) tokenIds[fill[endNode[k]!]!++] = order[k]!;
    this.tokenStart = tokenStart;
    this.tokenIds = tokenIds;
    // Subtree ends and plain subtrees, children before parents: preorder numbering makes that a reverse scan.
    const subtreeEnd = new Int32Array(nodes);
    const plainBelow = new Uint8Array(nodes);
    const children = this.firstChild;
    const siblings = this.nextSibling;
    const edge = this.byte;
    for (let node = nodes - 1; node >= 0; node--) {
      let end = node + 1;
      let plain = 1;
      for (let child = children[node]!; child !== -1; child = siblings[child]!) {
        end = subtreeEnd[child]!;
        if (plain === 1 && (plainBelow[child] === 0 || !isPlainByte(edge[child]!))) plain = 0;
      }
      subtreeEnd[node] = end;
      plainBelow[node] = plain;
    }
    this.subtreeEnd = subtreeEnd;
    this.plainBelow = plainBelow;
  }

  /** Number of trie nodes. */
  get nodeCount(): number {
    return this.byte.length;
  }

  /** The bytes of token `id`, or undefined (special, EOS or unused). */
  bytes(id: number): Uint8Array | undefined {
    return this.#bytes[id];
  }
}

/** Printable ASCII other than `"` and `\\`: the bytes a JSON string body takes as they are. */
export function isPlainByte(b: number): boolean {
  return b >= 0x20 && b <= 0x7e && b !== 0x22 && b !== 0x5c;
}

/** Byte-wise lexicographic comparison. */
function compareBytes(x: Uint8Array, y: Uint8Array): number {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/**
 * `ids` sorted by their bytes: a native numeric sort on (first 4 bytes, zero-padded; id), then a comparison sort of
 * each run of equal 4-byte prefixes. Zero padding keeps the order lexicographic (a prefix sorts first).
 */
function sortByBytes(ids: readonly number[], bytes: readonly (Uint8Array | undefined)[]): Int32Array {
  if (ids.length > 0 && ids[ids.length - 1]! >= 2 ** 20) {
    return Int32Array.from([...ids].sort((a, b) => compareBytes(bytes[a]!, bytes[b]!) || a - b));
  }
  const keys = new Float64Array(ids.length);
  for (let k = 0; k < ids.length; k++) {
    const b = bytes[ids[k]!]!;
    const key = (((b[0] ?? 0) << 24) | ((b[1] ?? 0) << 16) | ((b[2] ?? 0) << 8) | (b[3] ?? 0)) >>> 0;
    keys[k] = key * 2 ** 20 + ids[k]!;
  }
  keys.sort();
  const order = new Int32Array(ids.length);
  const prefix = new Float64Array(ids.length);
  for (let k = 0; k < ids.length; k++) {
    const id = keys[k]! % 2 ** 20;
    order[k] = id;
    prefix[k] = (keys[k]! - id) / 2 ** 20;
  }
  for (let start = 0; start < ids.length;) {
    let end = start + 1;
    while (end < ids.length && prefix[end] === prefix[start]) end++;
    if (end - start > 1) {
      const run = Array.from(order.subarray(start, end)).sort((a, b) => compareBytes(bytes[a]!, bytes[b]!) || a - b);
      order.set(run, start);
    }
    start = end;
  }
  return order;
}

const byTokenizer = new WeakMap<object, Map<string, TokenVocabulary>>();

/**
 * The vocabulary of a tokenizer (anything with `tokenBytes(id)`, such as `@gen/tokenizer`'s), built once per
 * tokenizer object, row size and EOS ids, and reused by every constraint on it.
 */
export function vocabularyFromTokenizer(
  tokenizer: {
    tokenBytes(id: number): Uint8Array | undefined;
    vocabularyBytes?(): readonly (Uint8Array | undefined)[];
  },
  options: { size: number; eosTokenIds: readonly number[] },
): TokenVocabulary {
  let entries = byTokenizer.get(tokenizer);
  if (entries === undefined) byTokenizer.set(tokenizer, (entries = new Map()));
  const key = `${options.size}:${options.eosTokenIds.join(',')}`;
  let vocabulary = entries.get(key);
  if (vocabulary === undefined) {
    const all = tokenizer.vocabularyBytes?.();
    vocabulary = new TokenVocabulary({
      size: options.size,
      eosTokenIds: options.eosTokenIds,
      tokenBytes: all === undefined ? (id) => tokenizer.tokenBytes(id) : (id) => all[id],
    });
    entries.set(key, vocabulary);
  }
  return vocabulary;
}

import type { ByteAutomaton } from './types.js';
import { isPlainByte, type TokenVocabulary } from './vocabulary.js';

/**
 * Masks allowing at most this fraction of the vocabulary are stored as their allowed ids, the others as their
 * forbidden ids. Measured at V = 151,936 (bench/mask.ts, random ids, unrolled loops): the forbid list costs about
 * 1.1 ns an id (151,936 - k ids), the allow list about 9 µs (the fill) plus 4 ns an allowed id (k); the two cross
 * at k ≈ 31,000, a fifth of the vocabulary.
 */
const ALLOW_LIST_FRACTION = 0.2;
/** Subtrees smaller than this are walked: checking a state's plain-byte loop costs about as much. */
const PLAIN_SUBTREE_MIN = 8;

/**
 * The tokens allowed in one automaton state. Stored the cheaper way round for applying it: the allowed ids when
 * they are at most a fifth of the vocabulary (apply: keep those logits, fill the row with -Infinity, put them back),
 * otherwise the forbidden ids (apply: write -Infinity there).
 */
export interface TokenMask {
  /** Which ids {@link TokenMask.ids} lists: the allowed ones or the forbidden ones. */
  readonly mode: 'allow' | 'forbid';
  /** Allowed ids (`allow`) or forbidden ids (`forbid`), ascending. */
  readonly ids: Int32Array;
  /** How many tokens are allowed (EOS included when it is). */
  readonly allowed: number;
  /** Whether EOS is allowed (the output so far is complete). */
  readonly eos: boolean;
}

/** Buffers of a mask computation, vocabulary-sized; shared by every index on a vocabulary (computing is synchronous). */
interface Scratch {
  stackNodes: Int32Array;
  stackStates: Int32Array;
  found: Int32Array;
  marks: Uint8Array;
}

const scratches = new WeakMap<TokenVocabulary, Scratch>();

function scratchFor(vocabulary: TokenVocabulary): Scratch {
  let scratch = scratches.get(vocabulary);
  if (scratch === undefined) {
    scratch = {
      stackNodes: new Int32Array(vocabulary.nodeCount),
      stackStates: new Int32Array(vocabulary.nodeCount),
      found: new Int32Array(vocabulary.size),
      marks: new Uint8Array(vocabulary.size),
    };
    scratches.set(vocabulary, scratch);
  }
  return scratch;
}

/**
 * Writes -Infinity at `ids`. Unrolled by four: measured 10.7 µs against 16 to 32 µs for the plain loop at 10,670
 * sorted ids in a 151,936-logit row.
 */
export function applyForbidList(logits: Float32Array, ids: Int32Array): void {
  const n = ids.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    logits[ids[i]!] = -Infinity;
    logits[ids[i + 1]!] = -Infinity;
    logits[ids[i + 2]!] = -Infinity;
    logits[ids[i + 3]!] = -Infinity;
  }
  for (; i < n; i++) logits[ids[i]!] = -Infinity;
}

/**
 * Keeps only the logits at `ids`: saves them in `kept` (at least `ids.length` long), fills the row with -Infinity,
 * writes them back. Unrolled by four like {@link applyForbidList}.
 */
export function applyAllowList(logits: Float32Array, ids: Int32Array, kept: Float32Array): void {
  const n = ids.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    kept[i] = logits[ids[i]!]!;
    kept[i + 1] = logits[ids[i + 1]!]!;
    kept[i + 2] = logits[ids[i + 2]!]!;
    kept[i + 3] = logits[ids[i + 3]!]!;
  }
  for (; i < n; i++) kept[i] = logits[ids[i]!]!;
  logits.fill(-Infinity);
  for (i = 0; i + 4 <= n; i += 4) {
    logits[ids[i]!] = kept[i]!;
    logits[ids[i + 1]!] = kept[i + 1]!;
    logits[ids[i + 2]!] = kept[i + 2]!;
    logits[ids[i + 3]!] = kept[i + 3]!;
  }
  for (; i < n; i++) logits[ids[i]!] = kept[i]!;
}

/**
 * Token masks of one automaton over one vocabulary: a state's mask is computed the first time it is needed, by a
 * walk of the vocabulary trie alongside the automaton (a subtree is skipped as soon as its prefix is refused), and
 * cached. EOS is allowed exactly in accepting states; in a final state (nothing may follow) it is the only token.
 */
export class TokenMaskIndex {
  private readonly masks = new Map<number, TokenMask>();
  private idCount = 0;
  private scratch = new Float32Array(256);
  /** Per DFA state: 0 not yet known, 1 loops on every plain byte, 2 does not (see {@link loopsOnPlain}). */
  private plainLoops = new Uint8Array(64);
  private readonly eos: ReadonlySet<number>;

  /**
   * @param automaton the language (its states are the mask keys)
   * @param vocabulary the tokens, as a byte trie
   */
  constructor(
    readonly automaton: ByteAutomaton,
    readonly vocabulary: TokenVocabulary,
  ) {
    this.eos = new Set(vocabulary.eosTokenIds);
  }

  /** Total length of the cached masks' id lists (4 bytes each): what the masks cost in memory. */
  get cachedIds(): number {
    return this.idCount;
  }

  /** Number of states whose mask is cached. */
  get cachedMasks(): number {
    return this.masks.size;
  }

  /** The mask of `state` (cached after the first call). */
  mask(state: number): TokenMask {
    let mask = this.masks.get(state);
    if (mask === undefined) {
      mask = this.compute(state);
      this.masks.set(state, mask);
      this.idCount += mask.ids.length;
    }
    return mask;
  }

  /** Whether the output that led to `state` is complete (EOS allowed): the automaton's `isAccepting`. */
  isAccepting(state: number): boolean {
    return this.automaton.isAccepting(state);
  }

  /** Whether `token` is allowed in `state`. */
  allows(state: number, token: number): boolean {
    if (this.eos.has(token)) return this.automaton.isAccepting(state);
    return this.advance(state, token) >= 0;
  }

  /** The state after `token` (its bytes one by one), or -1 when the token is not allowed (EOS is not a step). */
  advance(state: number, token: number): number {
    const bytes = this.vocabulary.bytes(token);
    if (bytes === undefined) return -1;
    let s = state;
    for (let i = 0; i < bytes.length && s >= 0; i++) s = this.automaton.step(s, bytes[i]!);
    return s;
  }

  /**
   * Sets every logit the mask of `state` forbids to -Infinity. Returns the number of allowed tokens (0: nothing
   * can follow, the caller must not sample).
   */
  apply(logits: Float32Array, state: number): number {
    const mask = this.mask(state);
    const ids = mask.ids;
    if (mask.mode === 'forbid') {
      applyForbidList(logits, ids);
      // A row longer than the vocabulary: the extra ids spell nothing.
      if (logits.length > this.vocabulary.size) logits.fill(-Infinity, this.vocabulary.size);
      return mask.allowed;
    }
    const n = ids.length;
    if (this.scratch.length < n) this.scratch = new Float32Array(Math.max(n, this.scratch.length * 2));
    applyAllowList(logits, ids, this.scratch);
    return n;
  }

  /** Whether `state` steps to itself on every {@link isPlainByte} (cached per state). */
  private loopsOnPlain(state: number): boolean {
    if (state >= this.plainLoops.length) {
      const grown = new Uint8Array(Math.max(state + 1, this.plainLoops.length * 2));
      grown.set(this.plainLoops);
      this.plainLoops = grown;
    }
    let known = this.plainLoops[state]!;
    if (known === 0) {
      known = 1;
      for (let b = 0x20; b <= 0x7e; b++) {
        if (isPlainByte(b) && this.automaton.step(state, b) !== state) {
          known = 2;
          break;
        }
      }
      this.plainLoops[state] = known;
    }
    return known === 1;
  }

  private compute(state: number): TokenMask {
    const { automaton, vocabulary } = this;
    const size = vocabulary.size;
    const accepting = automaton.isAccepting(state);
    let count = 0;
    const scratch = scratchFor(vocabulary);
    const found = scratch.found;
    if (accepting) for (const id of vocabulary.eosTokenIds) found[count++] = id;
    if (!automaton.isFinal(state)) {
      const { firstChild, nextSibling, byte, tokenStart, tokenIds, subtreeEnd, plainBelow } = vocabulary;
      const nodes = scratch.stackNodes;
      const states = scratch.stackStates;
      let top = 0;
      nodes[0] = 0;
      states[0] = state;
      top = 1;
      while (top > 0) {
        top--;
        const node = nodes[top]!;
        const s = states[top]!;
        for (let child = firstChild[node]!; child !== -1; child = nextSibling[child]!) {
          const next = automaton.step(s, byte[child]!);
          if (next < 0) continue;
          const last = subtreeEnd[child]!;
          if (last - child >= PLAIN_SUBTREE_MIN && plainBelow[child] === 1 && this.loopsOnPlain(next)) {
            // Every byte below leaves `next` where it is: the whole subtree is allowed.
            for (let k = tokenStart[child]!, end = tokenStart[last]!; k < end; k++) found[count++] = tokenIds[k]!;
            continue;
          }
          for (let k = tokenStart[child]!, end = tokenStart[child + 1]!; k < end; k++) found[count++] = tokenIds[k]!;
          if (firstChild[child] !== -1) {
            nodes[top] = child;
            states[top] = next;
            top++;
          }
        }
      }
    }
    if (count <= size * ALLOW_LIST_FRACTION) {
      return { mode: 'allow', ids: found.slice(0, count).sort(), allowed: count, eos: accepting };
    }
    const marks = scratch.marks;
    marks.fill(0);
    for (let i = 0; i < count; i++) marks[found[i]!] = 1;
    const forbidden = new Int32Array(size - count);
    let at = 0;
    for (let id = 0; id < size; id++) if (marks[id] === 0) forbidden[at++] = id;
    return { mode: 'forbid', ids: forbidden, allowed: count, eos: accepting };
  }
}

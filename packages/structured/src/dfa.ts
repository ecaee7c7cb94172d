import type { ByteAutomaton, Grammar } from './types.js';
import { InvalidGrammarError } from './errors.js';
import type { Nfa } from './nfa.js';
import { buildNfa } from './nfa.js';

const UNKNOWN = -2;

/** Options of {@link compileGrammar}. */
export interface CompileOptions {
  /** Most DFA states to discover before throwing {@link InvalidGrammarError} (default 65,536; 1 KiB each). */
  readonly maxStates?: number;
  /** Most NFA states (default 1,000,000). */
  readonly maxNfaStates?: number;
}

/**
 * A lazy DFA over bytes built by subset construction from a Thompson NFA: a state's 256 transitions are computed
 * the first time any of them is asked for, then `step` is one `Int32Array` read.
 */
class LazyDfa implements ByteAutomaton {
  readonly start: number;
  private table: Int32Array;
  private accepting: Uint8Array;
  private sets: Int32Array[] = [];
  private readonly ids = new Map<string, number>();
  private readonly mark: Int32Array;
  private generation = 0;
  private readonly important: Uint8Array;

  constructor(
    private readonly nfa: Nfa,
    private readonly maxStates: number,
  ) {
    const n = nfa.epsilon.length;
    this.mark = new Int32Array(n);
    this.important = new Uint8Array(n);
    for (let s = 0; s < n; s++) {
      if (nfa.live[s] === 1 && ((nfa.edges[s] as number[]).length > 0 || s === nfa.accept)) this.important[s] = 1;
    }
    this.table = new Int32Array(256 * 64).fill(UNKNOWN);
    this.accepting = new Uint8Array(64);
    this.start = this.intern(this.closure([nfa.start]));
    if (this.start < 0) throw new InvalidGrammarError('The grammar accepts no string at all (an empty language).');
  }

  get stateCount(): number {
    return this.sets.length;
  }

  step(state: number, byte: number): number {
    const t = this.table[(state << 8) | byte] as number;
    if (t >= -1) return t;
    if (state < 0 || state >= this.sets.length) return -1;
    this.fill(state);
    return this.table[(state << 8) | byte] as number;
  }

  isAccepting(state: number): boolean {
    return state >= 0 && this.accepting[state] === 1;
  }

  isFinal(state: number): boolean {
    if (!this.isAccepting(state)) return false;
    for (let b = 0; b < 256; b++) if (this.step(state, b) !== -1) return false;
    return true;
  }

  private closure(seeds: Iterable<number>): number[] {
    const gen = ++this.generation;
    const stack: number[] = [];
    const out: number[] = [];
    for (const s of seeds) {
      if (this.mark[s] !== gen && this.nfa.live[s] === 1) {
        this.mark[s] = gen;
        stack.push(s);
      }
    }
    const { epsilon, live } = this.nfa;
    while (stack.length > 0) {
      const s = stack.pop() as number;
      if (this.important[s] === 1) out.push(s);
      for (const to of epsilon[s] as number[]) {
        if (this.mark[to] !== gen && live[to] === 1) {
          this.mark[to] = gen;
          stack.push(to);
        }
      }
    }
    return out.sort((a, b) => a - b);
  }

  private intern(set: number[]): number {
    if (set.length === 0) return -1;
    const key = set.join(',');
    const known = this.ids.get(key);
    if (known !== undefined) return known;
    const id = this.sets.length;
    if (id >= this.maxStates) {
      throw new InvalidGrammarError(
        `The automaton needs more than ${this.maxStates} states; simplify the grammar (fewer alternatives, smaller bounds such as maxItems, maxLength or nesting depth).`,
      );
    }
    if ((id + 1) * 256 > this.table.length) {
      const table = new Int32Array(this.table.length * 2).fill(UNKNOWN);
      table.set(this.table);
      this.table = table;
      const accepting = new Uint8Array(this.accepting.length * 2);
      accepting.set(this.accepting);
      this.accepting = accepting;
    }
    this.sets.push(Int32Array.from(set));
    this.ids.set(key, id);
    if (set.includes(this.nfa.accept)) this.accepting[id] = 1;
    return id;
  }

  private fill(state: number): void {
    const set = this.sets[state] as Int32Array;
    const edges: number[] = [];
    const cuts = new Set<number>([0, 256]);
    for (const s of set) {
      const list = this.nfa.edges[s] as number[];
      for (let i = 0; i < list.length; i += 3) {
        edges.push(list[i] as number, list[i + 1] as number, list[i + 2] as number);
        cuts.add(list[i] as number);
        cuts.add((list[i + 1] as number) + 1);
      }
    }
    const points = [...cuts].sort((a, b) => a - b);
    const base = state << 8;
    for (let p = 0; p + 1 < points.length; p++) {
      const lo = points[p] as number;
      const hi = (points[p + 1] as number) - 1;
      const targets: number[] = [];
      for (let i = 0; i < edges.length; i += 3) {
        if ((edges[i] as number) <= lo && (edges[i + 1] as number) >= hi) targets.push(edges[i + 2] as number);
      }
      const next = targets.length === 0 ? -1 : this.intern(this.closure(targets));
      this.table.fill(next, base + lo, base + hi + 1);
    }
  }
}

const CACHE_SIZE = 64;
const cache = new Map<string, ByteAutomaton>();

/**
 * Compiles a grammar to a lazy byte DFA (Thompson NFA, dead states pruned, subset construction on demand).
 * Results are cached by `grammar.key` (and the limits) in a bounded LRU of 64 entries.
 *
 * @throws InvalidGrammarError when the language is empty or a size limit is exceeded.
 */
export function compileGrammar(grammar: Grammar, options: CompileOptions = {}): ByteAutomaton {
  const maxStates = options.maxStates ?? 65_536;
  const maxNfa = options.maxNfaStates ?? 1_000_000;
  const key = `${maxStates}/${maxNfa}/${grammar.key}`;
  const hit = cache.get(key);
  if (hit !== undefined) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const automaton = new LazyDfa(buildNfa(grammar.node, maxNfa), maxStates);
  cache.set(key, automaton);
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  return automaton;
}

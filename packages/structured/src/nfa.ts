import type { LanguageNode, ObjectNode } from './ast.js';
import { alt, charClass, EMPTY, repeat, seq } from './ast.js';
import { InvalidGrammarError } from './errors.js';
import { complementRanges, utf8Sequences, type ByteRangeSequence } from './utf8.js';

/**
 * A byte-level NFA with epsilon moves, built by Thompson's construction from a {@link LanguageNode}. States that
 * cannot reach the accepting state are marked dead (`live[s] === 0`) so that the DFA never enters a dead end.
 */
export interface Nfa {
  readonly start: number;
  readonly accept: number;
  /** Epsilon successors of each state. */
  readonly epsilon: number[][];
  /** Byte edges of each state, flattened as `lo, hi, to` triples. */
  readonly edges: number[][];
  /** 1 where a state can reach `accept`. */
  readonly live: Uint8Array;
}

interface Fragment {
  start: number;
  end: number;
}

class NfaBuilder {
  readonly epsilon: number[][] = [];
  readonly edges: number[][] = [];

  constructor(private readonly maxStates: number) {}

  state(): number {
    if (this.epsilon.length >= this.maxStates) {
      throw new InvalidGrammarError(
        `The grammar needs more than ${this.maxStates} automaton states; reduce bounds such as maxItems, maxLength or nesting depth.`,
      );
    }
    this.epsilon.push([]);
    this.edges.push([]);
    return this.epsilon.length - 1;
  }

  link(from: number, to: number): void {
    (this.epsilon[from] as number[]).push(to);
  }

  byteEdge(from: number, lo: number, hi: number, to: number): void {
    (this.edges[from] as number[]).push(lo, hi, to);
  }

  build(node: LanguageNode): Fragment {
    switch (node.kind) {
      case 'never': {
        return { start: this.state(), end: this.state() };
      }
      case 'empty': {
        const s = this.state();
        return { start: s, end: s };
      }
      case 'bytes': {
        const start = this.state();
        let current = start;
        for (const byte of node.bytes) {
          const next = this.state();
          this.byteEdge(current, byte, byte, next);
          current = next;
        }
        return { start, end: current };
      }
      case 'class': {
        const start = this.state();
        const end = this.state();
        const sequences: ByteRangeSequence[] = [];
        for (const [lo, hi] of node.ranges) utf8Sequences(lo, hi, sequences);
        for (const sequence of sequences) {
          let current = start;
          sequence.forEach(([lo, hi], index) => {
            const next = index === sequence.length - 1 ? end : this.state();
            this.byteEdge(current, lo, hi, next);
            current = next;
          });
        }
        return { start, end };
      }
      case 'seq': {
        const first = this.build(node.items[0] as LanguageNode);
        let end = first.end;
        for (let i = 1; i < node.items.length; i++) {
          const next = this.build(node.items[i] as LanguageNode);
          this.link(end, next.start);
          end = next.end;
        }
        return { start: first.start, end };
      }
      case 'alt': {
        const start = this.state();
        const end = this.state();
        for (const item of node.items) {
          const branch = this.build(item);
          this.link(start, branch.start);
          this.link(branch.end, end);
        }
        return { start, end };
      }
      case 'repeat':
        return this.buildRepeat(node.item, node.min, node.max);
      case 'list': {
        if (node.max === Infinity && node.min <= 1) {
          // One copy of the item: start -> item -> end, item -> separator -> item.
          const start = this.state();
          const end = this.state();
          const item = this.build(node.item);
          const separator = this.build(node.separator);
          this.link(start, item.start);
          if (node.min === 0) this.link(start, end);
          this.link(item.end, end);
          this.link(item.end, separator.start);
          this.link(separator.end, item.start);
          return { start, end };
        }
        if (node.max === Infinity && node.min <= 1) {
          // One shared copy of the item: item (separator item)*, the separator looping back.
          const start = this.state();
          const end = this.state();
          const item = this.build(node.item);
          const separator = this.build(node.separator);
          this.link(start, item.start);
          if (node.min === 0) this.link(start, end);
          this.link(item.end, end);
          this.link(item.end, separator.start);
          this.link(separator.end, item.start);
          return { start, end };
        }
        // item (separator item){min-1, max-1}, or nothing when min is 0.
        const tail = repeat(seq(node.separator, node.item), Math.max(node.min - 1, 0), node.max - 1);
        const body = seq(node.item, tail);
        return this.build(node.min === 0 ? alt(EMPTY, body) : body);
      }
      case 'object':
        return this.buildObject(node);
      case 'key-except':
        return this.buildKeyExcept(node.names);
    }
  }

  private buildRepeat(item: LanguageNode, min: number, max: number): Fragment {
    if (item.kind === 'class' && item.ranges.every(([, hi]) => hi < 0x80)) {
      // Single-byte items: a chain of states with direct byte edges, and a self-loop when unbounded.
      const chain = [this.state()];
      const steps = max === Infinity ? min : max;
      for (let i = 0; i < steps; i++) {
        const next = this.state();
        for (const [lo, hi] of item.ranges) this.byteEdge(chain[i] as number, lo, hi, next);
        chain.push(next);
      }
      const end = this.state();
      if (max === Infinity) {
        const last = chain[min] as number;
        for (const [lo, hi] of item.ranges) this.byteEdge(last, lo, hi, last);
        this.link(last, end);
      } else {
        for (let i = min; i <= max; i++) this.link(chain[i] as number, end);
      }
      return { start: chain[0] as number, end };
    }
    const start = this.state();
    let current = start;
    for (let i = 0; i < min; i++) {
      const copy = this.build(item);
      this.link(current, copy.start);
      current = copy.end;
    }
    if (max === Infinity) {
      const loop = this.state();
      this.link(current, loop);
      const copy = this.build(item);
      this.link(loop, copy.start);
      this.link(copy.end, loop);
      return { start, end: loop };
    }
    const end = this.state();
    this.link(current, end);
    for (let i = min; i < max; i++) {
      const copy = this.build(item);
      this.link(current, copy.start);
      this.link(copy.end, end);
      current = copy.end;
    }
    return { start, end };
  }

  private buildObject(node: ObjectNode): Fragment {
    const open = this.build(node.open);
    // first[i]: before slot i with nothing written yet; after[i]: before slot i with at least one pair written.
    let first = open.end;
    let after = this.state();
    for (const property of node.properties) {
      const pair = this.build(seq(property.key, node.colon, property.value));
      const comma = this.build(node.comma);
      this.link(first, pair.start);
      this.link(after, comma.start);
      this.link(comma.end, pair.start);
      const nextFirst = this.state();
      const nextAfter = this.state();
      this.link(pair.end, nextAfter);
      if (!property.required) {
        this.link(first, nextFirst);
        this.link(after, nextAfter);
      }
      first = nextFirst;
      after = nextAfter;
    }
    if (node.extra !== null) {
      const pair = this.build(seq(node.extra.key, node.colon, node.extra.value));
      const comma = this.build(node.comma);
      this.link(first, pair.start);
      this.link(after, comma.start);
      this.link(comma.end, pair.start);
      this.link(pair.end, after);
    }
    const close = this.build(node.close);
    this.link(first, close.start);
    this.link(after, close.start);
    return { start: open.start, end: close.end };
  }

  /**
   * `"` + unescaped characters + `"`, never spelling one of `names` (so an extra key never repeats a declared one):
   * a trie over the names' code points; a character off the trie falls to `free`, from where any content follows.
   */
  private buildKeyExcept(names: readonly string[]): Fragment {
    const quote = 0x22;
    const start = this.state();
    const end = this.state();
    const free = this.state();
    const content = this.build(stringCharClass([]));
    this.link(free, content.start);
    this.link(content.end, free);
    this.byteEdge(free, quote, quote, end);
    interface Trie {
      state: number;
      children: Map<number, Trie>;
      terminal: boolean;
    }
    const root: Trie = { state: this.state(), children: new Map(), terminal: false };
    for (const name of names) {
      let node = root;
      for (const ch of name) {
        const cp = ch.codePointAt(0) as number;
        let child = node.children.get(cp);
        if (child === undefined)
          node.children.set(cp, (child = { state: this.state(), children: new Map(), terminal: false }));
        node = child;
      }
      node.terminal = true;
    }
    this.byteEdge(start, quote, quote, root.state);
    const visit = (node: Trie): void => {
      if (!node.terminal) this.byteEdge(node.state, quote, quote, end);
      const taken = [...node.children.keys()].map((cp) => [cp, cp] as const);
      const leave = this.build(stringCharClass(taken));
      this.link(node.state, leave.start);
      this.link(leave.end, free);
      for (const [cp, child] of node.children) {
        const step = this.build(charClass([[cp, cp]]));
        this.link(node.state, step.start);
        this.link(step.end, child.state);
        visit(child);
      }
    };
    visit(root);
    return { start, end };
  }
}

/** Characters allowed raw in a JSON string (no quote, backslash or control), minus `except`. */
function stringCharClass(except: ReadonlyArray<readonly [number, number]>): LanguageNode {
  const allowed = complementRanges([[0, 0x1f], [0x22, 0x22], [0x5c, 0x5c], ...except]);
  return charClass(allowed);
}

/** Compiles a language tree to an NFA with dead states marked. */
export function buildNfa(node: LanguageNode, maxStates = 1_000_000): Nfa {
  const builder = new NfaBuilder(maxStates);
  const fragment = builder.build(node);
  const count = builder.epsilon.length;
  const reverse: number[][] = Array.from({ length: count }, () => []);
  for (let s = 0; s < count; s++) {
    for (const to of builder.epsilon[s] as number[]) (reverse[to] as number[]).push(s);
    const edges = builder.edges[s] as number[];
    for (let i = 2; i < edges.length; i += 3) (reverse[edges[i] as number] as number[]).push(s);
  }
  const live = new Uint8Array(count);
  const stack = [fragment.end];
  live[fragment.end] = 1;
  while (stack.length > 0) {
    const s = stack.pop() as number;
    for (const from of reverse[s] as number[]) {
      if (live[from] === 0) {
        live[from] = 1;
        stack.push(from);
      }
    }
  }
  if (live[fragment.start] === 0) {
    throw new InvalidGrammarError('The grammar accepts no string at all (an empty language).');
  }
  return { start: fragment.start, accept: fragment.end, epsilon: builder.epsilon, edges: builder.edges, live };
}

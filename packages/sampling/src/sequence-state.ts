import type { SequenceProcessor } from './logits-processor.js';
import { applyNoRepeatNgram } from './processors.js';

/**
 * Per-choice history the processors need: the tokens so far (prompt + generated), the distinct tokens (repetition
 * penalty), counts of generated tokens (frequency / presence penalties), kept up to date incrementally.
 */
export class SequenceState {
  /** Index of this choice within its request (n / best_of), keys the random stream. */
  readonly choice: number;
  /** Number of prompt tokens at the start of {@link tokens}. */
  readonly promptLength: number;
  private buffer: Int32Array;
  private size: number;
  private readonly distinct = new Set<number>();
  private readonly counts = new Map<number, number>();
  private attached: SequenceProcessor[] = [];
  private owner: object | undefined = undefined;

  /**
   * @param promptTokens the prompt's token ids
   * @param choice index of the choice within its request (default 0)
   */
  constructor(promptTokens: ArrayLike<number> = [], choice = 0) {
    this.choice = choice;
    this.promptLength = promptTokens.length;
    this.buffer = new Int32Array(Math.max(16, promptTokens.length * 2));
    this.size = 0;
    for (let i = 0; i < promptTokens.length; i++) this.push(promptTokens[i]!);
  }

  /** Number of tokens (prompt + generated). */
  get length(): number {
    return this.size;
  }

  /** Number of generated tokens (the step index of the next draw). */
  get generatedCount(): number {
    return this.size - this.promptLength;
  }

  /** The last token, or -1 when empty. */
  get lastToken(): number {
    return this.size > 0 ? this.buffer[this.size - 1]! : -1;
  }

  /** All tokens so far (a view: valid until the next {@link accept}). */
  get tokens(): Int32Array {
    return this.buffer.subarray(0, this.size);
  }

  /** Appends a generated token, and tells the attached processors (see {@link processors}). */
  accept(token: number): void {
    this.push(token);
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
    for (const processor of this.attached) processor.accept?.(token);
  }

  /**
   * The per-sequence states of the sampler's logits processors, in application order: the built-ins the parameters
   * turn on (penalties, bias, masks), then those of `SamplerOptions.processors`.
   */
  get processors(): readonly SequenceProcessor[] {
    return this.attached;
  }

  /**
   * The sampler that attached {@link processors} (`createSequence`, or `sample` on a sequence it did not attach
   * yet); undefined for a sequence made with `new SequenceState` or whose processors were attached by hand.
   */
  get attachedBy(): object | undefined {
    return this.owner;
  }

  /**
   * Attaches per-sequence processor states, replacing any attached before; they follow forks. The sampler does this
   * in `createSequence`, and in `sample` for a sequence it did not attach (see {@link attachedBy}).
   *
   * @param owner the sampler attaching them (leave out when attaching by hand)
   */
  attachProcessors(processors: readonly SequenceProcessor[], owner?: object): void {
    this.attached = [...processors];
    this.owner = owner;
  }

  /** Distinct tokens of prompt + generated. */
  distinctTokens(): Iterable<number> {
    return this.distinct;
  }

  /** Generated token -> count. */
  generatedCounts(): Iterable<[number, number]> {
    return this.counts;
  }

  /** A copy of this state for another choice of the same request (n / best_of forks after the prompt). */
  fork(choice: number): SequenceState {
    const copy = new SequenceState(this.tokens.subarray(0, this.promptLength), choice);
    for (let i = this.promptLength; i < this.size; i++) {
      const token = this.buffer[i]!;
      copy.push(token);
      copy.counts.set(token, (copy.counts.get(token) ?? 0) + 1);
    }
    copy.attached = this.attached.map((processor) => (processor.fork === undefined ? processor : processor.fork()));
    copy.owner = this.owner;
    return copy;
  }

  /**
   * Sets to -Infinity every token x such that (last n-1 tokens, x) already occurred (no_repeat_ngram_size).
   */
  banRepeatedNgrams(logits: Float32Array, n: number): void {
    applyNoRepeatNgram(logits, this.tokens, n);
  }

  private push(token: number): void {
    if (this.size === this.buffer.length) {
      const grown = new Int32Array(this.buffer.length * 2);
      grown.set(this.buffer);
      this.buffer = grown;
    }
    this.buffer[this.size++] = token;
    this.distinct.add(token);
  }
}

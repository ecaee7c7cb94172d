import { InvalidParameterError, SamplingError } from './errors.js';

/** A completed stop sequence, as reported by {@link StopSequenceMatcher.push}. */
export interface StopSequenceMatch {
  /** The stop sequence that completed (one of the constructor's strings). */
  readonly sequence: string;
  /** Offset (UTF-16 code units) of the stop's first character in the whole text pushed so far. */
  readonly index: number;
}

/** Result of one {@link StopSequenceMatcher.push}. */
export interface StopSequencePushResult {
  /**
   * Text that is now safe to emit: it can no longer become part of a stop sequence. When `stop` is set, this is
   * everything up to the stop's start that had not been emitted yet (never any of the stop itself).
   */
  readonly text: string;
  /** The stop sequence that completed during this push, or `null`. */
  readonly stop: StopSequenceMatch | null;
}

/**
 * Knuth-Morris-Pratt failure function of `pattern`: `failure[k]` is the length of the longest proper border
 * (prefix that is also a suffix) of `pattern.slice(0, k + 1)`.
 */
function failureFunction(pattern: string): Int32Array {
  const failure = new Int32Array(pattern.length);
  let border = 0;
  for (let k = 1; k < pattern.length; k++) {
    const code = pattern.charCodeAt(k);
    while (border > 0 && pattern.charCodeAt(border) !== code) border = failure[border - 1]!;
    if (pattern.charCodeAt(border) === code) border++;
    failure[k] = border;
  }
  return failure;
}

/**
 * Incremental stop-sequence matcher over streamed decoded text (UTF-16 code units; a stop may span pushes at any
 * code-unit boundary, even inside a surrogate pair).
 *
 * Semantics, with `S` the concatenation of everything pushed so far:
 * - the first stop to complete is the one with the smallest end offset in `S`; among stops ending at the same
 *   offset the longest (earliest start) wins;
 * - until a stop completes, every push emits `S` minus the text already emitted minus the held-back tail, which is
 *   the longest suffix of `S` that is a proper prefix of some stop (so at most `max(stop length) - 1` code units);
 * - when a stop completes, the push emits the rest of `S` before the stop's start, reports
 *   `{ sequence, index }` and the matcher is finished: any further {@link StopSequenceMatcher.push} throws a
 *   {@link SamplingError}. Text after the stop (in the same push) is discarded.
 * - {@link StopSequenceMatcher.flush} ends the stream without a stop and returns the held-back tail.
 *
 * TGI keeps the stop in `generated_text` (append `stop.sequence` to the emitted text); OpenAI excludes it (emit
 * `text` only).
 *
 * Cost: each pushed code unit advances one Knuth-Morris-Pratt automaton per stop (amortised `O(number of stops)`),
 * memory is the held-back tail; nothing already emitted is rescanned. With no stops every push emits its delta.
 */
export class StopSequenceMatcher {
  /** The stop sequences, in constructor order. */
  readonly stops: readonly string[];
  private readonly failures: Int32Array[];
  /** Per stop: length of the longest suffix of the text so far that is a prefix of the stop. */
  private readonly states: Int32Array;
  /** Text not emitted yet (a proper prefix of some stop, possibly empty). */
  private held = '';
  /** Number of code units before `held` (emitted or, after a stop, consumed). */
  private consumed = 0;
  private done = false;
  private matched: StopSequenceMatch | null = null;

  /**
   * @param stops - stop sequences; duplicates are allowed, empty strings are not.
   * @throws InvalidParameterError (`stop`) when a stop is empty or not a string.
   */
  constructor(stops: readonly string[]) {
    for (const stop of stops) {
      if (typeof stop !== 'string' || stop.length === 0) {
        throw new InvalidParameterError({
          parameter: 'stop',
          value: stop,
          allowed: 'a list of non-empty strings',
        });
      }
    }
    this.stops = [...stops];
    this.failures = this.stops.map(failureFunction);
    this.states = new Int32Array(this.stops.length);
  }

  /** The held-back text: pushed but not emitted because it may still start a stop sequence. */
  get pending(): string {
    return this.held;
  }

  /** Length (code units) of {@link StopSequenceMatcher.pending}. */
  get heldBack(): number {
    return this.held.length;
  }

  /** True once a stop sequence completed or {@link StopSequenceMatcher.flush} was called. */
  get finished(): boolean {
    return this.done;
  }

  /** The stop sequence that ended the stream, or `null`. */
  get stop(): StopSequenceMatch | null {
    return this.matched;
  }

  /**
   * Feeds the next decoded text delta.
   *
   * @returns the text now safe to emit and, if a stop completed in `delta`, the stop (see the class comment).
   * @throws SamplingError when the matcher is already finished.
   */
  push(delta: string): StopSequencePushResult {
    if (this.done) {
      throw new SamplingError(
        this.matched === null
          ? 'StopSequenceMatcher.push called after flush()'
          : `StopSequenceMatcher.push called after the stop sequence ${JSON.stringify(this.matched.sequence)} completed`,
      );
    }
    const stops = this.stops;
    const states = this.states;
    const stopCount = stops.length;
    if (stopCount === 0) {
      this.consumed += delta.length;
      return { text: delta, stop: null };
    }
    for (let position = 0; position < delta.length; position++) {
      const code = delta.charCodeAt(position);
      let winner = -1;
      for (let s = 0; s < stopCount; s++) {
        const stop = stops[s]!;
        const failure = this.failures[s]!;
        let state = states[s]!;
        while (state > 0 && stop.charCodeAt(state) !== code) state = failure[state - 1]!;
        if (stop.charCodeAt(state) === code) state++;
        if (state === stop.length) {
          if (winner < 0 || stop.length > stops[winner]!.length) winner = s;
          state = failure[state - 1]!;
        }
        states[s] = state;
      }
      if (winner >= 0) return this.finishWithStop(winner, delta, position);
    }
    let hold = 0;
    for (let s = 0; s < stopCount; s++) hold = Math.max(hold, states[s]!);
    const text = this.held + delta;
    const emitLength = text.length - hold;
    this.held = text.slice(emitLength);
    this.consumed += emitLength;
    return { text: text.slice(0, emitLength), stop: null };
  }

  /**
   * Ends the stream without a stop sequence: returns the held-back text (empty if nothing is held back or a stop
   * already completed) and finishes the matcher. Calling it again returns `''`.
   */
  flush(): string {
    const text = this.held;
    this.consumed += text.length;
    this.held = '';
    this.done = true;
    return text;
  }

  private finishWithStop(winner: number, delta: string, position: number): StopSequencePushResult {
    const sequence = this.stops[winner]!;
    // The stop ends after delta[position]; its start lies in `held` or `delta` since every state <= held.length.
    const localEnd = this.held.length + position + 1;
    const localStart = localEnd - sequence.length;
    const text = (this.held + delta.slice(0, position + 1)).slice(0, localStart);
    const stop: StopSequenceMatch = { sequence, index: this.consumed + localStart };
    this.consumed += localStart;
    this.held = '';
    this.done = true;
    this.matched = stop;
    return { text, stop };
  }
}

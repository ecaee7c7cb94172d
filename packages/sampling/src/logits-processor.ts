import type { SequenceState } from './sequence-state.js';

/**
 * The per-sequence half of a {@link LogitsProcessor}: what one choice of one request needs to carry from step to
 * step (an automaton state, a counter), created by {@link LogitsProcessor.createState} when the sequence is created.
 *
 * The sampler calls {@link apply} once per step, before truncation and selection; the sequence calls {@link accept}
 * when a token is kept ({@link SequenceState.accept}), so `apply` and `accept` alternate.
 */
export interface SequenceProcessor {
  /**
   * Modifies the row of logits for this sequence's next token, in place (set a logit to `-Infinity` to forbid its
   * token). Must not allocate vocabulary-sized memory per call.
   */
  apply(logits: Float32Array, sequence: SequenceState): void;
  /** The sequence kept `token`: advance any state. Optional for processors that read only the sequence's history. */
  accept?(token: number): void;
  /**
   * An independent copy for another choice that shares the history so far (n / best_of fork after the prompt).
   * Processors without own state may return `this`; when left out, `this` is shared.
   */
  fork?(): SequenceProcessor;
}

/**
 * One entry of the sampler's processing pipeline, in the spirit of vLLM's v1 logits processors: built once per
 * request, with per-sequence state, applied to one row of logits at a time.
 *
 * The built-in processors (watermark, repetition / frequency / presence penalties, logit bias, no-repeat-ngram,
 * min-new-tokens, suppressed and allowed tokens) are entries of this interface; constrained decoding
 * (`@gen/structured`) plugs in as another one, passed through `SamplerOptions.processors`.
 */
export interface LogitsProcessor {
  /** A short name for errors and metrics, for example `repetition_penalty` or `json_schema`. */
  readonly name: string;
  /**
   * Whether applying this processor can change which token has the largest logit. `false` for monotone
   * transformations (temperature, min-p); `true` for penalties, biases and masks. Lets greedy decoding skip
   * processors that cannot change its choice (vLLM's `is_argmax_invariant`, negated).
   */
  readonly changesArgmax: boolean;
  /** The state for one sequence, created with the sequence (prompt already in `sequence`, nothing generated). */
  createState(sequence: SequenceState): SequenceProcessor;
}

/** A processor whose only state is the sequence's history: one shared {@link SequenceProcessor} for all sequences. */
export function statelessProcessor(
  name: string,
  changesArgmax: boolean,
  apply: (logits: Float32Array, sequence: SequenceState) => void,
): LogitsProcessor {
  const state: SequenceProcessor = { apply };
  return { name, changesArgmax, createState: () => state };
}

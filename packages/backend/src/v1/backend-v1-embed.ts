/**
 * How `BackendV1.doEmbed` reduces the final hidden states of an input (`[tokens, hiddenSize]`, after the model's
 * final norm, before `lm_head`) to one vector:
 *
 * - `mean`: the average over every position, `e[d] = (1 / n) Σ_t h[t][d]`;
 * - `last`: the state at the last position, `e = h[n - 1]` (the only one that has attended to the whole input in
 *   a causal model).
 *
 * For a single-token input both are the same vector.
 */
export type BackendEmbeddingPoolingV1 = 'mean' | 'last';

/** Arguments of `BackendV1.doEmbed`. */
export interface BackendEmbedOptionsV1 {
  /**
   * The inputs: at least one and at most `capabilities.maxBatchSize`, each a whole token list (it starts at
   * position 0) of at least one and at most `model.maxPositions` ids, each an integer in `[0, model.vocabSize)`.
   * An error about one input names it by its index as a string (`sequenceId` `'0'`, `'1'`, ...).
   */
  readonly tokens: readonly (Int32Array | readonly number[])[];
  /** How each input's hidden states become one vector; see {@link BackendEmbeddingPoolingV1}. */
  readonly pooling: BackendEmbeddingPoolingV1;
  /**
   * Aborting rejects the call with `AbortError` (as soon as the backend notices: before it starts, and at least
   * between layers). Nothing is kept either way.
   */
  readonly signal?: AbortSignal;
}

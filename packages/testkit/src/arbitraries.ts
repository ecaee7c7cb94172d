import type { BackendSequenceInputV1 } from '@gen/backend';
import fc from 'fast-check';

/** A token id in `[0, vocabSize)`. */
export function tokenIdArbitrary(vocabSize: number): fc.Arbitrary<number> {
  return fc.integer({ min: 0, max: vocabSize - 1 });
}

/** A token sequence of `minLength` (default 1) to `maxLength` (default 32) ids in `[0, vocabSize)`. */
export function tokenSequenceArbitrary(options: {
  vocabSize: number;
  minLength?: number;
  maxLength?: number;
}): fc.Arbitrary<number[]> {
  return fc.array(tokenIdArbitrary(options.vocabSize), {
    minLength: options.minLength ?? 1,
    maxLength: options.maxLength ?? 32,
  });
}

/**
 * One `doForward` batch of new sequences: 1 to `maxBatchSize` (default 8) inputs with unique ids (`s0`, `s1`...),
 * token sequences of 1 to `maxLength` (default 16) ids, and `wantPromptLogits` set at random.
 */
export function forwardBatchArbitrary(options: {
  vocabSize: number;
  maxBatchSize?: number;
  maxLength?: number;
}): fc.Arbitrary<BackendSequenceInputV1[]> {
  return fc
    .array(
      fc.record({
        tokens: tokenSequenceArbitrary({ vocabSize: options.vocabSize, maxLength: options.maxLength ?? 16 }),
        wantPromptLogits: fc.boolean(),
      }),
      { minLength: 1, maxLength: options.maxBatchSize ?? 8 },
    )
    .map((entries) => entries.map((entry, i) => ({ id: `s${i}`, ...entry })));
}

/** A generation request as engine tests need it: a prompt and how many tokens to generate. */
export interface GenerationRequestSample {
  /** Unique within a batch (`r0`, `r1`...). */
  readonly id: string;
  /** Prompt token ids. */
  readonly prompt: number[];
  /** Tokens to generate, 1 to `maxNewTokens`. */
  readonly maxNewTokens: number;
  /** Arrival step, 0 to `maxArrivalStep` (for continuous-batching schedules). */
  readonly arrivalStep: number;
}

/**
 * A batch of 1 to `maxRequests` (default 8) generation requests with prompts of 1 to `maxPromptLength` (default
 * 24) tokens, 1 to `maxNewTokens` (default 16) new tokens and arrival steps 0 to `maxArrivalStep` (default 8).
 */
export function generationRequestsArbitrary(options: {
  vocabSize: number;
  maxRequests?: number;
  maxPromptLength?: number;
  maxNewTokens?: number;
  maxArrivalStep?: number;
}): fc.Arbitrary<GenerationRequestSample[]> {
  return fc
    .array(
      fc.record({
        prompt: tokenSequenceArbitrary({ vocabSize: options.vocabSize, maxLength: options.maxPromptLength ?? 24 }),
        maxNewTokens: fc.integer({ min: 1, max: options.maxNewTokens ?? 16 }),
        arrivalStep: fc.integer({ min: 0, max: options.maxArrivalStep ?? 8 }),
      }),
      { minLength: 1, maxLength: options.maxRequests ?? 8 },
    )
    .map((entries) => entries.map((entry, i) => ({ id: `r${i}`, ...entry })));
}

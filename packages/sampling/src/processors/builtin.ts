/**
 * The built-in logits processors of the fused sampler, as {@link LogitsProcessor} entries: watermark, repetition /
 * frequency / presence penalties, logit bias, no-repeat-ngram, min-new-tokens (EOS suppression), suppressed and
 * allowed tokens. Their only state is the sequence's history, so each is a {@link statelessProcessor}; all of them
 * can change the argmax.
 *
 * Each writes the few ids it touches in place (the allowed-tokens mask is the one full-row pass) and allocates no
 * vocabulary-sized memory per call. The dense reference versions are in `../processors.ts`.
 */
import { statelessProcessor, type LogitsProcessor, type SequenceProcessor } from '../logits-processor.js';
import type { NormalizedSamplingParameters } from '../parameters.js';
import { applyWatermark, type GreenlistCache } from '../watermark.js';

/** The `apply` functions of the built-ins: a built-in's per-sequence state is `{ apply }` with one of them. */
const builtinApplies = new WeakSet<SequenceProcessor['apply']>();

function builtin(name: string, apply: SequenceProcessor['apply']): LogitsProcessor {
  builtinApplies.add(apply);
  return statelessProcessor(name, true, apply);
}

/** Whether a sequence's processor state belongs to a built-in processor (of any sampler). */
export function isBuiltinState(state: SequenceProcessor): boolean {
  return builtinApplies.has(state.apply);
}

/** TGI's watermark: adds `delta` to the greenlist of the last token (from the second token on). */
export function watermarkProcessor(greenlists: GreenlistCache, delta: number): LogitsProcessor {
  return builtin('watermark', (logits, sequence) => {
    if (sequence.length > 0) applyWatermark(logits, sequence.lastToken, greenlists, delta);
  });
}

/** transformers' repetition penalty over the distinct tokens of prompt + generated. */
export function repetitionPenaltyProcessor(penalty: number): LogitsProcessor {
  return builtin('repetition_penalty', (logits, sequence) => {
    for (const token of sequence.distinctTokens()) {
      if (token >= logits.length) continue;
      const s = logits[token]!;
      logits[token] = s < 0 ? s * penalty : s / penalty;
    }
  });
}

/** OpenAI's frequency and presence penalties over the generated tokens. */
export function frequencyPresencePenaltyProcessor(frequency: number, presence: number): LogitsProcessor {
  return builtin('frequency_presence_penalty', (logits, sequence) => {
    for (const [token, count] of sequence.generatedCounts()) {
      if (token < logits.length) logits[token] = logits[token]! - (count * frequency + presence);
    }
  });
}

/** Adds a bias to the logits of some ids (validated: in the vocabulary). */
export function logitBiasProcessor(bias: ReadonlyMap<number, number>): LogitsProcessor {
  return builtin('logit_bias', (logits) => {
    for (const [token, value] of bias) logits[token] = logits[token]! + value;
  });
}

/** Forbids every token that would repeat an n-gram of the sequence (no_repeat_ngram_size). */
export function noRepeatNgramProcessor(n: number): LogitsProcessor {
  return builtin('no_repeat_ngram', (logits, sequence) => sequence.banRepeatedNgrams(logits, n));
}

/** Forbids the end-of-sequence ids while fewer than `minNewTokens` tokens were generated. */
export function minNewTokensProcessor(minNewTokens: number, eosTokenIds: readonly number[]): LogitsProcessor {
  return builtin('min_new_tokens', (logits, sequence) => {
    if (sequence.generatedCount < minNewTokens) {
      for (const id of eosTokenIds) if (id >= 0 && id < logits.length) logits[id] = -Infinity;
    }
  });
}

/** Forbids the given ids (validated: in the vocabulary). */
export function suppressTokensProcessor(ids: readonly number[]): LogitsProcessor {
  return builtin('suppress_tokens', (logits) => {
    for (const id of ids) logits[id] = -Infinity;
  });
}

/** Forbids every id not in `ids` (validated: in the vocabulary), by a mask built once. */
export function allowedTokensProcessor(ids: readonly number[], vocabSize: number): LogitsProcessor {
  const allowed = new Uint8Array(vocabSize);
  for (const id of ids) allowed[id] = 1;
  return builtin('allowed_tokens', (logits) => {
    for (let i = 0; i < logits.length; i++) if (allowed[i] === 0) logits[i] = -Infinity;
  });
}

/** What the built-ins need besides the request's parameters. */
export interface BuiltinProcessorOptions {
  vocabSize: number;
  /** End-of-sequence ids, suppressed while fewer than `minNewTokens` tokens were generated. */
  eosTokenIds: readonly number[];
  /** The greenlist cache of the watermark's gamma; needed when `parameters.watermark` is set. */
  greenlists: GreenlistCache | undefined;
}

/**
 * The built-in processors the parameters turn on (those at their neutral value are left out), in TGI's order:
 * watermark, repetition penalty, frequency / presence penalties, logit bias, no-repeat-ngram, min-new-tokens,
 * suppressed tokens, allowed tokens.
 */
export function builtinProcessors(
  parameters: NormalizedSamplingParameters,
  options: BuiltinProcessorOptions,
): LogitsProcessor[] {
  const p = parameters;
  const processors: LogitsProcessor[] = [];
  if (p.watermark !== undefined && options.greenlists !== undefined) {
    processors.push(watermarkProcessor(options.greenlists, p.watermark.delta));
  }
  if (p.repetitionPenalty !== 1) processors.push(repetitionPenaltyProcessor(p.repetitionPenalty));
  if (p.frequencyPenalty !== 0 || p.presencePenalty !== 0) {
    processors.push(frequencyPresencePenaltyProcessor(p.frequencyPenalty, p.presencePenalty));
  }
  if (p.logitBias.size > 0) processors.push(logitBiasProcessor(p.logitBias));
  if (p.noRepeatNgramSize > 0) processors.push(noRepeatNgramProcessor(p.noRepeatNgramSize));
  if (p.minNewTokens > 0 && options.eosTokenIds.length > 0) {
    processors.push(minNewTokensProcessor(p.minNewTokens, options.eosTokenIds));
  }
  if (p.suppressTokens.length > 0) processors.push(suppressTokensProcessor(p.suppressTokens));
  if (p.allowedTokens !== undefined) processors.push(allowedTokensProcessor(p.allowedTokens, options.vocabSize));
  return processors;
}

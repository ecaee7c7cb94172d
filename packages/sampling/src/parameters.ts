/**
 * Sampling parameters (TGI `parameters` plus the OpenAI and llama.cpp extras), their validation with TGI's
 * ranges and messages, and the normalized form the sampler runs on.
 */
import { InvalidParameterError, describeValue } from './errors.js';
import { MAX_SEED } from './rng.js';

/** A truncation or scaling stage whose position in the chain can be chosen (llama.cpp's `samplers`). */
export type WarperStage = 'temperature' | 'top_k' | 'top_p' | 'min_p' | 'typical_p';

/** TGI's order (temperature, top_k, top_p, typical_p), with min_p placed as transformers does (after top_p). */
export const DEFAULT_WARPER_ORDER: readonly WarperStage[] = ['temperature', 'top_k', 'top_p', 'min_p', 'typical_p'];

/** Watermark settings (Kirchenbauer et al. 2023, as in TGI). */
export interface WatermarkParameters {
  /** Fraction of the vocabulary in each greenlist, in (0, 1). Default 0.5. */
  gamma?: number;
  /** Bias added to green tokens, finite and >= 0. Default 2.0. */
  delta?: number;
}

/**
 * Everything that shapes how the next token is chosen. Every field is optional; a processor runs only when its
 * parameter differs from the neutral value. Field names are camelCase; errors name the snake_case wire field.
 */
export interface SamplingParameters {
  /**
   * Sample instead of taking the argmax. As in TGI, sampling is also switched on by any non-neutral temperature,
   * top_k, top_p, typical_p or min_p, even when this is false (an OpenAI-style server maps temperature 0 to greedy
   * by leaving those out).
   */
  doSample?: boolean;
  /** Divides the logits; > 0, finite. 1 = off. */
  temperature?: number;
  /** Keep the k most likely tokens (ties with the k-th kept); integer >= 0. 0 = off. */
  topK?: number;
  /** Nucleus: keep the smallest most-likely set with mass >= top_p; in (0, 1]. 1 = off. */
  topP?: number;
  /** Locally typical sampling mass; in (0, 1]. 1 = off. */
  typicalP?: number;
  /** Remove tokens with p < min_p * max p; in [0, 1]. 0 = off. */
  minP?: number;
  /** CTRL repetition penalty over prompt + generated tokens; > 0, finite. 1 = off. */
  repetitionPenalty?: number;
  /** OpenAI frequency penalty over generated tokens: `s -= count * f`; in [-2, 2]. 0 = off. */
  frequencyPenalty?: number;
  /** OpenAI presence penalty over generated tokens: `s -= presence` when count > 0; in [-2, 2]. 0 = off. */
  presencePenalty?: number;
  /** OpenAI logit bias: token id -> bias in [-100, 100], added to the logit. */
  logitBias?: Readonly<Record<string, number>> | ReadonlyMap<number, number>;
  /** Ban tokens that would repeat an n-gram of prompt + generated; integer >= 0. 0 = off. */
  noRepeatNgramSize?: number;
  /** Suppress the EOS tokens until this many tokens were generated; integer >= 0. */
  minNewTokens?: number;
  /** Token ids never to generate. */
  suppressTokens?: readonly number[];
  /** If set, only these token ids can be generated. */
  allowedTokens?: readonly number[];
  /** Bias generation towards per-step greenlists so the text can be detected later (TGI's watermark). */
  watermark?: boolean | WatermarkParameters;
  /** Seed for sampling: integer in [0, 2^64). A random seed is drawn (and reported) when absent. */
  seed?: number;
  /** Return the n most likely tokens at each step; integer in [0, maxTopNTokens]. */
  topNTokens?: number;
  /** Explicit order of the warper stages (llama.cpp's `samplers`); defaults to {@link DEFAULT_WARPER_ORDER}. */
  order?: readonly WarperStage[];
}

/** Parameters after validation, with every default filled in. */
export interface NormalizedSamplingParameters {
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  typicalP: number;
  minP: number;
  repetitionPenalty: number;
  frequencyPenalty: number;
  presencePenalty: number;
  logitBias: ReadonlyMap<number, number>;
  noRepeatNgramSize: number;
  minNewTokens: number;
  suppressTokens: readonly number[];
  allowedTokens: readonly number[] | undefined;
  watermark: Required<WatermarkParameters> | undefined;
  seed: number | undefined;
  topNTokens: number;
  /** The active warper stages, in the order they run. */
  order: readonly WarperStage[];
}

/** Limits that depend on the model or the server. */
export interface ValidationLimits {
  /** Token ids must be below this (logit_bias, suppress / allowed lists). */
  vocabSize?: number;
  /** Largest accepted top_n_tokens (TGI's `max_top_n_tokens`, default 5). */
  maxTopNTokens?: number;
}

const STAGES = new Set<WarperStage>(DEFAULT_WARPER_ORDER);

function fail(parameter: string, value: unknown, allowed: string, message?: string): never {
  throw new InvalidParameterError({ parameter, value, allowed, ...(message === undefined ? {} : { message }) });
}

function number(parameter: string, value: unknown, allowed: string, message: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    fail(parameter, value, allowed, `${message}. Given: ${describeValue(value)}`);
  }
  return value;
}

function integer(parameter: string, value: unknown, min: number, max: number, message: string): number {
  const allowed = max === Infinity ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(parameter, value, allowed, `${message}. Given: ${describeValue(value)}`);
  }
  return value;
}

function tokenId(parameter: string, value: unknown, vocabSize: number): number {
  return integer(
    parameter,
    value,
    0,
    vocabSize - 1,
    `\`${parameter}\` token ids must be integers in [0, ${vocabSize - 1}]`,
  );
}

function tokenList(parameter: string, value: unknown, vocabSize: number): number[] {
  if (!Array.isArray(value))
    fail(parameter, value, 'an array of token ids', `\`${parameter}\` must be an array of token ids`);
  return value.map((id) => tokenId(parameter, id, vocabSize));
}

/**
 * Validates parameters and fills in defaults. Throws {@link InvalidParameterError} naming the wire field and its
 * allowed range for any bad value (wrong type, NaN, infinite, out of range); nothing is clamped.
 */
export function normalizeSamplingParameters(
  parameters: SamplingParameters,
  limits: ValidationLimits = {},
): NormalizedSamplingParameters {
  if (typeof parameters !== 'object' || parameters === null) {
    fail('parameters', parameters, 'an object', '`parameters` must be an object');
  }
  const vocabSize = limits.vocabSize ?? 2 ** 31 - 1;
  const maxTopNTokens = limits.maxTopNTokens ?? 5;
  const p = parameters;

  let doSample = false;
  if (p.doSample !== undefined && p.doSample !== null) {
    if (typeof p.doSample !== 'boolean') fail('do_sample', p.doSample, 'a boolean', '`do_sample` must be a boolean');
    doSample = p.doSample;
  }

  const temperature =
    p.temperature === undefined || p.temperature === null
      ? 1
      : number('temperature', p.temperature, '> 0', '`temperature` must be strictly positive');
  if (temperature <= 0) fail('temperature', temperature, '> 0', '`temperature` must be strictly positive');

  const topK =
    p.topK === undefined || p.topK === null
      ? 0
      : integer('top_k', p.topK, 0, Number.MAX_SAFE_INTEGER, '`top_k` must be a non-negative integer (0 disables)');

  const topP =
    p.topP === undefined || p.topP === null ? 1 : number('top_p', p.topP, '(0, 1]', '`top_p` must be > 0.0 and <= 1.0');
  if (!(topP > 0 && topP <= 1)) fail('top_p', topP, '(0, 1]', `\`top_p\` must be > 0.0 and <= 1.0. Given: ${topP}`);

  const typicalP =
    p.typicalP === undefined || p.typicalP === null
      ? 1
      : number('typical_p', p.typicalP, '(0, 1]', '`typical_p` must be > 0.0 and <= 1.0');
  if (!(typicalP > 0 && typicalP <= 1)) {
    fail('typical_p', typicalP, '(0, 1]', `\`typical_p\` must be > 0.0 and <= 1.0. Given: ${typicalP}`);
  }

  const minP =
    p.minP === undefined || p.minP === null
      ? 0
      : number('min_p', p.minP, '[0, 1]', '`min_p` must be >= 0.0 and <= 1.0');
  if (!(minP >= 0 && minP <= 1)) fail('min_p', minP, '[0, 1]', `\`min_p\` must be >= 0.0 and <= 1.0. Given: ${minP}`);

  const repetitionPenalty =
    p.repetitionPenalty === undefined || p.repetitionPenalty === null
      ? 1
      : number('repetition_penalty', p.repetitionPenalty, '> 0', '`repetition_penalty` must be strictly positive');
  if (repetitionPenalty <= 0) {
    fail('repetition_penalty', repetitionPenalty, '> 0', '`repetition_penalty` must be strictly positive');
  }

  const penalty = (parameter: string, value: unknown): number => {
    if (value === undefined || value === null) return 0;
    const checked = number(parameter, value, '[-2, 2]', `\`${parameter}\` must be >= -2.0 and <= 2.0`);
    if (checked < -2 || checked > 2)
      fail(parameter, checked, '[-2, 2]', `\`${parameter}\` must be >= -2.0 and <= 2.0. Given: ${checked}`);
    return checked;
  };
  const frequencyPenalty = penalty('frequency_penalty', p.frequencyPenalty);
  const presencePenalty = penalty('presence_penalty', p.presencePenalty);

  const logitBias = new Map<number, number>();
  if (p.logitBias !== undefined && p.logitBias !== null) {
    if (typeof p.logitBias !== 'object' || Array.isArray(p.logitBias)) {
      fail(
        'logit_bias',
        p.logitBias,
        'a map of token id to bias',
        '`logit_bias` must be an object mapping token ids to biases',
      );
    }
    const entries: Iterable<[string | number, unknown]> =
      p.logitBias instanceof Map ? p.logitBias.entries() : Object.entries(p.logitBias);
    for (const [key, value] of entries) {
      const id = typeof key === 'number' ? key : /^\d+$/.test(key) ? Number(key) : Number.NaN;
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        fail(
          'logit_bias',
          key,
          `token ids in [0, ${vocabSize - 1}]`,
          `\`logit_bias\` token ids must be integers in [0, ${vocabSize - 1}]. Given: ${describeValue(key)}`,
        );
      }
      const bias = number(
        'logit_bias',
        value,
        '[-100, 100]',
        `\`logit_bias\` values must be numbers in [-100, 100] (token ${key})`,
      );
      if (bias < -100 || bias > 100) {
        fail(
          'logit_bias',
          bias,
          '[-100, 100]',
          `\`logit_bias\` values must be in [-100, 100]. Given: ${bias} for token ${key}`,
        );
      }
      if (bias !== 0) logitBias.set(id, bias);
    }
  }

  const noRepeatNgramSize =
    p.noRepeatNgramSize === undefined || p.noRepeatNgramSize === null
      ? 0
      : integer(
          'no_repeat_ngram_size',
          p.noRepeatNgramSize,
          0,
          1024,
          '`no_repeat_ngram_size` must be an integer in [0, 1024]',
        );
  const minNewTokens =
    p.minNewTokens === undefined || p.minNewTokens === null
      ? 0
      : integer(
          'min_new_tokens',
          p.minNewTokens,
          0,
          Number.MAX_SAFE_INTEGER,
          '`min_new_tokens` must be a non-negative integer',
        );
  const suppressTokens =
    p.suppressTokens === undefined || p.suppressTokens === null
      ? []
      : tokenList('suppress_tokens', p.suppressTokens, vocabSize);
  const allowedTokens =
    p.allowedTokens === undefined || p.allowedTokens === null
      ? undefined
      : tokenList('allowed_tokens', p.allowedTokens, vocabSize);
  if (allowedTokens !== undefined && allowedTokens.length === 0) {
    fail('allowed_tokens', allowedTokens, 'a non-empty array', '`allowed_tokens` must not be empty');
  }

  let watermark: Required<WatermarkParameters> | undefined;
  if (p.watermark !== undefined && p.watermark !== null && p.watermark !== false) {
    if (p.watermark === true) watermark = { gamma: 0.5, delta: 2 };
    else if (typeof p.watermark === 'object') {
      const gamma =
        p.watermark.gamma === undefined
          ? 0.5
          : number('watermark.gamma', p.watermark.gamma, '(0, 1)', '`watermark.gamma` must be > 0.0 and < 1.0');
      if (!(gamma > 0 && gamma < 1))
        fail('watermark.gamma', gamma, '(0, 1)', `\`watermark.gamma\` must be > 0.0 and < 1.0. Given: ${gamma}`);
      const delta =
        p.watermark.delta === undefined
          ? 2
          : number('watermark.delta', p.watermark.delta, '>= 0', '`watermark.delta` must be a finite number >= 0');
      if (delta < 0) fail('watermark.delta', delta, '>= 0', `\`watermark.delta\` must be >= 0. Given: ${delta}`);
      watermark = { gamma, delta };
    } else fail('watermark', p.watermark, 'a boolean', '`watermark` must be a boolean');
  }

  let seed: number | undefined;
  if (p.seed !== undefined && p.seed !== null) {
    if (typeof p.seed !== 'number' || !Number.isInteger(p.seed) || p.seed < 0 || p.seed > MAX_SEED) {
      fail(
        'seed',
        p.seed,
        'an integer in [0, 2^64)',
        `\`seed\` must be an integer in [0, 18446744073709551615]. Given: ${describeValue(p.seed)}`,
      );
    }
    seed = p.seed;
  }

  const topNTokens =
    p.topNTokens === undefined || p.topNTokens === null
      ? 0
      : integer(
          'top_n_tokens',
          p.topNTokens,
          0,
          maxTopNTokens,
          `\`top_n_tokens\` must be >= 0 and <= ${maxTopNTokens}`,
        );

  let order = DEFAULT_WARPER_ORDER;
  if (p.order !== undefined && p.order !== null) {
    if (!Array.isArray(p.order))
      fail('samplers', p.order, 'an array of stage names', '`samplers` must be an array of stage names');
    const seen = new Set<string>();
    for (const stage of p.order) {
      if (typeof stage !== 'string' || !STAGES.has(stage as WarperStage)) {
        fail(
          'samplers',
          stage,
          DEFAULT_WARPER_ORDER.join(', '),
          `\`samplers\` stages must be one of ${DEFAULT_WARPER_ORDER.join(', ')}. Given: ${describeValue(stage)}`,
        );
      }
      if (seen.has(stage)) fail('samplers', stage, 'each stage at most once', `\`samplers\` lists \`${stage}\` twice`);
      seen.add(stage);
    }
    order = p.order;
  }

  const active: Record<WarperStage, boolean> = {
    temperature: temperature !== 1,
    top_k: topK > 0,
    top_p: topP < 1,
    min_p: minP > 0,
    typical_p: typicalP < 1,
  };
  if (p.order !== undefined && p.order !== null) {
    for (const stage of DEFAULT_WARPER_ORDER) {
      if (active[stage] && !order.includes(stage)) {
        fail('samplers', order, `a list that includes ${stage}`, `\`${stage}\` is set but not listed in \`samplers\``);
      }
    }
  }
  const hasWarpers = Object.values(active).some(Boolean);
  return {
    doSample: doSample || hasWarpers,
    temperature,
    topK,
    topP,
    typicalP,
    minP,
    repetitionPenalty,
    frequencyPenalty,
    presencePenalty,
    logitBias,
    noRepeatNgramSize,
    minNewTokens,
    suppressTokens,
    allowedTokens,
    watermark,
    seed,
    topNTokens,
    order: order.filter((stage) => active[stage]),
  };
}

import { InvalidParameterError, createSampler, type LogitsArena, type Sampler } from '@gen/sampling';
import { EngineValidationError } from './errors.js';
import type { EngineLimits, EngineTokenizer, GenerationParameters, GenerationRequest } from './types.js';

/** A request after validation: everything the scheduler needs, nothing left to check. */
export interface ValidatedRequest {
  id: string;
  inputIds: number[];
  /** The prompt text, when the request gave text (for `returnFullText`). */
  inputText: string | undefined;
  maxNewTokens: number;
  stop: string[];
  stopTokenIds: ReadonlySet<number>;
  eosTokenIds: ReadonlySet<number>;
  /** Number of choices to generate (max of n and best_of). */
  choices: number;
  /** Whether the choices compete (best_of) rather than all being returned (n). */
  bestOf: boolean;
  details: boolean;
  decoderInputDetails: boolean;
  returnFullText: boolean;
  topNTokens: number;
  rawLogprobs: boolean;
  sampler: Sampler;
}

/** What validation needs to know about the model. */
export interface ValidationContext {
  vocabSize: number;
  eosTokenIds: readonly number[];
  limits: EngineLimits;
  tokenizer: EngineTokenizer;
  /** The engine's logits arena: its samplers read rows in it in place. */
  arena?: LogitsArena;
}

function positiveInteger(name: string, value: unknown, message: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new EngineValidationError(`${message}. Given: ${JSON.stringify(value) ?? String(value)}`, name);
  }
  return value;
}

function optionalBoolean(name: string, value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw new EngineValidationError(`\`${name}\` must be a boolean`, name);
  return value;
}

let counter = 0;

/**
 * Validates a request with TGI's rules and messages and builds its sampler. Throws {@link EngineValidationError}
 * (sampling parameter errors are converted, keeping the field name).
 */
export function validateRequest(request: GenerationRequest, context: ValidationContext): ValidatedRequest {
  if (typeof request !== 'object' || request === null) throw new EngineValidationError('request must be an object');
  const { limits, tokenizer } = context;
  const parameters: GenerationParameters = request.parameters ?? {};
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) {
    throw new EngineValidationError('`parameters` must be an object', 'parameters');
  }

  const addSpecialTokens = parameters.addSpecialTokens ?? true;
  let inputIds: number[];
  let inputText: string | undefined;
  if (typeof request.inputs === 'string') {
    if (request.inputs.length === 0) throw new EngineValidationError('`inputs` cannot be empty', 'inputs');
    inputText = request.inputs;
    inputIds = tokenizer.encode(request.inputs, { addSpecialTokens });
  } else if (Array.isArray(request.inputs)) {
    inputIds = [...(request.inputs as readonly number[])];
    for (const id of inputIds) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= context.vocabSize) {
        throw new EngineValidationError(
          `\`inputs\` token ids must be integers in [0, ${context.vocabSize - 1}]. Given: ${JSON.stringify(id)}`,
          'inputs',
        );
      }
    }
  } else {
    throw new EngineValidationError('`inputs` must be a string or an array of token ids', 'inputs');
  }
  if (inputIds.length === 0) throw new EngineValidationError('`inputs` cannot be empty', 'inputs');

  if (parameters.truncate !== undefined && parameters.truncate !== null) {
    const truncate = parameters.truncate;
    if (
      typeof truncate !== 'number' ||
      !Number.isInteger(truncate) ||
      truncate <= 0 ||
      truncate > limits.maxInputTokens
    ) {
      throw new EngineValidationError(
        `\`truncate\` must be strictly positive and less than ${limits.maxInputTokens}. Given: ${JSON.stringify(truncate)}`,
        'truncate',
      );
    }
    if (inputIds.length > truncate) inputIds = inputIds.slice(inputIds.length - truncate);
  }
  if (inputIds.length > limits.maxInputTokens) {
    throw new EngineValidationError(
      `\`inputs\` must have less than ${limits.maxInputTokens} tokens. Given: ${inputIds.length}`,
      'inputs',
    );
  }

  let maxNewTokens: number;
  if (parameters.maxNewTokens === undefined || parameters.maxNewTokens === null) {
    maxNewTokens = Math.max(
      1,
      Math.min(limits.defaultMaxNewTokens ?? Infinity, limits.maxTotalTokens - inputIds.length),
    );
  } else {
    maxNewTokens = positiveInteger(
      'max_new_tokens',
      parameters.maxNewTokens,
      '`max_new_tokens` must be strictly positive',
    );
  }
  if (inputIds.length + maxNewTokens > limits.maxTotalTokens) {
    throw new EngineValidationError(
      `\`inputs\` tokens + \`max_new_tokens\` must be <= ${limits.maxTotalTokens}. Given: ${inputIds.length} \`inputs\` tokens and ${maxNewTokens} \`max_new_tokens\``,
      'max_new_tokens',
    );
  }

  let stop: string[] = [];
  if (parameters.stop !== undefined && parameters.stop !== null) {
    const raw: unknown = parameters.stop;
    const list = typeof raw === 'string' ? [raw] : raw;
    if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
      throw new EngineValidationError('`stop` must be a string or an array of strings', 'stop');
    }
    if (list.length > limits.maxStopSequences) {
      throw new EngineValidationError(
        `\`stop\` supports up to ${limits.maxStopSequences} stop sequences. Given: ${list.length}`,
        'stop',
      );
    }
    if (list.some((s: string) => s.length === 0))
      throw new EngineValidationError('`stop` sequences must not be empty', 'stop');
    stop = list as string[];
  }

  const stopTokenIds = new Set<number>();
  if (parameters.stopTokenIds !== undefined && parameters.stopTokenIds !== null) {
    if (!Array.isArray(parameters.stopTokenIds)) {
      throw new EngineValidationError('`stop_token_ids` must be an array of token ids', 'stop_token_ids');
    }
    for (const id of parameters.stopTokenIds) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= context.vocabSize) {
        throw new EngineValidationError(
          `\`stop_token_ids\` must be integers in [0, ${context.vocabSize - 1}]. Given: ${JSON.stringify(id)}`,
          'stop_token_ids',
        );
      }
      stopTokenIds.add(id);
    }
  }

  const n =
    parameters.n === undefined || parameters.n === null
      ? 1
      : positiveInteger('n', parameters.n, `\`n\` must be > 0 and <= ${limits.maxN}`);
  if (n > limits.maxN) throw new EngineValidationError(`\`n\` must be > 0 and <= ${limits.maxN}. Given: ${n}`, 'n');
  const bestOf =
    parameters.bestOf === undefined || parameters.bestOf === null
      ? 1
      : positiveInteger('best_of', parameters.bestOf, `\`best_of\` must be > 0 and <= ${limits.maxBestOf}`);
  if (bestOf > limits.maxBestOf) {
    throw new EngineValidationError(`\`best_of\` must be > 0 and <= ${limits.maxBestOf}. Given: ${bestOf}`, 'best_of');
  }
  if (bestOf > 1 && n > bestOf) {
    throw new EngineValidationError(`\`best_of\` must be >= \`n\`. Given: best_of ${bestOf}, n ${n}`, 'best_of');
  }

  const details = optionalBoolean('details', parameters.details);
  const decoderInputDetails = optionalBoolean('decoder_input_details', parameters.decoderInputDetails);
  const returnFullText = optionalBoolean('return_full_text', parameters.returnFullText);
  const ignoreEos = optionalBoolean('ignore_eos', parameters.ignoreEos);
  const rawLogprobs = optionalBoolean('raw_logprobs', parameters.rawLogprobs);
  const logprobs =
    bestOf > 1 ||
    parameters.logprobs === undefined ||
    parameters.logprobs === null ||
    optionalBoolean('logprobs', parameters.logprobs);
  if (
    parameters.topTokensFrom !== undefined &&
    parameters.topTokensFrom !== 'processed' &&
    parameters.topTokensFrom !== 'raw'
  ) {
    throw new EngineValidationError('`top_tokens_from` must be "processed" or "raw"', 'top_tokens_from');
  }

  let sampler: Sampler;
  try {
    sampler = createSampler(parameters, {
      vocabSize: context.vocabSize,
      eosTokenIds: context.eosTokenIds,
      maxTopNTokens: limits.maxTopNTokens,
      rawLogprobs,
      logprobs,
      topTokensFrom: parameters.topTokensFrom ?? 'processed',
      ...(parameters.logitsProcessors === undefined ? {} : { processors: parameters.logitsProcessors }),
      ...(context.arena === undefined ? {} : { arena: context.arena }),
    });
  } catch (error) {
    if (InvalidParameterError.isInstance(error))
      throw new EngineValidationError(error.message, error.parameter, { cause: error });
    throw error;
  }
  if (bestOf > 1 && !sampler.doSample) {
    throw new EngineValidationError('you must use sampling when `best_of` is > 1', 'best_of');
  }

  if (request.id !== undefined && (typeof request.id !== 'string' || request.id.length === 0)) {
    throw new EngineValidationError('request `id` must be a non-empty string', 'id');
  }
  return {
    id: request.id ?? `request-${++counter}`,
    inputIds,
    inputText,
    maxNewTokens,
    stop,
    stopTokenIds,
    eosTokenIds: new Set(ignoreEos ? [] : context.eosTokenIds),
    choices: Math.max(n, bestOf),
    bestOf: bestOf > 1,
    details,
    decoderInputDetails,
    returnFullText,
    topNTokens: sampler.parameters.topNTokens,
    rawLogprobs,
    sampler,
  };
}

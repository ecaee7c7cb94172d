import type { GenerationParameters } from '@gen/engine';
import { validationError } from '../errors.js';
import { refuseUnknownFields } from './openai.js';
import { asObject } from './tgi.js';

/** Together's `/inference` request after the wire-level checks. */
export interface TogetherRequest {
  prompt: string;
  parameters: GenerationParameters;
  /** Top logprobs per token, when asked. */
  logprobs: number | undefined;
}

/** Every field `/inference` accepts; `stream_tokens`, `n` and `echo` only with their default values. */
export const TOGETHER_FIELDS: readonly string[] = [
  'model',
  'prompt',
  'max_tokens',
  'stop',
  'temperature',
  'top_p',
  'top_k',
  'repetition_penalty',
  'logprobs',
  'seed',
  'stream_tokens',
  'n',
  'echo',
];

/**
 * Parses Together's `/inference` body: `{model, prompt, max_tokens, temperature, top_p, top_k,
 * repetition_penalty, stop (string or list), logprobs}`. Temperature 0 means greedy; otherwise it samples.
 */
export function parseTogetherRequest(body: unknown): TogetherRequest {
  const object = asObject(body, 'request body');
  refuseUnknownFields(object, TOGETHER_FIELDS);
  // Not built yet: refused rather than answered as if they were absent.
  if (object['stream_tokens'] === true) {
    throw validationError('`stream_tokens` is not supported by this server yet', 'stream_tokens');
  }
  if (object['n'] !== undefined && object['n'] !== null && object['n'] !== 1) {
    throw validationError('`n` other than 1 is not supported on /inference yet', 'n');
  }
  if (object['echo'] === true) throw validationError('`echo` is not supported on /inference yet', 'echo');
  const prompt = object['prompt'];
  if (typeof prompt !== 'string') throw validationError('`prompt` must be a string', 'prompt');
  const parameters: GenerationParameters = {};
  const number = (name: string): number | undefined => {
    const value = object[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value))
      throw validationError(`\`${name}\` must be a number`, name);
    return value;
  };
  const temperature = number('temperature');
  if (temperature !== undefined && temperature < 0) throw validationError('`temperature` must be >= 0', 'temperature');
  if (temperature !== 0) {
    parameters.doSample = true;
    if (temperature !== undefined && temperature !== 1) parameters.temperature = temperature;
    const topP = number('top_p');
    if (topP !== undefined) parameters.topP = topP;
    const topK = number('top_k');
    if (topK !== undefined && topK !== 0) parameters.topK = topK;
  }
  const maxTokens = number('max_tokens');
  if (maxTokens !== undefined) {
    if (!Number.isInteger(maxTokens) || maxTokens < 1) {
      throw validationError(`\`max_tokens\` must be an integer >= 1. Given: ${maxTokens}`, 'max_tokens');
    }
    parameters.maxNewTokens = maxTokens;
  }
  const repetition = number('repetition_penalty');
  if (repetition !== undefined) parameters.repetitionPenalty = repetition;
  const stop = object['stop'];
  if (stop !== undefined && stop !== null) {
    if (typeof stop === 'string') parameters.stop = [stop];
    else if (Array.isArray(stop) && stop.every((s) => typeof s === 'string')) parameters.stop = stop as string[];
    else throw validationError('`stop` must be a string or an array of strings', 'stop');
  }
  const seed = object['seed'];
  if (seed !== undefined && seed !== null) parameters.seed = seed as number;
  const logprobs = number('logprobs');
  if (logprobs !== undefined) {
    if (!Number.isInteger(logprobs) || logprobs < 0 || logprobs > 20) {
      throw validationError('`logprobs` must be an integer between 0 and 20', 'logprobs');
    }
    parameters.details = true;
    if (logprobs > 0) parameters.topNTokens = logprobs;
  }
  return { prompt, parameters, logprobs };
}

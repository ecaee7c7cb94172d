import type { GenerationParameters } from '@gen/engine';
import { checkInferenceBody } from '../schemas/together.js';

/** Together's `/inference` request after the wire-level checks. */
export interface TogetherRequest {
  prompt: string;
  parameters: GenerationParameters;
  /** Top logprobs per token, when asked. */
  logprobs: number | undefined;
  /** `stream_tokens`: answer with Server-Sent Events. */
  stream: boolean;
  /** Choices asked for. */
  n: number;
  /** Prepend the prompt to each choice's text. */
  echo: boolean;
}

/**
 * Parses Together's `/inference` body (checked against `InferenceBody`). Temperature 0 means greedy; otherwise it
 * samples, as Together's default temperature is 1.
 */
export function parseTogetherRequest(body: unknown): TogetherRequest {
  const checked = checkInferenceBody(body);
  const parameters: GenerationParameters = {};
  const temperature = checked.temperature ?? undefined;
  if (temperature !== 0) {
    parameters.doSample = true;
    if (temperature !== undefined && temperature !== 1) parameters.temperature = temperature;
    if (checked.top_p !== undefined && checked.top_p !== null) parameters.topP = checked.top_p;
    if (checked.top_k !== undefined && checked.top_k !== null && checked.top_k !== 0) parameters.topK = checked.top_k;
  }
  if (checked.max_tokens !== undefined && checked.max_tokens !== null) parameters.maxNewTokens = checked.max_tokens;
  if (checked.repetition_penalty !== undefined && checked.repetition_penalty !== null) {
    parameters.repetitionPenalty = checked.repetition_penalty;
  }
  const stop = checked.stop;
  if (stop !== undefined && stop !== null) parameters.stop = typeof stop === 'string' ? [stop] : stop;
  if (checked.seed !== undefined && checked.seed !== null) parameters.seed = checked.seed;
  const logprobs = checked.logprobs ?? undefined;
  const echo = checked.echo ?? false;
  if (logprobs !== undefined) {
    parameters.details = true;
    if (logprobs > 0) parameters.topNTokens = logprobs;
    if (echo) parameters.decoderInputDetails = true;
  }
  const n = checked.n ?? 1;
  if (n > 1) parameters.n = n;
  return {
    prompt: checked.prompt,
    parameters,
    logprobs,
    stream: checked.stream_tokens ?? false,
    n,
    echo,
  };
}

import type { ChoiceResult, GeneratedToken, GenerationParameters, GenerationResult, PrefillToken } from '@gen/engine';
import { validationError } from '../errors.js';

/** A TGI request body after the wire-level checks. */
export interface TgiRequest {
  inputs: string;
  parameters: GenerationParameters;
  stream: boolean;
}

/** snake_case wire names of TGI's `parameters` (plus gen's extras) -> engine field names. */
const PARAMETER_NAMES: Record<string, keyof GenerationParameters> = {
  do_sample: 'doSample',
  max_new_tokens: 'maxNewTokens',
  repetition_penalty: 'repetitionPenalty',
  frequency_penalty: 'frequencyPenalty',
  presence_penalty: 'presencePenalty',
  return_full_text: 'returnFullText',
  stop: 'stop',
  seed: 'seed',
  temperature: 'temperature',
  top_k: 'topK',
  top_p: 'topP',
  min_p: 'minP',
  truncate: 'truncate',
  typical_p: 'typicalP',
  best_of: 'bestOf',
  watermark: 'watermark',
  details: 'details',
  decoder_input_details: 'decoderInputDetails',
  top_n_tokens: 'topNTokens',
  logit_bias: 'logitBias',
  no_repeat_ngram_size: 'noRepeatNgramSize',
  min_new_tokens: 'minNewTokens',
  stop_token_ids: 'stopTokenIds',
  ignore_eos: 'ignoreEos',
  raw_logprobs: 'rawLogprobs',
  top_tokens_from: 'topTokensFrom',
  samplers: 'order',
};

/** Checks that `value` is a JSON object. */
export function asObject(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw validationError(`${name} must be a JSON object`, name === 'request body' ? null : name);
  }
  return value as Record<string, unknown>;
}

/**
 * Maps TGI's snake_case `parameters` to engine parameters. Values are passed through: their types and ranges are
 * checked by the engine with TGI's messages. Unknown fields are ignored, as TGI does; features this server does not
 * have (grammar, LoRA adapters) are refused clearly instead of being ignored.
 */
export function mapTgiParameters(raw: unknown, maxTopNTokens: number): GenerationParameters {
  if (raw === undefined || raw === null) return {};
  const parameters = asObject(raw, 'parameters');
  const mapped: Record<string, unknown> = {};
  for (const [wire, value] of Object.entries(parameters)) {
    if (value === null || value === undefined) continue;
    const name = PARAMETER_NAMES[wire];
    if (name !== undefined) mapped[name] = value;
  }
  if (parameters['grammar'] !== undefined && parameters['grammar'] !== null) {
    throw validationError('`grammar` (guided generation) is not supported by this server', 'grammar');
  }
  if (parameters['adapter_id'] !== undefined && parameters['adapter_id'] !== null) {
    throw validationError('`adapter_id` (LoRA adapters) is not supported by this server', 'adapter_id');
  }
  const topN = mapped['topNTokens'];
  if (typeof topN === 'number' && topN > maxTopNTokens) {
    throw validationError(`\`top_n_tokens\` must be >= 0 and <= ${maxTopNTokens}. Given: ${topN}`, 'top_n_tokens');
  }
  if (typeof mapped['watermark'] !== 'boolean' && mapped['watermark'] !== undefined) {
    throw validationError('`watermark` must be a boolean', 'watermark');
  }
  return mapped as GenerationParameters;
}

/** Parses a TGI `/generate`, `/generate_stream` or `/` body. */
export function parseTgiRequest(body: unknown, maxTopNTokens: number): TgiRequest {
  const object = asObject(body, 'request body');
  const inputs = object['inputs'];
  if (typeof inputs !== 'string') throw validationError('`inputs` must be a string', 'inputs');
  const stream = object['stream'] ?? false;
  if (typeof stream !== 'boolean') throw validationError('`stream` must be a boolean', 'stream');
  return { inputs, parameters: mapTgiParameters(object['parameters'], maxTopNTokens), stream };
}

/** A generated token in TGI's wire shape, plus `raw_logprob` (the unprocessed distribution's) when it was asked. */
export function tgiToken(token: GeneratedToken) {
  const wire = { id: token.id, text: token.text, logprob: token.logprob, special: token.special };
  return token.rawLogprob === undefined ? wire : { ...wire, raw_logprob: token.rawLogprob };
}

function prefillTokens(prefill: PrefillToken[] | undefined) {
  return (prefill ?? []).map((token) => ({ id: token.id, text: token.text, logprob: token.logprob ?? null }));
}

function sequenceDetails(choice: ChoiceResult, result: GenerationResult, prefill: boolean) {
  return {
    finish_reason: choice.finishReason,
    generated_tokens: choice.generatedTokens,
    seed: result.seed ?? null,
    prefill: prefill ? prefillTokens(result.prefill) : [],
    tokens: (choice.tokens ?? []).map(tgiToken),
    ...(choice.topTokens === undefined ? {} : { top_tokens: choice.topTokens.map((step) => step.map(tgiToken)) }),
  };
}

/** The `/generate` response: `generated_text`, and `details` when asked (best choice first, others in best_of_sequences). */
export function tgiGenerateResponse(result: GenerationResult, parameters: GenerationParameters) {
  const best = result.choices[result.best]!;
  if (parameters.details !== true) return { generated_text: best.generatedText };
  const others = result.choices.filter((choice) => choice !== best);
  return {
    generated_text: best.generatedText,
    details: {
      ...sequenceDetails(best, result, true),
      ...(parameters.bestOf !== undefined && parameters.bestOf > 1
        ? {
            best_of_sequences: others.map((choice) => ({
              generated_text: choice.generatedText,
              ...sequenceDetails(choice, result, true),
            })),
          }
        : {}),
    },
  };
}

import type { ChoiceResult, GeneratedToken, GenerationParameters, GenerationResult, PrefillToken } from '@gen/engine';
import type { Grammar } from '@gen/structured';
import type { Static } from '@sinclair/typebox';
import { validationError } from '../errors.js';
import {
  checkCompatGenerateBody,
  checkGenerateBody,
  type CompatGenerateBody,
  type TgiParameters,
} from '../schemas/tgi.js';
import { formatGrammar } from '../tools/grammars.js';

/** A TGI request body after the wire-level checks. */
export interface TgiRequest {
  inputs: string;
  parameters: GenerationParameters;
  stream: boolean;
  /** The language `parameters.grammar` asks for (TGI `{type: "json" | "json_schema" | "regex", value}`). */
  grammar: Grammar | undefined;
}

/**
 * snake_case wire names of TGI's `parameters` (plus gen's extras) -> engine field names. Every field
 * {@link TgiParameters} declares as accepted is here (a test holds the two equal).
 */
export const PARAMETER_NAMES: Readonly<Record<string, keyof GenerationParameters>> = {
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
 * Maps checked TGI `parameters` to engine parameters. Ranges are checked by the engine with TGI's messages.
 * Undeclared fields are ignored, as TGI does; features this server does not have (LoRA adapters) are refused
 * clearly instead of being ignored. `grammar` is read by {@link parseTgiRequest}.
 */
function mapTgiParameters(
  parameters: Static<typeof TgiParameters> | null | undefined,
  maxTopNTokens: number,
): GenerationParameters {
  if (parameters === undefined || parameters === null) return {};
  if (parameters.adapter_id !== undefined && parameters.adapter_id !== null) {
    throw validationError('`adapter_id` (LoRA adapters) is not supported by this server', 'adapter_id');
  }
  const mapped: Record<string, unknown> = {};
  for (const [wire, name] of Object.entries(PARAMETER_NAMES)) {
    const value = (parameters as Record<string, unknown>)[wire];
    if (value !== null && value !== undefined) mapped[name] = value;
  }
  const topN = parameters.top_n_tokens;
  if (typeof topN === 'number' && topN > maxTopNTokens) {
    throw validationError(`\`top_n_tokens\` must be >= 0 and <= ${maxTopNTokens}. Given: ${topN}`, 'top_n_tokens');
  }
  return mapped as GenerationParameters;
}

/** Parses a TGI `/generate` or `/generate_stream` body (`stream` is read on `/` only, as TGI). */
export function parseTgiRequest(body: unknown, maxTopNTokens: number, compat = false): TgiRequest {
  const checked = compat ? checkCompatGenerateBody(body) : checkGenerateBody(body);
  const stream = compat ? ((checked as Static<typeof CompatGenerateBody>).stream ?? false) : false;
  const grammar = checked.parameters?.grammar ?? undefined;
  if (grammar !== undefined) {
    const type = (grammar as { type?: unknown }).type;
    if (type !== 'json' && type !== 'json_schema' && type !== 'regex') {
      throw validationError(
        `\`grammar.type\` must be "json", "json_schema" or "regex". Given: ${JSON.stringify(type)}`,
        'grammar',
      );
    }
  }
  return {
    inputs: checked.inputs,
    parameters: mapTgiParameters(checked.parameters, maxTopNTokens),
    stream,
    grammar: formatGrammar(grammar, 'grammar'),
  };
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

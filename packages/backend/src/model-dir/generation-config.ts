import path from 'node:path';
import type { BackendGenerationDefaultsV1 } from '../v1/index.js';
import { ConfigFields } from './config-fields.js';
import { readJsonFile } from './json-file.js';
import type { DecoderModelConfig } from './model-config.js';

/**
 * `generation_config.json`, camelCase. Only fields the file sets are present; unknown fields are ignored and
 * `null` counts as absent.
 */
export interface GenerationConfig extends BackendGenerationDefaultsV1 {
  /** Path of the file (for error messages). */
  readonly file: string;
  /** `eos_token_id` as a list, when the file sets it. */
  readonly eosTokenIds?: readonly number[];
  /** `bos_token_id`. */
  readonly bosTokenId?: number;
  /** `pad_token_id`. */
  readonly padTokenId?: number;
  /** `max_length` (prompt plus generated tokens). */
  readonly maxLength?: number;
}

/** Reads `<modelDir>/generation_config.json`; `undefined` when the directory has none (it is optional). */
export async function readGenerationConfig(modelDir: string): Promise<GenerationConfig | undefined> {
  const file = path.join(modelDir, 'generation_config.json');
  const json = await readJsonFile(file, { expected: 'a Hugging Face generation_config.json', optional: true });
  return json === undefined ? undefined : parseGenerationConfig(json, file);
}

/**
 * Normalizes a parsed `generation_config.json`.
 *
 * @throws {ModelLoadError} (`invalid-config`) a known field with the wrong type, for example a string
 *   `temperature` or a negative `top_k`.
 */
export function parseGenerationConfig(json: unknown, file = 'generation_config.json'): GenerationConfig {
  const fields = new ConfigFields(file, json, { expected: 'a JSON object (generation_config.json)' });
  const config: {
    -readonly [K in keyof GenerationConfig]: GenerationConfig[K];
  } = { file };
  if (fields.has('eos_token_id')) config.eosTokenIds = fields.tokenIdList('eos_token_id');
  const bos = fields.optionalTokenId('bos_token_id');
  if (bos !== undefined) config.bosTokenId = bos;
  const pad = fields.optionalTokenId('pad_token_id');
  if (pad !== undefined) config.padTokenId = pad;
  const doSample = fields.optionalBoolean('do_sample');
  if (doSample !== undefined) config.doSample = doSample;
  const temperature = fields.optionalNumber('temperature');
  if (temperature !== undefined) {
    if (temperature < 0) fields.fail('temperature', 'a non-negative number');
    config.temperature = temperature;
  }
  const topP = fields.optionalNumber('top_p');
  if (topP !== undefined) {
    if (topP < 0 || topP > 1) fields.fail('top_p', 'a number in [0, 1]');
    config.topP = topP;
  }
  const topK = fields.optionalNumber('top_k');
  if (topK !== undefined) {
    if (!Number.isInteger(topK) || topK < 0) fields.fail('top_k', 'a non-negative integer');
    config.topK = topK;
  }
  const repetitionPenalty = fields.optionalNumber('repetition_penalty');
  if (repetitionPenalty !== undefined) {
    if (repetitionPenalty <= 0) fields.fail('repetition_penalty', 'a positive number');
    config.repetitionPenalty = repetitionPenalty;
  }
  const maxNewTokens = fields.optionalPositiveInteger('max_new_tokens');
  if (maxNewTokens !== undefined) config.maxNewTokens = maxNewTokens;
  const maxLength = fields.optionalPositiveInteger('max_length');
  if (maxLength !== undefined) config.maxLength = maxLength;
  return config;
}

/**
 * End-of-sequence ids of a model: `generation_config.json`'s when it sets them (that is what transformers and TGI
 * stop on), else `config.json`'s.
 */
export function resolveEosTokenIds(config: DecoderModelConfig, generation: GenerationConfig | undefined): number[] {
  return [...(generation?.eosTokenIds ?? config.eosTokenIds)];
}

/** The sampling defaults of `generation` without its token ids and file name. */
export function generationDefaults(generation: GenerationConfig | undefined): BackendGenerationDefaultsV1 {
  if (generation === undefined) return {};
  const defaults: { -readonly [K in keyof BackendGenerationDefaultsV1]: BackendGenerationDefaultsV1[K] } = {};
  if (generation.doSample !== undefined) defaults.doSample = generation.doSample;
  if (generation.temperature !== undefined) defaults.temperature = generation.temperature;
  if (generation.topP !== undefined) defaults.topP = generation.topP;
  if (generation.topK !== undefined) defaults.topK = generation.topK;
  if (generation.repetitionPenalty !== undefined) defaults.repetitionPenalty = generation.repetitionPenalty;
  if (generation.maxNewTokens !== undefined) defaults.maxNewTokens = generation.maxNewTokens;
  return defaults;
}

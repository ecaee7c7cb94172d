import { getArray, getNumber, type MetadataSource } from './metadata.js';

/** Token texts llama.cpp treats as end of generation wherever they are in a vocabulary (`special_eog_ids`). */
export const END_OF_GENERATION_TOKENS: readonly string[] = [
  '<|eot_id|>',
  '<|im_end|>',
  '<|end|>',
  '<|return|>',
  '<|call|>',
  '<end_of_turn>',
  '<|endoftext|>',
  '<|eom_id|>',
  '<EOT>',
  '_<EOT>',
  '<|end_of_text|>',
  '<end_of_utterance>',
  '<｜end▁of▁sentence｜>',
];

const NAMED = new Set(END_OF_GENERATION_TOKENS);

/**
 * The ids that end a generation for a GGUF model, as llama.cpp decides when it loads the file: `eos_token_id`,
 * `eot_token_id`, `eom_token_id` of `tokenizer.ggml.*`, then every token whose text is in
 * {@link END_OF_GENERATION_TOKENS} (a Llama 3 file names only `<|eot_id|>` as eos, yet `<|end_of_text|>` ends
 * generation too). Ids outside `tokenizer.ggml.tokens` are left out.
 *
 * @throws {GgufError} `TYPE_MISMATCH` when a key holds another type.
 */
export function endOfGenerationIds(metadata: MetadataSource): number[] {
  const tokens = getArray(metadata, 'tokenizer.ggml.tokens', 'string') ?? [];
  const ids: number[] = [];
  for (const key of ['eos', 'eot', 'eom']) {
    const id = getNumber(metadata, `tokenizer.ggml.${key}_token_id`);
    if (id !== undefined && Number.isInteger(id) && id >= 0 && id < tokens.length) ids.push(id);
  }
  for (let id = 0; id < tokens.length; id++) if (NAMED.has(tokens[id]!)) ids.push(id);
  return [...new Set(ids)];
}

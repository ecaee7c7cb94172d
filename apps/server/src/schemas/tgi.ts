import { Type } from '@sinclair/typebox';
import { compileBodyCheck, field, openBody, required } from './check.js';

const { Array: ArrayOf, Boolean, Integer, Number, Record, String, Union, Literal, Unknown } = Type;

/**
 * TGI's `parameters` (its `GenerateParameters`), plus gen's extras. Types are checked here; ranges and limits are
 * checked once, by the engine and `@gen/sampling`, with TGI's messages. Undeclared fields are ignored, as TGI does.
 */
export const TgiParameters = openBody(
  {
    do_sample: field(Boolean(), { description: 'Sample instead of greedy decoding. Default false.' }),
    max_new_tokens: field(Integer(), {
      description: 'Most tokens to generate. Default: up to `max_total_tokens`, or `--default-max-new-tokens`.',
    }),
    repetition_penalty: field(Number(), { description: 'CTRL repetition penalty (> 0; 1 is off).' }),
    frequency_penalty: field(Number(), { description: 'OpenAI-style frequency penalty, in [-2, 2].' }),
    presence_penalty: field(Number(), { description: 'OpenAI-style presence penalty, in [-2, 2] (gen extra).' }),
    return_full_text: field(Boolean(), { description: 'Prepend the prompt to `generated_text`.' }),
    stop: field(Union([String(), ArrayOf(String())]), {
      description: 'Stop sequences (at most `max_stop_sequences`).',
    }),
    seed: field(Integer(), { description: 'Sampling seed (an unsigned 64-bit integer).' }),
    temperature: field(Number(), { description: 'Softmax temperature (> 0).' }),
    top_k: field(Integer(), { description: 'Keep the k most likely tokens (> 0).' }),
    top_p: field(Number(), { description: 'Nucleus sampling mass, in (0, 1).' }),
    min_p: field(Number(), { description: 'Min-p sampling threshold, in [0, 1] (gen extra).' }),
    truncate: field(Integer(), { description: 'Keep only the last `truncate` prompt tokens.' }),
    typical_p: field(Number(), { description: 'Typical-p sampling mass, in (0, 1).' }),
    best_of: field(Integer(), { description: 'Generate this many and return the best (at most `max_best_of`).' }),
    watermark: field(Boolean(), { description: 'Watermark the output (Kirchenbauer et al., TGI’s settings).' }),
    details: field(Boolean(), { description: 'Return `details` (tokens, logprobs, finish reason).' }),
    decoder_input_details: field(Boolean(), {
      description: 'Return the prompt tokens’ logprobs in `details.prefill`.',
    }),
    top_n_tokens: field(Integer(), {
      description: 'Return the n most likely tokens per step (at most `max_top_n_tokens`).',
    }),
    logit_bias: field(Record(String(), Number()), { description: 'Token id -> bias added to its logit (gen extra).' }),
    no_repeat_ngram_size: field(Integer(), { description: 'Ban repeating any n-gram of this size (gen extra).' }),
    min_new_tokens: field(Integer(), { description: 'EOS is suppressed before this many tokens (gen extra).' }),
    stop_token_ids: field(ArrayOf(Integer()), { description: 'Token ids that end generation (gen extra).' }),
    ignore_eos: field(Boolean(), { description: 'Keep generating past EOS (gen extra; for benchmarks).' }),
    raw_logprobs: field(Boolean(), {
      description: 'Also report each token’s logprob under the raw distribution (gen extra).',
    }),
    top_tokens_from: field(Union([Literal('processed'), Literal('raw')]), {
      description: 'Which distribution `top_tokens` come from (gen extra). Default processed.',
    }),
    samplers: field(
      ArrayOf(
        Union([Literal('temperature'), Literal('top_k'), Literal('top_p'), Literal('min_p'), Literal('typical_p')]),
      ),
      { description: 'The order the warpers run in (gen extra). Default HF’s.' },
    ),
    grammar: field(
      openBody(
        {
          type: required(String(), { description: 'json (a JSON Schema), json_schema ({name, schema}) or regex.' }),
          value: required(Unknown(), { description: 'The JSON Schema (an object or JSON text) or the regex.' }),
        },
        'Guided generation.',
      ),
      { description: 'Constrains the output to a JSON Schema or a regular expression (docs/structured-output.md).' },
    ),
    adapter_id: field(String(), { description: 'LoRA adapters are not served: refused.', status: 'refused' }),
  },
  'Generation parameters (TGI’s `GenerateParameters` and gen’s extras).',
);

const inputs = required(String(), { description: 'The prompt.' });
const parameters = field(TgiParameters, { description: 'Generation parameters.' });

/** `/generate` and `/generate_stream` (TGI's `GenerateRequest`). */
export const GenerateBody = openBody({ inputs, parameters }, 'A TGI generation request.');

/** `/` (TGI's `CompatGenerateRequest`): a generation request that streams when `stream` is true. */
export const CompatGenerateBody = openBody(
  { inputs, parameters, stream: field(Boolean(), { description: 'Answer as `/generate_stream` does.' }) },
  'A TGI generation request (compat route).',
);

/** `/tokenize`. */
export const TokenizeBody = openBody(
  {
    inputs,
    parameters: field(
      openBody(
        { add_special_tokens: field(Boolean(), { description: 'Add the tokenizer’s special tokens. Default true.' }) },
        'Tokenizer options.',
      ),
      { description: 'Tokenizer options.' },
    ),
  },
  'Text to tokenize.',
);

/** `/detokenize` (gen extra). */
export const DetokenizeBody = openBody(
  {
    ids: required(ArrayOf(Integer()), { description: 'Token ids.' }),
    skip_special_tokens: field(Boolean(), { description: 'Leave special tokens out. Default false.' }),
  },
  'Token ids to decode.',
);

/** `/watermark/detect` (gen extra). */
export const WatermarkDetectBody = openBody(
  {
    text: field(String(), { description: 'The text to test (tokenized without special tokens).' }),
    ids: field(ArrayOf(Integer()), { description: 'Or the token ids to test.' }),
    gamma: field(Number(), { description: 'Green-list fraction. Default TGI’s 0.5.' }),
    z_threshold: field(Number(), { description: 'z-score above which the text is called watermarked. Default 4.' }),
    ignore_repeated_bigrams: field(Boolean(), { description: 'Score each (previous, token) pair once.' }),
    prefix_token: field(Integer(), { description: 'The token before the first one (its green list seeds the first).' }),
  },
  'A watermark detection request.',
);

/** Checks of the TGI bodies; `parameters.*` fields are reported by their own name, as TGI's messages do. */
export const checkGenerateBody = compileBodyCheck(GenerateBody, ['parameters']);
export const checkCompatGenerateBody = compileBodyCheck(CompatGenerateBody, ['parameters']);
export const checkTokenizeBody = compileBodyCheck(TokenizeBody, ['parameters']);
export const checkDetokenizeBody = compileBodyCheck(DetokenizeBody);
export const checkWatermarkDetectBody = compileBodyCheck(WatermarkDetectBody);

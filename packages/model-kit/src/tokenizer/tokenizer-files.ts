import type { ConfigTokenIds } from '../hf-config.js';
import type { ChatFormat } from '../model-config.js';
import { InvalidModelConfigError } from '../errors.js';
import { OrderedObject, stringifyJson } from '../json.js';
import { splitPatterns, splitRegExp } from './byte-level.js';
import { trainingCorpus } from './corpus.js';
import { trainByteLevelBpe, type BpeModel } from './train-bpe.js';

/** The special tokens of each chat format, in id order after the learned vocabulary. */
export const specialTokens: Readonly<Record<ChatFormat, readonly string[]>> = {
  llama3: ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
  chatml: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
};

/** Meta-Llama-3-Instruct's chat template, verbatim. */
export const llama3ChatTemplate =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/** Qwen2-Instruct's ChatML chat template, verbatim. */
export const chatmlChatTemplate =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/** The tokenizer files of a model directory, and the ids that `config.json` refers to. */
export interface TokenizerFiles {
  /** File name -> contents (`tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`, ...). */
  files: Record<string, string>;
  tokenIds: ConfigTokenIds;
  /** Tokens in the tokenizer, learned and special; at most the model's `vocab_size`. */
  tokenizerVocabSize: number;
}

const trained = new Map<string, BpeModel>();

/**
 * Learns (once per format and size, memoised) a byte-level BPE on the embedded corpus with room for the special
 * tokens inside `modelVocabSize`, and renders the files transformers would save for a Llama 3 (`llama3`) or Qwen2
 * (`chatml`) tokenizer. The corpus yields about two thousand tokens at most, so large vocabularies are padded.
 */
export function buildTokenizerFiles(
  format: ChatFormat,
  options: { modelVocabSize: number; modelMaxLength: number },
): TokenizerFiles {
  const specials = specialTokens[format];
  const learnedTarget = options.modelVocabSize - specials.length;
  if (learnedTarget < 256) {
    throw new InvalidModelConfigError({
      field: 'vocabSize',
      message: `\`vocabSize\` must be at least ${256 + specials.length} (256 bytes and ${specials.length} special tokens); got ${options.modelVocabSize}.`,
    });
  }
  const key = `${format}:${learnedTarget}`;
  let bpe = trained.get(key);
  if (bpe === undefined) {
    const text = format === 'chatml' ? trainingCorpus.normalize('NFC') : trainingCorpus;
    bpe = trainByteLevelBpe(text, { splitRegExp: splitRegExp(splitPatterns[format]), vocabSize: learnedTarget });
    trained.set(key, bpe);
  }
  const firstSpecial = bpe.vocab.length;
  const specialId = (content: string) => firstSpecial + specials.indexOf(content);
  const addedTokens = specials.map((content, index) => ({
    id: firstSpecial + index,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const vocab = new OrderedObject(bpe.vocab.map((token, id) => [token, id] as const));
  const merges = bpe.merges.map(([left, right]) => `${left} ${right}`);
  const addedTokensDecoder = Object.fromEntries(
    addedTokens.map(({ id, content, lstrip, normalized, rstrip, single_word, special }) => [
      String(id),
      { content, lstrip, normalized, rstrip, single_word, special },
    ]),
  );
  const tokenEntry = (content: string) => ({
    content,
    lstrip: false,
    normalized: false,
    rstrip: false,
    single_word: false,
  });
  const split = {
    type: 'Split',
    pattern: { Regex: splitPatterns[format] },
    behavior: 'Isolated',
    invert: false,
  };
  const files: Record<string, string> = {};
  let tokenIds: ConfigTokenIds;
  if (format === 'llama3') {
    const bos = '<|begin_of_text|>';
    tokenIds = {
      bos: specialId(bos),
      eos: [specialId('<|end_of_text|>'), specialId('<|eot_id|>')],
      pad: specialId('<|end_of_text|>'),
    };
    files['tokenizer.json'] = pretty({
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [split, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }],
      },
      post_processor: {
        type: 'Sequence',
        processors: [
          { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
          {
            type: 'TemplateProcessing',
            single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
            pair: [
              { SpecialToken: { id: bos, type_id: 0 } },
              { Sequence: { id: 'A', type_id: 0 } },
              { SpecialToken: { id: bos, type_id: 1 } },
              { Sequence: { id: 'B', type_id: 1 } },
            ],
            special_tokens: { [bos]: { id: bos, ids: [tokenIds.bos], tokens: [bos] } },
          },
        ],
      },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: bpeModelJson(vocab, merges, true),
    });
    files['tokenizer_config.json'] = sorted({
      added_tokens_decoder: addedTokensDecoder,
      bos_token: bos,
      chat_template: llama3ChatTemplate,
      clean_up_tokenization_spaces: true,
      eos_token: '<|eot_id|>',
      model_input_names: ['input_ids', 'attention_mask'],
      model_max_length: options.modelMaxLength,
      pad_token: '<|end_of_text|>',
      tokenizer_class: 'PreTrainedTokenizerFast',
    });
    files['special_tokens_map.json'] = sorted({
      bos_token: tokenEntry(bos),
      eos_token: tokenEntry('<|eot_id|>'),
      pad_token: tokenEntry('<|end_of_text|>'),
    });
  } else {
    tokenIds = {
      bos: specialId('<|endoftext|>'),
      eos: [specialId('<|im_end|>'), specialId('<|endoftext|>')],
      pad: specialId('<|endoftext|>'),
    };
    const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
    files['tokenizer.json'] = pretty({
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: { type: 'NFC' },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [split, byteLevel] },
      post_processor: byteLevel,
      decoder: byteLevel,
      model: bpeModelJson(vocab, merges, false),
    });
    files['tokenizer_config.json'] = sorted({
      add_prefix_space: false,
      added_tokens_decoder: addedTokensDecoder,
      additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
      bos_token: null,
      chat_template: chatmlChatTemplate,
      clean_up_tokenization_spaces: false,
      eos_token: '<|im_end|>',
      errors: 'replace',
      model_max_length: options.modelMaxLength,
      pad_token: '<|endoftext|>',
      split_special_tokens: false,
      tokenizer_class: 'Qwen2Tokenizer',
      unk_token: null,
    });
    files['special_tokens_map.json'] = sorted({
      additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
      eos_token: tokenEntry('<|im_end|>'),
      pad_token: tokenEntry('<|endoftext|>'),
    });
    // Qwen2 repositories also ship the slow tokenizer's files.
    files['vocab.json'] = `{${bpe.vocab.map((token, id) => `${JSON.stringify(token)}:${id}`).join(',')}}`;
    files['merges.txt'] = `#version: 0.2\n${merges.join('\n')}\n`;
  }
  return { files, tokenIds, tokenizerVocabSize: firstSpecial + specials.length };
}

function bpeModelJson(vocab: OrderedObject, merges: string[], ignoreMerges: boolean) {
  return {
    type: 'BPE',
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: ignoreMerges,
    vocab,
    merges,
  };
}

/** tokenizer.json keeps the order of the Rust structs; the Python-written files sort their keys. */
function pretty(value: unknown): string {
  return stringifyJson(value);
}

function sorted(value: unknown): string {
  return stringifyJson(value, { sortKeys: true });
}

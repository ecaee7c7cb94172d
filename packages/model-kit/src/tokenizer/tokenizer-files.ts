import type { ConfigTokenIds } from '../hf-config.js';
import type { ChatFormat } from '../model-config.js';
import { InvalidModelConfigError } from '../errors.js';
import { OrderedObject, stringifyJson } from '../json.js';
import { splitPatterns, splitRegExp } from './byte-level.js';
import { gemmaChatTemplate, phi3ChatTemplate, qwen3ChatTemplate } from './chat-templates.js';
import { trainingCorpus } from './corpus.js';
import { trainByteLevelBpe, type BpeModel } from './train-bpe.js';

/** The special tokens of each chat format, in id order after the learned vocabulary. */
export const specialTokens: Readonly<Record<ChatFormat, readonly string[]>> = {
  llama3: ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
  chatml: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
  // Qwen3's id order: the tool and thinking tags follow the ChatML tokens.
  qwen3: [
    '<|endoftext|>',
    '<|im_start|>',
    '<|im_end|>',
    '<tool_call>',
    '</tool_call>',
    '<tool_response>',
    '</tool_response>',
    '<think>',
    '</think>',
  ],
  // Gemma's id order: <pad> 0, <eos> 1, <bos> 2; the turn markers later.
  gemma: ['<pad>', '<eos>', '<bos>', '<start_of_turn>', '<end_of_turn>'],
  // Phi-3's id order.
  phi3: ['<|endoftext|>', '<|assistant|>', '<|system|>', '<|end|>', '<|user|>'],
};

/** Added tokens that real tokenizers mark `special: false` (kept by `skip_special_tokens`), as Qwen3 does. */
const plainAddedTokens: ReadonlySet<string> = new Set([
  '<tool_call>',
  '</tool_call>',
  '<tool_response>',
  '</tool_response>',
  '<think>',
  '</think>',
]);

/** The tokenizer layout each chat format reuses: pre-tokenizer pattern and whether NFC applies. */
const layout: Readonly<Record<ChatFormat, { pattern: keyof typeof splitPatterns; nfc: boolean }>> = {
  llama3: { pattern: 'llama3', nfc: false },
  chatml: { pattern: 'chatml', nfc: true },
  qwen3: { pattern: 'chatml', nfc: true },
  gemma: { pattern: 'llama3', nfc: false },
  phi3: { pattern: 'llama3', nfc: false },
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
 * Learns (once per layout and size, memoised) a byte-level BPE on the embedded corpus with room for the special
 * tokens inside `modelVocabSize`, and renders the files transformers would save for a Llama 3 (`llama3`), Qwen2
 * (`chatml`), Qwen3 (`qwen3`), Gemma (`gemma`, Llama 3's byte-level layout with Gemma's tokens and `<bos>`
 * prepended) or Phi-3 (`phi3`, laid out as Phi-4-mini's byte-level tokenizer) tokenizer. The corpus yields about two thousand tokens at most, so large vocabularies are padded.
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
  const { pattern, nfc } = layout[format];
  const key = `${pattern}:${nfc}:${learnedTarget}`;
  let bpe = trained.get(key);
  if (bpe === undefined) {
    const text = nfc ? trainingCorpus.normalize('NFC') : trainingCorpus;
    bpe = trainByteLevelBpe(text, { splitRegExp: splitRegExp(splitPatterns[pattern]), vocabSize: learnedTarget });
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
    special: !plainAddedTokens.has(content),
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
    pattern: { Regex: splitPatterns[pattern] },
    behavior: 'Isolated',
    invert: false,
  };
  const files: Record<string, string> = {};
  let tokenIds: ConfigTokenIds;
  if (format === 'llama3' || format === 'gemma' || format === 'phi3') {
    const bos = format === 'llama3' ? '<|begin_of_text|>' : format === 'gemma' ? '<bos>' : '<|endoftext|>';
    tokenIds =
      format === 'llama3'
        ? {
            bos: specialId(bos),
            eos: [specialId('<|end_of_text|>'), specialId('<|eot_id|>')],
            pad: specialId('<|end_of_text|>'),
          }
        : format === 'gemma'
          ? { bos: specialId(bos), eos: [specialId('<eos>'), specialId('<end_of_turn>')], pad: specialId('<pad>') }
          : { bos: specialId(bos), eos: [specialId(bos), specialId('<|end|>')], pad: specialId(bos) };
    const byteLevelPost = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true };
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
      // Phi-3 adds no bos (Phi-4-mini's byte-level tokenizer); Llama 3 and Gemma prepend theirs.
      post_processor:
        format === 'phi3'
          ? byteLevelPost
          : {
              type: 'Sequence',
              processors: [
                byteLevelPost,
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
    if (format === 'gemma') {
      files['tokenizer_config.json'] = sorted({
        add_bos_token: true,
        add_eos_token: false,
        added_tokens_decoder: addedTokensDecoder,
        bos_token: bos,
        chat_template: gemmaChatTemplate,
        clean_up_tokenization_spaces: false,
        eos_token: '<end_of_turn>',
        model_max_length: options.modelMaxLength,
        pad_token: '<pad>',
        padding_side: 'left',
        spaces_between_special_tokens: false,
        tokenizer_class: 'GemmaTokenizer',
        unk_token: null,
        use_default_system_prompt: false,
      });
      files['special_tokens_map.json'] = sorted({
        bos_token: tokenEntry(bos),
        eos_token: tokenEntry('<end_of_turn>'),
        pad_token: tokenEntry('<pad>'),
      });
    } else if (format === 'phi3') {
      files['tokenizer_config.json'] = sorted({
        add_bos_token: false,
        add_eos_token: false,
        added_tokens_decoder: addedTokensDecoder,
        bos_token: bos,
        chat_template: phi3ChatTemplate,
        clean_up_tokenization_spaces: false,
        eos_token: bos,
        model_max_length: options.modelMaxLength,
        pad_token: bos,
        tokenizer_class: 'GPT2Tokenizer',
        unk_token: bos,
      });
      files['special_tokens_map.json'] = sorted({
        bos_token: tokenEntry(bos),
        eos_token: tokenEntry(bos),
        pad_token: tokenEntry(bos),
        unk_token: tokenEntry(bos),
      });
    } else {
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
    }
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
      chat_template: format === 'qwen3' ? qwen3ChatTemplate : chatmlChatTemplate,
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
    // Qwen2 and Qwen3 repositories also ship the slow tokenizer's files.
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

/**
 * Writes the test tokenizers in `src/fixtures/` (run: `pnpm --filter @gen/tokenizer build:fixtures`).
 *
 * Each is a real Hugging Face tokenizer directory (`tokenizer.json`, `tokenizer_config.json`,
 * `generation_config.json`) laid out like the model it imitates, with a BPE learned here on `corpus.ts`:
 * - `llama3/`: byte-level BPE with the Llama 3 split regex and special tokens, Llama 3.2 Instruct chat template.
 * - `qwen2/`: byte-level BPE with Qwen2's regex, NFC normalizer, ChatML specials, Qwen2.5 Instruct chat template.
 * - `mistral/`: SentencePiece-style BPE (Metaspace pre-tokenizer, `<0xNN>` byte fallback, `<s>` from the
 *   post-processor), Mistral-7B-Instruct-v0.2 chat template.
 * The output is deterministic: same corpus, same files.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { llama32Instruct, mistralInstruct, qwen25Instruct } from './chat-templates.js';
import { corpus } from './corpus.js';

const fixturesDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'fixtures');

const llama3Regex =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const qwen2Regex =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The same patterns for JavaScript (no inline `(?i:...)` group in Node 20). */
function jsRegExp(pattern: string): RegExp {
  const source = pattern.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])");
  return new RegExp(source, 'gu');
}

/** GPT-2's reversible byte -> printable character table. */
const byteToUnicode: string[] = (() => {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table: string[] = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    table[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(next++);
  }
  return table;
})();

function toByteLevel(text: string): string[] {
  return Array.from(new TextEncoder().encode(text), (byte) => byteToUnicode[byte]!);
}

/**
 * Classic BPE training: count adjacent symbol pairs over the words (weighted by frequency), merge the most frequent
 * pair (ties broken by the pair's text, for determinism), repeat.
 */
function trainBpe(words: Map<string, number>, split: (word: string) => string[], mergeCount: number) {
  const entries = [...words].map(([word, count]) => ({ symbols: split(word), count }));
  const merges: [string, string][] = [];
  for (let step = 0; step < mergeCount; step++) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of entries) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]}\u0000${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    }
    let best: string | undefined;
    let bestCount = 1;
    for (const [key, count] of pairs) {
      if (count > bestCount || (count === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (best === undefined) break;
    const [left, right] = best.split('\u0000') as [string, string];
    merges.push([left, right]);
    for (const entry of entries) {
      const out: string[] = [];
      for (let i = 0; i < entry.symbols.length; i++) {
        if (entry.symbols[i] === left && entry.symbols[i + 1] === right) {
          out.push(left + right);
          i++;
        } else {
          out.push(entry.symbols[i]!);
        }
      }
      entry.symbols = out;
    }
  }
  return merges;
}

function countWords(pieces: Iterable<string>): Map<string, number> {
  const words = new Map<string, number>();
  for (const piece of pieces) words.set(piece, (words.get(piece) ?? 0) + 1);
  return words;
}

interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

function addedToken(id: number, content: string, special = true): AddedToken {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special };
}

function byteLevelModel(regex: string, text: string, mergeCount: number) {
  const pieces = text.match(jsRegExp(regex)) ?? [];
  const words = countWords(pieces.map((piece) => toByteLevel(piece).join('')));
  const merges = trainBpe(words, (word) => Array.from(word), mergeCount);
  const vocab: Record<string, number> = {};
  let id = 0;
  for (const symbol of byteToUnicode) vocab[symbol] = id++;
  for (const [left, right] of merges) {
    if (!(left + right in vocab)) vocab[left + right] = id++;
  }
  return { vocab, merges: merges.map(([left, right]) => `${left} ${right}`), size: id };
}

function addedTokensDecoder(tokens: AddedToken[]) {
  return Object.fromEntries(
    tokens.map(({ id, ...rest }) => [
      String(id),
      {
        content: rest.content,
        lstrip: rest.lstrip,
        normalized: rest.normalized,
        rstrip: rest.rstrip,
        single_word: rest.single_word,
        special: rest.special,
      },
    ]),
  );
}

function write(name: string, files: Record<string, unknown>) {
  const dir = join(fixturesDir, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, value] of Object.entries(files)) {
    writeFileSync(join(dir, file), `${JSON.stringify(value, null, 2)}\n`);
  }
}

function splitPreTokenizer(regex: string) {
  return { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false };
}

function buildLlama3() {
  const bpe = byteLevelModel(llama3Regex, corpus, 600);
  const names = [
    '<|begin_of_text|>',
    '<|end_of_text|>',
    '<|reserved_special_token_0|>',
    '<|reserved_special_token_1|>',
    '<|finetune_right_pad_id|>',
    '<|reserved_special_token_2|>',
    '<|start_header_id|>',
    '<|end_header_id|>',
    '<|eom_id|>',
    '<|eot_id|>',
    '<|python_tag|>',
  ];
  const added = names.map((content, index) => addedToken(bpe.size + index, content));
  const idOf = (content: string) => added.find((token) => token.content === content)!.id;
  const bos = '<|begin_of_text|>';
  write('llama3', {
    'tokenizer.json': {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          splitPreTokenizer(llama3Regex),
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
        ],
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
            special_tokens: { [bos]: { id: bos, ids: [idOf(bos)], tokens: [bos] } },
          },
        ],
      },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: true,
        vocab: bpe.vocab,
        merges: bpe.merges,
      },
    },
    'tokenizer_config.json': {
      added_tokens_decoder: addedTokensDecoder(added),
      bos_token: bos,
      chat_template: llama32Instruct,
      clean_up_tokenization_spaces: true,
      eos_token: '<|eot_id|>',
      model_input_names: ['input_ids', 'attention_mask'],
      model_max_length: 131072,
      tokenizer_class: 'PreTrainedTokenizerFast',
    },
    'generation_config.json': {
      bos_token_id: idOf(bos),
      do_sample: true,
      eos_token_id: [idOf('<|end_of_text|>'), idOf('<|eom_id|>'), idOf('<|eot_id|>')],
      temperature: 0.6,
      top_p: 0.9,
      transformers_version: '4.45.0.dev0',
    },
  });
}

function buildQwen2() {
  const bpe = byteLevelModel(qwen2Regex, corpus.normalize('NFC'), 600);
  const specs: [string, boolean][] = [
    ['<|endoftext|>', true],
    ['<|im_start|>', true],
    ['<|im_end|>', true],
    ['<|object_ref_start|>', true],
    ['<|object_ref_end|>', true],
    ['<tool_call>', false],
    ['</tool_call>', false],
    ['<|fim_prefix|>', false],
    ['<|fim_middle|>', false],
    ['<|fim_suffix|>', false],
  ];
  const added = specs.map(([content, special], index) => addedToken(bpe.size + index, content, special));
  const idOf = (content: string) => added.find((token) => token.content === content)!.id;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  write('qwen2', {
    'tokenizer.json': {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: { type: 'NFC' },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [splitPreTokenizer(qwen2Regex), byteLevel] },
      post_processor: byteLevel,
      decoder: byteLevel,
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: '',
        end_of_word_suffix: '',
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab: bpe.vocab,
        merges: bpe.merges,
      },
    },
    'tokenizer_config.json': {
      add_bos_token: false,
      add_prefix_space: false,
      added_tokens_decoder: addedTokensDecoder(added),
      additional_special_tokens: ['<|im_start|>', '<|im_end|>', '<|object_ref_start|>', '<|object_ref_end|>'],
      bos_token: null,
      chat_template: qwen25Instruct,
      clean_up_tokenization_spaces: false,
      eos_token: '<|im_end|>',
      errors: 'replace',
      model_max_length: 131072,
      pad_token: '<|endoftext|>',
      split_special_tokens: false,
      tokenizer_class: 'Qwen2Tokenizer',
      unk_token: null,
    },
    'generation_config.json': {
      bos_token_id: idOf('<|endoftext|>'),
      pad_token_id: idOf('<|endoftext|>'),
      do_sample: true,
      eos_token_id: [idOf('<|im_end|>'), idOf('<|endoftext|>')],
      repetition_penalty: 1.05,
      temperature: 0.7,
      top_p: 0.8,
      top_k: 20,
      transformers_version: '4.37.0',
    },
  });
}

function buildMistral() {
  // SentencePiece view of the text: spaces become "▁", the text gets a leading "▁", words start at each "▁".
  const metaspace = `▁${corpus.replaceAll(' ', '▁')}`;
  const words = countWords(metaspace.split(/(?=▁)/u));
  // Characters seen fewer than 4 times stay out of the vocabulary and are encoded as <0xNN> byte tokens.
  const charCounts = new Map<string, number>();
  for (const char of metaspace) charCounts.set(char, (charCounts.get(char) ?? 0) + 1);
  const chars = [...charCounts]
    .filter(([char, count]) => count >= 4 && char !== '\n')
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([char]) => char);
  const known = new Set(chars);
  // Train on words whose characters are all in the vocabulary (SentencePiece never merges byte pieces).
  const trainable = new Map([...words].filter(([word]) => Array.from(word).every((char) => known.has(char))));
  const merges = trainBpe(trainable, (word) => Array.from(word), 400);
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  let id = 3;
  for (let byte = 0; byte < 256; byte++) {
    vocab[`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`] = id++;
  }
  for (const [left, right] of merges) {
    if (!(left + right in vocab)) vocab[left + right] = id++;
  }
  for (const char of chars) {
    if (!(char in vocab)) vocab[char] = id++;
  }
  const added = [addedToken(0, '<unk>'), addedToken(1, '<s>'), addedToken(2, '</s>')];
  write('mistral', {
    'tokenizer.json': {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [
          { SpecialToken: { id: '<s>', type_id: 0 } },
          { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: '<s>', type_id: 1 } },
          { Sequence: { id: 'B', type_id: 1 } },
        ],
        special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
      },
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          { type: 'Strip', content: ' ', start: 1, stop: 0 },
        ],
      },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: '<unk>',
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: true,
        byte_fallback: true,
        ignore_merges: false,
        vocab,
        merges: merges.map(([left, right]) => `${left} ${right}`),
      },
    },
    'tokenizer_config.json': {
      add_bos_token: true,
      add_eos_token: false,
      added_tokens_decoder: addedTokensDecoder(added),
      additional_special_tokens: [],
      bos_token: '<s>',
      chat_template: mistralInstruct,
      clean_up_tokenization_spaces: false,
      eos_token: '</s>',
      legacy: false,
      model_max_length: 1000000000000000019884624838656,
      pad_token: null,
      sp_model_kwargs: {},
      spaces_between_special_tokens: false,
      tokenizer_class: 'LlamaTokenizer',
      unk_token: '<unk>',
      use_default_system_prompt: false,
    },
    'generation_config.json': { bos_token_id: 1, eos_token_id: 2, transformers_version: '4.36.0' },
  });
}

buildLlama3();
buildQwen2();
buildMistral();
console.log(`wrote llama3, qwen2 and mistral tokenizers to ${fixturesDir}`);

/**
 * Tokenizers from GGUF metadata: `tokenizer.ggml.*` rendered as the `tokenizer.json` / `tokenizer_config.json` /
 * `generation_config.json` that the original Hugging Face model ships, so GGUF models tokenize, decode and apply their
 * chat template through the same code as model directories.
 *
 * - `gpt2` (byte-level BPE: Llama 3, Qwen2, GPT-2 style): the vocabulary and merges as stored; the pre-tokenizer from
 *   `tokenizer.ggml.pre` (the Split regex of the original tokenizer.json, as llama.cpp maps these names).
 * - `llama` (SentencePiece BPE with byte fallback: Llama 2, Mistral): merges derived from the token scores, as
 *   transformers does when it loads a GGUF tokenizer (every split of a piece into two pieces of the vocabulary, ranked
 *   by the piece's score), `▁` for spaces with `tokenizer.ggml.add_space_prefix`, `<0xNN>` byte tokens.
 */
import {
  endOfGenerationIds,
  getArray,
  getBoolean,
  getNumber,
  getNumberArray,
  getString,
  GgufError,
  readGgufFile,
  type MetadataSource,
} from '@gen/gguf';
import { TokenizerError } from './errors.js';
import type { TokenizerFiles } from './types.js';

/** llama.cpp's token types (`enum llama_token_type`), as stored in `tokenizer.ggml.token_type`. */
const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

interface PreTokenizer {
  normalizer: Record<string, unknown> | null;
  preTokenizer: Record<string, unknown>;
  /** Whether the original BPE model skips merges for words that are whole tokens (Llama 3's `ignore_merges`). */
  ignoreMerges: boolean;
}

const split = (pattern: string) => ({
  type: 'Split',
  pattern: { Regex: pattern },
  behavior: 'Isolated',
  invert: false,
});

/** `tokenizer.ggml.pre` values with an exact tokenizer.json equivalent, grouped as llama.cpp groups them. */
const PRE_TOKENIZERS: Record<string, PreTokenizer> = {};
for (const name of ['llama3', 'llama-v3', 'llama-bpe', 'falcon3', 'pixtral']) {
  PRE_TOKENIZERS[name] = {
    normalizer: null,
    preTokenizer: {
      type: 'Sequence',
      pretokenizers: [
        split(LLAMA3_SPLIT),
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    ignoreMerges: true,
  };
}
for (const name of ['qwen2', 'deepseek-r1-qwen']) {
  PRE_TOKENIZERS[name] = {
    normalizer: { type: 'NFC' },
    preTokenizer: {
      type: 'Sequence',
      pretokenizers: [
        split(QWEN2_SPLIT),
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    ignoreMerges: false,
  };
}
for (const name of ['gpt-2', 'phi-2']) {
  PRE_TOKENIZERS[name] = {
    normalizer: null,
    preTokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    ignoreMerges: false,
  };
}

/** The `tokenizer.ggml.pre` values {@link tokenizerFilesFromGguf} understands (for `tokenizer.ggml.model` gpt2). */
export const GGUF_PRE_TOKENIZERS: readonly string[] = Object.keys(PRE_TOKENIZERS);

function required<T>(value: T | undefined, key: string, source: string): T {
  if (value === undefined) throw new TokenizerError(`${source} has no '${key}': it holds no tokenizer`);
  return value;
}

/**
 * Renders the tokenizer stored in a GGUF file's metadata as Hugging Face tokenizer files, for {@link loadTokenizer}.
 *
 * @param metadata a parsed GGUF file (`readGguf` / `readGgufFile` of `@gen/gguf`) or its metadata map.
 * @param source the file's name, for error messages.
 * @throws {TokenizerError} when the metadata holds no tokenizer, a tokenizer model other than `gpt2` / `llama`, a
 *   `tokenizer.ggml.pre` without an exact equivalent (its name and the supported ones are in the message), or
 *   inconsistent arrays.
 */
export function tokenizerFilesFromGguf(metadata: MetadataSource, source = 'the GGUF file'): TokenizerFiles {
  try {
    return render(metadata, source);
  } catch (error) {
    if (GgufError.isInstance(error)) {
      throw new TokenizerError(`${source}: ${(error as Error).message}`, { cause: error });
    }
    throw error;
  }
}

function render(metadata: MetadataSource, source: string): TokenizerFiles {
  const model = required(getString(metadata, 'tokenizer.ggml.model'), 'tokenizer.ggml.model', source);
  const tokens = required(getArray(metadata, 'tokenizer.ggml.tokens', 'string'), 'tokenizer.ggml.tokens', source);
  const types = getNumberArray(metadata, 'tokenizer.ggml.token_type');
  if (types !== undefined && types.length !== tokens.length) {
    throw new TokenizerError(
      `${source}: tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`,
    );
  }
  const typeOf = (id: number): number => types?.[id] ?? TOKEN_TYPE.NORMAL;
  const idOf = (key: string): number | undefined => {
    const id = getNumber(metadata, key);
    if (id === undefined) return undefined;
    if (!Number.isInteger(id) || id < 0 || id >= tokens.length) {
      throw new TokenizerError(`${source}: ${key} = ${id} is not a token id (${tokens.length} tokens)`);
    }
    return id;
  };
  const bos = idOf('tokenizer.ggml.bos_token_id');
  const eos = idOf('tokenizer.ggml.eos_token_id');
  idOf('tokenizer.ggml.eot_token_id'); // validated: end of generation below
  idOf('tokenizer.ggml.eom_token_id');
  const unk = idOf('tokenizer.ggml.unknown_token_id');
  const pad = idOf('tokenizer.ggml.padding_token_id');
  const addBos = getBoolean(metadata, 'tokenizer.ggml.add_bos_token') ?? model === 'llama';
  const addEos = getBoolean(metadata, 'tokenizer.ggml.add_eos_token') ?? false;

  // Control and user-defined tokens are added tokens (special or not), as in the original tokenizer.json.
  const addedTokens: Record<string, unknown>[] = [];
  const added = new Set<number>();
  for (let id = 0; id < tokens.length; id++) {
    const type = typeOf(id);
    const special = type === TOKEN_TYPE.CONTROL || (type === TOKEN_TYPE.UNKNOWN && model === 'llama');
    if (!special && type !== TOKEN_TYPE.USER_DEFINED) continue;
    added.add(id);
    addedTokens.push({
      id,
      content: tokens[id],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: !special,
      special,
    });
  }

  let tokenizerJson: Record<string, unknown>;
  if (model === 'gpt2') {
    const pre = getString(metadata, 'tokenizer.ggml.pre') ?? 'gpt-2';
    const shape = PRE_TOKENIZERS[pre];
    if (shape === undefined) {
      throw new TokenizerError(
        `${source}: tokenizer.ggml.pre "${pre}" has no exact tokenizer.json equivalent here (supported: ${GGUF_PRE_TOKENIZERS.join(', ')}); pass the model's tokenizer.json instead`,
      );
    }
    const merges = required(getArray(metadata, 'tokenizer.ggml.merges', 'string'), 'tokenizer.ggml.merges', source);
    const vocab: Record<string, number> = {};
    for (let id = 0; id < tokens.length; id++) if (!added.has(id)) vocab[tokens[id]!] = id;
    const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
    tokenizerJson = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: shape.normalizer,
      pre_tokenizer: shape.preTokenizer,
      post_processor: withTemplate(byteLevel, tokens, addBos ? bos : undefined, addEos ? eos : undefined),
      decoder: byteLevel,
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: shape.ignoreMerges,
        vocab,
        merges: [...merges],
      },
    };
  } else if (model === 'llama') {
    const scores = required(getArray(metadata, 'tokenizer.ggml.scores', 'float32'), 'tokenizer.ggml.scores', source);
    if (scores.length !== tokens.length) {
      throw new TokenizerError(
        `${source}: tokenizer.ggml.scores has ${scores.length} entries for ${tokens.length} tokens`,
      );
    }
    const vocab: Record<string, number> = {};
    for (let id = 0; id < tokens.length; id++) vocab[tokens[id]!] = id;
    const addSpacePrefix = getBoolean(metadata, 'tokenizer.ggml.add_space_prefix') ?? true;
    tokenizerJson = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: {
        type: 'Metaspace',
        replacement: '▁',
        prepend_scheme: addSpacePrefix ? 'first' : 'never',
        split: false,
      },
      post_processor: withTemplate(null, tokens, addBos ? bos : undefined, addEos ? eos : undefined),
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          ...(addSpacePrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
        ],
      },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: unk === undefined ? null : tokens[unk],
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: true,
        byte_fallback: true,
        ignore_merges: false,
        vocab,
        merges:
          getArray(metadata, 'tokenizer.ggml.merges', 'string')?.map((merge) => merge.split(' ')) ??
          mergesFromScores(tokens, scores),
      },
    };
  } else {
    throw new TokenizerError(
      `${source}: tokenizer.ggml.model "${model}" is not supported (supported: gpt2 byte-level BPE, llama SentencePiece)`,
    );
  }

  const name = (id: number | undefined) => (id === undefined ? null : tokens[id]!);
  const template = getString(metadata, 'tokenizer.chat_template');
  const contextLength = contextLengthOf(metadata);
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: addBos,
    add_eos_token: addEos,
    bos_token: name(bos),
    eos_token: name(eos),
    pad_token: name(pad),
    unk_token: name(unk),
    clean_up_tokenization_spaces: false,
    tokenizer_class: 'PreTrainedTokenizerFast',
    ...(contextLength === undefined ? {} : { model_max_length: contextLength }),
    ...(template === undefined ? {} : { chat_template: template }),
  };
  // End of generation, as llama.cpp decides it when it loads a GGUF (eos, eot, eom and tokens known by name).
  const ends = endOfGenerationIds(metadata);
  const generationConfig: Record<string, unknown> = {
    ...(bos === undefined ? {} : { bos_token_id: bos }),
    ...(ends.length === 0 ? {} : { eos_token_id: ends.length === 1 ? ends[0] : ends }),
    ...(pad === undefined ? {} : { pad_token_id: pad }),
  };
  return { tokenizerJson, tokenizerConfig, generationConfig, source };
}

function contextLengthOf(metadata: MetadataSource): number | undefined {
  const architecture = getString(metadata, 'general.architecture');
  return architecture === undefined ? undefined : getNumber(metadata, `${architecture}.context_length`);
}

/** The post-processor: `base` plus a TemplateProcessing that adds bos / eos when the file says so. */
function withTemplate(
  base: Record<string, unknown> | null,
  tokens: readonly string[],
  bos: number | undefined,
  eos: number | undefined,
): Record<string, unknown> | null {
  if (bos === undefined && eos === undefined) return base;
  const piece = (id: number, typeId: number) => ({ SpecialToken: { id: tokens[id], type_id: typeId } });
  const single: unknown[] = [];
  const pair: unknown[] = [];
  if (bos !== undefined) single.push(piece(bos, 0));
  single.push({ Sequence: { id: 'A', type_id: 0 } });
  if (eos !== undefined) single.push(piece(eos, 0));
  if (bos !== undefined) pair.push(piece(bos, 0));
  pair.push({ Sequence: { id: 'A', type_id: 0 } });
  if (eos !== undefined) pair.push(piece(eos, 0));
  if (bos !== undefined) pair.push(piece(bos, 1));
  pair.push({ Sequence: { id: 'B', type_id: 1 } });
  if (eos !== undefined) pair.push(piece(eos, 1));
  const specials: Record<string, unknown> = {};
  for (const id of [bos, eos]) {
    if (id !== undefined) specials[tokens[id]!] = { id: tokens[id], ids: [id], tokens: [tokens[id]] };
  }
  const template = { type: 'TemplateProcessing', single, pair, special_tokens: specials };
  return base === null ? template : { type: 'Sequence', processors: [base, template] };
}

/**
 * SentencePiece BPE merges from piece scores, as transformers derives them when a GGUF file has no merges
 * (`GGUFTokenizerSkeleton`): for every piece, in id order, each split into two pieces of the vocabulary is a merge
 * (a piece's splits ordered by the halves' scores, highest first); then all merges are ranked by the merged piece's
 * score, highest first, keeping that order among equal scores.
 */
export function mergesFromScores(tokens: readonly string[], scores: ArrayLike<number>): string[][] {
  const ids = new Map<string, number>();
  tokens.forEach((token, id) => ids.set(token, id));
  const merges: { pair: string[]; score: number }[] = [];
  const local: { pair: string[]; left: number; right: number }[] = [];
  for (let id = 0; id < tokens.length; id++) {
    const chars = Array.from(tokens[id]!);
    local.length = 0;
    for (let cut = 1; cut < chars.length; cut++) {
      const left = chars.slice(0, cut).join('');
      const right = chars.slice(cut).join('');
      const leftId = ids.get(left);
      const rightId = ids.get(right);
      if (leftId === undefined || rightId === undefined) continue;
      local.push({ pair: [left, right], left: scores[leftId]!, right: scores[rightId]! });
    }
    local.sort((x, y) => y.left - x.left || y.right - x.right);
    for (const { pair } of local) merges.push({ pair, score: scores[id]! });
  }
  merges.sort((x, y) => y.score - x.score);
  return merges.map((merge) => merge.pair);
}

/**
 * Reads only the metadata of a GGUF file (any size) and renders its tokenizer ({@link tokenizerFilesFromGguf}).
 *
 * @throws {TokenizerError} when the file cannot be read or parsed, or holds no supported tokenizer.
 */
export async function readGgufTokenizerFiles(path: string): Promise<TokenizerFiles> {
  let file;
  try {
    file = await readGgufFile(path, { metadataOnly: true });
  } catch (error) {
    throw new TokenizerError(`Cannot read the GGUF file ${path}: ${(error as Error).message}`, { cause: error });
  }
  return tokenizerFilesFromGguf(file, path);
}

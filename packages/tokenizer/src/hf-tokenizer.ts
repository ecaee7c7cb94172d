import { Tokenizer as HfTokenizerCore } from '@huggingface/tokenizers';
import { ChatTemplateRenderer, parseChatTemplates } from './chat-template.js';
import { TokenizerError } from './errors.js';
import { alignOffsets, createSurfaceFunction } from './offsets.js';
import { createWindowStreamDecoder } from './stream-decoder.js';
import { createTokenBytesFunction, decodesByConcatenation } from './token-bytes.js';
import type {
  ChatMessage,
  ChatTemplateOptions,
  DecodeOptions,
  EncodeOptions,
  StreamDecoder,
  StreamDecoderOptions,
  TokenWithOffsets,
  Tokenizer,
} from './types.js';

/** UTF-8 with replacement characters, keeping byte order marks (as the Rust decoder and `keepByteOrderMarks`). */
const midSequenceDecoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** Parsed tokenizer files, as `loadTokenizer` hands them over. */
export interface ParsedTokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown> | undefined;
  generationConfig: Record<string, unknown> | undefined;
  chatTemplate: string | undefined;
  /** Where each file came from, for error messages. */
  sources: { tokenizerJson: string; tokenizerConfig: string; chatTemplate: string };
}

/**
 * The part of `@huggingface/tokenizers`' Tokenizer used here. Its bundled declarations use extensionless relative
 * imports, which NodeNext resolution cannot follow, so the class would otherwise be typed `any`.
 */
interface CoreTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[]; tokens: string[] };
  decode(ids: number[], options: { clean_up_tokenization_spaces?: boolean }): string;
  token_to_id(token: string): number | undefined;
  model: { vocab: (string | undefined)[] } | null;
  decoder: unknown;
}

/** `model_max_length` values transformers writes when there is no limit (`int(1e30)`). */
const noLimitSentinel = 1e20;

/** A special-token field of tokenizer_config.json: a string, an AddedToken object `{ content }`, or null. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

function idList(value: unknown): number[] {
  if (typeof value === 'number' && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((id): id is number => typeof id === 'number' && Number.isInteger(id));
  return [];
}

/** Replaces the TextDecoders of ByteFallback decoders so that a U+FEFF byte sequence is kept, as in Rust. */
function keepByteOrderMarks(decoder: unknown): void {
  if (typeof decoder !== 'function' && (typeof decoder !== 'object' || decoder === null)) return;
  const record = decoder as { decoders?: unknown; config?: { type?: unknown }; text_decoder?: unknown };
  if (Array.isArray(record.decoders)) for (const inner of record.decoders) keepByteOrderMarks(inner);
  if (record.config?.type === 'ByteFallback' && record.text_decoder instanceof TextDecoder) {
    record.text_decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  }
}

/** The `Tokenizer` over `@huggingface/tokenizers` (encode/decode) and `@huggingface/jinja` (chat templates). */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosToken: string | undefined;
  readonly bosTokenId: number | undefined;
  readonly eosToken: string | undefined;
  readonly eosTokenId: number | undefined;
  readonly padToken: string | undefined;
  readonly padTokenId: number | undefined;
  readonly unkToken: string | undefined;
  readonly unkTokenId: number | undefined;
  readonly modelMaxLength: number | undefined;
  readonly chatTemplate: string | undefined;
  readonly chatTemplateNames: readonly string[];

  readonly #core: CoreTokenizer;
  readonly #vocab: readonly (string | undefined)[];
  readonly #special: ReadonlySet<number>;
  /** `decode([id])` by id: the stream decoders' one-token windows (decode is a pure function of the ids). */
  readonly #singleTokenTexts: Array<string | undefined> = [];
  /** Whether `prepareStreamDecoding` filled the per-id tables: `decode` may then join texts. */
  #tablesComplete = false;
  readonly #added: ReadonlyMap<number, string>;
  readonly #generationEos: readonly number[];
  readonly #prefixIds: readonly number[];
  readonly #suffixIds: readonly number[];
  readonly #surface: (token: string) => Uint8Array;
  readonly #renderer: ChatTemplateRenderer;
  readonly #decoderConfig: unknown;
  #tokenBytes: ((token: string) => Uint8Array) | undefined;
  /**
   * The text each vocabulary token adds mid-sequence (its token bytes as UTF-8), by id, for the stream decoders'
   * fast path; `null` for ids that have none (added, special or unknown ids). Undefined until first needed, and
   * `false` when the decoder does not decode by concatenation (see `decodesByConcatenation`).
   */
  #midTexts: Array<string | null | undefined> | false | undefined;
  #allTokenBytes: readonly (Uint8Array | undefined)[] | undefined;

  constructor(files: ParsedTokenizerFiles) {
    const config = files.tokenizerConfig ?? {};
    const json: Record<string, unknown> = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      added_tokens: [],
      ...files.tokenizerJson,
    };
    if (typeof json['model'] !== 'object' || json['model'] === null) {
      throw new TokenizerError(`${files.sources.tokenizerJson} has no "model" object; is it a tokenizer.json?`);
    }
    const additional = Array.isArray(config['additional_special_tokens'])
      ? config['additional_special_tokens'].map(tokenContent).filter((token): token is string => token !== undefined)
      : [];
    try {
      this.#core = new HfTokenizerCore(json, { ...config, additional_special_tokens: additional }) as CoreTokenizer;
    } catch (error) {
      throw new TokenizerError(
        `Cannot build a tokenizer from ${files.sources.tokenizerJson}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    keepByteOrderMarks(this.#core.decoder);
    const model = this.#core.model;
    this.#vocab = model === null ? [] : model.vocab;
    this.vocabSize = this.#vocab.length;

    const added = new Map<number, string>();
    const special = new Set<number>();
    for (const token of json['added_tokens'] as Array<{ id: number; content: string; special?: boolean }>) {
      added.set(token.id, token.content);
      if (token.special === true) special.add(token.id);
    }
    for (const token of additional) {
      const id = this.#core.token_to_id(token);
      if (id !== undefined) special.add(id);
    }
    this.#added = added;
    this.#special = special;

    const named = (field: string): [string | undefined, number | undefined] => {
      const content = tokenContent(config[field]);
      return [content, content === undefined ? undefined : this.#core.token_to_id(content)];
    };
    [this.bosToken, this.bosTokenId] = named('bos_token');
    [this.eosToken, this.eosTokenId] = named('eos_token');
    [this.padToken, this.padTokenId] = named('pad_token');
    [this.unkToken, this.unkTokenId] = named('unk_token');
    const maxLength = config['model_max_length'];
    this.modelMaxLength =
      typeof maxLength === 'number' && Number.isFinite(maxLength) && maxLength > 0 && maxLength < noLimitSentinel
        ? maxLength
        : undefined;
    this.#generationEos = idList(files.generationConfig?.['eos_token_id']);

    [this.#prefixIds, this.#suffixIds] = this.#specialLayout(config);
    this.#surface = createSurfaceFunction(json['decoder']);
    this.#decoderConfig = json['decoder'];

    const templates = parseChatTemplates(config['chat_template'] ?? files.chatTemplate, files.sources.chatTemplate);
    this.chatTemplate = templates.single ?? templates.named.get('default');
    this.chatTemplateNames = [...templates.named.keys()];
    const variables: Record<string, unknown> = {};
    for (const field of ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token']) {
      const content = tokenContent(config[field]);
      if (content !== undefined) variables[field] = content;
    }
    variables['additional_special_tokens'] = additional;
    this.#renderer = new ChatTemplateRenderer(templates, variables);
  }

  /**
   * The ids the post-processor puts before and after a text, found by encoding a probe with and without special
   * tokens, then corrected by the config's explicit `add_bos_token` / `add_eos_token` (what transformers'
   * LlamaTokenizerFast does when it rebuilds its post-processor from those flags).
   */
  #specialLayout(config: Record<string, unknown>): [number[], number[]] {
    const probe = 'a';
    const core = this.#core.encode(probe, { add_special_tokens: false }).ids;
    const full = this.#core.encode(probe, { add_special_tokens: true }).ids;
    let prefix: number[] = [];
    let suffix: number[] = [];
    for (let at = 0; at + core.length <= full.length; at++) {
      if (core.every((id, k) => full[at + k] === id)) {
        prefix = full.slice(0, at);
        suffix = full.slice(at + core.length);
        break;
      }
    }
    const bos = this.bosTokenId;
    if (bos !== undefined) {
      if (config['add_bos_token'] === true && prefix[0] !== bos) prefix = [bos, ...prefix];
      if (config['add_bos_token'] === false && prefix[0] === bos) prefix = prefix.slice(1);
    }
    const eos = this.eosTokenId;
    if (eos !== undefined) {
      if (config['add_eos_token'] === true && suffix.at(-1) !== eos) suffix = [...suffix, eos];
      if (config['add_eos_token'] === false && suffix.at(-1) === eos) suffix = suffix.slice(0, -1);
    }
    return [prefix, suffix];
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = this.#core.encode(text, { add_special_tokens: false }).ids;
    return options.addSpecialTokens === false ? ids : [...this.#prefixIds, ...ids, ...this.#suffixIds];
  }

  tokenBytes(id: number): Uint8Array | undefined {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.#special.has(id)) return undefined;
    const content = this.#added.get(id);
    if (content !== undefined) return new TextEncoder().encode(content);
    const token = this.#vocab[id];
    if (token === undefined) return undefined;
    this.#tokenBytes ??= createTokenBytesFunction(this.#decoderConfig);
    return this.#tokenBytes(token);
  }

  vocabularyBytes(): readonly (Uint8Array | undefined)[] {
    if (this.#allTokenBytes === undefined) {
      const all: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(this.vocabSize);
      for (let id = 0; id < this.vocabSize; id++) all[id] = this.tokenBytes(id);
      this.#allTokenBytes = all;
    }
    return this.#allTokenBytes;
  }

  encodeWithOffsets(text: string, options: EncodeOptions = {}): TokenWithOffsets[] {
    const { ids, tokens } = this.#core.encode(text, { add_special_tokens: false });
    const surfaces = tokens.map((token, k) => {
      const content = this.#added.get(ids[k]!);
      return content === undefined ? this.#surface(token) : new TextEncoder().encode(content);
    });
    const chars = Array.from(text);
    const spans = alignOffsets(text, surfaces);
    const body = ids.map((id, k) => {
      const [start, stop] = spans[k]!;
      return { id, text: chars.slice(start, stop).join(''), start, stop };
    });
    if (options.addSpecialTokens === false) return body;
    const empty = (id: number): TokenWithOffsets => ({ id, text: '', start: 0, stop: 0 });
    return [...this.#prefixIds.map(empty), ...body, ...this.#suffixIds.map(empty)];
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const skipSpecial = options.skipSpecialTokens ?? false;
    if (this.#tablesComplete && options.cleanUpTokenizationSpaces !== true) {
      const joined = this.#joinedText(ids, skipSpecial);
      if (joined !== undefined) return joined;
    }
    const kept = ids.filter((id) => this.#vocab[id] !== undefined && !(skipSpecial && this.#special.has(id)));
    if (kept.length === 0) return '';
    return this.#core.decode(kept, { clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? false });
  }

  idToToken(id: number): string | undefined {
    return this.#vocab[id];
  }

  tokenToId(token: string): number | undefined {
    return this.#core.token_to_id(token);
  }

  isSpecial(id: number): boolean {
    return this.#special.has(id);
  }

  eosTokenIds(extra?: number | readonly number[] | null): number[] {
    const ids = new Set<number>();
    if (this.eosTokenId !== undefined) ids.add(this.eosTokenId);
    for (const id of this.#generationEos) ids.add(id);
    for (const id of idList(extra)) ids.add(id);
    return [...ids];
  }

  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string {
    return this.#renderer.render(messages, options);
  }

  /**
   * `decode(ids)` from the per-id tables, without running the decoder chain, where that is exact: the decoder
   * decodes by concatenation (`#midTexts`), and every kept id is a vocabulary token whose bytes are whole UTF-8
   * characters (so the bytes' decoding is the concatenation of the tokens' texts), the first of which decodes
   * alone to a non-empty text (so whatever the decoder does to the start, stripping a leading space, ended inside
   * it). Then the text is the first id's `decode([id])` followed by the others' mid-sequence texts. Undefined
   * otherwise (added or special tokens kept, partial characters, an empty first token): the caller decodes.
   * Measured: the final decode of a 32-token reply, which the engine does once per choice while the batch waits,
   * took 87 µs after a llama.cpp decode step emptied the caches.
   */
  #joinedText(ids: readonly number[], skipSpecial: boolean): string | undefined {
    const mids = this.#midTexts;
    if (!Array.isArray(mids)) return undefined;
    let text: string | undefined;
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      const mid = mids[id];
      if (typeof mid !== 'string') {
        // No mid-sequence text: outside the vocabulary (decode drops it), special, or added.
        if (this.#vocab[id] === undefined || (skipSpecial && this.#special.has(id))) continue;
        return undefined;
      }
      if (mid === '' || mid.includes('\uFFFD')) return undefined;
      if (text === undefined) {
        text = this.#singleTokenTexts[id];
        if (text === undefined || text === '') return undefined;
      } else text += mid;
    }
    return text ?? '';
  }

  /** See `#midTexts`; undefined where the fast path does not apply. */
  #midText(id: number): string | undefined {
    if (this.#midTexts === undefined) {
      this.#midTexts = decodesByConcatenation(this.#decoderConfig) ? [] : false;
    }
    if (this.#midTexts === false) return undefined;
    let text = this.#midTexts[id];
    if (text === undefined) {
      const token = this.#vocab[id];
      text =
        token === undefined || this.#added.has(id) || this.#special.has(id)
          ? null
          : midSequenceDecoder.decode((this.#tokenBytes ??= createTokenBytesFunction(this.#decoderConfig))(token));
      this.#midTexts[id] = text;
    }
    return text ?? undefined;
  }

  /**
   * Fills the stream decoders' per-id tables (`decode([id])` and the mid-sequence text) for the whole vocabulary:
   * measured about 2 µs per id (71 ms for 32,000 ids on the benchmarks' machine).
   */
  prepareStreamDecoding(): void {
    if (this.#tablesComplete) return;
    for (let id = 0; id < this.vocabSize; id++) {
      if (this.#vocab[id] === undefined) continue;
      this.#singleTokenTexts[id] ??= this.decode([id]);
      this.#midText(id);
    }
    this.#tablesComplete = true;
  }

  createStreamDecoder(options: StreamDecoderOptions = {}): StreamDecoder {
    const skipSpecial = options.skipSpecialTokens ?? false;
    return createWindowStreamDecoder(
      (ids) => {
        // Every generated token decodes a one-token window once (the text already emitted): memoized per id.
        if (ids.length !== 1) return this.decode(ids);
        const id = ids[0]!;
        let text = this.#singleTokenTexts[id];
        if (text === undefined) this.#singleTokenTexts[id] = text = this.decode(ids);
        return text;
      },
      (id) => this.#vocab[id] === undefined || (skipSpecial && this.#special.has(id)),
      options.promptTokens ?? [],
      (id) => this.#midText(id),
    );
  }
}

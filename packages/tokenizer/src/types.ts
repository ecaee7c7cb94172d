/**
 * Where {@link loadTokenizer} reads a tokenizer from: a model directory path, or the parsed (or raw JSON) contents of
 * its files.
 */
export type TokenizerSource = string | TokenizerFiles;

/** The files of a Hugging Face tokenizer, already in memory. Objects or JSON text are both accepted. */
export interface TokenizerFiles {
  /** `tokenizer.json` (the `tokenizers` library's serialization: model, normalizer, decoder, added tokens...). */
  tokenizerJson: string | Record<string, unknown>;
  /**
   * `tokenizer_config.json` (special tokens, `chat_template`, `add_bos_token`, ...). Without it the tokenizer has no
   * bos / eos / pad names and no chat template.
   */
  tokenizerConfig?: string | Record<string, unknown> | null;
  /** `generation_config.json`; its `eos_token_id` (a number or a list) joins {@link Tokenizer.eosTokenIds}. */
  generationConfig?: string | Record<string, unknown> | null;
  /**
   * A chat template kept outside `tokenizer_config.json` (recent transformers save `chat_template.jinja`); used only
   * when the config has no `chat_template`.
   */
  chatTemplate?: string | null;
  /** Where these files came from, for error messages. Defaults to `"the given tokenizer files"`. */
  source?: string;
}

/** Options of {@link Tokenizer.encode} and {@link Tokenizer.encodeWithOffsets}. */
export interface EncodeOptions {
  /**
   * Add the special tokens the model expects around a text (its bos token for Llama and Mistral; nothing for Qwen2).
   * They come from the tokenizer's `post_processor`, corrected by `add_bos_token` / `add_eos_token` when
   * `tokenizer_config.json` sets them. Default `true`, as in transformers and TGI. Pass `false` for text that is
   * already a rendered chat template (the template writes the bos token itself).
   */
  addSpecialTokens?: boolean;
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Leave out special tokens ({@link Tokenizer.isSpecial}). Default `false`. */
  skipSpecialTokens?: boolean;
  /**
   * Apply transformers' `clean_up_tokenization_spaces` rewrite (`" ."` -> `"."`, `" n't"` -> `"n't"`, ...).
   * Default `false`: TGI (the Rust tokenizer) never applies it, and streamed text could not match it.
   */
  cleanUpTokenizationSpaces?: boolean;
}

/** One token of an encoded text with the part of the input it came from (TGI's `/tokenize` item). */
export interface TokenWithOffsets {
  /** The token id. */
  id: number;
  /**
   * The input text between `start` and `stop`. Empty for special tokens the post-processor added (bos...). A token
   * that holds only part of a character's UTF-8 bytes covers the whole character, so neighbours may overlap.
   */
  text: string;
  /** Offset of the first covered character, in Unicode code points (TGI, Python string indices). */
  start: number;
  /** Offset just past the last covered character, in code points; `start === stop` for added special tokens. */
  stop: number;
}

/** A part of a multimodal message content (`{ type: 'text', text }` and friends); passed to the template as is. */
export interface ChatContentPart {
  type: string;
  text?: string;
  [field: string]: unknown;
}

/**
 * A chat message as the chat template sees it. Field names are the wire ones (`tool_calls`, `tool_call_id`, `name`),
 * since templates read them; fields whose value is `undefined` are dropped before rendering.
 */
export interface ChatMessage {
  role: string;
  content?: string | readonly ChatContentPart[] | null;
  [field: string]: unknown;
}

/** Options of {@link Tokenizer.applyChatTemplate}. */
export interface ChatTemplateOptions {
  /** Append the header that starts the assistant's reply (`add_generation_prompt`). Default `false`. */
  addGenerationPrompt?: boolean;
  /**
   * Leave the final message open so the model continues it (transformers' `continue_final_message`): the rendered
   * text is cut right after that message's content. Not allowed together with `addGenerationPrompt`.
   */
  continueFinalMessage?: boolean;
  /** Tool definitions as JSON schemas (`{ type: 'function', function: { name, description, parameters } }`). */
  tools?: readonly Record<string, unknown>[] | null;
  /** Documents for retrieval-augmented templates (`{ title, text }`). */
  documents?: readonly Record<string, unknown>[] | null;
  /**
   * Which template: the name of one of the model's named templates (`tool_use`, `rag`, ...) or, when it is not a
   * name, a Jinja template string to use instead of the model's.
   */
  chatTemplate?: string;
  /** Extra template variables (`date_string`, `enable_thinking`, `tools_in_user_message`, ...). */
  variables?: Record<string, unknown>;
  /** The clock for the template's `strftime_now`. Default: the current time. */
  now?: Date;
}

/** Options of {@link Tokenizer.createStreamDecoder}. */
export interface StreamDecoderOptions {
  /** Leave out special tokens, exactly as {@link DecodeOptions.skipSpecialTokens} does. Default `false`. */
  skipSpecialTokens?: boolean;
  /**
   * The prompt's token ids. Only the last few are used, as context: they decide the spacing of the first generated
   * token (a SentencePiece `▁word` after a prompt decodes to `" word"`, at the start of a text to `"word"`), as in TGI.
   */
  promptTokens?: readonly number[];
}

/**
 * Turns generated token ids into text deltas, one call per token.
 *
 * Guarantee: after each {@link StreamDecoder.push}, the concatenation of all returned deltas is a prefix of the
 * full decode of the pushed tokens (with the same `skipSpecialTokens`), and after {@link StreamDecoder.flush} it is
 * equal to it. A delta never ends in a character that later tokens could still change: while the decoded text ends in
 * U+FFFD (an incomplete UTF-8 sequence, say the first byte of an emoji) nothing is emitted. Each push decodes only a
 * short window of tokens (TGI's and vLLM's `decode_token` technique), so a token costs O(window), not O(length).
 */
export interface StreamDecoder {
  /** Adds a token; returns the text it completes (often one word piece, `""` while a character is incomplete). */
  push(id: number): string;
  /** Emits whatever is held back (an incomplete character decodes to U+FFFD here). Call it when the sequence ends. */
  flush(): string;
}

/**
 * A Hugging Face tokenizer: `tokenizer.json` for text <-> ids, `tokenizer_config.json` for special tokens and the
 * chat template. Created by {@link loadTokenizer}.
 */
export interface Tokenizer {
  /** Number of token ids: one more than the largest id of the vocabulary and the added tokens. */
  readonly vocabSize: number;
  /** The bos token's text (`<|begin_of_text|>`, `<s>`), from `tokenizer_config.json`. */
  readonly bosToken: string | undefined;
  /** The bos token's id. */
  readonly bosTokenId: number | undefined;
  /** The eos token's text (`<|eot_id|>`, `<|im_end|>`, `</s>`), from `tokenizer_config.json`. */
  readonly eosToken: string | undefined;
  /** The eos token's id. See {@link Tokenizer.eosTokenIds} for all the ids that end a generation. */
  readonly eosTokenId: number | undefined;
  /** The padding token's text. */
  readonly padToken: string | undefined;
  /** The padding token's id. */
  readonly padTokenId: number | undefined;
  /** The unknown token's text (`<unk>`), for tokenizers that have one. */
  readonly unkToken: string | undefined;
  /** The unknown token's id. */
  readonly unkTokenId: number | undefined;
  /** `model_max_length` from `tokenizer_config.json`; `undefined` when absent or the "no limit" sentinel (1e30). */
  readonly modelMaxLength: number | undefined;
  /** The template {@link Tokenizer.applyChatTemplate} uses by default, if the model has one. */
  readonly chatTemplate: string | undefined;
  /** Names of the model's named chat templates (`default`, `tool_use`, ...); empty for a single template. */
  readonly chatTemplateNames: readonly string[];

  /** Encodes text to token ids. */
  encode(text: string, options?: EncodeOptions): number[];
  /** Encodes text to tokens with their code-point offsets into `text` (TGI's `/tokenize`). */
  encodeWithOffsets(text: string, options?: EncodeOptions): TokenWithOffsets[];
  /**
   * Decodes token ids to text. Ids outside the vocabulary are ignored (as the Rust tokenizer does), so an id a model
   * samples from the padded part of its embedding decodes to nothing.
   */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** The token's string in the vocabulary (byte-level `Ġhello`, SentencePiece `▁hello`, `<0x0A>`...). */
  idToToken(id: number): string | undefined;
  /**
   * The bytes token `id` adds to the text when it is decoded in the middle of a sequence: a byte-level token's raw
   * bytes (`Ġhello` -> ` hello`, possibly part of a character's UTF-8), a SentencePiece `▁` as a space (0x20; only the
   * first token of a text loses it, when the decoder strips it), `<0xNN>` as that one byte, a non-special added
   * token's content in UTF-8. `undefined` for special tokens ({@link Tokenizer.isSpecial}: bos, eos, `<|im_end|>`...)
   * and ids outside the vocabulary. Constrained decoding builds its token masks from these.
   *
   * @throws {TokenizerError} naming the decoder type when the tokenizer.json decoder cannot be mapped to bytes
   *   exactly (a regex `Replace`, `WordPiece`, `CTC`, no decoder...).
   */
  tokenBytes(id: number): Uint8Array | undefined;
  /**
   * {@link Tokenizer.tokenBytes} of every id below {@link Tokenizer.vocabSize}, computed once and cached (do not
   * modify the arrays).
   *
   * @throws {TokenizerError} as {@link Tokenizer.tokenBytes}.
   */
  vocabularyBytes(): readonly (Uint8Array | undefined)[];
  /** The id of a vocabulary string or added token. */
  tokenToId(token: string): number | undefined;
  /**
   * True for special tokens: added tokens marked `special` in `tokenizer.json` and the config's
   * `additional_special_tokens`. These are what `skipSpecialTokens` leaves out.
   */
  isSpecial(id: number): boolean;
  /**
   * The ids that end a generation: the config's eos token, `generation_config.json`'s `eos_token_id` (Llama 3
   * Instruct lists `<|end_of_text|>`, `<|eom_id|>` and `<|eot_id|>` there) and `extra`, without duplicates.
   */
  eosTokenIds(extra?: number | readonly number[] | null): number[];
  /**
   * Renders a conversation with the model's chat template (Jinja, as transformers does). The template sees
   * `messages`, `add_generation_prompt`, `tools` and `documents` (`none` when not given), `bos_token`, `eos_token`,
   * `unk_token`, `pad_token`, `additional_special_tokens`, the functions `raise_exception(message)` and
   * `strftime_now(format)`, and `variables`.
   *
   * @throws {ChatTemplateError} when the model has no template, it does not parse, it raises or it fails.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
  /** A new incremental detokenizer; see {@link StreamDecoder} for its guarantee. */
  createStreamDecoder(options?: StreamDecoderOptions): StreamDecoder;
  /**
   * Optional: computes now, for every vocabulary id, what stream decoders otherwise compute (and keep) the first
   * time they meet an id, so streaming never pays for a first sight (a few µs per id, tens of µs right after a
   * forward pass has emptied the CPU caches). Idempotent; the engine calls it when it is created.
   */
  prepareStreamDecoding?(): void;
}

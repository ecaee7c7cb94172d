export { loadTokenizer } from './load-tokenizer.js';
export { GGUF_PRE_TOKENIZERS, mergesFromScores, readGgufTokenizerFiles, tokenizerFilesFromGguf } from './gguf.js';
export { ChatTemplateError, TokenizerError, type ChatTemplateErrorKind } from './errors.js';
export type {
  ChatContentPart,
  ChatMessage,
  ChatTemplateOptions,
  DecodeOptions,
  EncodeOptions,
  StreamDecoder,
  StreamDecoderOptions,
  TokenWithOffsets,
  Tokenizer,
  TokenizerFiles,
  TokenizerSource,
} from './types.js';

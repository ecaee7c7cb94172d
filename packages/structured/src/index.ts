export type { ByteAutomaton, Grammar } from './types.js';
export type { LanguageNode } from './ast.js';
export type { CompileOptions } from './dfa.js';
export {
  ConstraintViolationError,
  InvalidGrammarError,
  StructuredError,
  UnsupportedRegexError,
  UnsupportedSchemaError,
} from './errors.js';
export {
  choiceGrammar,
  compileGrammar,
  jsonObjectGrammar,
  jsonSchemaGrammar,
  literalGrammar,
  matches,
  regexGrammar,
  repeatGrammar,
  sequenceGrammar,
} from './grammar.js';
export {
  ANNOTATION_KEYWORDS,
  MAX_NUMBER_DIGITS,
  SUPPORTED_FORMATS,
  UNSUPPORTED_KEYWORDS,
  type JsonOptions,
  type JsonSchemaOptions,
} from './json-schema.js';
export { TokenVocabulary, vocabularyFromTokenizer, type VocabularySource } from './vocabulary.js';
export { TokenMaskIndex, type TokenMask } from './token-index.js';
export {
  constraintFromAutomaton,
  constraintState,
  createConstraintProcessor,
  type ConstraintOptions,
  type ConstraintState,
} from './constraint.js';
export { constraintFor, maskIndexFor } from './cache.js';

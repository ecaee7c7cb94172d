import type { LogitsProcessor } from '@gen/sampling';
import { constraintFor, vocabularyFromTokenizer, type Grammar } from '@gen/structured';
import type { LoadedModel } from '../context.js';
import { grammarStep } from './grammars.js';

/**
 * The logits processor that holds a request's output to `grammar` on `model`'s vocabulary. The vocabulary (token
 * bytes, trie) is built once per tokenizer and the compiled automaton and its token masks are cached per grammar,
 * so a repeated schema costs nothing to set up. `param` is the field an error names.
 */
export function constraintProcessors(model: LoadedModel, grammar: Grammar, param: string): LogitsProcessor[] {
  const vocabulary = vocabularyFromTokenizer(model.tokenizer, {
    size: model.backend.model.vocabSize,
    eosTokenIds: model.backend.model.eosTokenIds,
  });
  return [grammarStep(param, param, () => constraintFor(grammar, vocabulary))];
}

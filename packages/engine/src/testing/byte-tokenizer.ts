import type { EngineTokenizer } from '../types.js';

/** Ids of the byte tokenizer's special tokens. */
export const BYTE_TOKENIZER_BOS = 0;
export const BYTE_TOKENIZER_EOS = 1;
const FIRST_BYTE = 3;

/**
 * A byte-level tokenizer for engine tests: ids 0-2 are `<s>`, `</s>`, `<pad>`, ids 3-258 are the 256 bytes, and
 * ids from 259 up to `vocabSize` are special `<extra_N>` tokens. Text decodes as UTF-8, so multi-byte characters
 * span tokens and exercise the stream decoder's hold-back.
 */
export function createByteTokenizer(vocabSize = 259): EngineTokenizer {
  const decoder = new TextDecoder('utf-8');
  const specialText = (id: number): string =>
    id === BYTE_TOKENIZER_BOS ? '<s>' : id === BYTE_TOKENIZER_EOS ? '</s>' : id === 2 ? '<pad>' : `<extra_${id}>`;
  const isSpecial = (id: number) => id < FIRST_BYTE || id >= FIRST_BYTE + 256;
  const decode = (ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string => {
    let text = '';
    let bytes: number[] = [];
    const flushBytes = () => {
      if (bytes.length > 0) text += decoder.decode(Uint8Array.from(bytes));
      bytes = [];
    };
    for (const id of ids) {
      if (isSpecial(id)) {
        flushBytes();
        if (options.skipSpecialTokens !== true) text += specialText(id);
      } else bytes.push(id - FIRST_BYTE);
    }
    flushBytes();
    return text;
  };
  return {
    encode(text, options = {}) {
      const ids = Array.from(new TextEncoder().encode(text), (byte) => byte + FIRST_BYTE);
      return options.addSpecialTokens === false ? ids : [BYTE_TOKENIZER_BOS, ...ids];
    },
    decode,
    isSpecial: (id) => isSpecial(id) && id < vocabSize,
    createStreamDecoder(options = {}) {
      const ids: number[] = [];
      let emitted = 0;
      return {
        push(id) {
          ids.push(id);
          const text = decode(ids, options);
          if (text.endsWith('\uFFFD')) return '';
          const delta = text.slice(emitted);
          emitted = text.length;
          return delta;
        },
        flush() {
          const text = decode(ids, options);
          const delta = text.slice(emitted);
          emitted = text.length;
          return delta;
        },
      };
    },
  };
}

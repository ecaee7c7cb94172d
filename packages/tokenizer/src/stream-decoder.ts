import type { StreamDecoder } from './types.js';

/** How many trailing prompt tokens give the first generated token its context (TGI uses 5). */
const promptContext = 5;
/** Drop consumed tokens once this many pile up in front of the window. */
const compactThreshold = 256;

function commonPrefixLength(a: string, b: string): number {
  const limit = Math.min(a.length, b.length);
  let k = 0;
  while (k < limit && a.charCodeAt(k) === b.charCodeAt(k)) k++;
  return k;
}

/**
 * The incremental detokenizer of TGI (`decode_token`) and vLLM: keep two offsets into the token list, `prefix` and
 * `read`. The text of `[prefix, read)` was already emitted; decode `[prefix, end)` and emit what it adds, unless it
 * ends in U+FFFD (a character whose bytes are still arriving), in which case hold everything back and retry on the
 * next token. Decoding a window that starts a few tokens back (rather than the new token alone) gives the tokenizer's
 * decoder the context it needs: SentencePiece decoders strip the leading space of the *first* token only, and byte
 * sequences split across tokens are joined before UTF-8 decoding.
 *
 * `decode` must be the tokenizer's full decode of a list of ids (without skipping: `skip` filters specials here).
 *
 * `midText`, when given, is the text an id adds in the middle of a sequence, for tokenizers whose decode is the UTF-8
 * decoding of the tokens' concatenated bytes (undefined for ids it does not hold for: added tokens). Then the usual
 * step (nothing held back, a window text that is not empty and ends on a whole character, a new token whose text is
 * whole) needs no decode at all: the window's text grows by exactly that token's text. Any other step takes the
 * window decode, so the deltas are the same either way.
 */
export function createWindowStreamDecoder(
  decode: (ids: readonly number[]) => string,
  skip: (id: number) => boolean,
  promptTokens: readonly number[],
  midText?: (id: number) => string | undefined,
): StreamDecoder {
  let tokens: number[] = [];
  for (let k = promptTokens.length - 1; k >= 0 && tokens.length < promptContext; k--) {
    const id = promptTokens[k]!;
    if (!skip(id)) tokens.unshift(id);
  }
  let prefixOffset = 0;
  let readOffset = tokens.length;
  let prefixText = decode(tokens);

  const advance = (text: string, common: number): string => emit(text.slice(common));
  /** Emits `delta`: the tokens up to the end are now read, and the window starts where the last one began. */
  const emit = (delta: string): string => {
    prefixOffset = readOffset;
    readOffset = tokens.length;
    if (prefixOffset >= compactThreshold) {
      tokens = tokens.slice(prefixOffset);
      readOffset -= prefixOffset;
      prefixOffset = 0;
    }
    prefixText = decode(tokens.slice(prefixOffset, readOffset));
    return delta;
  };

  /** Whether the window `[prefixOffset, readOffset)` is followed by nothing held back and can be extended by text. */
  const extendable = (): boolean => {
    if (readOffset !== tokens.length - 1 || prefixText === '' || prefixText.endsWith('\uFFFD')) return false;
    for (let k = prefixOffset; k < readOffset; k++) if (midText!(tokens[k]!) === undefined) return false;
    return true;
  };

  return {
    push(id) {
      if (skip(id)) return '';
      tokens.push(id);
      if (midText !== undefined) {
        const piece = midText(id);
        if (piece !== undefined && piece !== '' && !piece.endsWith('\uFFFD') && extendable()) {
          return emit(piece);
        }
      }
      const text = decode(tokens.slice(prefixOffset));
      // prefixText is normally a prefix of text; it is not when the prompt context ends inside a character.
      const common = commonPrefixLength(prefixText, text);
      if (text.length <= common || text.endsWith('\uFFFD')) return '';
      return advance(text, common);
    },
    flush() {
      if (readOffset === tokens.length) return '';
      const text = decode(tokens.slice(prefixOffset));
      return advance(text, commonPrefixLength(prefixText, text));
    },
  };
}

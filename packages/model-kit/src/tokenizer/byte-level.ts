/**
 * GPT-2 byte-level encoding: every byte maps to one printable Unicode character, so BPE works on strings with no
 * control characters or spaces (a space byte is `Ġ`, a newline `Ċ`), and any text round-trips.
 */

/** `byteToUnicode[b]` is the character that stands for byte `b` (the table of GPT-2's `bytes_to_unicode`). */
export const byteToUnicode: readonly string[] = (() => {
  const table: string[] = new Array<string>(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(printable(b) ? b : 256 + next++);
  return table;
})();

const utf8 = new TextEncoder();

/** The byte-level form of `text`: its UTF-8 bytes, each replaced by its {@link byteToUnicode} character. */
export function toByteLevel(text: string): string {
  let out = '';
  for (const byte of utf8.encode(text)) out += byteToUnicode[byte]!;
  return out;
}

/**
 * Pre-tokenizer split patterns as written in `tokenizer.json` (Rust `fancy-regex` / Oniguruma syntax).
 * `llama3` keeps up to three digits together; `chatml` (Qwen2) splits every digit.
 */
export const splitPatterns = {
  llama3:
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  chatml:
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
} as const;

/**
 * The same pattern as a JavaScript RegExp. Node 20's V8 has no inline `(?i:...)` groups, so the contraction
 * alternatives are spelled out with character classes.
 */
export function splitRegExp(pattern: string): RegExp {
  const contractions = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
  return new RegExp(pattern.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", contractions), 'gu');
}

/** Splits `text` the way the `Split` pre-tokenizer with behaviour `Isolated` does: matches and gaps, in order. */
export function preTokenize(text: string, regExp: RegExp): string[] {
  const pieces: string[] = [];
  let last = 0;
  for (const match of text.matchAll(regExp)) {
    if (match.index > last) pieces.push(text.slice(last, match.index));
    if (match[0].length > 0) pieces.push(match[0]);
    last = match.index + match[0].length;
  }
  if (last < text.length) pieces.push(text.slice(last));
  return pieces;
}

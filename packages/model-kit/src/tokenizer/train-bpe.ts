import { byteToUnicode, preTokenize, toByteLevel } from './byte-level.js';

/** A learned byte-level BPE model: `vocab[id]` is the token string, `merges` in rank order. */
export interface BpeModel {
  vocab: string[];
  merges: Array<[string, string]>;
}

/**
 * Learns byte-level BPE merges from `text` (the classic algorithm: repeatedly merge the most frequent adjacent
 * pair within pre-tokenized words). Ids 0–255 are the single bytes in byte order; each merge that makes a new
 * string adds the next id. Stops at `vocabSize` tokens or when no pair occurs `minFrequency` times. Ties between
 * equally frequent pairs go to the pair with the smaller ids, so the result is deterministic.
 */
export function trainByteLevelBpe(
  text: string,
  options: { splitRegExp: RegExp; vocabSize: number; minFrequency?: number },
): BpeModel {
  const minFrequency = options.minFrequency ?? 2;
  const vocab = [...byteToUnicode];
  const ids = new Map(vocab.map((token, id) => [token, id] as const));
  const wordCounts = new Map<string, number>();
  for (const piece of preTokenize(text, options.splitRegExp)) {
    const word = toByteLevel(piece);
    wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
  }
  const words = [...wordCounts.entries()].map(([word, count]) => ({
    symbols: [...word].map((char) => ids.get(char)!),
    count,
  }));
  const merges: Array<[string, string]> = [];
  const pairKey = (left: number, right: number) => left * 0x100000 + right;
  while (vocab.length < options.vocabSize) {
    const counts = new Map<number, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = pairKey(symbols[i]!, symbols[i + 1]!);
        counts.set(key, (counts.get(key) ?? 0) + count);
      }
    }
    let bestKey = -1;
    let bestCount = 0;
    for (const [key, count] of counts) {
      if (count > bestCount || (count === bestCount && key < bestKey)) {
        bestKey = key;
        bestCount = count;
      }
    }
    if (bestKey < 0 || bestCount < minFrequency) break;
    const left = Math.floor(bestKey / 0x100000);
    const right = bestKey % 0x100000;
    const token = vocab[left]! + vocab[right]!;
    let merged = ids.get(token);
    if (merged === undefined) {
      merged = vocab.length;
      vocab.push(token);
      ids.set(token, merged);
    }
    merges.push([vocab[left]!, vocab[right]!]);
    for (const word of words) {
      const { symbols } = word;
      if (symbols.length < 2) continue;
      const out: number[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === left && symbols[i + 1] === right) {
          out.push(merged);
          i++;
        } else {
          out.push(symbols[i]!);
        }
      }
      word.symbols = out;
    }
  }
  return { vocab, merges };
}

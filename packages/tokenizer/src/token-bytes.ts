/**
 * The bytes a vocabulary token adds to the text when it is decoded in the middle of a sequence, derived exactly from
 * the tokenizer.json `decoder` configuration (constrained decoding builds its token masks from these).
 *
 * Supported decoders, in the orders real tokenizers use them: `ByteLevel` (GPT-2's byte <-> unicode table: Llama 3,
 * Qwen2/3, GPT-2), `Metaspace` and `Replace` with a string pattern (`▁` -> space: Llama 2, Mistral, Gemma),
 * `ByteFallback` (`<0xNN>` -> that byte), `Fuse`, `Strip` after `Fuse` or `ByteLevel` (it only trims the start or end
 * of the whole text, never the middle), `BPEDecoder` (its suffix becomes a space mid-sequence), and `Sequence` of
 * these. A `<0xNN>` token stays that byte even when a later Replace/Metaspace would rewrite the character a run of
 * such tokens spells (a `▁` written as three byte tokens, which encoding never produces). Anything else (a regex `Replace`, `WordPiece`, `CTC`, no decoder, a per-token `Strip`...) cannot be mapped
 * exactly and throws a {@link TokenizerError} naming the decoder type.
 */
import { TokenizerError } from './errors.js';

const textEncoder = new TextEncoder();

/** GPT-2's byte-level alphabet, reversed: printable character code -> byte. */
const unicodeToByte: ReadonlyMap<number, number> = (() => {
  const printable = new Set<number>();
  for (let b = 0x21; b <= 0x7e; b++) printable.add(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.add(b);
  for (let b = 0xae; b <= 0xff; b++) printable.add(b);
  const table = new Map<number, number>();
  let next = 256;
  for (let b = 0; b < 256; b++) table.set(printable.has(b) ? b : next++, b);
  return table;
})();

type Step =
  { kind: 'replace'; from: string; to: string } | { kind: 'byte-fallback' } | { kind: 'byte-level' } | { kind: 'fuse' };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unsupported(type: string, why: string): TokenizerError {
  return new TokenizerError(`Cannot derive token bytes from the tokenizer.json decoder ${type}: ${why}`);
}

/**
 * Flattens the decoder into per-token steps, throwing for what has no exact per-token meaning. `changesEnd`: some
 * step also rewrites the end of the whole text (`BPEDecoder` drops the last token's suffix, `Strip` with `stop`).
 */
function plan(decoder: unknown): { steps: Step[]; changesEnd: boolean } {
  if (!isRecord(decoder)) throw unsupported('null', 'without a decoder, tokens are joined by spaces');
  const steps: Step[] = [];
  let changesEnd = false;
  // True once the tokens have been joined into one text (Fuse, ByteLevel): later steps see the whole text.
  let fused = false;
  let bytes = false;
  const visit = (node: unknown): void => {
    if (!isRecord(node)) throw unsupported(String(node), 'not a decoder object');
    const type = typeof node['type'] === 'string' ? node['type'] : '(untyped)';
    const perToken = (why: string): void => {
      if (fused) throw unsupported(type, `${why} after the tokens were joined`);
    };
    switch (type) {
      case 'Sequence': {
        const inner = node['decoders'];
        if (!Array.isArray(inner)) throw unsupported(type, 'no "decoders" list');
        for (const child of inner) visit(child);
        return;
      }
      case 'ByteLevel':
        perToken('ByteLevel');
        if (bytes) throw unsupported(type, 'ByteLevel after ByteFallback');
        steps.push({ kind: 'byte-level' });
        fused = true;
        bytes = true;
        return;
      case 'ByteFallback':
        perToken('ByteFallback');
        steps.push({ kind: 'byte-fallback' });
        bytes = true;
        return;
      case 'Metaspace': {
        perToken('Metaspace');
        const replacement = typeof node['replacement'] === 'string' ? node['replacement'] : '\u2581';
        // Mid-sequence the replacement is a space; only the first token of a text loses it (prepend_scheme).
        steps.push({ kind: 'replace', from: replacement, to: ' ' });
        return;
      }
      case 'Replace': {
        perToken('Replace');
        const pattern = node['pattern'];
        if (!isRecord(pattern) || typeof pattern['String'] !== 'string') {
          throw unsupported(type, 'only string patterns are supported, not regular expressions');
        }
        if (pattern['String'] === '') throw unsupported(type, 'empty pattern');
        steps.push({ kind: 'replace', from: pattern['String'], to: String(node['content'] ?? '') });
        return;
      }
      case 'BPEDecoder': {
        perToken('BPEDecoder');
        const suffix = typeof node['suffix'] === 'string' ? node['suffix'] : '</w>';
        // Every token but the last has its suffix replaced by a space.
        if (suffix !== '') steps.push({ kind: 'replace', from: suffix, to: ' ' });
        changesEnd = true;
        return;
      }
      case 'Fuse':
        steps.push({ kind: 'fuse' });
        fused = true;
        return;
      case 'Strip': {
        const start = Number(node['start'] ?? 0);
        const stop = Number(node['stop'] ?? 0);
        // After a Fuse it trims the start and end of the whole text only; per token it would change the middle.
        if (!fused && (start !== 0 || stop !== 0)) throw unsupported(type, 'Strip applied to each token');
        if (stop !== 0) changesEnd = true;
        return;
      }
      default:
        throw unsupported(type, 'this decoder has no exact per-token byte mapping here');
    }
  };
  visit(decoder);
  return { steps, changesEnd };
}

const byteToken = /^<0x([0-9A-Fa-f]{2})>$/;

/**
 * Whether decoding a list of vocabulary tokens is the UTF-8 decoding of their concatenated
 * {@link createTokenBytesFunction} bytes, up to what the decoder does to the first token and the start of the text:
 * then `decode([...a, b])` is `decode(a)` followed by `b`'s mid-sequence text whenever `decode(a)` is not empty and
 * ends on a whole character. False where a decoder also changes the end of the text (`BPEDecoder` drops the last
 * token's suffix, `Strip` with `stop`) or has no exact per-token bytes.
 */
export function decodesByConcatenation(decoderConfig: unknown): boolean {
  try {
    return !plan(decoderConfig).changesEnd;
  } catch {
    return false;
  }
}

/**
 * Returns a function giving the bytes a vocabulary token string stands for mid-sequence, following `decoderConfig`.
 *
 * @throws {TokenizerError} when the decoder cannot be mapped exactly (see the module comment).
 */
export function createTokenBytesFunction(decoderConfig: unknown): (token: string) => Uint8Array {
  const { steps } = plan(decoderConfig);
  return (token) => {
    let text = token;
    for (const step of steps) {
      switch (step.kind) {
        case 'replace':
          text = text.replaceAll(step.from, step.to);
          break;
        case 'byte-fallback': {
          const match = byteToken.exec(text);
          if (match) return Uint8Array.of(Number.parseInt(match[1]!, 16));
          break;
        }
        case 'byte-level': {
          // As the Rust decoder: a token with a character outside the table keeps its UTF-8 bytes whole.
          const out = new Uint8Array(text.length);
          let n = 0;
          for (const char of text) {
            const byte = unicodeToByte.get(char.codePointAt(0)!);
            if (byte === undefined) return textEncoder.encode(text);
            out[n++] = byte;
          }
          return out.slice(0, n);
        }
        case 'fuse':
          return textEncoder.encode(text);
      }
    }
    return textEncoder.encode(text);
  };
}

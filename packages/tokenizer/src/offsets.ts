/**
 * Token offsets for tokenizers that do not report them (`@huggingface/tokenizers` returns ids and token strings only).
 *
 * Each token's "surface" is the bytes it stands for in the normalized text, read from its string the way the
 * tokenizer's decoder would (byte-level characters -> bytes, `<0xNN>` -> one byte, `▁` -> space, `##` dropped...).
 * The concatenated surfaces are then aligned with the input's UTF-8 bytes: equal bytes pair up one to one, and where
 * they differ (a prepended `▁`, NFC normalization, stripped whitespace) a short resynchronisation search finds the next
 * agreeing run and maps the differing stretch as a block.
 */

const textEncoder = new TextEncoder();

/** GPT-2's byte-level alphabet, reversed: printable character -> byte. */
const unicodeToByte: ReadonlyMap<string, number> = (() => {
  const printable = new Set<number>();
  for (let b = 0x21; b <= 0x7e; b++) printable.add(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.add(b);
  for (let b = 0xae; b <= 0xff; b++) printable.add(b);
  const table = new Map<string, number>();
  let next = 256;
  for (let b = 0; b < 256; b++) {
    table.set(String.fromCharCode(printable.has(b) ? b : next++), b);
  }
  return table;
})();

type SurfaceStep =
  | { kind: 'replace'; from: string; to: string }
  | { kind: 'strip-prefix'; prefix: string }
  | { kind: 'remove'; text: string }
  | { kind: 'byte-level' }
  | { kind: 'byte-fallback' };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function collectSteps(decoder: unknown, steps: SurfaceStep[]): void {
  if (!isRecord(decoder)) return;
  switch (decoder['type']) {
    case 'Sequence':
      for (const inner of Array.isArray(decoder['decoders']) ? decoder['decoders'] : []) collectSteps(inner, steps);
      return;
    case 'ByteLevel':
      steps.push({ kind: 'byte-level' });
      return;
    case 'ByteFallback':
      steps.push({ kind: 'byte-fallback' });
      return;
    case 'Metaspace': {
      const replacement = typeof decoder['replacement'] === 'string' ? decoder['replacement'] : '\u2581';
      steps.push({ kind: 'replace', from: replacement, to: ' ' });
      return;
    }
    case 'Replace': {
      const pattern = decoder['pattern'];
      if (isRecord(pattern) && typeof pattern['String'] === 'string' && pattern['String'] !== '') {
        const content = typeof decoder['content'] === 'string' ? decoder['content'] : '';
        steps.push({ kind: 'replace', from: pattern['String'], to: content });
      }
      return;
    }
    case 'WordPiece':
      steps.push({ kind: 'strip-prefix', prefix: typeof decoder['prefix'] === 'string' ? decoder['prefix'] : '##' });
      return;
    case 'BPEDecoder':
      if (typeof decoder['suffix'] === 'string' && decoder['suffix'] !== '') {
        steps.push({ kind: 'remove', text: decoder['suffix'] });
      }
      return;
    default:
      // Fuse, Strip, CTC: they act on the joined text, not on what a single token stands for.
      return;
  }
}

const byteToken = /^<0x([0-9A-Fa-f]{2})>$/;

/**
 * Returns a function giving the bytes a (non-added) vocabulary token stands for, following the steps of the
 * tokenizer.json `decoder` configuration.
 */
export function createSurfaceFunction(decoderConfig: unknown): (token: string) => Uint8Array {
  const steps: SurfaceStep[] = [];
  collectSteps(decoderConfig, steps);
  const byteLevel = steps.some((step) => step.kind === 'byte-level');
  const byteFallback = steps.some((step) => step.kind === 'byte-fallback');
  return (token) => {
    if (byteFallback) {
      const match = byteToken.exec(token);
      if (match) return Uint8Array.of(Number.parseInt(match[1]!, 16));
    }
    let text = token;
    for (const step of steps) {
      if (step.kind === 'replace') text = text.replaceAll(step.from, step.to);
      else if (step.kind === 'strip-prefix' && text.startsWith(step.prefix)) text = text.slice(step.prefix.length);
      else if (step.kind === 'remove') text = text.replaceAll(step.text, '');
    }
    if (!byteLevel) return textEncoder.encode(text);
    const bytes: number[] = [];
    for (const char of text) {
      const byte = unicodeToByte.get(char);
      if (byte !== undefined) bytes.push(byte);
      else bytes.push(...textEncoder.encode(char));
    }
    return Uint8Array.from(bytes);
  };
}

/** How far (in bytes, on each side) the resynchronisation search looks past a disagreement. */
const resyncWindow = 64;
/** How many equal bytes count as agreement again (fewer at the very end, where both sides end together). */
const resyncRun = 4;

function agrees(surface: Uint8Array, x: number, input: Uint8Array, y: number): boolean {
  const restSurface = surface.length - x;
  const restInput = input.length - y;
  const need = Math.min(resyncRun, restSurface, restInput);
  // A run shorter than resyncRun agrees only as the common end of both: one equal byte near the end of one side
  // is chance (the last byte of 'ㆂ' E3 86 82 against the 82 of a combining U+0302 CC 82 that NFC composed).
  if (need < resyncRun && restSurface !== restInput) return false;
  for (let k = 0; k < need; k++) {
    if (surface[x + k] !== input[y + k]) return false;
  }
  return true;
}

function isSpace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

/**
 * How many bytes to skip on each side before the two byte strings agree again, or undefined. Whitespace that only one
 * side has (a prepended `▁`, spaces an added token's `lstrip` / `rstrip` swallowed) is tried first; otherwise the
 * smallest total skip after which `resyncRun` bytes agree.
 */
function resync(surface: Uint8Array, i: number, input: Uint8Array, j: number): [number, number] | undefined {
  const maxSurface = Math.min(resyncWindow, surface.length - i);
  const maxInput = Math.min(resyncWindow, input.length - j);
  for (let skip = 1; skip <= maxInput && isSpace(input[j + skip - 1]); skip++) {
    if (j + skip === input.length ? i === surface.length : surface[i] === input[j + skip]) return [0, skip];
  }
  for (let skip = 1; skip <= maxSurface && isSpace(surface[i + skip - 1]); skip++) {
    if (i + skip === surface.length ? j === input.length : surface[i + skip] === input[j]) return [skip, 0];
  }
  for (let total = 1; total <= maxSurface + maxInput; total++) {
    for (let skipSurface = Math.max(0, total - maxInput); skipSurface <= Math.min(total, maxSurface); skipSurface++) {
      if (agrees(surface, i + skipSurface, input, j + total - skipSurface)) return [skipSurface, total - skipSurface];
    }
  }
  return undefined;
}

/**
 * Code-point offsets `[start, stop)` of each token in `input`, given each token's surface bytes.
 *
 * A token whose bytes cover part of a character gets the whole character; a token with no counterpart in the input
 * (a prepended `▁` alone) gets an empty span where it sits.
 */
export function alignOffsets(input: string, surfaces: readonly Uint8Array[]): Array<[number, number]> {
  const inputBytes = textEncoder.encode(input);
  // byte index -> code point index
  const charOfByte = new Int32Array(inputBytes.length + 1);
  let byteIndex = 0;
  let charCount = 0;
  for (const char of input) {
    const code = char.codePointAt(0)!;
    const length = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    for (let k = 0; k < length; k++) charOfByte[byteIndex + k] = charCount;
    byteIndex += length;
    charCount++;
  }
  charOfByte[inputBytes.length] = charCount;

  let totalLength = 0;
  for (const surface of surfaces) totalLength += surface.length;
  const joined = new Uint8Array(totalLength);
  let offset = 0;
  for (const surface of surfaces) {
    joined.set(surface, offset);
    offset += surface.length;
  }

  // For every surface byte, the input byte range [from, to) it corresponds to, and the input position it sits at.
  const from = new Int32Array(totalLength);
  const to = new Int32Array(totalLength);
  const cursor = new Int32Array(totalLength + 1);
  let i = 0;
  let j = 0;
  while (i < totalLength) {
    cursor[i] = j;
    if (j < inputBytes.length && joined[i] === inputBytes[j]) {
      from[i] = j;
      to[i] = j + 1;
      i++;
      j++;
      continue;
    }
    const skip = resync(joined, i, inputBytes, j);
    if (skip === undefined) {
      // Nothing agrees nearby: treat this surface byte as inserted by normalization.
      from[i] = j;
      to[i] = j;
      i++;
      continue;
    }
    const [skipSurface, skipInput] = skip;
    for (let k = 0; k < skipSurface; k++) {
      cursor[i + k] = j;
      from[i + k] = j;
      to[i + k] = j + skipInput;
    }
    i += skipSurface;
    j += skipInput;
  }
  cursor[totalLength] = j;

  const spans: Array<[number, number]> = [];
  let position = 0;
  for (const surface of surfaces) {
    let start = Number.POSITIVE_INFINITY;
    let end = -1;
    for (let k = position; k < position + surface.length; k++) {
      if (to[k]! > from[k]!) {
        start = Math.min(start, from[k]!);
        end = Math.max(end, to[k]!);
      }
    }
    if (end < 0) {
      const at = charOfByte[Math.min(cursor[position]!, inputBytes.length)]!;
      spans.push([at, at]);
    } else {
      spans.push([charOfByte[start]!, charOfByte[end - 1]! + 1]);
    }
    position += surface.length;
  }
  return spans;
}

/**
 * Deterministic pseudo-random numbers for weight generation.
 *
 * Every tensor gets its own stream keyed by `(seed, tensor name)`, so a tensor's values do not depend on which other
 * tensors were generated before it, and a writer can produce tensors in any order, or twice, and get the same bytes.
 * The generator is xoshiro128** (32-bit state words, `Math.imul` only), seeded through splitmix32 from a FNV-1a hash
 * of the stream name: pure integer arithmetic, identical on every platform.
 */

/** Returns uint32 values, one per call. */
export type RandomStream = () => number;

const utf8 = new TextEncoder();

/** FNV-1a over the UTF-8 bytes of `text`, 32 bits. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of utf8.encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** splitmix32: a well-mixed sequence of words from one 32-bit state, used only to seed xoshiro. */
function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * A stream of uint32 values determined by `seed` (a non-negative safe integer) and `stream` (any string).
 */
export function createRandomStream(seed: number, stream: string): RandomStream {
  const low = seed >>> 0;
  const high = Math.floor(seed / 0x1_0000_0000) >>> 0;
  const mix = splitmix32(fnv1a(stream) ^ low ^ Math.imul(high, 0x9e3779b1));
  let a = mix();
  let b = mix();
  let c = mix();
  let d = mix();
  if ((a | b | c | d) === 0) a = 1;
  return () => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * Fills `out` with values uniform in `[center - bound, center + bound)` from `random` (24 random bits each).
 * Uniform like PyTorch's default `nn.Linear` (Kaiming-uniform) initialisation; the standard deviation is
 * `bound / sqrt(3)`.
 */
export function fillUniform(out: Float32Array, random: RandomStream, bound: number, center = 0): Float32Array {
  const scale = (2 * bound) / 0x100_0000;
  const offset = center - bound;
  for (let i = 0; i < out.length; i++) out[i] = offset + (random() >>> 8) * scale;
  return out;
}

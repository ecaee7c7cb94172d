/**
 * Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011). A draw is a pure function of (seed, choice index, step, stream), so a seeded request gets the same
 * numbers whatever else runs in the batch, in whatever order rows are processed.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const TWO_POW_32 = 4294967296;

/** High 32 bits of the 64-bit product of two uint32 values, exactly. */
function mulHigh(a: number, b: number): number {
  const aHigh = a >>> 16;
  const aLow = a & 0xffff;
  const bHigh = b >>> 16;
  const bLow = b & 0xffff;
  const lowLow = aLow * bLow;
  const lowHigh = aLow * bHigh;
  const highLow = aHigh * bLow;
  const middle = (lowLow >>> 16) + (lowHigh & 0xffff) + (highLow & 0xffff);
  return (aHigh * bHigh + (lowHigh >>> 16) + (highLow >>> 16) + Math.floor(middle / 65536)) >>> 0;
}

/**
 * Philox4x32 with 10 rounds. Writes 4 uint32 words into `out` (length >= 4) and returns it.
 *
 * @param counter0..counter3 the 128-bit counter, as four uint32 words
 * @param key0,key1 the 64-bit key, as two uint32 words
 */
export function philox4x32(
  counter0: number,
  counter1: number,
  counter2: number,
  counter3: number,
  key0: number,
  key1: number,
  out: Uint32Array,
): Uint32Array {
  let c0 = counter0 >>> 0;
  let c1 = counter1 >>> 0;
  let c2 = counter2 >>> 0;
  let c3 = counter3 >>> 0;
  let k0 = key0 >>> 0;
  let k1 = key1 >>> 0;
  for (let round = 0; round < 10; round++) {
    const high0 = mulHigh(M0, c0);
    const low0 = Math.imul(M0, c0) >>> 0;
    const high1 = mulHigh(M1, c2);
    const low1 = Math.imul(M1, c2) >>> 0;
    c0 = (high1 ^ c1 ^ k0) >>> 0;
    c1 = low1;
    c2 = (high0 ^ c3 ^ k1) >>> 0;
    c3 = low0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
  return out;
}

/** Largest seed accepted: seeds are unsigned 64-bit integers on the wire (TGI), held exactly as doubles. */
export const MAX_SEED = 2 ** 64 - 1;

const words = new Uint32Array(4);

/**
 * A uniform double in [0, 1) with 53 random bits, determined only by its arguments.
 *
 * @param seed non-negative integer below 2^64 (as a double: seeds above 2^53 are used with the value the double holds)
 * @param choice index of the choice within a request (n / best_of), 0 for the first
 * @param step index of the generated token (0 for the first new token)
 * @param stream independent stream number for other uses of randomness at the same step (default 0)
 */
export function uniform(seed: number, choice: number, step: number, stream = 0): number {
  const key1 = Math.floor(seed / TWO_POW_32) >>> 0;
  const key0 = (seed - Math.floor(seed / TWO_POW_32) * TWO_POW_32) >>> 0;
  philox4x32(step >>> 0, Math.floor(step / TWO_POW_32) >>> 0, choice >>> 0, stream >>> 0, key0, key1, words);
  // 27 + 26 bits, as in the classic genrand_res53.
  return ((words[0]! >>> 5) * 67108864 + (words[1]! >>> 6)) / 9007199254740992;
}

/**
 * A fresh random seed in [0, 2^53), from the platform's cryptographic random source, so it can be reported back
 * to the client exactly (JSON numbers are doubles) and reused to reproduce the output.
 */
export function randomSeed(): number {
  const buffer = new Uint32Array(2);
  globalThis.crypto.getRandomValues(buffer);
  return (buffer[0]! & 0x1fffff) * TWO_POW_32 + buffer[1]!;
}

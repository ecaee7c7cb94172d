import { InvalidParameterError } from './errors.js';

/** Number of 32-bit words in the MT19937 state. */
const stateSize = 624;
/** Middle word offset of the MT19937 recurrence. */
const shiftSize = 397;
/** Twist matrix coefficient. */
const matrixA = 0x9908b0df;
const upperMask = 0x80000000;
const lowerMask = 0x7fffffff;
/** Knuth's initialisation multiplier (MT19937 reference `init_genrand`). */
const initMultiplier = 1812433253;
const twoPow32 = 4294967296;

/**
 * The 32-bit Mersenne Twister (Matsumoto & Nishimura 1998), bit-identical to PyTorch's CPU generator
 * (`at::mt19937`, used by `torch.Generator(device="cpu")`) and to C++ `std::mt19937`.
 *
 * Seeding follows the reference `init_genrand`: `state[0] = seed mod 2^32`,
 * `state[j] = (1812433253 * (state[j-1] ^ (state[j-1] >>> 30)) + j) mod 2^32` for `j` in `1..623`.
 * PyTorch's `manual_seed(s)` keeps only the low 32 bits of `s` the same way, so
 * `new Mt19937(s)` reproduces `torch.Generator().manual_seed(s)` for every safe integer `s` (negative seeds are
 * taken modulo 2^32, like the two's-complement truncation in C++).
 *
 * Output: {@link Mt19937.nextUint32} returns the tempered words in reference order; the first value for seed
 * 5489 is 3499211612.
 */
export class Mt19937 {
  private readonly state = new Uint32Array(stateSize);
  private index = stateSize;

  /**
   * @param seed - any safe integer; only `seed mod 2^32` is used.
   * @throws InvalidParameterError (`seed`) when `seed` is not a safe integer.
   */
  constructor(seed: number) {
    this.reseed(seed);
  }

  /**
   * Re-initialises the state in place from `seed` (same rules as the constructor), without allocating.
   *
   * @throws InvalidParameterError (`seed`) when `seed` is not a safe integer.
   */
  reseed(seed: number): void {
    if (!Number.isSafeInteger(seed)) {
      throw new InvalidParameterError({ parameter: 'seed', value: seed, allowed: 'a safe integer' });
    }
    // `%` on doubles is exact for integers, so this is the exact low 32 bits even above 2^32.
    const low = ((seed % twoPow32) + twoPow32) % twoPow32;
    const state = this.state;
    state[0] = low;
    let previous = low;
    for (let j = 1; j < stateSize; j++) {
      previous = (Math.imul(initMultiplier, previous ^ (previous >>> 30)) + j) >>> 0;
      state[j] = previous;
    }
    this.index = stateSize;
  }

  /** Next tempered 32-bit output, an integer in `[0, 2^32)`. */
  nextUint32(): number {
    if (this.index >= stateSize) this.twist();
    let y = this.state[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Regenerates all 624 state words (the MT19937 recurrence). */
  private twist(): void {
    const state = this.state;
    for (let k = 0; k < stateSize; k++) {
      const y = (state[k]! & upperMask) | (state[(k + 1) % stateSize]! & lowerMask);
      state[k] = state[(k + shiftSize) % stateSize]! ^ (y >>> 1) ^ (y & 1 ? matrixA : 0);
    }
    this.index = 0;
  }
}

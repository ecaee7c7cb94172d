import { describe, it, expect } from 'vitest';
import { InvalidParameterError } from './errors.js';
import { Mt19937 } from './mt19937.js';

describe('Mt19937', () => {
  it('matches the reference outputs for the default seed 5489', () => {
    const generator = new Mt19937(5489);
    const first = Array.from({ length: 5 }, () => generator.nextUint32());
    expect(first).toEqual([3499211612, 581869302, 3890346734, 3586334585, 545404204]);
  });

  it('gives 4123659995 as the 10000th output for seed 5489 (C++ std::mt19937 requirement)', () => {
    const generator = new Mt19937(5489);
    let value = 0;
    for (let i = 0; i < 10000; i++) value = generator.nextUint32();
    expect(value).toBe(4123659995);
  });

  it('keeps only the low 32 bits of the seed, negative seeds modulo 2^32', () => {
    const draw = (seed: number): number[] => {
      const generator = new Mt19937(seed);
      return Array.from({ length: 700 }, () => generator.nextUint32());
    };
    expect(draw(2 ** 32 + 7)).toEqual(draw(7));
    expect(draw(15485863 * 151935)).toEqual(draw((15485863 * 151935) % 2 ** 32));
    expect(draw(-1)).toEqual(draw(2 ** 32 - 1));
  });

  it('reseed restarts the sequence', () => {
    const generator = new Mt19937(1);
    const first = generator.nextUint32();
    generator.nextUint32();
    generator.reseed(1);
    expect(generator.nextUint32()).toBe(first);
  });

  it('rejects seeds that are not safe integers', () => {
    for (const seed of [0.5, Number.NaN, Infinity, 2 ** 53]) {
      expect(() => new Mt19937(seed)).toThrow(InvalidParameterError);
    }
  });
});

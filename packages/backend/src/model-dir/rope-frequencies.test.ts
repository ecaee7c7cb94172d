import { describe, expect, it } from 'vitest';
import { ropeInverseFrequencies } from './rope-frequencies.js';

const f32 = (values: number[]): Float32Array => Float32Array.from(values);

describe('ropeInverseFrequencies', () => {
  it('computes theta^(-2i / headDim) rounded to float32 without scaling', () => {
    expect(ropeInverseFrequencies({ headDim: 8, ropeTheta: 10000, ropeScaling: null })).toEqual(
      f32([1, 0.1, 0.01, 0.001]),
    );
  });

  it('divides every frequency by factor for linear scaling', () => {
    expect(
      ropeInverseFrequencies({ headDim: 4, ropeTheta: 10000, ropeScaling: { type: 'linear', factor: 4 } }),
    ).toEqual(f32([0.25, 0.0025]));
  });

  it('keeps high frequencies, divides low ones by factor and blends in between for llama3 scaling', () => {
    // Wavelengths 2π / freq: 6.3, 63, 628 (between high 256 and low 1024: blended), 6283 (above 1024: / factor).
    const result = ropeInverseFrequencies({
      headDim: 8,
      ropeTheta: 10000,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 1024 },
    });
    const blendedFrom = 0.01;
    const smooth = (1024 / ((2 * Math.PI) / blendedFrom) - 1) / (4 - 1);
    expect(result).toEqual(f32([1, 0.1, ((1 - smooth) * blendedFrom) / 8 + smooth * blendedFrom, 0.001 / 8]));
    expect(smooth).toBeGreaterThan(0);
    expect(smooth).toBeLessThan(1);
  });
});

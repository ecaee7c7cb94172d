import { describe, expect, it } from 'vitest';
import { ropeInverseFrequencies, rotaryDependsOnLength, rotaryParameters } from './rope-frequencies.js';

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

describe('rotaryParameters', () => {
  it('uses rotaryDim for partial rotary embeddings', () => {
    expect(rotaryParameters({ headDim: 8, rotaryDim: 4, ropeTheta: 10000, ropeScaling: null }).inverse).toEqual(
      f32([1, 0.01]),
    );
  });

  it('switches longrope from the short to the long factors past originalMaxPositions, with the attention factor', () => {
    const config = {
      headDim: 4,
      ropeTheta: 100,
      ropeScaling: {
        type: 'longrope' as const,
        shortFactor: [1, 2],
        longFactor: [4, 8],
        originalMaxPositions: 16,
        attentionFactor: 1.25,
      },
    };
    expect(rotaryDependsOnLength(config)).toBe(true);
    expect(rotaryParameters(config, { sequenceLength: 16 })).toEqual({
      inverse: f32([1, 1 / 20]),
      attentionFactor: 1.25,
    });
    expect(rotaryParameters(config, { sequenceLength: 17 })).toEqual({
      inverse: f32([1 / 4, 1 / 80]),
      attentionFactor: 1.25,
    });
  });

  it('raises the dynamic NTK base only past max_position_embeddings', () => {
    const config = {
      headDim: 4,
      ropeTheta: 100,
      ropeScaling: { type: 'dynamic' as const, factor: 2, originalMaxPositions: 8 },
    };
    expect(rotaryParameters(config, { sequenceLength: 8 }).inverse).toEqual(f32([1, 0.1]));
    // L = 16: base 100 * (2 * 16 / 8 - 1)^(4 / 2) = 900.
    expect(rotaryParameters(config, { sequenceLength: 16 }).inverse).toEqual(f32([1, 1 / 30]));
  });

  it('blends interpolated and extrapolated frequencies for yarn and returns its attention factor', () => {
    const ropeScaling = {
      type: 'yarn' as const,
      factor: 4,
      originalMaxPositions: 64,
      betaFast: 32,
      betaSlow: 1,
      attentionFactor: 1.1386,
      truncate: true,
    };
    const { inverse, attentionFactor } = rotaryParameters({ headDim: 16, ropeTheta: 10000, ropeScaling });
    expect(attentionFactor).toBe(1.1386);
    const plain = ropeInverseFrequencies({ headDim: 16, ropeTheta: 10000, ropeScaling: null });
    // Dimension 0 rotates many times in 64 positions: extrapolated (kept); the slowest one is interpolated (/ 4).
    expect(inverse[0]).toBe(plain[0]);
    expect(inverse[7]).toBeCloseTo(plain[7]! / 4, 12);
  });

  it('uses the local theta, unscaled, for sliding layers of a model with a local rotary embedding', () => {
    const config = {
      headDim: 4,
      ropeTheta: 10000,
      ropeScaling: { type: 'linear' as const, factor: 2 },
      localRope: { theta: 100, scaling: null },
    };
    expect(rotaryParameters(config, { layerType: 'sliding_attention' }).inverse).toEqual(f32([1, 0.1]));
    expect(rotaryParameters(config, { layerType: 'full_attention' }).inverse).toEqual(f32([0.5, 0.005]));
  });
});

describe('rotaryDependsOnLength', () => {
  it('looks at the scaling of the layer kind asked for', () => {
    const config = {
      headDim: 4,
      ropeTheta: 10000,
      ropeScaling: { type: 'linear' as const, factor: 2 },
      localRope: { theta: 100, scaling: { type: 'dynamic' as const, factor: 2, originalMaxPositions: 8 } },
    };
    expect(rotaryDependsOnLength(config)).toBe(false);
    expect(rotaryDependsOnLength(config, { layerType: 'full_attention' })).toBe(false);
    expect(rotaryDependsOnLength(config, { layerType: 'sliding_attention' })).toBe(true);
    expect(rotaryDependsOnLength({ ...config, localRope: null }, { layerType: 'sliding_attention' })).toBe(false);
  });
});

import type { DecoderModelConfig, LayerAttentionType, RopeScaling } from './model-config.js';

/** The config fields rotary embeddings depend on. */
export type RotaryConfig = Pick<DecoderModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'> &
  Partial<Pick<DecoderModelConfig, 'rotaryDim' | 'localRope'>>;

/** Which rotary embedding to compute: the layer kind and the sequence length of the forward. */
export interface RotaryOptions {
  /** `sliding_attention` layers use {@link DecoderModelConfig.localRope} when the model has one. Default full. */
  readonly layerType?: LayerAttentionType;
  /**
   * Length of the sequence in this forward (its last position + 1), for the length-dependent `dynamic` and
   * `longrope` scalings; ignored by the others. Default 1 (the short / unscaled regime).
   */
  readonly sequenceLength?: number;
}

/** Inverse frequencies of one rotary embedding and the factor on its cos and sin. */
export interface RotaryParameters {
  /** `[rotaryDim / 2]` inverse frequencies, rounded to float32 like the PyTorch buffer. */
  readonly inverse: Float32Array;
  /** Multiplies cos and sin (`attention_scaling` in transformers; 1 unless yarn or longrope). */
  readonly attentionFactor: number;
}

/**
 * Rotary inverse frequencies `theta^(-2i / rotaryDim)` for `i < rotaryDim / 2` (`theta` is `config.ropeTheta`), with
 * `config.ropeScaling` applied as transformers' `ROPE_INIT_FUNCTIONS` do; see {@link rotaryParameters} for the
 * attention factor, local (sliding-layer) embeddings and length-dependent scalings.
 *
 * @param config The model's `headDim`, `rotaryDim` (default `headDim`), `ropeTheta` and `ropeScaling`.
 * @returns `[rotaryDim / 2]` frequencies.
 */
export function ropeInverseFrequencies(config: RotaryConfig): Float32Array {
  return rotaryParameters(config).inverse;
}

/**
 * True when the rotary embedding of a layer kind (default full) depends on the sequence length (`dynamic`,
 * `longrope`): the scaling {@link rotaryParameters} uses for that kind.
 */
export function rotaryDependsOnLength(config: RotaryConfig, options: Pick<RotaryOptions, 'layerType'> = {}): boolean {
  const type = scalingOf(config, options.layerType)?.type;
  return type === 'dynamic' || type === 'longrope';
}

/** The base and scaling of a layer kind: `localRope` for sliding layers of a model that has one. */
function scalingOf(config: RotaryConfig, layerType: LayerAttentionType | undefined): RopeScaling | null {
  const local = layerType === 'sliding_attention' ? config.localRope : null;
  return local === null || local === undefined ? config.ropeScaling : local.scaling;
}

/**
 * The rotary embedding of a layer kind for a forward over a sequence of `sequenceLength` positions, exactly as
 * transformers computes it: inverse frequencies of `rotaryDim` (`head_dim * partial_rotary_factor`) and the factor
 * that multiplies cos and sin. Sliding layers of a model with {@link DecoderModelConfig.localRope} (Gemma 3) use
 * that base and scaling.
 */
export function rotaryParameters(config: RotaryConfig, options: RotaryOptions = {}): RotaryParameters {
  const local = options.layerType === 'sliding_attention' ? config.localRope : null;
  const theta = local?.theta ?? config.ropeTheta;
  const scaling = scalingOf(config, options.layerType);
  const dim = config.rotaryDim ?? config.headDim;
  const sequenceLength = options.sequenceLength ?? 1;
  const half = dim / 2;
  const inverse = new Float32Array(half);
  const base = (b: number, i: number): number => 1 / b ** ((2 * i) / dim);
  const attentionFactor = fill(inverse, scaling, { theta, dim, sequenceLength, base });
  return { inverse, attentionFactor };
}

interface FillContext {
  readonly theta: number;
  readonly dim: number;
  readonly sequenceLength: number;
  readonly base: (theta: number, i: number) => number;
}

function fill(out: Float32Array, scaling: RopeScaling | null, context: FillContext): number {
  const { theta, dim, sequenceLength, base } = context;
  const half = dim / 2;
  switch (scaling?.type) {
    case undefined:
      for (let i = 0; i < half; i++) out[i] = base(theta, i);
      return 1;
    case 'linear':
      for (let i = 0; i < half; i++) out[i] = base(theta, i) / scaling.factor;
      return 1;
    case 'llama3': {
      const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
      const lowFrequencyWavelength = originalMaxPositions / lowFreqFactor;
      const highFrequencyWavelength = originalMaxPositions / highFreqFactor;
      for (let i = 0; i < half; i++) {
        let frequency = base(theta, i);
        const wavelength = (2 * Math.PI) / frequency;
        if (wavelength > lowFrequencyWavelength) {
          frequency /= factor;
        } else if (wavelength >= highFrequencyWavelength) {
          const smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
          frequency = ((1 - smooth) * frequency) / factor + smooth * frequency;
        }
        out[i] = frequency;
      }
      return 1;
    }
    case 'dynamic': {
      // transformers' dynamic_rope_update: unscaled up to max_position_embeddings, then a larger base per length.
      let b = theta;
      const original = scaling.originalMaxPositions;
      if (sequenceLength > original) {
        b = theta * ((scaling.factor * sequenceLength) / original - (scaling.factor - 1)) ** (dim / (dim - 2));
      }
      for (let i = 0; i < half; i++) out[i] = base(b, i);
      return 1;
    }
    case 'yarn': {
      const { factor, originalMaxPositions, betaFast, betaSlow, truncate } = scaling;
      const correction = (rotations: number): number =>
        (dim * Math.log(originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
      let low = correction(betaFast);
      let high = correction(betaSlow);
      if (truncate) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001;
      for (let i = 0; i < half; i++) {
        // transformers computes the ramp and the blend in float32.
        const ramp = Math.min(1, Math.max(0, Math.fround((i - low) / (high - low))));
        const extrapolation = Math.fround(1 - ramp);
        const frequency = Math.fround(base(theta, i));
        const interpolated = Math.fround(frequency / factor);
        out[i] = Math.fround(interpolated * Math.fround(1 - extrapolation)) + Math.fround(frequency * extrapolation);
      }
      return scaling.attentionFactor;
    }
    case 'longrope': {
      const factors = sequenceLength > scaling.originalMaxPositions ? scaling.longFactor : scaling.shortFactor;
      for (let i = 0; i < half; i++) out[i] = 1 / (Math.fround(factors[i]!) * Math.fround(theta ** ((2 * i) / dim)));
      return scaling.attentionFactor;
    }
  }
}

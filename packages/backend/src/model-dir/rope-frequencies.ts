import type { DecoderModelConfig } from './model-config.js';

/**
 * Rotary inverse frequencies `theta^(-2i / headDim)` for `i < headDim / 2` (`theta` is `config.ropeTheta`), with
 * `config.ropeScaling` applied as transformers does: `linear` divides every frequency by `factor`; `llama3`
 * (Llama 3.1) divides low frequencies by `factor`, keeps high ones and interpolates between them
 * (`_compute_llama3_parameters`). Rounded to float32 like the PyTorch buffer.
 *
 * @param config The model's `headDim` (even), `ropeTheta` and `ropeScaling` (`null`: unscaled).
 * @returns `[headDim / 2]` frequencies.
 */
export function ropeInverseFrequencies(
  config: Pick<DecoderModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>,
): Float32Array {
  const { headDim, ropeTheta: theta, ropeScaling: scaling } = config;
  const half = headDim / 2;
  const result = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    let frequency = 1 / theta ** ((2 * i) / headDim);
    if (scaling?.type === 'linear') {
      frequency /= scaling.factor;
    } else if (scaling?.type === 'llama3') {
      const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
      const lowFrequencyWavelength = originalMaxPositions / lowFreqFactor;
      const highFrequencyWavelength = originalMaxPositions / highFreqFactor;
      const wavelength = (2 * Math.PI) / frequency;
      if (wavelength > lowFrequencyWavelength) {
        frequency /= factor;
      } else if (wavelength >= highFrequencyWavelength) {
        const smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        frequency = ((1 - smooth) * frequency) / factor + smooth * frequency;
      }
    }
    result[i] = frequency;
  }
  return result;
}

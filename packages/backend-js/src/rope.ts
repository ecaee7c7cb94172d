import {
  rotaryDependsOnLength,
  rotaryParameters,
  type DecoderModelConfig,
  type LayerAttentionType,
  type RotaryParameters,
} from '@gen/backend';

/**
 * Fills `cos` / `sin` (`[count, inverse.length]`) for rows `[from, from + count)` of `positions`, times
 * `attentionFactor`. The angle `position * invFreq` is rounded to float32 first and cos / sin are float32, as
 * transformers computes them (`inv_freq.float() @ position_ids.float()`, `emb.cos() * attention_scaling`).
 */
export function rotaryTables(
  positions: Int32Array,
  from: number,
  count: number,
  parameters: RotaryParameters,
  cos: Float32Array,
  sin: Float32Array,
): void {
  const { inverse, attentionFactor } = parameters;
  const half = inverse.length;
  for (let t = from; t < from + count; t++) {
    const p = positions[t]!;
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * inverse[i]!);
      if (attentionFactor === 1) {
        cos[t * half + i] = Math.cos(angle);
        sin[t * half + i] = Math.sin(angle);
      } else {
        cos[t * half + i] = Math.fround(Math.cos(angle)) * attentionFactor;
        sin[t * half + i] = Math.fround(Math.sin(angle)) * attentionFactor;
      }
    }
  }
}

/**
 * The rotary parameters of a model, per layer kind, cached unless they depend on the sequence length (`dynamic`,
 * `longrope`), in which case they are computed per segment from its last position + 1.
 */
export class RotaryCache {
  private readonly config: DecoderModelConfig;
  private readonly fixed = new Map<LayerAttentionType, RotaryParameters>();

  constructor(config: DecoderModelConfig) {
    this.config = config;
  }

  /** The kinds of layer whose rotary embeddings differ: `full_attention`, and `sliding_attention` when local. */
  kinds(): LayerAttentionType[] {
    return this.config.localRope === null ? ['full_attention'] : ['full_attention', 'sliding_attention'];
  }

  /** The table kind a layer reads. */
  kindOf(layer: number): LayerAttentionType {
    return this.config.localRope === null ? 'full_attention' : this.config.layerTypes[layer]!;
  }

  /** Parameters for a layer kind and a segment ending at `sequenceLength`. */
  parameters(kind: LayerAttentionType, sequenceLength: number): RotaryParameters {
    const layerType = kind;
    if (rotaryDependsOnLength(this.config, { layerType })) {
      return rotaryParameters(this.config, { layerType, sequenceLength });
    }
    let cached = this.fixed.get(kind);
    if (cached === undefined) {
      cached = rotaryParameters(this.config, { layerType });
      this.fixed.set(kind, cached);
    }
    return cached;
  }
}

/**
 * Rotates `heads` heads of each row in place, in the Hugging Face "rotate_half" layout over the first `rotaryDim`
 * entries of each head: entry `i` pairs with `i + rotaryDim / 2`, `x'[i] = x[i] cos - x[i + half] sin`,
 * `x'[i + half] = x[i + half] cos + x[i] sin`; entries from `rotaryDim` on pass through (partial rotary).
 */
export function applyRotary(
  data: Float32Array,
  count: number,
  heads: number,
  headDim: number,
  rotaryDim: number,
  cos: Float32Array,
  sin: Float32Array,
): void {
  const half = rotaryDim / 2;
  const rowSize = heads * headDim;
  for (let t = 0; t < count; t++) {
    const table = t * half;
    for (let h = 0; h < heads; h++) {
      const base = t * rowSize + h * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[table + i]!;
        const s = sin[table + i]!;
        const x1 = data[base + i]!;
        const x2 = data[base + half + i]!;
        data[base + i] = x1 * c - x2 * s;
        data[base + half + i] = x2 * c + x1 * s;
      }
    }
  }
}

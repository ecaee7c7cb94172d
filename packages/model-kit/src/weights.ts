import { roundToDtype, type WeightDtype } from './dtype.js';
import type { DecoderSpec } from './hf-config.js';
import { createRandomStream, fillUniform } from './prng.js';

/** A tensor of the checkpoint, by its Hugging Face name, with its PyTorch shape (`[out, in]` for projections). */
export interface TensorInfo {
  name: string;
  shape: number[];
}

/** Reads checkpoint tensors as float32 by Hugging Face name. */
export interface WeightSource {
  read(name: string): Promise<Float32Array>;
}

/**
 * The tensors of a decoder checkpoint in transformers' module order (`model.embed_tokens`, each layer's attention
 * (q/k/v/o, or phi3's packed `qkv_proj`; `q_norm` / `k_norm` for qwen3 and gemma3_text), MLP (gate/up/down, or
 * phi3's packed `gate_up_proj`) and norms (gemma's four), `model.norm`, `lm_head` unless tied).
 */
export function decoderTensors(spec: DecoderSpec): TensorInfo[] {
  const { hiddenSize: h, intermediateSize: m, numHeads, numKvHeads, headDim } = spec;
  const q = numHeads * headDim;
  const kv = numKvHeads * headDim;
  const tensors: TensorInfo[] = [{ name: 'model.embed_tokens.weight', shape: [spec.vocabSize, h] }];
  for (let i = 0; i < spec.numLayers; i++) {
    const p = `model.layers.${i}`;
    const linear = (name: string, out: number, input: number, bias: boolean) => {
      tensors.push({ name: `${p}.${name}.weight`, shape: [out, input] });
      if (bias) tensors.push({ name: `${p}.${name}.bias`, shape: [out] });
    };
    if (spec.packedProjections) {
      linear('self_attn.qkv_proj', q + 2 * kv, h, spec.qkvBias);
    } else {
      linear('self_attn.q_proj', q, h, spec.qkvBias);
      linear('self_attn.k_proj', kv, h, spec.qkvBias);
      linear('self_attn.v_proj', kv, h, spec.qkvBias);
    }
    linear('self_attn.o_proj', h, q, spec.outputBias);
    if (spec.queryKeyNorm) {
      tensors.push({ name: `${p}.self_attn.q_norm.weight`, shape: [headDim] });
      tensors.push({ name: `${p}.self_attn.k_norm.weight`, shape: [headDim] });
    }
    if (spec.packedProjections) {
      linear('mlp.gate_up_proj', 2 * m, h, spec.mlpBias);
    } else {
      linear('mlp.gate_proj', m, h, spec.mlpBias);
      linear('mlp.up_proj', m, h, spec.mlpBias);
    }
    linear('mlp.down_proj', h, m, spec.mlpBias);
    tensors.push({ name: `${p}.input_layernorm.weight`, shape: [h] });
    tensors.push({ name: `${p}.post_attention_layernorm.weight`, shape: [h] });
    if (spec.sandwichNorms) {
      tensors.push({ name: `${p}.pre_feedforward_layernorm.weight`, shape: [h] });
      tensors.push({ name: `${p}.post_feedforward_layernorm.weight`, shape: [h] });
    }
  }
  tensors.push({ name: 'model.norm.weight', shape: [h] });
  if (!spec.tieWordEmbeddings) tensors.push({ name: 'lm_head.weight', shape: [spec.vocabSize, h] });
  return tensors;
}

/** Number of elements of a shape. */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Target standard deviation of the logits, so that distributions are far from uniform. */
const logitStd = 4;

/**
 * Uniform initialisation bounds (standard deviation = bound / sqrt(3)) chosen so activations stay near unit RMS
 * through depth and the logits have a standard deviation of about 4:
 * - projections reading the (RMS-normalised) stream: std 1/sqrt(fan_in);
 * - o_proj and down_proj, which write into the residual stream: additionally 1/sqrt(2 * layers), so the stream's
 *   variance stays bounded however deep the model is (as GPT-2's scaled init);
 * - embedding std 1, so the current token's direct path through the residual stream stays strong (the next
 *   token then depends on the current one, and greedy decoding wanders instead of settling on one token);
 * - lm_head std logitStd/sqrt(hidden);
 * - norm weights: uniform in [0.8, 1.2] (q/k norms too); gemma stores the offset from 1 (its norms multiply by
 *   1 + w), so there they are small offsets around 0, std 0.1; biases: std 0.2;
 * - attention softcapping (gemma2): q_proj and k_proj 2.5 times louder, so the scores reach the cap and capping
 *   changes the result;
 * - tied embeddings (lm_head = embedding): the logits contain the current token's embedding e_X through the
 *   residual stream, as sum(w_d e_X,d e_v,d) — symmetric in X and v, and for v = X always positive when the final
 *   norm weights w are. Left alone, greedy decoding then repeats one token or bounces between two. So the final
 *   norm's weights get random signs (magnitude logitStd/sqrt(hidden) times [0.8, 1.2]), cancelling the
 *   self-affinity, and the last layer's down_proj writes 8 times louder, so the final state is mostly computed
 *   from the context rather than the raw embedding. (Gemma's final norm stores those values minus 1, and its
 *   post-feedforward norm follows down_proj, so there the boost has no effect.)
 */
function initialisation(spec: DecoderSpec, name: string, shape: readonly number[]): { bound: number; center: number } {
  const root3 = Math.sqrt(3);
  const fanIn = shape[shape.length - 1]!;
  const norm = name.endsWith('layernorm.weight') || name.endsWith('_norm.weight') || name === 'model.norm.weight';
  if (norm) return spec.normWeightOffset ? { bound: 0.1 * root3, center: 0 } : { bound: 0.2, center: 1 };
  if (name.endsWith('.bias')) return { bound: 0.2 * root3, center: 0 };
  if (name === 'model.embed_tokens.weight') {
    return { bound: root3, center: 0 };
  }
  if (name === 'lm_head.weight') return { bound: (logitStd / Math.sqrt(spec.hiddenSize)) * root3, center: 0 };
  const residualScale = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight');
  // Tied models: the last MLP writes 8x louder, so the final state is mostly computed rather than the raw embedding.
  const boost = spec.tieWordEmbeddings && name === `model.layers.${spec.numLayers - 1}.mlp.down_proj.weight` ? 8 : 1;
  const capped =
    spec.attnLogitSoftcapping !== null && (name.endsWith('q_proj.weight') || name.endsWith('k_proj.weight')) ? 2.5 : 1;
  const std = (capped * boost) / Math.sqrt(fanIn) / (residualScale ? Math.sqrt(2 * spec.numLayers) : 1);
  return { bound: std * root3, center: 0 };
}

/**
 * Seeded weights for `spec`: each tensor drawn from its own random stream keyed by `(seed, name)`, then rounded
 * to `dtype` (so the float32 values equal what a `dtype` safetensors file stores).
 */
export function seededWeights(spec: DecoderSpec, seed: number, dtype: WeightDtype): WeightSource {
  const shapes = new Map(decoderTensors(spec).map((t) => [t.name, t.shape]));
  return {
    read(name) {
      const shape = shapes.get(name);
      if (shape === undefined) return Promise.reject(new Error(`no tensor ${name} in this model`));
      const random = createRandomStream(seed, name);
      const values = new Float32Array(elementCount(shape));
      if (name === 'model.norm.weight' && spec.tieWordEmbeddings) {
        const scale = logitStd / Math.sqrt(spec.hiddenSize);
        const offset = spec.normWeightOffset ? 1 : 0;
        fillUniform(values, random, 1);
        for (let i = 0; i < values.length; i++)
          values[i] = (values[i]! < 0 ? -scale : scale) * (0.8 + 0.4 * Math.abs(values[i]!)) - offset;
      } else {
        const { bound, center } = initialisation(spec, name, shape);
        fillUniform(values, random, bound, center);
      }
      return Promise.resolve(roundToDtype(values, dtype));
    },
  };
}

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
 * The tensors of a Llama-family checkpoint in transformers' module order (`model.embed_tokens`, each layer's
 * attention and MLP, `model.norm`, `lm_head` unless tied).
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
    linear('self_attn.q_proj', q, h, spec.qkvBias);
    linear('self_attn.k_proj', kv, h, spec.qkvBias);
    linear('self_attn.v_proj', kv, h, spec.qkvBias);
    linear('self_attn.o_proj', h, q, spec.outputBias);
    linear('mlp.gate_proj', m, h, spec.mlpBias);
    linear('mlp.up_proj', m, h, spec.mlpBias);
    linear('mlp.down_proj', h, m, spec.mlpBias);
    tensors.push({ name: `${p}.input_layernorm.weight`, shape: [h] });
    tensors.push({ name: `${p}.post_attention_layernorm.weight`, shape: [h] });
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
 * - the embedding: std 1, or logitStd/sqrt(hidden) when it doubles as lm_head; lm_head: logitStd/sqrt(hidden);
 * - norm weights: uniform in [0.8, 1.2]; biases: std 0.2.
 */
function initialisation(spec: DecoderSpec, name: string, shape: readonly number[]): { bound: number; center: number } {
  const root3 = Math.sqrt(3);
  const fanIn = shape[shape.length - 1]!;
  if (name.endsWith('layernorm.weight') || name === 'model.norm.weight') return { bound: 0.2, center: 1 };
  if (name.endsWith('.bias')) return { bound: 0.2 * root3, center: 0 };
  if (name === 'model.embed_tokens.weight') {
    const std = spec.tieWordEmbeddings ? logitStd / Math.sqrt(spec.hiddenSize) : 1;
    return { bound: std * root3, center: 0 };
  }
  if (name === 'lm_head.weight') return { bound: (logitStd / Math.sqrt(spec.hiddenSize)) * root3, center: 0 };
  const residualScale = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight');
  const std = 1 / Math.sqrt(fanIn) / (residualScale ? Math.sqrt(2 * spec.numLayers) : 1);
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
      const { bound, center } = initialisation(spec, name, shape);
      const values = fillUniform(new Float32Array(elementCount(shape)), createRandomStream(seed, name), bound, center);
      return Promise.resolve(roundToDtype(values, dtype));
    },
  };
}

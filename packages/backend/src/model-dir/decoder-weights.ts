import type { DecoderModelConfig } from './model-config.js';
import { openModelWeights, type ModelWeights } from './model-weights.js';

/** A linear layer `y = x Wᵀ + b` with `weight` row-major `[outFeatures, inFeatures]` (the PyTorch layout). */
export interface LinearWeights {
  /** `[outFeatures, inFeatures]`, row-major. */
  readonly weight: Float32Array;
  /** `[outFeatures]`, when the layer has a bias. */
  readonly bias: Float32Array | undefined;
  /** Rows of `weight`. */
  readonly outFeatures: number;
  /** Columns of `weight`. */
  readonly inFeatures: number;
}

/** The float32 weights of one decoder layer. */
export interface DecoderLayerWeights {
  /** `input_layernorm.weight` `[hidden]`. */
  readonly inputNorm: Float32Array;
  /** `self_attn.q_proj`: `[heads * headDim, hidden]`. */
  readonly queryProjection: LinearWeights;
  /** `self_attn.k_proj`: `[kvHeads * headDim, hidden]`. */
  readonly keyProjection: LinearWeights;
  /** `self_attn.v_proj`: `[kvHeads * headDim, hidden]`. */
  readonly valueProjection: LinearWeights;
  /** `self_attn.o_proj`: `[hidden, heads * headDim]`. */
  readonly outputProjection: LinearWeights;
  /** `post_attention_layernorm.weight` `[hidden]`. */
  readonly postAttentionNorm: Float32Array;
  /** `mlp.gate_proj`: `[intermediate, hidden]`. */
  readonly gateProjection: LinearWeights;
  /** `mlp.up_proj`: `[intermediate, hidden]`. */
  readonly upProjection: LinearWeights;
  /** `mlp.down_proj`: `[hidden, intermediate]`. */
  readonly downProjection: LinearWeights;
}

/** Every weight of a Llama-family decoder, as float32, shapes checked against the config. */
export interface DecoderWeights {
  /** `model.embed_tokens.weight` `[vocab, hidden]`. */
  readonly embedTokens: Float32Array;
  /** One entry per layer. */
  readonly layers: readonly DecoderLayerWeights[];
  /** `model.norm.weight` `[hidden]`. */
  readonly finalNorm: Float32Array;
  /** `lm_head.weight` `[vocab, hidden]`; the same array as `embedTokens` when the embeddings are tied. */
  readonly lmHead: Float32Array;
}

/** One tensor a decoder needs: its Hugging Face name and shape. */
export interface DecoderTensorSpec {
  /** Hugging Face name, for example `model.layers.0.self_attn.q_proj.weight`. */
  readonly name: string;
  /** Expected shape. */
  readonly shape: readonly number[];
}

/**
 * The tensors a `llama` / `mistral` / `qwen2` checkpoint must contain for `config`, with their shapes, using the
 * Hugging Face names (`model.embed_tokens.weight`, `model.layers.{i}.self_attn.{q,k,v,o}_proj.weight` and biases
 * where the config has them, `model.layers.{i}.mlp.{gate,up,down}_proj.weight`, the two layer norms,
 * `model.norm.weight`, and `lm_head.weight` unless the embeddings are tied).
 */
export function decoderTensorSpecs(config: DecoderModelConfig): DecoderTensorSpec[] {
  const { hiddenSize: hidden, intermediateSize: intermediate, vocabSize: vocab, headDim } = config;
  const queryWidth = config.numAttentionHeads * headDim;
  const kvWidth = config.numKeyValueHeads * headDim;
  const specs: DecoderTensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [vocab, hidden] }];
  for (let i = 0; i < config.numLayers; i++) {
    const layer = `model.layers.${i}`;
    const linear = (name: string, out: number, inFeatures: number, bias: boolean): void => {
      specs.push({ name: `${layer}.${name}.weight`, shape: [out, inFeatures] });
      if (bias) specs.push({ name: `${layer}.${name}.bias`, shape: [out] });
    };
    specs.push({ name: `${layer}.input_layernorm.weight`, shape: [hidden] });
    linear('self_attn.q_proj', queryWidth, hidden, config.qkvBias);
    linear('self_attn.k_proj', kvWidth, hidden, config.qkvBias);
    linear('self_attn.v_proj', kvWidth, hidden, config.qkvBias);
    linear('self_attn.o_proj', hidden, queryWidth, config.outputBias);
    specs.push({ name: `${layer}.post_attention_layernorm.weight`, shape: [hidden] });
    linear('mlp.gate_proj', intermediate, hidden, config.mlpBias);
    linear('mlp.up_proj', intermediate, hidden, config.mlpBias);
    linear('mlp.down_proj', hidden, intermediate, config.mlpBias);
  }
  specs.push({ name: 'model.norm.weight', shape: [hidden] });
  if (!config.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [vocab, hidden] });
  return specs;
}

/**
 * Reads every tensor of {@link decoderTensorSpecs} as float32, checking each shape. Accepts a model directory
 * (opened and closed here) or already-open {@link ModelWeights}. Extra tensors in the files are ignored.
 *
 * @throws {ModelLoadError} `missing-tensor`, `shape-mismatch`, `unsupported-dtype`, and the errors of
 *   {@link openModelWeights}.
 */
export async function loadDecoderWeights(
  source: string | ModelWeights,
  config: DecoderModelConfig,
): Promise<DecoderWeights> {
  const weights = typeof source === 'string' ? await openModelWeights(source) : source;
  try {
    const tensors = new Map<string, Float32Array>();
    for (const spec of decoderTensorSpecs(config)) {
      tensors.set(spec.name, await weights.readFloat32(spec.name, { shape: spec.shape }));
    }
    const get = (name: string): Float32Array => tensors.get(name)!;
    const linear = (name: string, outFeatures: number, inFeatures: number): LinearWeights => ({
      weight: get(`${name}.weight`),
      bias: tensors.get(`${name}.bias`),
      outFeatures,
      inFeatures,
    });
    const queryWidth = config.numAttentionHeads * config.headDim;
    const kvWidth = config.numKeyValueHeads * config.headDim;
    const { hiddenSize: hidden, intermediateSize: intermediate } = config;
    const layers = Array.from({ length: config.numLayers }, (_, i): DecoderLayerWeights => {
      const layer = `model.layers.${i}`;
      return {
        inputNorm: get(`${layer}.input_layernorm.weight`),
        queryProjection: linear(`${layer}.self_attn.q_proj`, queryWidth, hidden),
        keyProjection: linear(`${layer}.self_attn.k_proj`, kvWidth, hidden),
        valueProjection: linear(`${layer}.self_attn.v_proj`, kvWidth, hidden),
        outputProjection: linear(`${layer}.self_attn.o_proj`, hidden, queryWidth),
        postAttentionNorm: get(`${layer}.post_attention_layernorm.weight`),
        gateProjection: linear(`${layer}.mlp.gate_proj`, intermediate, hidden),
        upProjection: linear(`${layer}.mlp.up_proj`, intermediate, hidden),
        downProjection: linear(`${layer}.mlp.down_proj`, hidden, intermediate),
      };
    });
    const embedTokens = get('model.embed_tokens.weight');
    return {
      embedTokens,
      layers,
      finalNorm: get('model.norm.weight'),
      lmHead: config.tieWordEmbeddings ? embedTokens : get('lm_head.weight'),
    };
  } finally {
    if (typeof source === 'string') await weights.close();
  }
}

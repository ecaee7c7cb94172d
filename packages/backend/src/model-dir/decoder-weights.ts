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
  /** `self_attn.q_norm.weight` `[headDim]` (effective weight), when {@link DecoderModelConfig.queryKeyNorm}. */
  readonly queryNorm?: Float32Array | undefined;
  /** `self_attn.k_norm.weight` `[headDim]` (effective weight), when {@link DecoderModelConfig.queryKeyNorm}. */
  readonly keyNorm?: Float32Array | undefined;
  /** `self_attn.o_proj`: `[hidden, heads * headDim]`. */
  readonly outputProjection: LinearWeights;
  /**
   * `post_attention_layernorm.weight` `[hidden]`: the MLP's input norm, or with
   * {@link DecoderModelConfig.sandwichNorms} the norm of the attention output.
   */
  readonly postAttentionNorm: Float32Array;
  /** `pre_feedforward_layernorm.weight` `[hidden]` (Gemma): the MLP's input norm. */
  readonly preFeedforwardNorm?: Float32Array | undefined;
  /** `post_feedforward_layernorm.weight` `[hidden]` (Gemma): the norm of the MLP output. */
  readonly postFeedforwardNorm?: Float32Array | undefined;
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
 * The tensors a checkpoint of `config`'s family must contain, with their shapes, using the Hugging Face names:
 * `model.embed_tokens.weight`; per layer `model.layers.{i}.self_attn.{q,k,v,o}_proj.weight` (phi3:
 * `self_attn.qkv_proj.weight`, q rows then k then v) and biases where the config has them, `self_attn.{q,k}_norm.weight`
 * (qwen3, gemma3_text), `mlp.{gate,up,down}_proj.weight` (phi3: `mlp.gate_up_proj.weight`, gate rows then up), the
 * layer norms (`input_layernorm`, `post_attention_layernorm`, and for Gemma `pre_feedforward_layernorm`,
 * `post_feedforward_layernorm`); `model.norm.weight`; and `lm_head.weight` unless the embeddings are tied.
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
    if (config.packedProjections) {
      linear('self_attn.qkv_proj', queryWidth + 2 * kvWidth, hidden, config.qkvBias);
    } else {
      linear('self_attn.q_proj', queryWidth, hidden, config.qkvBias);
      linear('self_attn.k_proj', kvWidth, hidden, config.qkvBias);
      linear('self_attn.v_proj', kvWidth, hidden, config.qkvBias);
    }
    if (config.queryKeyNorm) {
      specs.push({ name: `${layer}.self_attn.q_norm.weight`, shape: [headDim] });
      specs.push({ name: `${layer}.self_attn.k_norm.weight`, shape: [headDim] });
    }
    linear('self_attn.o_proj', hidden, queryWidth, config.outputBias);
    specs.push({ name: `${layer}.post_attention_layernorm.weight`, shape: [hidden] });
    if (config.sandwichNorms) {
      specs.push({ name: `${layer}.pre_feedforward_layernorm.weight`, shape: [hidden] });
      specs.push({ name: `${layer}.post_feedforward_layernorm.weight`, shape: [hidden] });
    }
    if (config.packedProjections) {
      linear('mlp.gate_up_proj', 2 * intermediate, hidden, config.mlpBias);
    } else {
      linear('mlp.gate_proj', intermediate, hidden, config.mlpBias);
      linear('mlp.up_proj', intermediate, hidden, config.mlpBias);
    }
    linear('mlp.down_proj', hidden, intermediate, config.mlpBias);
  }
  specs.push({ name: 'model.norm.weight', shape: [hidden] });
  if (!config.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [vocab, hidden] });
  return specs;
}

/**
 * Reads every tensor of {@link decoderTensorSpecs} as float32, checking each shape, and returns the weights in
 * the family-independent form of {@link DecoderWeights}: packed phi3 projections split into q / k / v and gate /
 * up (views of the packed rows), Gemma's norm offsets turned into effective weights (`1 + w`, float32). Accepts a
 * model directory (opened and closed here) or already-open {@link ModelWeights}. Extra tensors in the files are
 * ignored.
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
    const norm = (name: string): Float32Array => {
      const stored = get(name);
      if (config.normWeightOffset === 0) return stored;
      const effective = new Float32Array(stored.length);
      for (let i = 0; i < stored.length; i++) effective[i] = 1 + stored[i]!;
      return effective;
    };
    const linear = (name: string, outFeatures: number, inFeatures: number): LinearWeights => ({
      weight: get(`${name}.weight`),
      bias: tensors.get(`${name}.bias`),
      outFeatures,
      inFeatures,
    });
    /** Rows `[from, from + outFeatures)` of a packed linear layer, as a view. */
    const rows = (packed: LinearWeights, from: number, outFeatures: number): LinearWeights => ({
      weight: packed.weight.subarray(from * packed.inFeatures, (from + outFeatures) * packed.inFeatures),
      bias: packed.bias?.subarray(from, from + outFeatures),
      outFeatures,
      inFeatures: packed.inFeatures,
    });
    const queryWidth = config.numAttentionHeads * config.headDim;
    const kvWidth = config.numKeyValueHeads * config.headDim;
    const { hiddenSize: hidden, intermediateSize: intermediate } = config;
    const layers = Array.from({ length: config.numLayers }, (_, i): DecoderLayerWeights => {
      const layer = `model.layers.${i}`;
      let queryProjection: LinearWeights;
      let keyProjection: LinearWeights;
      let valueProjection: LinearWeights;
      let gateProjection: LinearWeights;
      let upProjection: LinearWeights;
      if (config.packedProjections) {
        const qkv = linear(`${layer}.self_attn.qkv_proj`, queryWidth + 2 * kvWidth, hidden);
        queryProjection = rows(qkv, 0, queryWidth);
        keyProjection = rows(qkv, queryWidth, kvWidth);
        valueProjection = rows(qkv, queryWidth + kvWidth, kvWidth);
        const gateUp = linear(`${layer}.mlp.gate_up_proj`, 2 * intermediate, hidden);
        gateProjection = rows(gateUp, 0, intermediate);
        upProjection = rows(gateUp, intermediate, intermediate);
      } else {
        queryProjection = linear(`${layer}.self_attn.q_proj`, queryWidth, hidden);
        keyProjection = linear(`${layer}.self_attn.k_proj`, kvWidth, hidden);
        valueProjection = linear(`${layer}.self_attn.v_proj`, kvWidth, hidden);
        gateProjection = linear(`${layer}.mlp.gate_proj`, intermediate, hidden);
        upProjection = linear(`${layer}.mlp.up_proj`, intermediate, hidden);
      }
      return {
        inputNorm: norm(`${layer}.input_layernorm.weight`),
        queryProjection,
        keyProjection,
        valueProjection,
        queryNorm: config.queryKeyNorm ? norm(`${layer}.self_attn.q_norm.weight`) : undefined,
        keyNorm: config.queryKeyNorm ? norm(`${layer}.self_attn.k_norm.weight`) : undefined,
        outputProjection: linear(`${layer}.self_attn.o_proj`, hidden, queryWidth),
        postAttentionNorm: norm(`${layer}.post_attention_layernorm.weight`),
        preFeedforwardNorm: config.sandwichNorms ? norm(`${layer}.pre_feedforward_layernorm.weight`) : undefined,
        postFeedforwardNorm: config.sandwichNorms ? norm(`${layer}.post_feedforward_layernorm.weight`) : undefined,
        gateProjection,
        upProjection,
        downProjection: linear(`${layer}.mlp.down_proj`, hidden, intermediate),
      };
    });
    const embedTokens = get('model.embed_tokens.weight');
    return {
      embedTokens,
      layers,
      finalNorm: norm('model.norm.weight'),
      lmHead: config.tieWordEmbeddings ? embedTokens : get('lm_head.weight'),
    };
  } finally {
    if (typeof source === 'string') await weights.close();
  }
}

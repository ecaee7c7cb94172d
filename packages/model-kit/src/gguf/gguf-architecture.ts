/**
 * How each model-kit architecture maps onto a llama.cpp architecture: its `general.architecture`, tensor names,
 * the configurations llama.cpp can reproduce, and the `{arch}.*` metadata `convert_hf_to_gguf.py` writes for it.
 *
 * Line references are to the llama.cpp sources the installed `@node-llama-cpp` prebuilt library was built from
 * (`src/models/*.cpp`, `conversion/*.py`).
 */
import { kv, type GgufValue } from '@gen/gguf';
import { InvalidModelConfigError } from '../errors.js';
import type { DecoderSpec, LayerType } from '../hf-config.js';
import type { Architecture, ModelConfig } from '../model-config.js';

/** `general.architecture` values written by the GGUF export. */
export type GgufArchitecture = 'llama' | 'qwen2' | 'qwen3' | 'gemma2' | 'gemma3' | 'phi3';

/** The llama.cpp architecture of each model-kit architecture (mistral is llama.cpp's `llama`). */
export const ggufArchitectureOf: Readonly<Record<Architecture, GgufArchitecture>> = {
  llama: 'llama',
  mistral: 'llama',
  qwen2: 'qwen2',
  qwen3: 'qwen3',
  gemma2: 'gemma2',
  gemma3_text: 'gemma3',
  phi3: 'phi3',
};

const isGemma = (arch: GgufArchitecture): boolean => arch === 'gemma2' || arch === 'gemma3';

const commonLayerNames: Readonly<Record<string, string>> = {
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  'self_attn.qkv_proj': 'attn_qkv',
  'self_attn.q_norm': 'attn_q_norm',
  'self_attn.k_norm': 'attn_k_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
  // phi3: gate and up packed as one `ffn_up` of 2 * n_ff rows (gguf-py tensor_mapping.py, FFN_UP).
  'mlp.gate_up_proj': 'ffn_up',
  input_layernorm: 'attn_norm',
  post_attention_layernorm: 'ffn_norm',
};

/** Gemma's sandwich norms (gguf-py: ATTN_POST_NORM, FFN_PRE_NORM, FFN_POST_NORM). */
const gemmaLayerNames: Readonly<Record<string, string>> = {
  ...commonLayerNames,
  post_attention_layernorm: 'post_attention_norm',
  pre_feedforward_layernorm: 'ffn_norm',
  post_feedforward_layernorm: 'post_ffw_norm',
};

/**
 * The GGUF name of a Hugging Face tensor name in a file of `architecture` (default `llama`), or undefined for
 * names llama.cpp has no tensor for.
 */
export function ggufTensorName(hfName: string, architecture: GgufArchitecture = 'llama'): string | undefined {
  if (hfName === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hfName === 'model.norm.weight') return 'output_norm.weight';
  if (hfName === 'lm_head.weight') return 'output.weight';
  const match = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hfName);
  if (match === null) return undefined;
  const [, layer, module, kind] = match;
  const name = (isGemma(architecture) ? gemmaLayerNames : commonLayerNames)[module!];
  return name === undefined ? undefined : `blk.${layer}.${name}.${kind}`;
}

/** Gemma stores its RMSNorm weights as offsets from 1; the converter writes `1 + w` (conversion/gemma.py:119, 170). */
export function storesNormPlusOne(architecture: GgufArchitecture, hfName: string): boolean {
  return isGemma(architecture) && hfName.endsWith('norm.weight');
}

function refuse(field: string, message: string): never {
  throw new InvalidModelConfigError({ field, message: `GGUF export: ${message}` });
}

/** The layer types llama.cpp derives from `sliding_window_pattern` (llama-hparams.cpp `set_swa_pattern`). */
function patternLayerTypes(layers: number, pattern: number): LayerType[] {
  return Array.from({ length: layers }, (_, i) => (i % pattern < pattern - 1 ? 'sliding_attention' : 'full_attention'));
}

/** The `query_pre_attn_scalar` llama.cpp's Gemma 2 / 3 use: head_dim, except for the 27B shapes (gemma2.cpp:27). */
export function llamaCppQueryPreAttnScalar(
  architecture: 'gemma2' | 'gemma3',
  layers: number,
  hidden: number,
  heads: number,
  headDim: number,
): number {
  const is27b = architecture === 'gemma2' ? layers === 46 : layers === 62;
  return is27b ? Math.trunc(hidden / heads) : headDim;
}

/**
 * The attention factor `convert_hf_to_gguf.py` writes for Phi-3's longrope (`rope.scaling.attn_factor`,
 * conversion/phi.py:195): computed from `max_position_embeddings / original_max_position_embeddings`, whatever the
 * config's `attention_factor` says.
 */
export function phi3LongropeAttnFactor(maxPositions: number, original: number): number {
  const scale = maxPositions / original;
  return scale > 1 ? Math.sqrt(1 + Math.log(scale) / Math.log(original)) : 1;
}

/**
 * Throws {@link InvalidModelConfigError} for a configuration whose meaning llama.cpp cannot reproduce, so a GGUF
 * file and the model directory of the same weights always compute the same function.
 */
export function checkGgufExpressible(config: ModelConfig, spec: DecoderSpec): void {
  const arch = ggufArchitectureOf[config.architecture];
  const scaling = spec.ropeScaling;
  if (config.architecture === 'mistral' && config.slidingWindow != null) {
    refuse('slidingWindow', "mistral is written as llama.cpp's `llama` architecture, which has no sliding window.");
  }
  if (arch === 'phi3') {
    if (scaling !== null && scaling.ropeType !== 'longrope') {
      refuse('ropeScaling', `phi3 supports longrope rotary scaling only (conversion/phi.py); got ${scaling.ropeType}.`);
    }
  } else if (scaling !== null && scaling.ropeType !== 'linear') {
    refuse(
      'ropeScaling',
      `only linear rotary scaling is exported for ${arch} (rope.scaling.type linear); got ${scaling.ropeType}.`,
    );
  }
  if (arch === 'qwen3') {
    if (spec.outputBias) {
      refuse('attentionBias', 'llama.cpp qwen3 has no attn_output bias (src/models/qwen3.cpp load_arch_tensors).');
    }
    if (spec.slidingWindow !== null) {
      refuse('slidingWindow', 'llama.cpp qwen3 has no sliding-window attention (src/models/qwen3.cpp).');
    }
  }
  if (arch === 'gemma2' || arch === 'gemma3') {
    const expected = llamaCppQueryPreAttnScalar(arch, spec.numLayers, spec.hiddenSize, spec.numHeads, spec.headDim);
    const scalar = config.queryPreAttnScalar ?? spec.headDim;
    if (scalar !== expected) {
      refuse(
        'queryPreAttnScalar',
        `llama.cpp ${arch} scales attention scores by 1/sqrt(${expected}) (head_dim, or hidden / heads for the 27B shape; src/models/${arch}.cpp load_arch_hparams) and ignores query_pre_attn_scalar; got ${scalar}.`,
      );
    }
    if (spec.outputBias || spec.qkvBias) {
      refuse(
        'attentionBias',
        `llama.cpp ${arch} has no attn_output bias (src/models/${arch}.cpp build_attn wo_b NULL).`,
      );
    }
    const pattern = arch === 'gemma2' ? 2 : (config.slidingWindowPattern ?? 6);
    const derived = patternLayerTypes(spec.numLayers, pattern);
    if (spec.layerTypes.some((type, i) => type !== derived[i])) {
      refuse(
        'layerTypes',
        `llama.cpp ${arch} derives the sliding layers from sliding_window_pattern ${pattern}; layer_types [${spec.layerTypes.join(', ')}] differ.`,
      );
    }
  }
  if (arch === 'gemma2') {
    if (!spec.tieWordEmbeddings) {
      refuse('tieWordEmbeddings', 'llama.cpp gemma2 always uses token_embd as the output (src/models/gemma2.cpp).');
    }
    if (spec.attnLogitSoftcapping === null || spec.finalLogitSoftcapping === null) {
      refuse(
        spec.attnLogitSoftcapping === null ? 'attnLogitSoftcapping' : 'finalLogitSoftcapping',
        'llama.cpp gemma2 always soft-caps the attention scores and the logits (50 and 30 by default; src/models/gemma2.cpp).',
      );
    }
  }
  if (arch === 'gemma3' && spec.attnLogitSoftcapping !== null) {
    refuse('attnLogitSoftcapping', 'llama.cpp gemma3 has no attention soft-capping (src/models/gemma3.cpp).');
  }
  if (arch === 'phi3') {
    if (spec.slidingWindow !== null) {
      refuse(
        'slidingWindow',
        'llama.cpp disables Phi-3 sliding-window attention (src/models/phi3.cpp load_arch_hparams).',
      );
    }
    if (scaling?.ropeType === 'longrope') {
      const given = config.ropeScaling?.['attention_factor'];
      const written = phi3LongropeAttnFactor(spec.maxPositionEmbeddings, scaling.originalMaxPositionEmbeddings);
      if (given != null && Math.fround(Number(given)) !== Math.fround(written)) {
        refuse(
          'ropeScaling',
          `the converter writes rope.scaling.attn_factor ${written} (from max / original positions) and llama.cpp uses it; rope_scaling.attention_factor ${String(given)} differs.`,
        );
      }
    }
  }
}

/**
 * The `{arch}.*` hyper-parameters for `config`, the keys `convert_hf_to_gguf.py` writes for the family (plus
 * `gemma3.attention.sliding_window_pattern` when it is not llama.cpp's default of 6, and `gemma2.rope.freq_base`
 * when not 10000, which the converter leaves out but llama.cpp reads).
 */
export function architectureMetadata(config: ModelConfig, spec: DecoderSpec): Array<[string, GgufValue]> {
  const arch = ggufArchitectureOf[config.architecture];
  const key = (name: string) => `${arch}.${name}`;
  const metadata: Array<[string, GgufValue]> = [
    [key('vocab_size'), kv.uint32(config.vocabSize)],
    [key('context_length'), kv.uint32(config.maxPositionEmbeddings)],
    [key('embedding_length'), kv.uint32(config.hiddenSize)],
    [key('block_count'), kv.uint32(config.numHiddenLayers)],
    [key('feed_forward_length'), kv.uint32(config.intermediateSize)],
    [key('attention.head_count'), kv.uint32(config.numAttentionHeads)],
    [key('attention.head_count_kv'), kv.uint32(config.numKeyValueHeads)],
  ];
  if (arch !== 'gemma2' || spec.ropeTheta !== 10000) metadata.push([key('rope.freq_base'), kv.float32(spec.ropeTheta)]);
  metadata.push([key('attention.layer_norm_rms_epsilon'), kv.float32(config.rmsNormEps)]);
  if (arch === 'llama' || arch === 'qwen3' || isGemma(arch)) {
    metadata.push([key('attention.key_length'), kv.uint32(spec.headDim)]);
    metadata.push([key('attention.value_length'), kv.uint32(spec.headDim)]);
  }
  if (arch === 'llama') metadata.push([key('rope.dimension_count'), kv.uint32(spec.headDim)]);
  if (spec.ropeScaling?.ropeType === 'linear') {
    metadata.push([key('rope.scaling.type'), kv.string('linear')]);
    metadata.push([key('rope.scaling.factor'), kv.float32(spec.ropeScaling.factor)]);
  }
  if (arch === 'gemma2') {
    metadata.push([key('attn_logit_softcapping'), kv.float32(spec.attnLogitSoftcapping!)]);
    metadata.push([key('final_logit_softcapping'), kv.float32(spec.finalLogitSoftcapping!)]);
    metadata.push([key('attention.sliding_window'), kv.uint32(spec.slidingWindow ?? config.slidingWindow ?? 4096)]);
  }
  if (arch === 'gemma3') {
    metadata.push([key('rope.freq_base_swa'), kv.float32(config.ropeLocalBaseFreq ?? 10000)]);
    if (spec.finalLogitSoftcapping !== null) {
      metadata.push([key('final_logit_softcapping'), kv.float32(spec.finalLogitSoftcapping)]);
    }
    if (spec.slidingWindow !== null) {
      metadata.push([key('attention.sliding_window'), kv.uint32(spec.slidingWindow)]);
      const pattern = config.slidingWindowPattern ?? 6;
      if (pattern !== 6) metadata.push([key('attention.sliding_window_pattern'), kv.uint32(pattern)]);
    }
  }
  if (arch === 'phi3') {
    const original = config.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings;
    metadata.push([key('rope.scaling.original_context_length'), kv.uint32(original)]);
    metadata.push([key('rope.dimension_count'), kv.uint32(spec.rotaryDim)]);
    // The converter writes 0 for "no sliding window" (Phi-4); llama.cpp disables Phi-3 SWA either way.
    metadata.push([key('attention.sliding_window'), kv.uint32(0)]);
    if (spec.ropeScaling?.ropeType === 'longrope') {
      metadata.push([
        key('rope.scaling.attn_factor'),
        kv.float32(phi3LongropeAttnFactor(config.maxPositionEmbeddings, original)),
      ]);
    }
  }
  return metadata;
}

/** Phi-3's longrope factors as the converter's extra tensors `rope_factors_long` / `rope_factors_short`. */
export function ropeFactorTensors(spec: DecoderSpec): Array<{ name: string; values: Float32Array }> {
  if (spec.ropeScaling?.ropeType !== 'longrope') return [];
  return [
    { name: 'rope_factors_long.weight', values: Float32Array.from(spec.ropeScaling.longFactor) },
    { name: 'rope_factors_short.weight', values: Float32Array.from(spec.ropeScaling.shortFactor) },
  ];
}

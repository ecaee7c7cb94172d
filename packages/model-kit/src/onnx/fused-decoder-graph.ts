import { InvalidModelConfigError } from '../errors.js';
import type { DecoderSpec } from '../hf-config.js';
import { decoderTensors, elementCount, type WeightSource } from '../weights.js';
import { checkQuantBlockSize, type OnnxVariant } from './decoder-graph.js';
import { attr, GraphBuilder } from './graph-builder.js';
import { DataType, type GraphSpec, type ValueInfoSpec } from './onnx-proto.js';
import { quantizeBlockwise } from './quantize.js';
import {
  effectiveNormWeight,
  isSlidingLayer,
  layerTypeOf,
  ropeDependsOnLength,
  ropeKindOf,
  rotaryCacheTables,
  rotaryCosSin,
  rotateHalf,
  softcap,
} from './rotary-graph.js';
import { bytesOf, sharedOnce, toFloat16, transpose } from './weight-bytes.js';

/** onnxruntime's contrib operator domain. */
const ms = 'com.microsoft';

/** Options of {@link buildFusedDecoderGraph}. */
export interface FusedDecoderGraphOptions {
  /**
   * Weight storage (default `fp32`): `fp32` and `fp16` (float16 initializers cast to float32 when the session is
   * created: half the file, the same arithmetic) use `MatMul`; `int8` and `q4` use 8- and 4-bit block-wise
   * `MatMulNBits` for every projection and `lm_head`. The embedding stays float32 (it is only gathered), and the
   * KV cache and logits are float32 in every variant.
   */
  variant?: OnnxVariant;
  /**
   * Where rotary embeddings are applied: inside `GroupQueryAttention` (`attention`, the default, as
   * onnxruntime-genai builds CPU decoders; each new token's position is its slot in the KV buffer, so the graph has
   * no `position_ids` input), or before it from a `position_ids` input (`node`: `RotaryEmbedding` nodes with the
   * position tables, or, for partial rotary and length-dependent frequencies, cos / sin computed in the graph and
   * applied with standard operators). Default: `attention` when the rotary size is a multiple of 16 (what
   * onnxruntime's kernel needs) and the frequencies do not depend on the sequence length (not `dynamic` or
   * `longrope`), else `node`; asking for `attention` where it cannot work throws {@link InvalidModelConfigError}.
   */
  rotary?: 'attention' | 'node';
  /**
   * `accuracy_level` of the `MatMulNBits` nodes (default 4: activations quantized to int8 per block, int8 dot
   * products; 0 keeps float32 activations, which tests use to compare the kernel with a dequantized reference).
   */
  accuracyLevel?: 0 | 1 | 4;
  /**
   * Weights per quantization block of the `MatMulNBits` nodes; see {@link checkQuantBlockSize}. Default 32.
   */
  quantBlockSize?: number;
}

/** The graph inputs a fused decoder takes besides the per-layer caches, in order. */
export const fusedInputNames = {
  inputIds: 'input_ids',
  positionIds: 'position_ids',
  seqlensK: 'seqlens_k',
  totalSequenceLength: 'total_sequence_length',
  logitsToKeep: 'num_logits_to_keep',
} as const;

/**
 * Builds the decoder from onnxruntime's fused `com.microsoft` operators, the way onnxruntime-genai's model builder
 * lays out CPU decoders, for onnxruntime only (transformers.js and Optimum cannot run it):
 *
 * - inputs `input_ids` [batch, seq] int64; `seqlens_k` [batch] int32 (each row's total length after this step,
 *   minus one); `total_sequence_length` [] int32 (the largest total length of the batch); `num_logits_to_keep` []
 *   int64 (logits of the last k positions, 0 = all); `past_key_values.{i}.key|value` [batch, kv_heads,
 *   max_sequence_length, head_dim] float32 (a fixed-capacity buffer per layer); with `rotary: 'node'` also
 *   `position_ids` [batch, seq] int64;
 * - outputs `logits` [batch, kept, vocab] float32 and `present.{i}.key|value` [batch, kv_heads,
 *   max_sequence_length, head_dim]. When the caller binds each `present` output to the buffer it feeds as the
 *   matching `past` input, `GroupQueryAttention` writes the new keys and values into that buffer in place:
 *   row b's new tokens go to slots `seqlens_k[b] + 1 - seq` ... `seqlens_k[b]`, and its queries see slots 0 ...
 *   their own (causal). Rows therefore hold their tokens from slot 0 (no left padding); a batch of new prompts is
 *   right-padded; a step that adds several tokens to a non-empty cache must have batch 1 (onnxruntime's rule).
 *
 * Per layer: `SkipSimplifiedLayerNormalization` (RMSNorm fused with the residual add; the first layer's is a
 * `SimplifiedLayerNormalization`), one packed Q/K/V projection, `GroupQueryAttention` (rotary embeddings with
 * float32 cos/sin caches of `max_position_embeddings` rows in the `rotate_half` layout, causal mask, grouped KV
 * heads, Mistral's window as `local_window_size`), the output projection, a second
 * `SkipSimplifiedLayerNormalization`, and SwiGLU: one packed gate + up projection, `Split`, `QuickGelu` with
 * alpha 1 (which is SiLU) and `Mul`, then the down projection. The final RMSNorm keeps the last
 * `num_logits_to_keep` positions (`Slice`) before `lm_head`.
 *
 * The other families:
 *
 * - qwen3 / gemma3_text: Q, K and V split from the packed projection, `SimplifiedLayerNormalization` per head for
 *   `q_norm` / `k_norm`, then `GroupQueryAttention` still rotates (the norms come before rotary);
 * - gemma2 / gemma3_text: `1 + w` folded into the norm weights, the embedding times `sqrt(hidden_size)`, sandwich
 *   norms (a `SimplifiedLayerNormalization` after attention and after the MLP), `FastGelu` (GELU's tanh form),
 *   `GroupQueryAttention`'s `scale` (`query_pre_attn_scalar^-0.5`), `softcap` and, on sliding layers only,
 *   `local_window_size`; gemma3's sliding layers get their own cos / sin caches (`cos_cache_local`); final-logit
 *   softcapping as `Div`, `Tanh`, `Mul` after `lm_head`;
 * - phi3: the checkpoint's packed projections as they are. Its partial rotary (12 of 16 entries in `tiny-phi3`) and
 *   longrope (tables that change with each row's length) cannot go into `GroupQueryAttention`, whose kernel takes
 *   position-indexed tables of a multiple of 8 columns: the graph takes `position_ids` and rotates before attention,
 *   as the standard graph does (`do_rotary` 0). `dynamic` rope scaling is built the same way;
 * - yarn / longrope attention factors multiply the cos / sin caches.
 */
export function buildFusedDecoderGraph(
  spec: DecoderSpec,
  weights: WeightSource,
  options: FusedDecoderGraphOptions = {},
): GraphSpec {
  const g = new GraphBuilder();
  const { numHeads, numKvHeads: kvHeads, headDim: d, hiddenSize, rotaryDim } = spec;
  const shapes = new Map(decoderTensors(spec).map((t) => [t.name, t.shape]));
  const variant = options.variant ?? 'fp32';
  const half = variant === 'fp16';
  const nbits = variant === 'q4' ? 4 : variant === 'int8' ? 8 : undefined;
  if (d % 8 !== 0) {
    throw new InvalidModelConfigError({
      field: 'head_dim',
      message:
        `A fused graph needs head_dim to be a multiple of 8 (onnxruntime's GroupQueryAttention); it is ${d}. ` +
        `Export the standard graph style instead.`,
    });
  }
  const kinds = [...new Set(Array.from({ length: spec.numLayers }, (_, i) => ropeKindOf(spec, layerTypeOf(spec, i))))];
  // GroupQueryAttention rotates with position-indexed tables of rotary_dim / 2 columns, a multiple of 8.
  const attentionRotaryBlocker = kinds.some((kind) => ropeDependsOnLength(spec, kind))
    ? `rope_scaling ${spec.ropeScaling?.ropeType} depends on the sequence length`
    : rotaryDim % 16 !== 0
      ? `the rotary dimension (${rotaryDim}) is not a multiple of 16`
      : undefined;
  if (options.rotary === 'attention' && attentionRotaryBlocker !== undefined) {
    throw new InvalidModelConfigError({
      field: 'rotary',
      message: `GroupQueryAttention cannot apply these rotary embeddings (${attentionRotaryBlocker}); use rotary: 'node'.`,
    });
  }
  const rotaryNodes = (options.rotary ?? (attentionRotaryBlocker === undefined ? 'attention' : 'node')) === 'node';
  const accuracyLevel = options.accuracyLevel ?? 4;
  const quantBlockSize = checkQuantBlockSize(options.quantBlockSize);
  const epsilon = attr.float(spec.rmsNormEps);

  // A float weight as stored: float32, or float16 followed by a Cast to float32 (folded by onnxruntime at load).
  const floatWeight = (name: string, dims: readonly number[], produce: () => Promise<Float32Array>): string => {
    const count = elementCount(dims);
    if (!half) return g.weight(name, dims, { byteLength: count * 4, produce: async () => bytesOf(await produce()) });
    const stored = g.tensor(name, DataType.FLOAT16, dims, {
      byteLength: count * 2,
      produce: async () => bytesOf(toFloat16(await produce())),
    });
    return g.op1(`/${name}`, 'Cast', [stored], { to: attr.int(DataType.FLOAT) });
  };
  const plain = (name: string): string => floatWeight(name, shapes.get(name)!, () => weights.read(name));
  // Norm weights as multiplied: Gemma's `1 + w` is folded into the stored constant (in float32).
  const normWeight = (name: string): string =>
    floatWeight(name, shapes.get(name)!, async () => effectiveNormWeight(spec, await weights.read(name)));

  /** Rows of several `[out, in]` weights stacked into one `[sum of out, in]` matrix (a packed projection). */
  const stacked = async (names: readonly string[]): Promise<Float32Array> => {
    const parts = await Promise.all(names.map((name) => weights.read(name)));
    const out = new Float32Array(parts.reduce((sum, p) => sum + p.length, 0));
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  };

  /**
   * A linear layer over the stacked `[out, in]` weights `names` (one or several projections sharing an input),
   * stored under `storedName`: `MatMul` by the transposed weight, or `MatMulNBits` with block-quantized codes; plus
   * the stacked biases when the layer has them.
   */
  const linear = (scope: string, input: string, names: readonly string[], storedName: string, bias: boolean) => {
    const k = shapes.get(names[0]!)![1]!;
    const n = names.reduce((sum, name) => sum + shapes.get(name)![0]!, 0);
    const biasName = (name: string) => name.replace(/\.weight$/, '.bias');
    const biasValue = bias ? floatWeight(`${storedName}.bias`, [n], () => stacked(names.map(biasName))) : undefined;
    if (nbits === undefined) {
      const weight = floatWeight(`${storedName}.weight.transposed`, [k, n], async () =>
        transpose(await stacked(names), n, k),
      );
      const product = g.op1(scope, 'MatMul', [input, weight]);
      return biasValue === undefined ? product : g.op1(scope, 'Add', [product, biasValue]);
    }
    const blocks = Math.ceil(k / quantBlockSize);
    const blobSize = (quantBlockSize * nbits) / 8;
    const quantized = sharedOnce(
      async () => quantizeBlockwise(await stacked(names), n, k, { bits: nbits, blockSize: quantBlockSize }),
      2,
    );
    const codes = g.tensor(`${storedName}.MatMul.weight_Q${nbits}`, DataType.UINT8, [n, blocks, blobSize], {
      byteLength: n * blocks * blobSize,
      produce: async () => (await quantized()).packed,
    });
    const scales = g.tensor(`${storedName}.MatMul.weight_scales`, DataType.FLOAT, [n * blocks], {
      byteLength: n * blocks * 4,
      produce: async () => bytesOf((await quantized()).scales),
    });
    const inputs = [input, codes, scales, ...(biasValue === undefined ? [] : ['', '', biasValue])];
    return g.opDomain(scope, ms, 'MatMulNBits', inputs, {
      K: attr.int(k),
      N: attr.int(n),
      bits: attr.int(nbits),
      block_size: attr.int(quantBlockSize),
      accuracy_level: attr.int(accuracyLevel),
    })[0]!;
  };

  /** RMSNorm of `input + skip`; returns the normalized values and the sum (the new residual stream). */
  const skipNorm = (scope: string, input: string, skip: string, weightName: string): [string, string] => {
    const normed = `${scope}/output_0`;
    const sum = `${scope}/output_3`;
    g.opNamed(
      scope,
      'SkipSimplifiedLayerNormalization',
      [input, skip, normWeight(weightName)],
      [normed, '', '', sum],
      {
        epsilon,
      },
      ms,
    );
    return [normed, sum];
  };
  /** RMSNorm over the last axis (any rank). */
  const simpleNorm = (scope: string, input: string, weightName: string): string => {
    const normed = `${scope}/output_0`;
    g.opNamed(scope, 'SimplifiedLayerNormalization', [input, normWeight(weightName)], [normed], {
      axis: attr.int(-1),
      epsilon,
      stash_type: attr.int(1),
    });
    return normed;
  };

  // Rotary tables [max_position_embeddings, rotary_dim / 2] per rotary kind in use (gemma3's sliding layers have
  // their own theta), for GroupQueryAttention or RotaryEmbedding; or, for frequencies that depend on the
  // sequence length and partial rotary in node mode, cos / sin computed in the graph from position_ids.
  const caches = new Map<'global' | 'local', [string, string]>();
  const cacheOf = (kind: 'global' | 'local'): [string, string] => {
    let found = caches.get(kind);
    if (found === undefined) {
      const { cos, sin } = rotaryCacheTables(spec, kind);
      const suffix = kind === 'global' ? '' : '_local';
      const dims = [spec.contextLength, rotaryDim / 2];
      found = [
        g.tensor(`cos_cache${suffix}`, DataType.FLOAT, dims, bytesOf(cos)),
        g.tensor(`sin_cache${suffix}`, DataType.FLOAT, dims, bytesOf(sin)),
      ];
      caches.set(kind, found);
    }
    return found;
  };
  const computed = new Map<'global' | 'local', [string, string]>();
  const computedOf = (kind: 'global' | 'local'): [string, string] => {
    let found = computed.get(kind);
    if (found === undefined) {
      const scope = kind === 'global' ? '/model/rotary_emb' : '/model/rotary_emb_local';
      const { cos, sin } = rotaryCosSin(g, spec, kind, fusedInputNames.positionIds, scope);
      // [batch, seq, rotary_dim] -> [batch, seq, 1, rotary_dim], against [batch, seq, heads, head_dim].
      found = [g.op1(scope, 'Unsqueeze', [cos, g.int64([2])]), g.op1(scope, 'Unsqueeze', [sin, g.int64([2])])];
      computed.set(kind, found);
    }
    return found;
  };
  const rotaryEmbeddingNode = (kind: 'global' | 'local') => !ropeDependsOnLength(spec, kind) && rotaryDim === d;

  const embeddingValue = plain('model.embed_tokens.weight');
  let embedded = g.op1('/model/embed_tokens', 'Gather', [embeddingValue, fusedInputNames.inputIds], {
    axis: attr.int(0),
  });
  if (spec.embeddingScale !== null) {
    // Gemma: rows times fround(sqrt(hidden_size)); a tied lm_head still reads the unscaled table.
    embedded = g.op1('/model/embed_tokens', 'Mul', [embedded, g.float32([spec.embeddingScale], [])]);
  }

  let residual = embedded;
  let normed = simpleNorm('/model/layers.0/input_layernorm', embedded, 'model.layers.0.input_layernorm.weight');
  const defaultScale = 1 / Math.sqrt(d);
  const headSplit = (heads: number) => g.int64([0, 0, heads, d]);

  for (let i = 0; i < spec.numLayers; i++) {
    const p = `model.layers.${i}`;
    const s = `/model/layers.${i}`;
    const a = `${s}/self_attn`;
    const kind = ropeKindOf(spec, layerTypeOf(spec, i));
    const projection = (name: string) => `${p}.self_attn.${name}.weight`;
    const qkv = linear(
      `${a}/qkv_proj`,
      normed,
      spec.packedProjections ? [projection('qkv_proj')] : ['q_proj', 'k_proj', 'v_proj'].map(projection),
      `${p}.self_attn.qkv_proj`,
      spec.qkvBias,
    );
    let attentionInputs: string[];
    if (!rotaryNodes && !spec.queryKeyNorm) {
      attentionInputs = [qkv, '', ''];
    } else {
      const [q, k, v] = g.op(
        a,
        'Split',
        [qkv, g.int64([numHeads * d, kvHeads * d, kvHeads * d])],
        { axis: attr.int(-1) },
        3,
      ) as [string, string, string];
      // Queries and keys per head, [batch, seq, heads, head_dim], for the per-head norm and the rotation; back to
      // [batch, seq, heads * head_dim] for GroupQueryAttention.
      const prepare = (x: string, heads: number, name: 'q' | 'k'): string => {
        const needsHeads = spec.queryKeyNorm || (rotaryNodes && !rotaryEmbeddingNode(kind));
        if (!needsHeads) {
          const [cosCache, sinCache] = cacheOf(kind);
          return g.opDomain(a, ms, 'RotaryEmbedding', [x, fusedInputNames.positionIds, cosCache, sinCache], {
            interleaved: attr.int(0),
          })[0]!;
        }
        let perHead = g.op1(a, 'Reshape', [x, headSplit(heads)]);
        if (spec.queryKeyNorm) perHead = simpleNorm(`${a}/${name}_norm`, perHead, `${p}.self_attn.${name}_norm.weight`);
        if (rotaryNodes) {
          if (rotaryEmbeddingNode(kind)) {
            const [cosCache, sinCache] = cacheOf(kind);
            const flat = g.op1(a, 'Reshape', [perHead, g.int64([0, 0, heads * d])]);
            return g.opDomain(a, ms, 'RotaryEmbedding', [flat, fusedInputNames.positionIds, cosCache, sinCache], {
              interleaved: attr.int(0),
            })[0]!;
          }
          const [cos, sin] = computedOf(kind);
          perHead = rotateHalf(g, a, perHead, cos, sin, rotaryDim, d);
        }
        return g.op1(a, 'Reshape', [perHead, g.int64([0, 0, heads * d])]);
      };
      attentionInputs = [prepare(q, numHeads, 'q'), prepare(k, kvHeads, 'k'), v];
    }
    const attended = `${a}/GroupQueryAttention/output_0`;
    g.opNamed(
      a,
      'GroupQueryAttention',
      [
        ...attentionInputs,
        `past_key_values.${i}.key`,
        `past_key_values.${i}.value`,
        fusedInputNames.seqlensK,
        fusedInputNames.totalSequenceLength,
        ...(rotaryNodes ? [] : cacheOf(kind)),
      ],
      [attended, `present.${i}.key`, `present.${i}.value`],
      {
        num_heads: attr.int(numHeads),
        kv_num_heads: attr.int(kvHeads),
        ...(rotaryNodes ? {} : { do_rotary: attr.int(1), rotary_interleaved: attr.int(0) }),
        // Gemma's query_pre_attn_scalar^-0.5 instead of head_dim^-0.5.
        ...(Math.abs(spec.attentionScale - defaultScale) > 1e-12 * defaultScale
          ? { scale: attr.float(spec.attentionScale) }
          : {}),
        // Gemma 2: tanh(s / cap) * cap of the scaled scores, before the mask.
        ...(spec.attnLogitSoftcapping === null ? {} : { softcap: attr.float(spec.attnLogitSoftcapping) }),
        // A sliding layer's window: `sliding_window` keys, the query's own included (onnxruntime 1.30's CPU kernel
        // reads local_window_size the same way; the tests check it against the reference).
        ...(isSlidingLayer(spec, i) ? { local_window_size: attr.int(spec.slidingWindow!) } : {}),
      },
      ms,
    );
    let output = linear(`${a}/o_proj`, attended, [projection('o_proj')], `${p}.self_attn.o_proj`, spec.outputBias);
    let normed2: string;
    if (spec.sandwichNorms) {
      // Gemma: the attention output is normalized before the residual add; the MLP reads pre_feedforward_layernorm.
      output = simpleNorm(`${s}/post_attention_layernorm`, output, `${p}.post_attention_layernorm.weight`);
      [normed2, residual] = skipNorm(
        `${s}/pre_feedforward_layernorm`,
        output,
        residual,
        `${p}.pre_feedforward_layernorm.weight`,
      );
    } else {
      [normed2, residual] = skipNorm(
        `${s}/post_attention_layernorm`,
        output,
        residual,
        `${p}.post_attention_layernorm.weight`,
      );
    }

    const mlp = `${s}/mlp`;
    // Gate and up projections as one product (one pass over the input, one node), split in two.
    const gateUp = linear(
      `${mlp}/gate_up_proj`,
      normed2,
      spec.packedProjections
        ? [`${p}.mlp.gate_up_proj.weight`]
        : [`${p}.mlp.gate_proj.weight`, `${p}.mlp.up_proj.weight`],
      `${p}.mlp.gate_up_proj`,
      spec.mlpBias,
    );
    const [gate, up] = g.op(
      mlp,
      'Split',
      [gateUp, g.int64([spec.intermediateSize, spec.intermediateSize])],
      {
        axis: attr.int(-1),
      },
      2,
    ) as [string, string];
    // QuickGelu computes x * sigmoid(alpha * x): with alpha 1 it is SiLU. FastGelu is the tanh approximation of
    // GELU (gelu_pytorch_tanh).
    const activated =
      spec.hiddenAct === 'gelu_pytorch_tanh'
        ? g.opDomain(`${mlp}/act_fn`, ms, 'FastGelu', [gate], {})[0]!
        : g.opDomain(`${mlp}/act_fn`, ms, 'QuickGelu', [gate], { alpha: attr.float(1) })[0]!;
    const product = g.op1(mlp, 'Mul', [activated, up]);
    let down = linear(`${mlp}/down_proj`, product, [`${p}.mlp.down_proj.weight`], `${p}.mlp.down_proj`, spec.mlpBias);
    if (spec.sandwichNorms) {
      down = simpleNorm(`${s}/post_feedforward_layernorm`, down, `${p}.post_feedforward_layernorm.weight`);
    }
    if (i + 1 < spec.numLayers) {
      [normed, residual] = skipNorm(
        `${s}/next_input_layernorm`,
        down,
        residual,
        `model.layers.${i + 1}.input_layernorm.weight`,
      );
    } else {
      [normed] = skipNorm('/model/norm', down, residual, 'model.norm.weight');
    }
  }

  // Only the last num_logits_to_keep positions reach lm_head (0 keeps them all: Slice from -0 = 0).
  const keep = '/model/logits_to_keep';
  const start = g.op1(keep, 'Neg', [g.op1(keep, 'Unsqueeze', [fusedInputNames.logitsToKeep, g.int64([0])])]);
  const kept = g.op1(keep, 'Slice', [normed, start, g.int64([2 ** 53 - 1]), g.int64([1])]);
  const headName = spec.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  const cap = spec.finalLogitSoftcapping;
  // Gemma 2's final softcapping, tanh(l / cap) * cap, after lm_head.
  const finish = (opType: string, inputs: string[]) => {
    if (cap === null) {
      g.opNamed('/lm_head', opType, inputs, ['logits']);
    } else {
      const logits = softcap(g, '/lm_head/softcap', g.op1('/lm_head', opType, inputs), cap);
      g.opNamed('/lm_head', 'Identity', [logits], ['logits']);
    }
  };
  if (nbits === undefined) {
    const head = spec.tieWordEmbeddings
      ? g.op1('/lm_head', 'Transpose', [embeddingValue], { perm: attr.ints([1, 0]) })
      : floatWeight('lm_head.weight.transposed', [hiddenSize, spec.vocabSize], async () =>
          transpose(await weights.read('lm_head.weight'), spec.vocabSize, hiddenSize),
        );
    finish('MatMul', [kept, head]);
  } else {
    finish('Identity', [linear('/lm_head', kept, [headName], 'lm_head', false)]);
  }

  const cacheDims = ['batch_size', kvHeads, 'max_sequence_length', d];
  const inputs: ValueInfoSpec[] = [
    { name: fusedInputNames.inputIds, elemType: DataType.INT64, dims: ['batch_size', 'sequence_length'] },
  ];
  if (rotaryNodes) {
    inputs.push({
      name: fusedInputNames.positionIds,
      elemType: DataType.INT64,
      dims: ['batch_size', 'sequence_length'],
    });
  }
  inputs.push(
    { name: fusedInputNames.seqlensK, elemType: DataType.INT32, dims: ['batch_size'] },
    { name: fusedInputNames.totalSequenceLength, elemType: DataType.INT32, dims: [] },
    { name: fusedInputNames.logitsToKeep, elemType: DataType.INT64, dims: [] },
  );
  const outputs: ValueInfoSpec[] = [
    { name: 'logits', elemType: DataType.FLOAT, dims: ['batch_size', 'logits_length', spec.vocabSize] },
  ];
  for (let i = 0; i < spec.numLayers; i++) {
    for (const kind of ['key', 'value']) {
      inputs.push({ name: `past_key_values.${i}.${kind}`, elemType: DataType.FLOAT, dims: cacheDims });
      outputs.push({ name: `present.${i}.${kind}`, elemType: DataType.FLOAT, dims: cacheDims });
    }
  }
  return { name: 'main_graph', nodes: g.nodes, initializers: g.initializers, inputs, outputs };
}

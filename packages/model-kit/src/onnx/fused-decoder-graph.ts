import { InvalidModelConfigError } from '../errors.js';
import { ropeInverseFrequencies, type DecoderSpec } from '../hf-config.js';
import { decoderTensors, elementCount, type WeightSource } from '../weights.js';
import { checkQuantBlockSize, type OnnxVariant } from './decoder-graph.js';
import { attr, GraphBuilder } from './graph-builder.js';
import { DataType, type GraphSpec, type ValueInfoSpec } from './onnx-proto.js';
import { quantizeBlockwise } from './quantize.js';
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
   * no `position_ids` input), or by `RotaryEmbedding` nodes fed a `position_ids` input (`node`; two more nodes per
   * layer and separate Q / K / V projections). Default: `attention` when `head_dim` is a multiple of 16 (what
   * onnxruntime's kernel needs for it), else `node`.
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
 */
export function buildFusedDecoderGraph(
  spec: DecoderSpec,
  weights: WeightSource,
  options: FusedDecoderGraphOptions = {},
): GraphSpec {
  const g = new GraphBuilder();
  const { numHeads, numKvHeads: kvHeads, headDim: d, hiddenSize } = spec;
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
  const rotaryNodes = (options.rotary ?? (d % 16 === 0 ? 'attention' : 'node')) === 'node';
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
      [input, skip, plain(weightName)],
      [normed, '', '', sum],
      {
        epsilon,
      },
      ms,
    );
    return [normed, sum];
  };

  // Rotary tables [max_position_embeddings, head_dim / 2]: cos and sin of position x inverse frequency, computed in
  // float64 and rounded once.
  const inverse = ropeInverseFrequencies(spec);
  const rows = spec.maxPositionEmbeddings;
  const table = (f: (angle: number) => number) => {
    const values = new Float32Array(rows * (d / 2));
    for (let p = 0; p < rows; p++) for (let i = 0; i < d / 2; i++) values[p * (d / 2) + i] = f(p * inverse[i]!);
    return values;
  };
  const cosCache = g.tensor('cos_cache', DataType.FLOAT, [rows, d / 2], bytesOf(table(Math.cos)));
  const sinCache = g.tensor('sin_cache', DataType.FLOAT, [rows, d / 2], bytesOf(table(Math.sin)));

  const embedding = plain('model.embed_tokens.weight');
  const embedded = g.op1('/model/embed_tokens', 'Gather', [embedding, fusedInputNames.inputIds], {
    axis: attr.int(0),
  });

  let residual = embedded;
  let normed = '/model/layers.0/input_layernorm/output_0';
  g.opNamed(
    '/model/layers.0/input_layernorm',
    'SimplifiedLayerNormalization',
    [embedded, plain('model.layers.0.input_layernorm.weight')],
    [normed],
    { axis: attr.int(-1), epsilon, stash_type: attr.int(1) },
  );

  for (let i = 0; i < spec.numLayers; i++) {
    const p = `model.layers.${i}`;
    const s = `/model/layers.${i}`;
    const a = `${s}/self_attn`;
    const projection = (name: string) => `${p}.self_attn.${name}.weight`;
    let attentionInputs: string[];
    if (rotaryNodes) {
      const rotate = (x: string) =>
        g.opDomain(a, ms, 'RotaryEmbedding', [x, fusedInputNames.positionIds, cosCache, sinCache], {
          interleaved: attr.int(0),
        })[0]!;
      const q = linear(`${a}/q_proj`, normed, [projection('q_proj')], `${p}.self_attn.q_proj`, spec.qkvBias);
      const k = linear(`${a}/k_proj`, normed, [projection('k_proj')], `${p}.self_attn.k_proj`, spec.qkvBias);
      const v = linear(`${a}/v_proj`, normed, [projection('v_proj')], `${p}.self_attn.v_proj`, spec.qkvBias);
      attentionInputs = [rotate(q), rotate(k), v];
    } else {
      const qkv = linear(
        `${a}/qkv_proj`,
        normed,
        ['q_proj', 'k_proj', 'v_proj'].map(projection),
        `${p}.self_attn.qkv_proj`,
        spec.qkvBias,
      );
      attentionInputs = [qkv, '', ''];
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
        ...(rotaryNodes ? [] : [cosCache, sinCache]),
      ],
      [attended, `present.${i}.key`, `present.${i}.value`],
      {
        num_heads: attr.int(numHeads),
        kv_num_heads: attr.int(kvHeads),
        ...(rotaryNodes ? {} : { do_rotary: attr.int(1), rotary_interleaved: attr.int(0) }),
        // Mistral's window: `sliding_window` keys, the query's own included (onnxruntime 1.30's CPU kernel reads
        // local_window_size the same way; the tests check it against the reference).
        ...(spec.slidingWindow === null ? {} : { local_window_size: attr.int(spec.slidingWindow) }),
      },
      ms,
    );
    const output = linear(`${a}/o_proj`, attended, [projection('o_proj')], `${p}.self_attn.o_proj`, spec.outputBias);
    let normed2: string;
    [normed2, residual] = skipNorm(
      `${s}/post_attention_layernorm`,
      output,
      residual,
      `${p}.post_attention_layernorm.weight`,
    );

    const mlp = `${s}/mlp`;
    // Gate and up projections as one product (one pass over the input, one node), split in two.
    const gateUp = linear(
      `${mlp}/gate_up_proj`,
      normed2,
      [`${p}.mlp.gate_proj.weight`, `${p}.mlp.up_proj.weight`],
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
    // QuickGelu computes x * sigmoid(alpha * x): with alpha 1 it is SiLU.
    const activated = g.opDomain(`${mlp}/act_fn`, ms, 'QuickGelu', [gate], { alpha: attr.float(1) })[0]!;
    const product = g.op1(mlp, 'Mul', [activated, up]);
    const down = linear(`${mlp}/down_proj`, product, [`${p}.mlp.down_proj.weight`], `${p}.mlp.down_proj`, spec.mlpBias);
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
  if (nbits === undefined) {
    const head = spec.tieWordEmbeddings
      ? g.op1('/lm_head', 'Transpose', [embedding], { perm: attr.ints([1, 0]) })
      : floatWeight('lm_head.weight.transposed', [hiddenSize, spec.vocabSize], async () =>
          transpose(await weights.read('lm_head.weight'), spec.vocabSize, hiddenSize),
        );
    g.opNamed('/lm_head', 'MatMul', [kept, head], ['logits']);
  } else {
    const product = linear('/lm_head', kept, [headName], 'lm_head', false);
    g.opNamed('/lm_head', 'Identity', [product], ['logits']);
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

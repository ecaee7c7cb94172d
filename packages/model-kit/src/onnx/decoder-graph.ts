import type { DecoderSpec } from '../hf-config.js';
import { decoderTensors, elementCount, type WeightSource } from '../weights.js';
import { attr, GraphBuilder } from './graph-builder.js';
import { DataType, type GraphSpec, type OpsetImport, type ValueInfoSpec } from './onnx-proto.js';
import { quantizeBlockwise, quantizePerChannelInt8 } from './quantize.js';
import {
  effectiveNormWeight,
  geluTanh,
  isSlidingLayer,
  layerTypeOf,
  ropeKindOf,
  rotaryCosSin,
  rotateHalf,
  softcap,
} from './rotary-graph.js';
import { bytesOf, sharedOnce, toFloat16, transpose } from './weight-bytes.js';

/** ONNX opset of the decoder graph (standard domain). */
export const decoderOpsetVersion = 17;

/** The contrib operator domain of `MatMulNBits` (used by the quantized variants). */
export const contribOpsets: readonly OpsetImport[] = [{ domain: 'com.microsoft', version: 1 }];

/**
 * How the weights of a decoder graph are stored (the onnx-community file variants):
 *
 * - `fp32` (`model.onnx`): float32 weights, `MatMul`.
 * - `fp16` (`model_fp16.onnx`): float16 weights, KV-cache inputs / outputs and logits (half the file and cache
 *   size); each weight is cast to float32 for the arithmetic, which onnxruntime folds at load time.
 * - `int8` (`model_quantized.onnx`): every projection and `lm_head` as 8-bit block-wise `MatMulNBits` (block 32,
 *   symmetric, `accuracy_level` 4: int8 x int8 dot products), the embedding as int8 with a scale per row.
 * - `q4` (`model_q4.onnx`): projections and `lm_head` as 4-bit block-wise `MatMulNBits` (block 32, symmetric,
 *   `accuracy_level` 4); the embedding stays float32, as in onnx-community's q4 files.
 */
export type OnnxVariant = 'fp32' | 'fp16' | 'int8' | 'q4';

/**
 * How a decoder graph is built:
 *
 * - `standard`: the Optimum / onnx-community layout from standard opset-17 operators (`attention_mask`,
 *   `position_ids`, caches that grow by concatenation), which transformers.js, Optimum and every ONNX decoder
 *   loader accept; see {@link buildDecoderGraph}.
 * - `fused`: onnxruntime's fused `com.microsoft` operators (`SkipSimplifiedLayerNormalization`,
 *   `GroupQueryAttention` with rotary embeddings and a fixed-capacity KV buffer shared between past and present,
 *   `MatMulNBits`, `QuickGelu`), as onnxruntime-genai builds decoders: about 10 nodes per layer instead of about
 *   55, for onnxruntime only; see `buildFusedDecoderGraph`.
 */
export type OnnxGraphStyle = 'standard' | 'fused';

/** The graph style written when none is asked for. */
export const defaultOnnxGraphStyle: OnnxGraphStyle = 'fused';

/** The file name of each variant under `onnx/` (transformers.js / onnx-community naming). */
export const onnxVariantFiles: Readonly<Record<OnnxVariant, string>> = {
  fp32: 'model.onnx',
  fp16: 'model_fp16.onnx',
  int8: 'model_quantized.onnx',
  q4: 'model_q4.onnx',
};

/** Options of {@link buildDecoderGraph}. */
export interface DecoderGraphOptions {
  /** Default `fp32`. */
  variant?: OnnxVariant;
  /**
   * Whether the graph takes `position_ids` (default true). Without it, positions are counted from
   * `attention_mask` (running sum minus one), as exports of models without a position input do.
   */
  positionIds?: boolean;
  /** Weights per quantization block of the `MatMulNBits` variants; see {@link checkQuantBlockSize}. Default 32. */
  quantBlockSize?: number;
}

/** Default block size of the `MatMulNBits` variants: as llama.cpp's Q4_0 / Q8_0 and onnxruntime-genai's CPU builds. */
export const defaultQuantBlockSize = 32;

/**
 * Validates a `MatMulNBits` block size (weights per scale and zero point): 16, 32, 64, 128 or 256, what
 * onnxruntime's kernels take. Larger blocks store fewer scales and run faster, with more quantization error.
 *
 * @throws {RangeError} any other value.
 */
export function checkQuantBlockSize(value: number | undefined): number {
  const size = value ?? defaultQuantBlockSize;
  if (![16, 32, 64, 128, 256].includes(size)) {
    throw new RangeError(`quantBlockSize must be 16, 32, 64, 128 or 256, got ${String(value)}`);
  }
  return size;
}

/** Largest finite float32: masked attention scores are set to its negative, as transformers does. */
const float32Lowest = -3.4028234663852886e38;

/**
 * Builds the decoder in the Optimum / onnx-community layout, from standard opset-17 operators only:
 *
 * - inputs `input_ids` [batch, seq] int64, `attention_mask` [batch, past+seq] int64, `position_ids` [batch, seq]
 *   int64, `past_key_values.{i}.key|value` [batch, kv_heads, past, head_dim] float32;
 * - outputs `logits` [batch, seq, vocab] and `present.{i}.key|value` [batch, kv_heads, past+seq, head_dim].
 *
 * Attention follows transformers' Llama: RMSNorm, rotary embeddings in the `rotate_half` layout with cos/sin
 * computed from `position_ids` (so any position works, and rope scaling is folded into the inverse frequencies),
 * a mask that is causal over cache positions AND `attention_mask` (so left and right padding both work; masked
 * scores become the lowest float32, so fully padded rows stay finite), and grouped-query attention in which query
 * head h reads key/value head floor(h / (heads / kv_heads)) — computed by broadcasting the query groups against
 * each key/value head, which equals repeating the key/value heads. Linear weights are stored transposed
 * (`[in, out]`) for MatMul, as the PyTorch exporter does; a tied `lm_head` is a Transpose of the embedding.
 *
 * The other families, from the same standard operators (opset 17):
 *
 * - qwen3 / gemma3_text: per-head RMSNorm of queries and keys (`q_norm`, `k_norm`) before rotary;
 * - gemma2 / gemma3_text: `1 + w` norm weights folded into the stored constants (float32), sandwich norms, GELU-tanh
 *   (`0.5 x (1 + tanh(...))` from Mul / Add / Tanh), the embedding times `sqrt(hidden_size)`, scores scaled by
 *   `query_pre_attn_scalar^-0.5`, attention softcapping (`Div`, `Tanh`, `Mul` before the mask) and final-logit
 *   softcapping; a sliding-window mask on the `sliding_attention` layers only, and gemma3's sliding layers rotate
 *   with their own (unscaled) base;
 * - phi3: packed `qkv_proj` and `gate_up_proj` (one MatMul, then Split, as onnx-community's Phi-3 exports), partial
 *   rotary (the first `rotaryDim` entries of each head rotate, the rest pass through: Split / Concat);
 * - rope scaling: static frequencies (linear, llama3, yarn) are constants, yarn's / longrope's attention factor
 *   multiplies cos and sin; `longrope` and `dynamic` read each row's length `ReduceMax(position_ids) + 1` and
 *   pick the long / short factor table (`Where`), or compute the dynamic-NTK base, per row and per forward
 *   (cached keys keep the rotation they were written with, as in transformers).
 */
export function buildDecoderGraph(
  spec: DecoderSpec,
  weights: WeightSource,
  options: DecoderGraphOptions = {},
): GraphSpec {
  const g = new GraphBuilder();
  const { numHeads, numKvHeads: kvHeads, headDim: d } = spec;
  const groups = numHeads / kvHeads;
  const shapes = new Map(decoderTensors(spec).map((t) => [t.name, t.shape]));
  const variant = options.variant ?? 'fp32';
  const quantBlockSize = checkQuantBlockSize(options.quantBlockSize);
  const half = variant === 'fp16';
  const nbits = variant === 'q4' ? 4 : variant === 'int8' ? 8 : undefined;
  const ioFloat = half ? DataType.FLOAT16 : DataType.FLOAT;

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
  // A projection weight [out, in] is stored as [in, out] under a name that says so.
  const transposed = (name: string): string => {
    const [rows, cols] = shapes.get(name)! as [number, number];
    return floatWeight(`${name}.transposed`, [cols, rows], async () => transpose(await weights.read(name), rows, cols));
  };
  // A weight [N, K] as MatMulNBits operands (packed codes and scales), quantized once for both initializers.
  const blockQuantized = (name: string, bits: 4 | 8): [string, string] => {
    const [n, k] = shapes.get(name)! as [number, number];
    const blocks = Math.ceil(k / quantBlockSize);
    const blobSize = (quantBlockSize * bits) / 8;
    const quantized = sharedOnce(
      async () => quantizeBlockwise(await weights.read(name), n, k, { bits, blockSize: quantBlockSize }),
      2,
    );
    const base = name.replace(/\.weight$/, '');
    return [
      g.tensor(`${base}.MatMul.weight_Q${bits}`, DataType.UINT8, [n, blocks, blobSize], {
        byteLength: n * blocks * blobSize,
        produce: async () => (await quantized()).packed,
      }),
      g.tensor(`${base}.MatMul.weight_scales`, DataType.FLOAT, [n * blocks], {
        byteLength: n * blocks * 4,
        produce: async () => bytesOf((await quantized()).scales),
      }),
    ];
  };
  const matMulNBits = (scope: string, input: string, name: string, bits: 4 | 8): string => {
    const [n, k] = shapes.get(name)! as [number, number];
    return g.opDomain(scope, 'com.microsoft', 'MatMulNBits', [input, ...blockQuantized(name, bits)], {
      K: attr.int(k),
      N: attr.int(n),
      bits: attr.int(bits),
      block_size: attr.int(quantBlockSize),
      accuracy_level: attr.int(4),
    })[0]!;
  };
  const linear = (scope: string, input: string, name: string, bias: boolean): string => {
    const product =
      nbits === undefined
        ? g.op1(scope, 'MatMul', [input, transposed(`${name}.weight`)])
        : matMulNBits(scope, input, `${name}.weight`, nbits);
    return bias ? g.op1(scope, 'Add', [product, plain(`${name}.bias`)]) : product;
  };
  const eps = g.float32([spec.rmsNormEps], []);
  const two = g.float32([2], []);
  // Norm weights as multiplied: Gemma's `1 + w` is folded into the stored constant (in float32).
  const normWeight = (name: string): string =>
    floatWeight(name, shapes.get(name)!, async () => effectiveNormWeight(spec, await weights.read(name)));
  const rmsNorm = (scope: string, input: string, weightName: string): string => {
    const squared = g.op1(scope, 'Pow', [input, two]);
    const mean = g.op1(scope, 'ReduceMean', [squared], { axes: attr.ints([-1]), keepdims: attr.int(1) });
    const root = g.op1(scope, 'Sqrt', [g.op1(scope, 'Add', [mean, eps])]);
    const normed = g.op1(scope, 'Div', [input, root]);
    return g.op1(scope, 'Mul', [normWeight(weightName), normed]);
  };
  const rotate = (scope: string, x: string, cos: string, sin: string): string =>
    rotateHalf(g, scope, x, cos, sin, spec.rotaryDim, d);

  // Embedding: float rows, or int8 rows times a per-row scale.
  let hidden: string;
  let embedding: string | undefined;
  if (variant === 'int8') {
    const e = '/model/embed_tokens';
    const [rows, cols] = shapes.get('model.embed_tokens.weight')! as [number, number];
    const quantized = sharedOnce(
      async () => quantizePerChannelInt8(await weights.read('model.embed_tokens.weight'), rows, cols),
      2,
    );
    const table = g.tensor('model.embed_tokens.weight_quantized', DataType.INT8, [rows, cols], {
      byteLength: rows * cols,
      produce: async () => bytesOf((await quantized()).values),
    });
    const scales = g.tensor('model.embed_tokens.weight_scale', DataType.FLOAT, [rows, 1], {
      byteLength: rows * 4,
      produce: async () => bytesOf((await quantized()).scales),
    });
    const codes = g.op1(e, 'Cast', [g.op1(e, 'Gather', [table, 'input_ids'], { axis: attr.int(0) })], {
      to: attr.int(DataType.FLOAT),
    });
    hidden = g.op1(e, 'Mul', [codes, g.op1(e, 'Gather', [scales, 'input_ids'], { axis: attr.int(0) })]);
  } else {
    embedding = plain('model.embed_tokens.weight');
    hidden = g.op1('/model/embed_tokens', 'Gather', [embedding, 'input_ids'], {
      axis: attr.int(0),
    });
  }
  if (spec.embeddingScale !== null) {
    // Gemma: rows times fround(sqrt(hidden_size)); a tied lm_head still reads the unscaled table.
    hidden = g.op1('/model/embed_tokens', 'Mul', [hidden, g.float32([spec.embeddingScale], [])]);
  }

  // Mask inputs shared by the rotary positions (without position_ids) and the attention mask.
  const m = '/model/mask';
  const seqLength = g.op1(m, 'Shape', ['input_ids'], { start: attr.int(1), end: attr.int(2) });
  const totalLength = g.op1(m, 'Shape', ['attention_mask'], { start: attr.int(1), end: attr.int(2) });
  const pastLength = g.op1(m, 'Sub', [totalLength, seqLength]);

  // Rotary tables from position_ids: [batch, seq, rotary_dim] -> broadcastable shapes for keys and query groups,
  // one set per rotary kind in use (gemma3's sliding layers have their own theta).
  const rotary = '/model/rotary_emb';
  let positionIds = 'position_ids';
  if (options.positionIds === false) {
    // Positions of the new tokens: how many real tokens precede each one (running sum of attention_mask - 1).
    const counts = g.op1(rotary, 'CumSum', ['attention_mask', g.int64([1], [])]);
    const newCounts = g.op1(rotary, 'Slice', [counts, pastLength, totalLength, g.int64([1])]);
    positionIds = g.op1(rotary, 'Sub', [newCounts, g.int64([1], [])]);
  }
  type RotaryInputs = { cosKeys: string; sinKeys: string; cosQueries: string; sinQueries: string };
  const rotaryByKind = new Map<'global' | 'local', RotaryInputs>();
  const rotaryInputs = (kind: 'global' | 'local'): RotaryInputs => {
    let found = rotaryByKind.get(kind);
    if (found === undefined) {
      const scope = kind === 'global' ? rotary : '/model/rotary_emb_local';
      const { cos, sin } = rotaryCosSin(g, spec, kind, positionIds, scope);
      found = {
        cosKeys: g.op1(scope, 'Unsqueeze', [cos, g.int64([1])]),
        sinKeys: g.op1(scope, 'Unsqueeze', [sin, g.int64([1])]),
        cosQueries: g.op1(scope, 'Unsqueeze', [cos, g.int64([1, 2])]),
        sinQueries: g.op1(scope, 'Unsqueeze', [sin, g.int64([1, 2])]),
      };
      rotaryByKind.set(kind, found);
    }
    return found;
  };

  // Mask [batch, 1, 1, seq, total]: key j is visible to query i (at cache position past + i) when
  // j <= past + i and attention_mask[b, j] = 1 (and, in a sliding layer, j is fewer than window tokens back).
  const scalarAxis = g.int64([0]);
  const total = g.op1(m, 'Squeeze', [totalLength, scalarAxis]);
  const past = g.op1(m, 'Squeeze', [pastLength, scalarAxis]);
  const zero = g.int64([0], []);
  const one = g.int64([1], []);
  const keyPositions = g.op1(m, 'Range', [zero, total, one]);
  const queryPositions = g.op1(m, 'Unsqueeze', [g.op1(m, 'Range', [past, total, one]), g.int64([1])]);
  const visible = g.op1(m, 'LessOrEqual', [keyPositions, queryPositions]);
  const keep = g.op1(m, 'Cast', ['attention_mask'], { to: attr.int(DataType.BOOL) });
  const keepRows = g.op1(m, 'Unsqueeze', [keep, g.int64([1, 2, 3])]);
  const fullMask = g.op1(m, 'And', [visible, keepRows]);
  let slidingMask: string | undefined;
  const maskOf = (layer: number): string => {
    if (!isSlidingLayer(spec, layer)) return fullMask;
    if (slidingMask === undefined) {
      // The window counts real tokens (running sum of attention_mask), not cache slots, so padding anywhere in the
      // cache does not shrink it; without padding this is transformers' cache-position window.
      const tokenIndex = g.op1(m, 'CumSum', ['attention_mask', g.int64([1], [])]);
      const queryIndex = g.op1(m, 'Slice', [tokenIndex, pastLength, totalLength, g.int64([1])]);
      const distance = g.op1(m, 'Sub', [
        g.op1(m, 'Unsqueeze', [queryIndex, g.int64([2])]),
        g.op1(m, 'Unsqueeze', [tokenIndex, g.int64([1])]),
      ]);
      const inWindow = g.op1(m, 'Less', [distance, g.int64([spec.slidingWindow!], [])]);
      slidingMask = g.op1(m, 'And', [fullMask, g.op1(m, 'Unsqueeze', [inWindow, g.int64([1, 2])])]);
    }
    return slidingMask;
  };
  const lowest = g.float32([float32Lowest], []);
  const scale = g.float32([spec.attentionScale], []);
  const querySplit = g.int64([0, 0, kvHeads, groups, d]);
  const kvSplit = g.int64([0, 0, kvHeads, d]);
  const merged = g.int64([0, 0, numHeads * d]);
  const activation = (scope: string, x: string): string =>
    spec.hiddenAct === 'gelu_pytorch_tanh'
      ? geluTanh(g, scope, x)
      : g.op1(scope, 'Mul', [x, g.op1(scope, 'Sigmoid', [x])]);

  for (let i = 0; i < spec.numLayers; i++) {
    const p = `model.layers.${i}`;
    const s = `/model/layers.${i}`;
    const a = `${s}/self_attn`;
    const normed = rmsNorm(`${s}/input_layernorm`, hidden, `${p}.input_layernorm.weight`);
    let q: string;
    let k: string;
    let v: string;
    if (spec.packedProjections) {
      // Phi-3's packed qkv_proj: one MatMul, then Split into q, k and v (as onnx-community's Phi-3 exports).
      const qkv = linear(`${a}/qkv_proj`, normed, `${p}.self_attn.qkv_proj`, spec.qkvBias);
      [q, k, v] = g.op(
        a,
        'Split',
        [qkv, g.int64([numHeads * d, kvHeads * d, kvHeads * d])],
        { axis: attr.int(-1) },
        3,
      ) as [string, string, string];
    } else {
      q = linear(`${a}/q_proj`, normed, `${p}.self_attn.q_proj`, spec.qkvBias);
      k = linear(`${a}/k_proj`, normed, `${p}.self_attn.k_proj`, spec.qkvBias);
      v = linear(`${a}/v_proj`, normed, `${p}.self_attn.v_proj`, spec.qkvBias);
    }
    // Queries as [batch, kv_heads, groups, seq, head_dim]; keys and values as [batch, kv_heads, seq, head_dim].
    let queryHeads = g.op1(a, 'Reshape', [q, querySplit]);
    let keyHeads = g.op1(a, 'Reshape', [k, kvSplit]);
    if (spec.queryKeyNorm) {
      // Per-head RMSNorm over head_dim (qwen3, gemma3), after the projections and before rotary.
      queryHeads = rmsNorm(`${a}/q_norm`, queryHeads, `${p}.self_attn.q_norm.weight`);
      keyHeads = rmsNorm(`${a}/k_norm`, keyHeads, `${p}.self_attn.k_norm.weight`);
    }
    const queries = g.op1(a, 'Transpose', [queryHeads], { perm: attr.ints([0, 2, 3, 1, 4]) });
    const keys = g.op1(a, 'Transpose', [keyHeads], { perm: attr.ints([0, 2, 1, 3]) });
    const values = g.op1(a, 'Transpose', [g.op1(a, 'Reshape', [v, kvSplit])], { perm: attr.ints([0, 2, 1, 3]) });
    const { cosKeys, sinKeys, cosQueries, sinQueries } = rotaryInputs(ropeKindOf(spec, layerTypeOf(spec, i)));
    const rotatedQueries = rotate(a, queries, cosQueries, sinQueries);
    const rotatedKeys = rotate(a, keys, cosKeys, sinKeys);
    let presentKey = `present.${i}.key`;
    let presentValue = `present.${i}.value`;
    if (half) {
      // The cache is float16 in and out; the new entries are rounded before anyone reads them, so prefill and
      // decode see the same cached values.
      const toHalf = (x: string) => g.op1(a, 'Cast', [x], { to: attr.int(DataType.FLOAT16) });
      const toFloat = (x: string) => g.op1(a, 'Cast', [x], { to: attr.int(DataType.FLOAT) });
      g.opNamed(a, 'Concat', [`past_key_values.${i}.key`, toHalf(rotatedKeys)], [presentKey], { axis: attr.int(2) });
      g.opNamed(a, 'Concat', [`past_key_values.${i}.value`, toHalf(values)], [presentValue], { axis: attr.int(2) });
      presentKey = toFloat(presentKey);
      presentValue = toFloat(presentValue);
    } else {
      g.opNamed(a, 'Concat', [`past_key_values.${i}.key`, rotatedKeys], [presentKey], { axis: attr.int(2) });
      g.opNamed(a, 'Concat', [`past_key_values.${i}.value`, values], [presentValue], { axis: attr.int(2) });
    }
    const keysT = g.op1(a, 'Transpose', [presentKey], { perm: attr.ints([0, 1, 3, 2]) });
    const scores = g.op1(a, 'MatMul', [rotatedQueries, g.op1(a, 'Unsqueeze', [keysT, g.int64([2])])]);
    let scaled = g.op1(a, 'Mul', [scores, scale]);
    if (spec.attnLogitSoftcapping !== null) scaled = softcap(g, `${a}/softcap`, scaled, spec.attnLogitSoftcapping);
    const masked = g.op1(a, 'Where', [maskOf(i), scaled, lowest]);
    const probabilities = g.op1(a, 'Softmax', [masked], { axis: attr.int(-1) });
    const context = g.op1(a, 'MatMul', [probabilities, g.op1(a, 'Unsqueeze', [presentValue, g.int64([2])])]);
    const contextRows = g.op1(a, 'Transpose', [context], { perm: attr.ints([0, 3, 1, 2, 4]) });
    const attended = g.op1(a, 'Reshape', [contextRows, merged]);
    let output = linear(`${a}/o_proj`, attended, `${p}.self_attn.o_proj`, spec.outputBias);
    if (spec.sandwichNorms) {
      output = rmsNorm(`${s}/post_attention_layernorm`, output, `${p}.post_attention_layernorm.weight`);
    }
    hidden = g.op1(s, 'Add', [hidden, output]);

    const mlp = `${s}/mlp`;
    const normed2 = spec.sandwichNorms
      ? rmsNorm(`${s}/pre_feedforward_layernorm`, hidden, `${p}.pre_feedforward_layernorm.weight`)
      : rmsNorm(`${s}/post_attention_layernorm`, hidden, `${p}.post_attention_layernorm.weight`);
    let gate: string;
    let up: string;
    if (spec.packedProjections) {
      const gateUp = linear(`${mlp}/gate_up_proj`, normed2, `${p}.mlp.gate_up_proj`, spec.mlpBias);
      const sizes = g.int64([spec.intermediateSize, spec.intermediateSize]);
      [gate, up] = g.op(mlp, 'Split', [gateUp, sizes], { axis: attr.int(-1) }, 2) as [string, string];
    } else {
      gate = linear(`${mlp}/gate_proj`, normed2, `${p}.mlp.gate_proj`, spec.mlpBias);
      up = linear(`${mlp}/up_proj`, normed2, `${p}.mlp.up_proj`, spec.mlpBias);
    }
    const activated = activation(`${mlp}/act_fn`, gate);
    let down = linear(`${mlp}/down_proj`, g.op1(mlp, 'Mul', [activated, up]), `${p}.mlp.down_proj`, spec.mlpBias);
    if (spec.sandwichNorms) {
      down = rmsNorm(`${s}/post_feedforward_layernorm`, down, `${p}.post_feedforward_layernorm.weight`);
    }
    hidden = g.op1(s, 'Add', [hidden, down]);
  }

  const final = rmsNorm('/model/norm', hidden, 'model.norm.weight');
  const headName = spec.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  const cap = spec.finalLogitSoftcapping;
  // Logits in float32, softcapped (Gemma 2) before any cast to the float16 output.
  const finish = (scope: string, opType: string, inputs: string[]) => {
    if (cap === null && !half) {
      g.opNamed(scope, opType, inputs, ['logits']);
      return;
    }
    let logits = g.op1(scope, opType, inputs);
    if (cap !== null) logits = softcap(g, `${scope}/softcap`, logits, cap);
    if (half) g.opNamed(scope, 'Cast', [logits], ['logits'], { to: attr.int(DataType.FLOAT16) });
    else g.opNamed(scope, 'Identity', [logits], ['logits']);
  };
  if (nbits !== undefined) {
    finish('/lm_head', 'Identity', [matMulNBits('/lm_head', final, headName, nbits)]);
  } else {
    const head = spec.tieWordEmbeddings
      ? g.op1('/lm_head', 'Transpose', [embedding!], { perm: attr.ints([1, 0]) })
      : transposed('lm_head.weight');
    finish('/lm_head', 'MatMul', [final, head]);
  }

  const kvDims = (length: string) => ['batch_size', kvHeads, length, d];
  const inputs: ValueInfoSpec[] = [
    { name: 'input_ids', elemType: DataType.INT64, dims: ['batch_size', 'sequence_length'] },
    { name: 'attention_mask', elemType: DataType.INT64, dims: ['batch_size', 'past_sequence_length + 1'] },
  ];
  if (options.positionIds !== false) {
    inputs.push({ name: 'position_ids', elemType: DataType.INT64, dims: ['batch_size', 'sequence_length'] });
  }
  const outputs: ValueInfoSpec[] = [
    { name: 'logits', elemType: ioFloat, dims: ['batch_size', 'sequence_length', spec.vocabSize] },
  ];
  for (let i = 0; i < spec.numLayers; i++) {
    for (const kind of ['key', 'value']) {
      inputs.push({
        name: `past_key_values.${i}.${kind}`,
        elemType: ioFloat,
        dims: kvDims('past_sequence_length'),
      });
      outputs.push({
        name: `present.${i}.${kind}`,
        elemType: ioFloat,
        dims: kvDims('past_sequence_length + sequence_length'),
      });
    }
  }
  return { name: 'main_graph', nodes: g.nodes, initializers: g.initializers, inputs, outputs };
}

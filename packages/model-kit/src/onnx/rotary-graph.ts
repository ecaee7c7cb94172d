import { ropeAttentionFactor, ropeInverseFrequencies, type DecoderSpec, type LayerType } from '../hf-config.js';
import { attr, type GraphBuilder } from './graph-builder.js';
import { DataType } from './onnx-proto.js';

/** The attention type of layer `index`: from `layerTypes`, else sliding for every layer when the model has a window. */
export function layerTypeOf(spec: DecoderSpec, index: number): LayerType {
  return spec.layerTypes[index] ?? (spec.slidingWindow === null ? 'full_attention' : 'sliding_attention');
}

/** Whether layer `index` masks keys further back than `slidingWindow` positions. */
export function isSlidingLayer(spec: DecoderSpec, index: number): boolean {
  return spec.slidingWindow !== null && layerTypeOf(spec, index) === 'sliding_attention';
}

/**
 * Which rotary embedding a layer of `layerType` uses: `local` (gemma3's `rope_local_base_freq`, unscaled) for
 * sliding layers of a model with a local theta, else `global` (`rope_theta` with `rope_scaling`).
 */
export function ropeKindOf(spec: DecoderSpec, layerType: LayerType): 'global' | 'local' {
  return spec.localRopeTheta !== null && layerType === 'sliding_attention' ? 'local' : 'global';
}

/** The layer type whose frequencies a rotary kind is asked for with. */
const kindLayerType = (kind: 'global' | 'local'): LayerType =>
  kind === 'local' ? 'sliding_attention' : 'full_attention';

/** The factor on cos and sin of a rotary kind (YaRN's and longrope's attention factor; 1 for the local one). */
function ropeCosSinFactor(spec: DecoderSpec, kind: 'global' | 'local'): number {
  return ropeAttentionFactor(spec, kindLayerType(kind));
}

/**
 * Whether the frequencies of a rotary kind depend on the sequence length of the forward (`dynamic`, `longrope`),
 * so that they cannot be a table indexed by position alone.
 */
export function ropeDependsOnLength(spec: DecoderSpec, kind: 'global' | 'local'): boolean {
  const type = spec.ropeScaling?.ropeType;
  return kind === 'global' && (type === 'dynamic' || type === 'longrope');
}

/**
 * Inverse frequencies (`rotaryDim / 2`) of a rotary kind whose frequencies do not depend on the sequence length.
 */
function staticInverseFrequencies(spec: DecoderSpec, kind: 'global' | 'local'): Float32Array {
  return ropeInverseFrequencies(spec, { layerType: kindLayerType(kind) });
}

/**
 * Rotary tables `[max_position_embeddings, rotaryDim / 2]` for onnxruntime's `GroupQueryAttention` /
 * `RotaryEmbedding` caches: cos and sin of position x inverse frequency computed in float64, times the kind's
 * attention factor, rounded once to float32.
 */
export function rotaryCacheTables(
  spec: DecoderSpec,
  kind: 'global' | 'local',
): { cos: Float32Array; sin: Float32Array } {
  const inverse = staticInverseFrequencies(spec, kind);
  const factor = ropeCosSinFactor(spec, kind);
  const half = inverse.length;
  const rows = spec.contextLength;
  const cos = new Float32Array(rows * half);
  const sin = new Float32Array(rows * half);
  for (let p = 0; p < rows; p++) {
    for (let i = 0; i < half; i++) {
      cos[p * half + i] = Math.cos(p * inverse[i]!) * factor;
      sin[p * half + i] = Math.sin(p * inverse[i]!) * factor;
    }
  }
  return { cos, sin };
}

/**
 * Adds the nodes that compute rotary cos and sin `[batch, seq, rotaryDim]` (rotate-half layout: the frequencies
 * twice) from `positionIds` (int64 `[batch, seq]`) for a rotary kind, in float32 as transformers does:
 *
 * - static frequencies (default, linear, llama3, yarn, the local kind): `position x invFreq`;
 * - `longrope`: each row's length `L = max(position_ids of the row) + 1` picks the long factors when
 *   `L > original_max_position_embeddings`, else the short ones (`Where` between the two frequency tables);
 * - `dynamic`: rows with `L > max_position_embeddings` use the base
 *   `theta * (factor * L / max - (factor - 1))^(dim / (dim - 2))`, computed in the graph; others the unscaled one.
 *
 * Then cos and sin are multiplied by the attention factor (YaRN, longrope) when it is not 1.
 */
export function rotaryCosSin(
  g: GraphBuilder,
  spec: DecoderSpec,
  kind: 'global' | 'local',
  positionIds: string,
  scope: string,
): { cos: string; sin: string } {
  const positions = g.op1(scope, 'Cast', [positionIds], { to: attr.int(DataType.FLOAT) });
  const positionColumn = g.op1(scope, 'Unsqueeze', [positions, g.int64([-1])]);
  let inverse: string;
  const scaling = spec.ropeScaling;
  if (ropeDependsOnLength(spec, kind) && scaling !== null) {
    // Each row's sequence length in this forward, [batch, 1, 1].
    const last = g.op1(scope, 'ReduceMax', [positionIds], { axes: attr.ints([1]), keepdims: attr.int(1) });
    const length = g.op1(scope, 'Cast', [g.op1(scope, 'Add', [last, g.int64([1], [])])], {
      to: attr.int(DataType.FLOAT),
    });
    const lengthColumn = g.op1(scope, 'Unsqueeze', [length, g.int64([-1])]);
    if (scaling.ropeType === 'longrope') {
      const original = scaling.originalMaxPositionEmbeddings;
      const short = ropeInverseFrequencies(spec, { sequenceLength: original, layerType: 'full_attention' });
      const long = ropeInverseFrequencies(spec, { sequenceLength: original + 1, layerType: 'full_attention' });
      const isLong = g.op1(scope, 'Greater', [lengthColumn, g.float32([original], [])]);
      inverse = g.op1(scope, 'Where', [isLong, g.float32(long), g.float32(short)]);
    } else {
      const dim = spec.rotaryDim;
      const max = spec.maxPositionEmbeddings;
      const factor = scaling.ropeType === 'dynamic' ? scaling.factor : 1;
      const unscaled = ropeInverseFrequencies(spec, { sequenceLength: max, layerType: 'full_attention' });
      // base' = theta * (factor * L / max - (factor - 1)) ^ (dim / (dim - 2)); invFreq_i = 1 / base'^(2i / dim).
      const ratio = g.op1(scope, 'Sub', [
        g.op1(scope, 'Mul', [lengthColumn, g.float32([factor / max], [])]),
        g.float32([factor - 1], []),
      ]);
      const grown = g.op1(scope, 'Pow', [ratio, g.float32([dim / (dim - 2)], [])]);
      const base = g.op1(scope, 'Mul', [grown, g.float32([spec.ropeTheta], [])]);
      const exponents = Float32Array.from({ length: dim / 2 }, (_, i) => (2 * i) / dim);
      const scaled = g.op1(scope, 'Reciprocal', [g.op1(scope, 'Pow', [base, g.float32(exponents)])]);
      const isLong = g.op1(scope, 'Greater', [lengthColumn, g.float32([max], [])]);
      inverse = g.op1(scope, 'Where', [isLong, scaled, g.float32(unscaled)]);
    }
  } else {
    inverse = g.float32(staticInverseFrequencies(spec, kind));
  }
  const freqs = g.op1(scope, 'Mul', [positionColumn, inverse]);
  const angles = g.op1(scope, 'Concat', [freqs, freqs], { axis: attr.int(-1) });
  let cos = g.op1(scope, 'Cos', [angles]);
  let sin = g.op1(scope, 'Sin', [angles]);
  const factor = ropeCosSinFactor(spec, kind);
  if (factor !== 1) {
    const constant = g.float32([factor], []);
    cos = g.op1(scope, 'Mul', [cos, constant]);
    sin = g.op1(scope, 'Mul', [sin, constant]);
  }
  return { cos, sin };
}

/**
 * Rotates `x` (last axis `headDim`) by `cos` / `sin` (last axis `rotaryDim`, broadcastable to `x`) in the
 * rotate-half layout; with partial rotary only the first `rotaryDim` entries turn and the rest pass through.
 */
export function rotateHalf(
  g: GraphBuilder,
  scope: string,
  x: string,
  cos: string,
  sin: string,
  rotaryDim: number,
  headDim: number,
): string {
  let rotary = x;
  let pass: string | undefined;
  if (rotaryDim < headDim) {
    [rotary, pass] = g.op(
      scope,
      'Split',
      [x, g.int64([rotaryDim, headDim - rotaryDim])],
      { axis: attr.int(-1) },
      2,
    ) as [string, string];
  }
  const half = rotaryDim / 2;
  const [x1, x2] = g.op(scope, 'Split', [rotary, g.int64([half, half])], { axis: attr.int(-1) }, 2) as [string, string];
  const turned = g.op1(scope, 'Concat', [g.op1(scope, 'Neg', [x2]), x1], { axis: attr.int(-1) });
  const rotated = g.op1(scope, 'Add', [g.op1(scope, 'Mul', [rotary, cos]), g.op1(scope, 'Mul', [turned, sin])]);
  return pass === undefined ? rotated : g.op1(scope, 'Concat', [rotated, pass], { axis: attr.int(-1) });
}

/** `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))` (`gelu_pytorch_tanh`) from standard operators. */
export function geluTanh(g: GraphBuilder, scope: string, x: string): string {
  const cube = g.op1(scope, 'Mul', [g.op1(scope, 'Mul', [x, x]), x]);
  const inner = g.op1(scope, 'Add', [x, g.op1(scope, 'Mul', [cube, g.float32([0.044715], [])])]);
  const tanh = g.op1(scope, 'Tanh', [g.op1(scope, 'Mul', [inner, g.float32([Math.sqrt(2 / Math.PI)], [])])]);
  const gate = g.op1(scope, 'Add', [tanh, g.float32([1], [])]);
  return g.op1(scope, 'Mul', [g.op1(scope, 'Mul', [x, gate]), g.float32([0.5], [])]);
}

/** `tanh(x / cap) * cap` (Gemma 2's attention-logit and final-logit softcapping). */
export function softcap(g: GraphBuilder, scope: string, x: string, cap: number): string {
  const constant = g.float32([cap], []);
  return g.op1(scope, 'Mul', [g.op1(scope, 'Tanh', [g.op1(scope, 'Div', [x, constant])]), constant]);
}

/**
 * A norm weight as the graph multiplies by it: the checkpoint's, or `1 + w` rounded to float32 for Gemma's
 * RMSNorms (`normWeightOffset`).
 */
export function effectiveNormWeight(spec: DecoderSpec, values: Float32Array): Float32Array {
  if (!spec.normWeightOffset) return values;
  return values.map((w) => 1 + w);
}

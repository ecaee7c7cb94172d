import {
  AbortError,
  rotaryDependsOnLength,
  rotaryParameters,
  type DecoderModelConfig,
  type LayerAttentionType,
  type RotaryParameters,
} from '@gen/backend';
import * as tf from '@tensorflow/tfjs-core';
import type { KvCache, LayerKv } from './kv-cache.js';
import { rotaryMultipliers, rotateHalfMatrix, type RotaryRun } from './rope.js';
import type { LayerTensors, ModelTensors } from './weights.js';

/** Part of a batch: tokens appended to one sequence's cache from position `start` (= `cache.length`) on. */
export interface Segment {
  readonly cache: KvCache;
  readonly tokens: ArrayLike<number>;
  readonly start: number;
  /** Whether logits are needed for every appended token (prompt logits) or only the last. */
  readonly allLogits: boolean;
}

/** How attention is computed; chosen per tfjs backend. */
export interface AttentionStrategy {
  /**
   * Segments with at least this many new tokens compute attention one key/value head at a time with plain 2-D
   * products on exactly sized slices (on wasm those take XNNPACK's SIMD path; the batched 3-D product is a scalar
   * loop there). `Infinity` keeps every segment on the batched path.
   */
  readonly perHeadFromTokens: number;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Which rotary embedding a layer uses: the global one, or Gemma 3's local one (sliding layers). */
type RopeKind = 'global' | 'local';

const layerTypeOf = (kind: RopeKind): LayerAttentionType => (kind === 'local' ? 'sliding_attention' : 'full_attention');

/**
 * The decoder stack of the Llama family (Llama, Mistral, Qwen2 / 3, Gemma 2 / 3, Phi-3) in tfjs ops (float32), with
 * every per-family difference read from the {@link DecoderModelConfig}. Stateless apart from its weights: sequence
 * state lives in the {@link KvCache}s of the segments it is handed.
 */
export class TfjsDecoder {
  readonly config: DecoderModelConfig;
  private readonly weights: ModelTensors;
  private readonly strategy: AttentionStrategy;
  /** Rotary embedding per layer. */
  private readonly ropeKinds: readonly RopeKind[];
  /** Parameters of the kinds that do not depend on the sequence length, computed once. */
  private readonly fixedRope = new Map<RopeKind, RotaryParameters>();
  private readonly rotateHalf: tf.Tensor2D;

  constructor(config: DecoderModelConfig, weights: ModelTensors, strategy: AttentionStrategy) {
    this.config = config;
    this.weights = weights;
    this.strategy = strategy;
    this.ropeKinds = config.layerTypes.map((type) =>
      type === 'sliding_attention' && config.localRope !== null ? 'local' : 'global',
    );
    for (const kind of new Set(this.ropeKinds)) {
      if (!rotaryDependsOnLength(config, { layerType: layerTypeOf(kind) }))
        this.fixedRope.set(kind, this.rotary(kind, 1));
    }
    const { headDim, rotaryDim } = config;
    this.rotateHalf = tf.tensor2d(rotateHalfMatrix(headDim, rotaryDim), [headDim, headDim]);
  }

  /** Bytes of the weight tensors on the tfjs backend. */
  get weightBytes(): number {
    return this.weights.bytes + this.rotateHalf.size * 4;
  }

  dispose(): void {
    this.weights.dispose();
    this.rotateHalf.dispose();
  }

  /**
   * Runs the segments through the decoder, appending their keys and values to the caches (uncommitted: the caller
   * commits or rolls back). Returns the logits of the requested rows in segment order: every token's row for
   * `allLogits` segments, else the last token's. Yields to the event loop before each layer and throws
   * {@link AbortError} there when `signal` is aborted. Every tensor it creates is disposed before it returns.
   */
  async forward(segments: readonly Segment[], signal?: AbortSignal): Promise<Float32Array> {
    const wanted: number[] = [];
    let t = 0;
    for (const segment of segments) {
      const n = segment.tokens.length;
      for (let j = 0; j < n; j++, t++) if (segment.allLogits || j === n - 1) wanted.push(t);
    }
    return this.run(segments, signal, (x) => {
      const last = wanted.length === x.shape[0] ? x : tf.gather(x, tf.tensor1d(wanted, 'int32'));
      const logits = tf.matMul(this.rmsNorm(last), this.weights.lmHead);
      const cap = this.config.finalLogitSoftcapping;
      return cap === null ? logits : tf.mul(tf.tanh(tf.div(logits, cap)), cap);
    });
  }

  /**
   * Like {@link TfjsDecoder.forward}, but returns the final hidden states of every row (after the final norm, with
   * its weight, before `lm_head`): `[Σ tokens.length, hiddenSize]` in segment order. `allLogits` is not read.
   */
  async hiddenStates(segments: readonly Segment[], signal?: AbortSignal): Promise<Float32Array> {
    return this.run(segments, signal, (x) => tf.mul(this.rmsNorm(x), this.weights.finalNorm));
  }

  /**
   * The decoder layers over every row of the segments, then `head` of the last residual stream `[rows, hidden]`
   * (inside a tidy); returns the head's values. Keys and values go to the caches, uncommitted.
   */
  private async run(
    segments: readonly Segment[],
    signal: AbortSignal | undefined,
    head: (x: tf.Tensor2D) => tf.Tensor,
  ): Promise<Float32Array> {
    const config = this.config;
    const { hiddenSize: hidden, headDim, numAttentionHeads: heads, numKeyValueHeads: kvHeads } = config;
    let rows = 0;
    for (const segment of segments) rows += segment.tokens.length;

    const embedded = new Float32Array(rows * hidden);
    const scale = config.embeddingScale;
    let t = 0;
    for (const segment of segments) {
      const n = segment.tokens.length;
      for (let j = 0; j < n; j++, t++) {
        const token = segment.tokens[j]!;
        const row = this.weights.embedTokens.subarray(token * hidden, (token + 1) * hidden);
        if (scale === null) {
          embedded.set(row, t * hidden);
        } else {
          for (let i = 0; i < hidden; i++) embedded[t * hidden + i] = row[i]! * scale;
        }
      }
    }
    const width = (heads + 2 * kvHeads) * headDim;
    const layout = {
      heads,
      kvHeads,
      headDim,
      rotaryDim: config.rotaryDim,
      queryScale: config.attentionScale,
    };

    const stepTensors: tf.Tensor[] = [];
    const track = <T extends tf.Tensor>(tensor: T): T => {
      stepTensors.push(tensor);
      return tensor;
    };
    // cos / sin per rotary kind, built on the first layer that needs them.
    const multipliers = new Map<RopeKind, { cos: tf.Tensor2D; sin: tf.Tensor2D }>();
    const multipliersOf = (kind: RopeKind) => {
      let tensors = multipliers.get(kind);
      if (tensors === undefined) {
        const runs = segments.map((segment): RotaryRun => {
          const count = segment.tokens.length;
          const { inverse, attentionFactor } = this.fixedRope.get(kind) ?? this.rotary(kind, segment.start + count);
          return { start: segment.start, count, inverse, attentionFactor };
        });
        const values = rotaryMultipliers(runs, layout);
        tensors = {
          cos: track(tf.tensor2d(values.cos, [rows, width])),
          sin: track(tf.tensor2d(values.sin, [rows, width])),
        };
        multipliers.set(kind, tensors);
      }
      return tensors;
    };
    let x = tf.tensor2d(embedded, [rows, hidden]);
    try {
      const masks = new MaskCache(track);
      for (let l = 0; l < config.numLayers; l++) {
        await yieldToEventLoop();
        AbortError.throwIfAborted(signal);
        const window = config.layerTypes[l] === 'sliding_attention' ? config.slidingWindow : null;
        const { cos, sin } = multipliersOf(this.ropeKinds[l]!);
        const previous = x;
        x = tf.tidy(() => this.layer(l, previous, segments, cos, sin, window, masks));
        previous.dispose();
      }
      AbortError.throwIfAborted(signal);
      const final = x;
      const output = tf.tidy(() => head(final));
      try {
        return (await output.data()) as Float32Array;
      } finally {
        output.dispose();
      }
    } finally {
      x.dispose();
      for (const tensor of stepTensors) tensor.dispose();
    }
  }

  /** The rotary embedding of a kind of layer for a sequence of `sequenceLength` positions in this forward. */
  private rotary(kind: RopeKind, sequenceLength: number): RotaryParameters {
    return rotaryParameters(this.config, { layerType: layerTypeOf(kind), sequenceLength });
  }

  private layer(
    index: number,
    x: tf.Tensor2D,
    segments: readonly Segment[],
    cos: tf.Tensor2D,
    sin: tf.Tensor2D,
    window: number | null,
    masks: MaskCache,
  ): tf.Tensor2D {
    const { headDim, numAttentionHeads: heads, numKeyValueHeads: kvHeads } = this.config;
    const weights: LayerTensors = this.weights.layers[index]!;
    const rows = x.shape[0];
    const width = (heads + 2 * kvHeads) * headDim;

    // Rotary embeddings on the whole [rows, (heads + 2 kvHeads) * headDim] block: x * cos + rotateHalf(x) * sin,
    // with rotateHalf as a product with a signed permutation (value heads get cos 1, sin 0).
    let qkv = linear(this.rmsNorm(x), weights.qkv, weights.qkvBias);
    if (weights.queryKeyNorm !== undefined) qkv = this.queryKeyNorm(qkv, weights.queryKeyNorm);
    const rotated = tf.reshape(tf.matMul(tf.reshape(qkv, [(rows * width) / headDim, headDim]), this.rotateHalf), [
      rows,
      width,
    ]);
    const embedded: tf.Tensor2D = tf.add(tf.mul(qkv, cos), tf.mul(rotated, sin));

    const outputs: tf.Tensor2D[] = [];
    let row = 0;
    for (const segment of segments) {
      const n = segment.tokens.length;
      const kv = segment.cache.append(index, embedded, row, n);
      const query = tf.slice(embedded, [row, 0], [n, heads * headDim]);
      outputs.push(
        n >= this.strategy.perHeadFromTokens
          ? this.attendPerHead(query, kv, segment.start, n, window, masks)
          : this.attendBatched(query, kv, segment.start, n, window, masks),
      );
      row += n;
    }
    const attention = outputs.length === 1 ? outputs[0]! : tf.concat(outputs, 0);
    let attended = linear(attention, weights.output, weights.outputBias);
    if (weights.attentionOutputNorm !== undefined)
      attended = tf.mul(this.rmsNorm(attended), weights.attentionOutputNorm);
    const residual: tf.Tensor2D = tf.add(x, attended);
    const normed = this.rmsNorm(residual);
    const gate = linear(normed, weights.gate, weights.gateBias);
    const activated: tf.Tensor2D = tf.mul(
      this.config.hiddenAct === 'silu' ? tf.mul(gate, tf.sigmoid(gate)) : geluTanh(gate),
      linear(normed, weights.up, weights.upBias),
    );
    let mlp = linear(activated, weights.down, weights.downBias);
    if (weights.feedforwardOutputNorm !== undefined) mlp = tf.mul(this.rmsNorm(mlp), weights.feedforwardOutputNorm);
    return tf.add(residual, mlp);
  }

  /** Per-head RMSNorm of the query and key heads of a q/k/v block (value heads pass through). */
  private queryKeyNorm(qkv: tf.Tensor2D, weight: tf.Tensor2D): tf.Tensor2D {
    const { headDim, numAttentionHeads: heads, numKeyValueHeads: kvHeads } = this.config;
    const rows = qkv.shape[0];
    const blocks = tf.reshape(qkv, [rows, heads + 2 * kvHeads, headDim]);
    const queryKey = tf.slice(blocks, [0, 0, 0], [rows, heads + kvHeads, headDim]);
    const values = tf.slice(blocks, [0, heads + kvHeads, 0], [rows, kvHeads, headDim]);
    const variance = tf.mean(tf.square(queryKey), -1, true);
    const normed = tf.mul(tf.mul(queryKey, tf.rsqrt(tf.add(variance, this.config.rmsNormEps))), weight);
    return tf.reshape(tf.concat([normed, values], 1), [rows, qkv.shape[1]]);
  }

  /** All heads of one segment in two batched products over the kv heads; the cache may be longer than needed. */
  private attendBatched(
    query: tf.Tensor2D,
    kv: LayerKv,
    start: number,
    n: number,
    window: number | null,
    masks: MaskCache,
  ): tf.Tensor2D {
    const { headDim, numAttentionHeads: heads, numKeyValueHeads: kvHeads } = this.config;
    const group = heads / kvHeads;
    const length = kv.positions;
    // [n, heads, d] -> [kvHeads, group * n, d] (query head h = g * group + i serves kv head g).
    const q = tf.reshape(
      n === 1 ? query : tf.transpose(tf.reshape(query, [n, kvHeads, group, headDim]), [1, 2, 0, 3]),
      [kvHeads, group * n, headDim],
    );
    let scores: tf.Tensor3D = this.softcap(tf.matMul(q, kv.keys, false, true));
    const mask = masks.get(start, n, length, window);
    if (mask !== undefined) {
      // A decode step's [kvHeads, group, length] scores take the [1, length] mask as they are.
      scores =
        n === 1
          ? tf.add(scores, mask)
          : tf.reshape(tf.add(tf.reshape(scores, [kvHeads, group, n, length]), mask), scores.shape);
    }
    const out = tf.matMul(tf.softmax(scores), kv.values, false, true);
    const ordered = n === 1 ? out : tf.transpose(tf.reshape(out, [kvHeads, group, n, headDim]), [2, 0, 1, 3]);
    return tf.reshape(ordered, [n, heads * headDim]);
  }

  /** One kv head at a time, with 2-D products on exactly sized slices of the cache (a prefill's many tokens). */
  private attendPerHead(
    query: tf.Tensor2D,
    kv: LayerKv,
    start: number,
    n: number,
    window: number | null,
    masks: MaskCache,
  ): tf.Tensor2D {
    const { headDim, numAttentionHeads: heads, numKeyValueHeads: kvHeads } = this.config;
    const group = heads / kvHeads;
    const length = start + n;
    const cached = masks.get(start, n, length, window);
    const mask = cached === undefined ? undefined : tf.reshape(cached, [n, 1, length]);
    const outputs: tf.Tensor2D[] = [];
    for (let g = 0; g < kvHeads; g++) {
      const q = tf.reshape(tf.slice(query, [0, g * group * headDim], [n, group * headDim]), [n * group, headDim]);
      const keys = tf.transpose(tf.reshape(tf.slice(kv.keys, [g, 0, 0], [1, length, headDim]), [length, headDim]));
      const values = tf.transpose(tf.reshape(tf.slice(kv.values, [g, 0, 0], [1, headDim, length]), [headDim, length]));
      let scores: tf.Tensor = tf.reshape(this.softcap(tf.matMul(q, keys)), [n, group, length]);
      if (mask !== undefined) scores = tf.add(scores, mask);
      const probabilities = tf.reshape(tf.softmax(scores), [n * group, length]);
      outputs.push(tf.reshape(tf.matMul(probabilities, values), [n, group * headDim]));
    }
    return outputs.length === 1 ? outputs[0]! : tf.concat(outputs, 1);
  }

  /** Gemma 2's `tanh(s / cap) * cap` on the scaled attention scores, before the mask; `s` itself without a cap. */
  private softcap<T extends tf.Tensor>(scores: T): T {
    const cap = this.config.attnLogitSoftcapping;
    return cap === null ? scores : tf.mul(tf.tanh(tf.div(scores, cap)), cap);
  }

  /** `x / sqrt(mean(x²) + eps)`; the norm's weight is folded into the next product (see `LayerTensors`). */
  private rmsNorm(x: tf.Tensor2D): tf.Tensor2D {
    const variance = tf.mean(tf.square(x), -1, true);
    return tf.mul(x, tf.rsqrt(tf.add(variance, this.config.rmsNormEps)));
  }
}

/** `0.5 x (1 + tanh(sqrt(2 / π) (x + 0.044715 x³)))` (PyTorch's `gelu(approximate="tanh")`), from basic ops. */
function geluTanh(x: tf.Tensor2D): tf.Tensor2D {
  const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.square(x), x), 0.044715)), Math.sqrt(2 / Math.PI));
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

function linear(x: tf.Tensor2D, weight: tf.Tensor2D, bias: tf.Tensor1D | undefined): tf.Tensor2D {
  return bias === undefined ? tf.matMul(x, weight) : (tf.fused.matMul({ a: x, b: weight, bias }) as tf.Tensor2D);
}

/**
 * Additive attention masks (`0` visible, `-Infinity` hidden) of shape `[n, length]` for the current call, built on
 * the host once per (segment, window, length) and reused by every layer. Query `t` (absolute position
 * `start + t`) sees key position `p` when `p <= start + t` and, in a sliding-window layer, `p > start + t - window`;
 * that also hides the scratch positions of a preallocated cache. `undefined` when nothing is hidden.
 */
class MaskCache {
  private readonly masks = new Map<string, tf.Tensor2D | undefined>();

  constructor(private readonly track: <T extends tf.Tensor>(tensor: T) => T) {}

  get(start: number, n: number, length: number, window: number | null): tf.Tensor2D | undefined {
    const key = `${start}:${n}:${length}:${window}`;
    if (this.masks.has(key)) return this.masks.get(key);
    const values = new Float32Array(n * length);
    let hidden = false;
    for (let t = 0; t < n; t++) {
      const position = start + t;
      const first = window === null ? 0 : Math.max(0, position - window + 1);
      for (let p = 0; p < length; p++) {
        if (p < first || p > position) {
          values[t * length + p] = -Infinity;
          hidden = true;
        }
      }
    }
    // Created inside a layer's tidy but shared by every layer: keep it and dispose it with the call.
    const mask = hidden ? this.track(tf.keep(tf.tensor2d(values, [n, length]))) : undefined;
    this.masks.set(key, mask);
    return mask;
  }
}

import {
  AbortError,
  type DecoderModelConfig,
  type LayerAttentionType,
  type DecoderWeights,
  type LinearWeights,
} from '@gen/backend';
import { addInPlace, geluTanhMultiply, linear, rmsNorm, siluMultiply, softcap } from './kernels.js';
import type { KvCache } from './kv-cache.js';
import { applyRotary, RotaryCache, rotaryTables } from './rope.js';

/** Part of a batch: tokens appended to one sequence's cache from position `start` on. */
export interface Segment {
  readonly cache: KvCache;
  readonly tokens: ArrayLike<number>;
  readonly start: number;
  /** Whether logits are needed for every appended token (prompt logits) or only the last. */
  readonly allLogits: boolean;
}

/** Buffers reused across calls, grown to the largest batch seen. */
class Workspace {
  rows = 0;
  x = new Float32Array(0);
  h = new Float32Array(0);
  q = new Float32Array(0);
  k = new Float32Array(0);
  v = new Float32Array(0);
  attention = new Float32Array(0);
  gate = new Float32Array(0);
  up = new Float32Array(0);
  positions = new Int32Array(0);
  /** cos / sin tables per rotary kind (full, and sliding when the model has a local rotary embedding). */
  tables = new Map<LayerAttentionType, { cos: Float32Array; sin: Float32Array }>();

  table(kind: LayerAttentionType, config: DecoderModelConfig): { cos: Float32Array; sin: Float32Array } {
    let table = this.tables.get(kind);
    if (table === undefined) {
      const size = (this.rows * config.rotaryDim) / 2;
      table = { cos: new Float32Array(size), sin: new Float32Array(size) };
      this.tables.set(kind, table);
    }
    return table;
  }

  ensure(rows: number, config: DecoderModelConfig): void {
    if (rows <= this.rows) return;
    const n = Math.max(rows, 2 * this.rows);
    const queryWidth = config.numAttentionHeads * config.headDim;
    const kvWidth = config.numKeyValueHeads * config.headDim;
    this.x = new Float32Array(n * config.hiddenSize);
    this.h = new Float32Array(n * Math.max(config.hiddenSize, queryWidth));
    this.q = new Float32Array(n * queryWidth);
    this.k = new Float32Array(n * kvWidth);
    this.v = new Float32Array(n * kvWidth);
    this.attention = new Float32Array(n * queryWidth);
    this.gate = new Float32Array(n * config.intermediateSize);
    this.up = new Float32Array(n * config.intermediateSize);
    this.positions = new Int32Array(n);
    this.tables.clear();
    this.rows = n;
  }
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The Llama-family decoder stack (llama, mistral, qwen2, qwen3, gemma2, gemma3_text, phi3) in float32 (accumulations in float64). Stateless apart from reusable
 * buffers: sequence state lives in the {@link KvCache}s it is handed.
 */
export class Decoder {
  readonly config: DecoderModelConfig;
  private readonly weights: DecoderWeights;
  private readonly lmHead: LinearWeights;
  private readonly rotary: RotaryCache;
  private readonly workspace = new Workspace();
  private scores: Float64Array;
  private readonly accumulator: Float64Array;

  constructor(config: DecoderModelConfig, weights: DecoderWeights) {
    this.config = config;
    this.weights = weights;
    this.lmHead = {
      weight: weights.lmHead,
      bias: undefined,
      outFeatures: config.vocabSize,
      inFeatures: config.hiddenSize,
    };
    this.rotary = new RotaryCache(config);
    this.scores = new Float64Array(64);
    this.accumulator = new Float64Array(config.headDim);
  }

  /** Bytes of weights held (tied embeddings counted once). */
  get weightBytes(): number {
    const w = this.weights;
    let total = w.embedTokens.byteLength + w.finalNorm.byteLength;
    if (w.lmHead !== w.embedTokens) total += w.lmHead.byteLength;
    for (const layer of w.layers) {
      total += layer.inputNorm.byteLength + layer.postAttentionNorm.byteLength;
      for (const norm of [layer.queryNorm, layer.keyNorm, layer.preFeedforwardNorm, layer.postFeedforwardNorm]) {
        total += norm?.byteLength ?? 0;
      }
      for (const l of [
        layer.queryProjection,
        layer.keyProjection,
        layer.valueProjection,
        layer.outputProjection,
        layer.gateProjection,
        layer.upProjection,
        layer.downProjection,
      ]) {
        total += l.weight.byteLength + (l.bias?.byteLength ?? 0);
      }
    }
    return total;
  }

  /**
   * Runs the segments through the decoder, writing their keys and values into the caches at positions
   * `[start, start + tokens.length)` without changing `cache.length` (the caller commits). Returns the logits of
   * the requested rows, in segment order: every token's row for `allLogits` segments, else the last token's.
   * Yields to the event loop before each layer and throws {@link AbortError} when `signal` is aborted.
   */
  async forward(segments: readonly Segment[], maxPositions: number, signal?: AbortSignal): Promise<Float32Array> {
    const config = this.config;
    const hidden = config.hiddenSize;
    const { x, h } = await this.layers(segments, maxPositions, signal);

    // Final norm and lm_head only for the rows whose logits are wanted.
    let wanted = 0;
    let t = 0;
    for (const segment of segments) {
      const n = segment.tokens.length;
      const first = segment.allLogits ? 0 : n - 1;
      for (let j = first; j < n; j++, wanted++) {
        h.set(x.subarray((t + j) * hidden, (t + j + 1) * hidden), wanted * hidden);
      }
      t += n;
    }
    rmsNorm(h, wanted, hidden, this.weights.finalNorm, config.rmsNormEps, h);
    const logits = new Float32Array(wanted * config.vocabSize);
    linear(h, wanted, this.lmHead, logits);
    if (config.finalLogitSoftcapping !== null) softcap(logits, logits.length, config.finalLogitSoftcapping);
    return logits;
  }

  /**
   * Like {@link Decoder.forward}, but returns the final hidden states of every row (after the final norm, before
   * `lm_head`), `[Σ tokens.length, hiddenSize]` in segment order, in a fresh array. `allLogits` is not read.
   */
  async hiddenStates(segments: readonly Segment[], maxPositions: number, signal?: AbortSignal): Promise<Float32Array> {
    const config = this.config;
    const { x, rows } = await this.layers(segments, maxPositions, signal);
    const states = new Float32Array(rows * config.hiddenSize);
    rmsNorm(x, rows, config.hiddenSize, this.weights.finalNorm, config.rmsNormEps, states);
    return states;
  }

  /**
   * The decoder layers over every row of the segments: leaves the residual stream in `x` (`[rows, hiddenSize]`,
   * a workspace buffer valid until the next call) and writes keys and values into the caches.
   */
  private async layers(
    segments: readonly Segment[],
    maxPositions: number,
    signal: AbortSignal | undefined,
  ): Promise<{ x: Float32Array; h: Float32Array; rows: number }> {
    const config = this.config;
    const { hiddenSize: hidden, headDim, numAttentionHeads: heads, numKeyValueHeads: kvHeads } = config;
    const kvWidth = kvHeads * headDim;
    let rows = 0;
    for (const segment of segments) rows += segment.tokens.length;
    const ws = this.workspace;
    ws.ensure(rows, config);
    const { x, h, q, k, v, attention, gate, up, positions } = ws;

    let t = 0;
    for (const segment of segments) {
      segment.cache.reserve(segment.start + segment.tokens.length, maxPositions);
      for (let j = 0; j < segment.tokens.length; j++, t++) {
        const token = segment.tokens[j]!;
        x.set(this.weights.embedTokens.subarray(token * hidden, (token + 1) * hidden), t * hidden);
        positions[t] = segment.start + j;
      }
    }
    if (config.embeddingScale !== null) {
      const scale = config.embeddingScale;
      for (let i = 0; i < rows * hidden; i++) x[i] = x[i]! * scale;
    }
    for (const kind of this.rotary.kinds()) {
      const { cos, sin } = ws.table(kind, config);
      let from = 0;
      for (const segment of segments) {
        const n = segment.tokens.length;
        rotaryTables(positions, from, n, this.rotary.parameters(kind, segment.start + n), cos, sin);
        from += n;
      }
    }

    for (let l = 0; l < config.numLayers; l++) {
      await yieldToEventLoop();
      AbortError.throwIfAborted(signal);
      const layer = this.weights.layers[l]!;
      rmsNorm(x, rows, hidden, layer.inputNorm, config.rmsNormEps, h);
      linear(h, rows, layer.queryProjection, q);
      linear(h, rows, layer.keyProjection, k);
      linear(h, rows, layer.valueProjection, v);
      if (layer.queryNorm !== undefined && layer.keyNorm !== undefined) {
        rmsNorm(q, rows * heads, headDim, layer.queryNorm, config.rmsNormEps, q);
        rmsNorm(k, rows * kvHeads, headDim, layer.keyNorm, config.rmsNormEps, k);
      }
      const { cos, sin } = ws.table(this.rotary.kindOf(l), config);
      applyRotary(q, rows, heads, headDim, config.rotaryDim, cos, sin);
      applyRotary(k, rows, kvHeads, headDim, config.rotaryDim, cos, sin);
      const window = config.layerTypes[l] === 'sliding_attention' ? config.slidingWindow : null;
      t = 0;
      for (const segment of segments) {
        const { cache } = segment;
        const keys = cache.keys[l]!;
        const values = cache.values[l]!;
        const n = segment.tokens.length;
        for (let j = 0; j < n; j++) {
          const position = segment.start + j;
          for (let g = 0; g < kvHeads; g++) {
            const from = (t + j) * kvWidth + g * headDim;
            const to = (g * cache.capacity + position) * headDim;
            keys.set(k.subarray(from, from + headDim), to);
            values.set(v.subarray(from, from + headDim), to);
          }
        }
        for (let j = 0; j < n; j++, t++) {
          this.attend(cache, l, t, segment.start + j, window, q, attention);
        }
      }
      linear(attention, rows, layer.outputProjection, h);
      if (config.sandwichNorms) rmsNorm(h, rows, hidden, layer.postAttentionNorm, config.rmsNormEps, h);
      addInPlace(x, h, rows * hidden);
      const mlpNorm = config.sandwichNorms ? layer.preFeedforwardNorm! : layer.postAttentionNorm;
      rmsNorm(x, rows, hidden, mlpNorm, config.rmsNormEps, h);
      linear(h, rows, layer.gateProjection, gate);
      linear(h, rows, layer.upProjection, up);
      if (config.hiddenAct === 'gelu_pytorch_tanh') geluTanhMultiply(gate, up, rows * config.intermediateSize);
      else siluMultiply(gate, up, rows * config.intermediateSize);
      linear(gate, rows, layer.downProjection, h);
      if (config.sandwichNorms) rmsNorm(h, rows, hidden, layer.postFeedforwardNorm!, config.rmsNormEps, h);
      addInPlace(x, h, rows * hidden);
    }

    return { x, h, rows };
  }

  /** Attention of one query row (all heads) at `position` over the cache; writes `out[row]`. */
  private attend(
    cache: KvCache,
    layer: number,
    row: number,
    position: number,
    window: number | null,
    q: Float32Array,
    out: Float32Array,
  ): void {
    const { headDim, numAttentionHeads: heads, numKeyValueHeads: kvHeads } = this.config;
    const group = heads / kvHeads;
    const keys = cache.keys[layer]!;
    const values = cache.values[layer]!;
    const first = window === null ? 0 : Math.max(0, position - window + 1);
    const span = position - first + 1;
    if (this.scores.length < span) this.scores = new Float64Array(Math.max(span, 2 * this.scores.length));
    const scores = this.scores;
    const accumulator = this.accumulator;
    const scale = this.config.attentionScale;
    const cap = this.config.attnLogitSoftcapping;
    for (let head = 0; head < heads; head++) {
      const kvHead = Math.floor(head / group);
      const queryBase = row * heads * headDim + head * headDim;
      const cacheBase = kvHead * cache.capacity * headDim;
      let max = -Infinity;
      for (let s = 0; s < span; s++) {
        const keyBase = cacheBase + (first + s) * headDim;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[queryBase + d]! * keys[keyBase + d]!;
        const score = cap === null ? dot * scale : Math.tanh((dot * scale) / cap) * cap;
        scores[s] = score;
        if (score > max) max = score;
      }
      let sum = 0;
      for (let s = 0; s < span; s++) {
        const e = Math.exp(scores[s]! - max);
        scores[s] = e;
        sum += e;
      }
      accumulator.fill(0);
      for (let s = 0; s < span; s++) {
        const weight = scores[s]! / sum;
        const valueBase = cacheBase + (first + s) * headDim;
        for (let d = 0; d < headDim; d++) accumulator[d] = accumulator[d]! + weight * values[valueBase + d]!;
      }
      for (let d = 0; d < headDim; d++) out[queryBase + d] = accumulator[d]!;
    }
  }
}

/**
 * An independent float64 forward pass of a decoder model directory, for tests: it reads `config.json` and the
 * safetensors files itself (no code shared with the writer, `hf-config.ts` or the ONNX graph) and computes, position
 * by position, what transformers' LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM / Qwen3ForCausalLM /
 * Gemma2ForCausalLM / Gemma3ForCausalLM / Phi3ForCausalLM compute, with rope_scaling linear, llama3, yarn, dynamic
 * and longrope.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

type Matrix = { rows: number; cols: number; data: Float64Array };

function readTensors(dir: string): Map<string, { shape: number[]; data: Float64Array }> {
  const files = existsSync(join(dir, 'model.safetensors.index.json'))
    ? [
        ...new Set(
          Object.values(
            (
              JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as {
                weight_map: Record<string, string>;
              }
            ).weight_map,
          ),
        ),
      ]
    : ['model.safetensors'];
  const out = new Map<string, { shape: number[]; data: Float64Array }>();
  for (const file of files) {
    const bytes = readFileSync(join(dir, file));
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
      string,
      { dtype: string; shape: number[]; data_offsets: [number, number] }
    >;
    for (const [name, info] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const start = 8 + headerLength + info.data_offsets[0];
      const count = info.shape.reduce((a, b) => a * b, 1);
      const data = new Float64Array(count);
      for (let i = 0; i < count; i++) {
        if (info.dtype === 'F32') data[i] = bytes.readFloatLE(start + 4 * i);
        else if (info.dtype === 'BF16') {
          const scratch = Buffer.alloc(4);
          scratch.writeUInt16LE(bytes.readUInt16LE(start + 2 * i), 2);
          data[i] = scratch.readFloatLE(0);
        } else if (info.dtype === 'F16') data[i] = halfToNumber(bytes.readUInt16LE(start + 2 * i));
        else throw new Error(`unsupported dtype ${info.dtype}`);
      }
      out.set(name, { shape: info.shape, data });
    }
  }
  return out;
}

function halfToNumber(bits: number): number {
  const sign = bits >> 15 ? -1 : 1;
  const exponent = (bits >> 10) & 31;
  const fraction = bits & 1023;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** A float64 model that maps a token sequence (positions 0..n-1) to the logits at every position. */
export interface ReferenceModel {
  vocabSize: number;
  /**
   * Logits at every position. `chunks` (lengths summing to `tokens.length`; default one chunk) replays a cached
   * generation: each chunk is one forward whose sequence length is the chunk's end, which is what `dynamic` and
   * `longrope` rotary scaling depend on; keys of earlier chunks keep their rotation.
   */
  forward(tokens: readonly number[], options?: { chunks?: readonly number[] }): Float64Array[];
}

type RawConfig = Record<string, unknown>;

/** Loads `dir` (config.json + safetensors) into a {@link ReferenceModel}. */
export function loadReferenceModel(dir: string): ReferenceModel {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as RawConfig;
  const num = (key: string, fallback?: number): number => {
    const value = config[key] ?? fallback;
    if (typeof value !== 'number') throw new Error(`reference: config.json needs ${key}`);
    return value;
  };
  const type = config['model_type'] as string;
  const gemma = type === 'gemma2' || type === 'gemma3_text';
  const tensors = readTensors(dir);
  const get = (name: string): Matrix | undefined => {
    const t = tensors.get(name);
    if (!t) return undefined;
    return { rows: t.shape[0]!, cols: t.shape[1] ?? 1, data: t.data };
  };
  const need = (name: string): Matrix => {
    const m = get(name);
    if (!m) throw new Error(`missing ${name}`);
    return m;
  };
  const hidden = num('hidden_size');
  const heads = num('num_attention_heads');
  const kvHeads = num('num_key_value_heads', heads);
  const defaultHeadDim = type === 'qwen3' ? 128 : gemma ? 256 : hidden / heads;
  const headDim = (config['head_dim'] as number | null | undefined) ?? defaultHeadDim;
  const layers = num('num_hidden_layers');
  const eps = num('rms_norm_eps', type === 'phi3' ? 1e-5 : 1e-6);
  const maxPositions = num('max_position_embeddings', type === 'phi3' ? 4096 : 2048);
  const theta = num('rope_theta', type === 'gemma3_text' ? 1_000_000 : 10000);
  const rotaryDim = Math.floor(headDim * num('partial_rotary_factor', 1));
  const tied = (config['tie_word_embeddings'] as boolean | undefined) ?? gemma;
  const lmHead = tied ? need('model.embed_tokens.weight') : need('lm_head.weight');
  const activation = (gemma ? (config['hidden_activation'] ?? config['hidden_act']) : config['hidden_act']) ?? 'silu';
  const orDefault = (key: string, fallback: number | null): number | null =>
    key in config ? ((config[key] as number | null) ?? null) : fallback;
  const attnCap = gemma ? orDefault('attn_logit_softcapping', type === 'gemma2' ? 50 : null) : null;
  const finalCap = gemma ? orDefault('final_logit_softcapping', type === 'gemma2' ? 30 : null) : null;
  const scale = gemma ? num('query_pre_attn_scalar', 256) ** -0.5 : 1 / Math.sqrt(headDim);
  const embedScale = gemma ? Math.fround(Math.sqrt(hidden)) : 1;

  // Which layers slide, and their window (transformers' layer_types and their defaults).
  const window = (config['sliding_window'] as number | null | undefined) ?? (gemma ? 4096 : null);
  const slides: boolean[] = Array.from({ length: layers }, (_, i) => {
    const explicit = config['layer_types'] as string[] | undefined;
    if (type === 'llama' || window === null) return false;
    if (type === 'mistral' || type === 'phi3') return true;
    if (type === 'qwen2' || type === 'qwen3') {
      if (config['use_sliding_window'] !== true) return false;
      if (explicit) return explicit[i] === 'sliding_attention';
      return i >= num('max_window_layers', 28);
    }
    if (explicit) return explicit[i] === 'sliding_attention';
    const pattern = type === 'gemma2' ? 2 : num('sliding_window_pattern', num('_sliding_window_pattern', 6));
    return (i + 1) % pattern !== 0;
  });

  const ropeScaling = config['rope_scaling'] as Record<string, unknown> | null | undefined;
  const localTheta = type === 'gemma3_text' ? num('rope_local_base_freq', 10000) : null;

  /** Inverse frequencies (rotaryDim / 2) and the cos/sin factor for a layer and a forward of length `length`. */
  const frequencies = (sliding: boolean, length: number): { inv: number[]; factor: number } => {
    const base = (t: number) => Array.from({ length: rotaryDim / 2 }, (_, i) => 1 / t ** ((2 * i) / rotaryDim));
    if (sliding && localTheta !== null) return { inv: base(localTheta), factor: 1 };
    const kind = ropeScaling ? (ropeScaling['rope_type'] ?? ropeScaling['type']) : 'default';
    const f = (key: string) => ropeScaling![key] as number;
    const inv = base(theta);
    switch (kind) {
      case 'default':
        return { inv, factor: 1 };
      case 'linear':
        return { inv: inv.map((x) => x / f('factor')), factor: 1 };
      case 'llama3': {
        const [factor, low, high, old] = [
          f('factor'),
          f('low_freq_factor'),
          f('high_freq_factor'),
          f('original_max_position_embeddings'),
        ];
        return {
          inv: inv.map((x) => {
            const wavelen = (2 * Math.PI) / x;
            if (wavelen < old / high) return x;
            if (wavelen > old / low) return x / factor;
            const smooth = (old / wavelen - low) / (high - low);
            return (1 - smooth) * (x / factor) + smooth * x;
          }),
          factor: 1,
        };
      }
      case 'dynamic': {
        const factor = f('factor');
        if (length <= maxPositions) return { inv, factor: 1 };
        const grown = theta * ((factor * length) / maxPositions - (factor - 1)) ** (rotaryDim / (rotaryDim - 2));
        return { inv: base(grown), factor: 1 };
      }
      case 'yarn': {
        const factor = f('factor');
        const original = (ropeScaling!['original_max_position_embeddings'] as number | undefined) ?? maxPositions;
        const betaFast = (ropeScaling!['beta_fast'] as number | undefined) ?? 32;
        const betaSlow = (ropeScaling!['beta_slow'] as number | undefined) ?? 1;
        const mscale = (s: number, m = 1) => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
        const m = ropeScaling!['mscale'] as number | undefined;
        const mAll = ropeScaling!['mscale_all_dim'] as number | undefined;
        const attention =
          (ropeScaling!['attention_factor'] as number | undefined) ??
          (m !== undefined && mAll !== undefined ? mscale(factor, m) / mscale(factor, mAll) : mscale(factor));
        const dimFor = (rotations: number) =>
          (rotaryDim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
        let low = dimFor(betaFast);
        let high = dimFor(betaSlow);
        if ((ropeScaling!['truncate'] as boolean | undefined) ?? true) [low, high] = [Math.floor(low), Math.ceil(high)];
        low = Math.max(low, 0);
        high = Math.min(high, rotaryDim - 1);
        if (low === high) high += 0.001;
        return {
          inv: inv.map((x, i) => {
            const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
            const extrapolation = 1 - ramp;
            return (x / factor) * (1 - extrapolation) + x * extrapolation;
          }),
          factor: attention,
        };
      }
      case 'longrope':
      case 'su': {
        let original: number;
        let factor: number;
        if (config['original_max_position_embeddings'] != null || type === 'phi3') {
          original = num('original_max_position_embeddings', 4096);
          factor = maxPositions / original;
        } else {
          original = (ropeScaling!['original_max_position_embeddings'] as number | undefined) ?? maxPositions;
          factor = (ropeScaling!['factor'] as number | undefined) ?? 1;
        }
        const attention =
          (ropeScaling!['attention_factor'] as number | undefined) ??
          (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original)));
        const ext = ropeScaling![length > original ? 'long_factor' : 'short_factor'] as number[];
        return { inv: inv.map((x, i) => x / ext[i]!), factor: attention };
      }
      default:
        throw new Error(`reference: rope type ${String(kind)}`);
    }
  };

  const matVec = (m: Matrix, x: Float64Array, bias?: Matrix, firstRow = 0, rows = m.rows): Float64Array => {
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let sum = bias ? bias.data[firstRow + r]! : 0;
      const offset = (firstRow + r) * m.cols;
      for (let c = 0; c < m.cols; c++) sum += m.data[offset + c]! * x[c]!;
      y[r] = sum;
    }
    return y;
  };
  // Gemma's norms multiply by (1 + w), computed in float32.
  const normWeight = (w: number) => (gemma ? Math.fround(1 + w) : w);
  const rmsNorm = (x: Float64Array, weight: Matrix): Float64Array => {
    let sum = 0;
    for (const v of x) sum += v * v;
    const inv = 1 / Math.sqrt(sum / x.length + eps);
    return x.map((v, i) => v * inv * normWeight(weight.data[i]!));
  };
  const headNorm = (vec: Float64Array, count: number, weight: Matrix | undefined): void => {
    if (!weight) return;
    for (let head = 0; head < count; head++) {
      const slice = rmsNorm(vec.subarray(head * headDim, (head + 1) * headDim), weight);
      vec.set(slice, head * headDim);
    }
  };
  const rope = (vec: Float64Array, count: number, position: number, inv: number[], factor: number): void => {
    const half = rotaryDim / 2;
    for (let head = 0; head < count; head++) {
      const base = head * headDim;
      for (let i = 0; i < half; i++) {
        const angle = position * inv[i]!;
        const cos = Math.cos(angle) * factor;
        const sin = Math.sin(angle) * factor;
        const a = vec[base + i]!;
        const b = vec[base + half + i]!;
        vec[base + i] = a * cos - b * sin;
        vec[base + half + i] = b * cos + a * sin;
      }
    }
  };
  const act = (g: number) =>
    activation === 'gelu_pytorch_tanh'
      ? 0.5 * g * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (g + 0.044715 * g ** 3)))
      : g / (1 + Math.exp(-g));
  if (activation !== 'silu' && activation !== 'gelu_pytorch_tanh') {
    throw new Error(`reference: activation ${String(activation)}`);
  }
  const cap = (value: number, limit: number | null) => (limit === null ? value : Math.tanh(value / limit) * limit);

  return {
    vocabSize: lmHead.rows,
    forward(tokens, options = {}) {
      const chunks = options.chunks ?? [tokens.length];
      if (chunks.reduce((a, b) => a + b, 0) !== tokens.length) throw new Error('reference: chunks must cover tokens');
      // The forward length each position was computed in.
      const lengthAt: number[] = [];
      let end = 0;
      for (const size of chunks) {
        end += size;
        for (let k = 0; k < size; k++) lengthAt.push(end);
      }
      const embed = need('model.embed_tokens.weight');
      let states = tokens.map((t) => embed.data.slice(t * hidden, (t + 1) * hidden).map((v) => v * embedScale));
      for (let l = 0; l < layers; l++) {
        const p = `model.layers.${l}`;
        const sliding = slides[l]!;
        const keys: Float64Array[] = [];
        const values: Float64Array[] = [];
        const queries: Float64Array[] = [];
        for (const [position, x] of states.entries()) {
          const n = rmsNorm(x, need(`${p}.input_layernorm.weight`));
          let q: Float64Array;
          let k: Float64Array;
          let v: Float64Array;
          const packed = get(`${p}.self_attn.qkv_proj.weight`);
          if (packed) {
            q = matVec(packed, n, undefined, 0, heads * headDim);
            k = matVec(packed, n, undefined, heads * headDim, kvHeads * headDim);
            v = matVec(packed, n, undefined, (heads + kvHeads) * headDim, kvHeads * headDim);
          } else {
            q = matVec(need(`${p}.self_attn.q_proj.weight`), n, get(`${p}.self_attn.q_proj.bias`));
            k = matVec(need(`${p}.self_attn.k_proj.weight`), n, get(`${p}.self_attn.k_proj.bias`));
            v = matVec(need(`${p}.self_attn.v_proj.weight`), n, get(`${p}.self_attn.v_proj.bias`));
          }
          headNorm(q, heads, get(`${p}.self_attn.q_norm.weight`));
          headNorm(k, kvHeads, get(`${p}.self_attn.k_norm.weight`));
          const { inv, factor } = frequencies(sliding, lengthAt[position]!);
          rope(q, heads, position, inv, factor);
          rope(k, kvHeads, position, inv, factor);
          queries.push(q);
          keys.push(k);
          values.push(v);
        }
        states = states.map((x, i) => {
          const attended = new Float64Array(heads * headDim);
          for (let head = 0; head < heads; head++) {
            const kvHead = Math.floor(head / (heads / kvHeads)); // repeat_kv
            const first = sliding ? Math.max(0, i - window! + 1) : 0;
            const scores: number[] = [];
            for (let j = first; j <= i; j++) {
              let dot = 0;
              for (let d = 0; d < headDim; d++)
                dot += queries[i]![head * headDim + d]! * keys[j]![kvHead * headDim + d]!;
              scores.push(cap(dot * scale, attnCap));
            }
            const max = Math.max(...scores);
            const weights = scores.map((s) => Math.exp(s - max));
            const total = weights.reduce((a, b) => a + b, 0);
            for (let j = first; j <= i; j++) {
              const w = weights[j - first]! / total;
              for (let d = 0; d < headDim; d++) attended[head * headDim + d]! += w * values[j]![kvHead * headDim + d]!;
            }
          }
          let o = matVec(need(`${p}.self_attn.o_proj.weight`), attended, get(`${p}.self_attn.o_proj.bias`));
          const sandwich = get(`${p}.pre_feedforward_layernorm.weight`);
          if (sandwich) o = rmsNorm(o, need(`${p}.post_attention_layernorm.weight`));
          const h = x.map((v, k) => v + o[k]!);
          const n = rmsNorm(h, sandwich ?? need(`${p}.post_attention_layernorm.weight`));
          let gate: Float64Array;
          let up: Float64Array;
          const gateUp = get(`${p}.mlp.gate_up_proj.weight`);
          if (gateUp) {
            gate = matVec(gateUp, n, undefined, 0, gateUp.rows / 2);
            up = matVec(gateUp, n, undefined, gateUp.rows / 2, gateUp.rows / 2);
          } else {
            gate = matVec(need(`${p}.mlp.gate_proj.weight`), n, get(`${p}.mlp.gate_proj.bias`));
            up = matVec(need(`${p}.mlp.up_proj.weight`), n, get(`${p}.mlp.up_proj.bias`));
          }
          const mixed = gate.map((g, k) => act(g) * up[k]!);
          let down = matVec(need(`${p}.mlp.down_proj.weight`), mixed, get(`${p}.mlp.down_proj.bias`));
          if (sandwich) down = rmsNorm(down, need(`${p}.post_feedforward_layernorm.weight`));
          return h.map((v, k) => v + down[k]!);
        });
      }
      return states.map((x) => matVec(lmHead, rmsNorm(x, need('model.norm.weight'))).map((v) => cap(v, finalCap)));
    },
  };
}

import type { TinyModel } from './tiny-model-dir.js';

/*
 * An independent float64 decoder, written from the transformers modeling code (LlamaForCausalLM,
 * MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM, Phi3ForCausalLM
 * and modeling_rope_utils) without sharing anything with the implementation: it reads the raw config.json fields
 * and the exact stored weights returned by the writer (not through @gen/backend's loader or rope code), recomputes
 * the whole sequence at every call (no KV cache), and keeps every intermediate in float64. The only float32 step
 * it models is the rotary angle, which transformers computes in float32 by definition.
 *
 * Length-dependent rotary embeddings (dynamic NTK, longrope) depend on how the sequence was fed: transformers
 * recomputes the frequencies per forward from its longest position, and cached keys keep theirs. `chunks` (the
 * token counts of successive forwards, default one forward of everything) reproduces that: position p is rotated
 * with the frequencies of the forward that computed it.
 */

export type Matrix = { rows: number; cols: number; data: Float64Array };

type Config = Record<string, unknown>;

function tensor(model: TinyModel, name: string): Float64Array {
  const t = model.tensors.get(name);
  if (t === undefined) throw new Error(`reference: no tensor ${name}`);
  return t.values;
}

function matrix(model: TinyModel, name: string): Matrix {
  const t = model.tensors.get(name);
  if (t === undefined) throw new Error(`reference: no tensor ${name}`);
  return { rows: t.shape[0]!, cols: t.shape[1]!, data: t.values };
}

/** Rows `[from, from + count)` of a matrix. */
function rowsOf(m: Matrix, from: number, count: number): Matrix {
  return { rows: count, cols: m.cols, data: m.data.subarray(from * m.cols, (from + count) * m.cols) };
}

export function matVec(m: Matrix, x: number[], bias?: Float64Array): number[] {
  const y: number[] = [];
  for (let r = 0; r < m.rows; r++) {
    let s = bias === undefined ? 0 : bias[r]!;
    for (let c = 0; c < m.cols; c++) s += m.data[r * m.cols + c]! * x[c]!;
    y.push(s);
  }
  return y;
}

const isGemma = (c: Config): boolean => c.model_type === 'gemma2' || c.model_type === 'gemma3_text';

/** RMSNorm; Gemma's multiplies by `1 + weight`. */
function rmsNormRef(c: Config, x: number[], weight: Float64Array): number[] {
  const eps = (c.rms_norm_eps as number | undefined) ?? 1e-6;
  const meanSquare = x.reduce((a, v) => a + v * v, 0) / x.length;
  const offset = isGemma(c) ? 1 : 0;
  return x.map((v, i) => (v / Math.sqrt(meanSquare + eps)) * (offset + weight[i]!));
}

function headDimOf(c: Config): number {
  return (c.head_dim as number | undefined) ?? (c.hidden_size as number) / (c.num_attention_heads as number);
}

/** Whether layer `l` is a sliding-window layer, and its window, from the raw config as each config class does. */
function windowOf(c: Config, l: number): number | null {
  const window = (c.sliding_window as number | null | undefined) ?? null;
  const types = c.layer_types as string[] | undefined;
  switch (c.model_type) {
    case 'mistral':
    case 'phi3':
      return window;
    case 'qwen2':
    case 'qwen3':
      if (c.use_sliding_window !== true) return null;
      if (types !== undefined) return types[l] === 'sliding_attention' ? window : null;
      return l >= ((c.max_window_layers as number | undefined) ?? 28) ? window : null;
    case 'gemma2':
    case 'gemma3_text': {
      if (types !== undefined) return types[l] === 'sliding_attention' ? window : null;
      const pattern =
        c.model_type === 'gemma2'
          ? 2
          : ((c.sliding_window_pattern as number | undefined) ??
            (c._sliding_window_pattern as number | undefined) ??
            6);
      return (l + 1) % pattern !== 0 ? (window ?? 4096) : null;
    }
    default:
      return null;
  }
}

/** `(inv_freq, attention_factor)` of ROPE_INIT_FUNCTIONS for a layer and a forward of `seqLen` positions. */
function referenceRope(c: Config, l: number, seqLen: number): { invFreq: number[]; factor: number } {
  const dim = Math.floor(headDimOf(c) * ((c.partial_rotary_factor as number | undefined) ?? 1));
  const local = c.model_type === 'gemma3_text' && windowOf(c, l) !== null;
  const base = local
    ? ((c.rope_local_base_freq as number | undefined) ?? 10000)
    : ((c.rope_theta as number | undefined) ?? 10000);
  const scaling = local ? undefined : (c.rope_scaling as Record<string, unknown> | undefined);
  const type = (scaling?.rope_type ?? scaling?.type ?? 'default') as string;
  const num = (key: string): number => scaling![key] as number;
  const plain = (b: number): number[] => Array.from({ length: dim / 2 }, (_, i) => 1 / Math.pow(b, (2 * i) / dim));
  const maxPos = c.max_position_embeddings as number;
  if (type === 'default') return { invFreq: plain(base), factor: 1 };
  if (type === 'linear') return { invFreq: plain(base).map((f) => f / num('factor')), factor: 1 };
  if (type === 'dynamic') {
    if (seqLen <= maxPos) return { invFreq: plain(base), factor: 1 };
    const f = num('factor');
    return { invFreq: plain(base * ((f * seqLen) / maxPos - (f - 1)) ** (dim / (dim - 2))), factor: 1 };
  }
  if (type === 'llama3') {
    const factor = num('factor');
    const low = num('low_freq_factor');
    const high = num('high_freq_factor');
    const old = num('original_max_position_embeddings');
    const invFreq = plain(base).map((f) => {
      const wavelen = (2 * Math.PI) / f;
      const scaled = wavelen > old / low ? f / factor : f;
      const smooth = (old / wavelen - low) / (high - low);
      const smoothed = ((1 - smooth) * scaled) / factor + smooth * scaled;
      const isMedium = !(wavelen < old / high) && !(wavelen > old / low);
      return isMedium ? smoothed : scaled;
    });
    return { invFreq, factor: 1 };
  }
  if (type === 'yarn') {
    const factor = num('factor');
    const original = (scaling!.original_max_position_embeddings as number | undefined) ?? maxPos;
    const mscale = (s: number, m = 1): number => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
    const m = scaling!.mscale as number | undefined;
    const mAll = scaling!.mscale_all_dim as number | undefined;
    const attention =
      (scaling!.attention_factor as number | undefined) ??
      (m !== undefined && m !== 0 && mAll !== undefined && mAll !== 0
        ? mscale(factor, m) / mscale(factor, mAll)
        : mscale(factor));
    const correction = (rot: number): number => (dim * Math.log(original / (rot * 2 * Math.PI))) / (2 * Math.log(base));
    let lo = correction((scaling!.beta_fast as number | undefined) ?? 32);
    let hi = correction((scaling!.beta_slow as number | undefined) ?? 1);
    if (scaling!.truncate !== false) {
      lo = Math.floor(lo);
      hi = Math.ceil(hi);
    }
    lo = Math.max(lo, 0);
    hi = Math.min(hi, dim - 1);
    if (lo === hi) hi += 0.001;
    const invFreq = plain(base).map((f, i) => {
      const ramp = Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
      const extrapolation = 1 - ramp;
      return (f / factor) * (1 - extrapolation) + f * extrapolation;
    });
    return { invFreq, factor: attention };
  }
  if (type === 'longrope' || type === 'su') {
    const topLevel = c.original_max_position_embeddings as number | undefined;
    const original = topLevel ?? (scaling!.original_max_position_embeddings as number | undefined) ?? maxPos;
    const factor = topLevel !== undefined ? maxPos / topLevel : ((scaling!.factor as number | undefined) ?? 1);
    const attention =
      (scaling!.attention_factor as number | undefined) ??
      (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original)));
    const ext = (seqLen > original ? scaling!.long_factor : scaling!.short_factor) as number[];
    const invFreq = Array.from({ length: dim / 2 }, (_, i) => 1 / (ext[i]! * Math.pow(base, (2 * i) / dim)));
    return { invFreq, factor: attention };
  }
  throw new Error(`reference: rope type ${type}`);
}

/** Rotates the first `2 * invFreq.length` entries as `x * cos + rotate_half(x) * sin`; the rest pass through. */
function applyRope(x: number[], position: number, rope: { invFreq: number[]; factor: number }): number[] {
  const half = rope.invFreq.length;
  const rot = x.slice(0, 2 * half);
  const freqs = rope.invFreq.map((f) => Math.fround(Math.fround(f) * position));
  const emb = [...freqs, ...freqs];
  const rotated = [...rot.slice(half).map((v) => -v), ...rot.slice(0, half)];
  const out = rot.map((v, i) => v * Math.cos(emb[i]!) * rope.factor + rotated[i]! * Math.sin(emb[i]!) * rope.factor);
  return [...out, ...x.slice(2 * half)];
}

function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

/** Options of the reference forward. */
export interface ReferenceOptions {
  /** Token counts of the successive forwards that fed the sequence (see the file comment); default one. */
  chunks?: readonly number[];
}

/** The length of the forward (its last position + 1) that computed each position. */
function forwardLengths(count: number, chunks: readonly number[] | undefined): number[] {
  const lengths: number[] = [];
  let end = 0;
  for (const n of chunks ?? [count]) {
    end += n;
    while (lengths.length < Math.min(end, count)) lengths.push(end);
  }
  while (lengths.length < count) lengths.push(count);
  return lengths;
}

/**
 * Final hidden states `[tokens.length][hidden]` for every position of `tokens`: after the last layer and the
 * final norm, before `lm_head`.
 */
export function referenceHiddenStates(
  model: TinyModel,
  tokens: readonly number[],
  options: ReferenceOptions = {},
): number[][] {
  const c = model.config;
  const hidden = c.hidden_size as number;
  const heads = c.num_attention_heads as number;
  const kvHeads = (c.num_key_value_heads as number | undefined) ?? heads;
  const headDim = headDimOf(c);
  const intermediate = c.intermediate_size as number;
  const layerCount = c.num_hidden_layers as number;
  const gemma = isGemma(c);
  const has = (name: string): boolean => model.tensors.has(name);
  const lengths = forwardLengths(tokens.length, options.chunks);
  const scale = gemma ? ((c.query_pre_attn_scalar as number | undefined) ?? 256) ** -0.5 : 1 / Math.sqrt(headDim);
  const attnCap = gemma
    ? c.attn_logit_softcapping === undefined
      ? c.model_type === 'gemma2'
        ? 50
        : null
      : (c.attn_logit_softcapping as number | null)
    : null;

  const embed = matrix(model, 'model.embed_tokens.weight');
  const normalizer = gemma ? Math.fround(Math.sqrt(hidden)) : 1;
  let states = tokens.map((t) => Array.from(embed.data.subarray(t * hidden, (t + 1) * hidden), (v) => v * normalizer));
  for (let l = 0; l < layerCount; l++) {
    const p = `model.layers.${l}`;
    const window = windowOf(c, l);
    const bias = (name: string): Float64Array | undefined =>
      has(`${p}.${name}.bias`) ? tensor(model, `${p}.${name}.bias`) : undefined;
    let qProj: Matrix;
    let kProj: Matrix;
    let vProj: Matrix;
    if (c.model_type === 'phi3') {
      const qkv = matrix(model, `${p}.self_attn.qkv_proj.weight`);
      qProj = rowsOf(qkv, 0, heads * headDim);
      kProj = rowsOf(qkv, heads * headDim, kvHeads * headDim);
      vProj = rowsOf(qkv, (heads + kvHeads) * headDim, kvHeads * headDim);
    } else {
      qProj = matrix(model, `${p}.self_attn.q_proj.weight`);
      kProj = matrix(model, `${p}.self_attn.k_proj.weight`);
      vProj = matrix(model, `${p}.self_attn.v_proj.weight`);
    }
    const normed = states.map((x) => rmsNormRef(c, x, tensor(model, `${p}.input_layernorm.weight`)));
    const qs = normed.map((x) => matVec(qProj, x, bias('self_attn.q_proj')));
    const ks = normed.map((x) => matVec(kProj, x, bias('self_attn.k_proj')));
    const vs = normed.map((x) => matVec(vProj, x, bias('self_attn.v_proj')));
    const headOf = (v: number[], h: number): number[] => v.slice(h * headDim, (h + 1) * headDim);
    const qNorm = has(`${p}.self_attn.q_norm.weight`) ? tensor(model, `${p}.self_attn.q_norm.weight`) : undefined;
    const kNorm = has(`${p}.self_attn.k_norm.weight`) ? tensor(model, `${p}.self_attn.k_norm.weight`) : undefined;
    const prepare = (v: number[], h: number, pos: number, norm: Float64Array | undefined): number[] => {
      const x = norm === undefined ? headOf(v, h) : rmsNormRef(c, headOf(v, h), norm);
      return applyRope(x, pos, referenceRope(c, l, lengths[pos]!));
    };
    const ropedQ = qs.map((q, pos) => Array.from({ length: heads }, (_, h) => prepare(q, h, pos, qNorm)));
    const ropedK = ks.map((k, pos) => Array.from({ length: kvHeads }, (_, h) => prepare(k, h, pos, kNorm)));
    const attnOut = states.map((_, i) => {
      const out: number[] = [];
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / (heads / kvHeads)); // repeat_kv
        const visible: number[] = [];
        for (let j = 0; j <= i; j++) if (window === null || i - j < window) visible.push(j);
        const scores = visible.map((j) => {
          const s = ropedQ[i]![h]!.reduce((a, v, d) => a + v * ropedK[j]![kvh]![d]!, 0) * scale;
          return attnCap === null ? s : Math.tanh(s / attnCap) * attnCap;
        });
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const total = exps.reduce((a, b) => a + b, 0);
        for (let d = 0; d < headDim; d++) {
          out.push(visible.reduce((a, j, n) => a + (exps[n]! / total) * headOf(vs[j]!, kvh)[d]!, 0));
        }
      }
      return out;
    });
    let gateProj: Matrix;
    let upProj: Matrix;
    if (c.model_type === 'phi3') {
      const gateUp = matrix(model, `${p}.mlp.gate_up_proj.weight`);
      gateProj = rowsOf(gateUp, 0, intermediate);
      upProj = rowsOf(gateUp, intermediate, intermediate);
    } else {
      gateProj = matrix(model, `${p}.mlp.gate_proj.weight`);
      upProj = matrix(model, `${p}.mlp.up_proj.weight`);
    }
    const norm = (name: string): Float64Array => tensor(model, `${p}.${name}.weight`);
    states = states.map((x, i) => {
      let o = matVec(matrix(model, `${p}.self_attn.o_proj.weight`), attnOut[i]!, bias('self_attn.o_proj'));
      if (gemma) o = rmsNormRef(c, o, norm('post_attention_layernorm'));
      const afterAttention = x.map((v, d) => v + o[d]!);
      const n = rmsNormRef(c, afterAttention, norm(gemma ? 'pre_feedforward_layernorm' : 'post_attention_layernorm'));
      const gate = matVec(gateProj, n);
      const up = matVec(upProj, n);
      const act = gate.map((g, k) => (gemma ? gelu(g) : g / (1 + Math.exp(-g))) * up[k]!);
      let down = matVec(matrix(model, `${p}.mlp.down_proj.weight`), act);
      if (gemma) down = rmsNormRef(c, down, norm('post_feedforward_layernorm'));
      return afterAttention.map((v, d) => v + down[d]!);
    });
  }
  return states.map((x) => rmsNormRef(c, x, tensor(model, 'model.norm.weight')));
}

/** Logits `[tokens.length][vocab]` for every position of `tokens`. */
export function referenceForward(
  model: TinyModel,
  tokens: readonly number[],
  options: ReferenceOptions = {},
): number[][] {
  const head = referenceHead(model);
  const c = model.config;
  const cap =
    c.final_logit_softcapping === undefined
      ? c.model_type === 'gemma2'
        ? 30
        : null
      : (c.final_logit_softcapping as number | null);
  return referenceHiddenStates(model, tokens, options).map((x) =>
    matVec(head, x).map((v) => (cap === null ? v : Math.tanh(v / cap) * cap)),
  );
}

/** The output embedding `[vocab, hidden]`: `lm_head.weight`, or the input embedding when tied. */
export function referenceHead(model: TinyModel): Matrix {
  const untied = model.tensors.has('lm_head.weight') && model.config.tie_word_embeddings !== true;
  return matrix(model, untied ? 'lm_head.weight' : 'model.embed_tokens.weight');
}

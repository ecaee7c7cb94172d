import type { TinyModel } from './tiny-model-dir.js';

/*
 * An independent float64 decoder, written from the transformers modeling code (LlamaForCausalLM,
 * MistralForCausalLM, Qwen2ForCausalLM) without sharing anything with the implementation: it reads the raw
 * config.json fields and the exact stored weights returned by the writer (not through @gen/backend's loader),
 * recomputes the whole sequence at every call (no KV cache), and keeps every intermediate in float64. The only
 * float32 step it models is the rotary angle, which transformers computes in float32 by definition.
 */

export type Matrix = { rows: number; cols: number; data: Float64Array };

function tensor(model: TinyModel, name: string): Float64Array {
  const t = model.tensors.get(name);
  if (t === undefined) throw new Error(`reference: no tensor ${name}`);
  return t.values;
}

function matrix(model: TinyModel, name: string): Matrix {
  const t = model.tensors.get(name)!;
  return { rows: t.shape[0]!, cols: t.shape[1]!, data: t.values };
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

function rmsNormRef(x: number[], weight: Float64Array, eps: number): number[] {
  const meanSquare = x.reduce((a, v) => a + v * v, 0) / x.length;
  return x.map((v, i) => (v / Math.sqrt(meanSquare + eps)) * weight[i]!);
}

/** `inv_freq` of transformers' ROPE_INIT_FUNCTIONS for `default`, `linear` and `llama3`. */
function referenceInvFreq(config: Record<string, unknown>, dim: number): number[] {
  const base = config.rope_theta as number;
  let invFreq = Array.from({ length: dim / 2 }, (_, i) => 1 / Math.pow(base, (2 * i) / dim));
  const scaling = config.rope_scaling as Record<string, number | string> | undefined;
  const type = scaling?.rope_type ?? scaling?.type;
  if (type === 'linear') invFreq = invFreq.map((f) => f / (scaling!.factor as number));
  if (type === 'llama3') {
    const factor = scaling!.factor as number;
    const low = scaling!.low_freq_factor as number;
    const high = scaling!.high_freq_factor as number;
    const old = scaling!.original_max_position_embeddings as number;
    const lowWavelen = old / low;
    const highWavelen = old / high;
    invFreq = invFreq.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      const scaled = wavelen > lowWavelen ? f / factor : f;
      const smooth = (old / wavelen - low) / (high - low);
      const smoothed = ((1 - smooth) * scaled) / factor + smooth * scaled;
      const isMedium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
      return isMedium ? smoothed : scaled;
    });
  }
  return invFreq.map((f) => Math.fround(f));
}

/** `x * cos + rotate_half(x) * sin` with `emb = cat(freqs, freqs)`. */
function applyRope(x: number[], position: number, invFreq: number[]): number[] {
  const half = x.length / 2;
  const freqs = invFreq.map((f) => Math.fround(f * position));
  const emb = [...freqs, ...freqs];
  const rotated = [...x.slice(half).map((v) => -v), ...x.slice(0, half)];
  return x.map((v, i) => v * Math.cos(emb[i]!) + rotated[i]! * Math.sin(emb[i]!));
}

/**
 * Final hidden states `[tokens.length][hidden]` for every position of `tokens`: after the last layer and the
 * final norm, before `lm_head`.
 */
export function referenceHiddenStates(model: TinyModel, tokens: readonly number[]): number[][] {
  const c = model.config;
  const hidden = c.hidden_size as number;
  const heads = c.num_attention_heads as number;
  const kvHeads = c.num_key_value_heads as number;
  const headDim = (c.head_dim as number | undefined) ?? hidden / heads;
  const eps = c.rms_norm_eps as number;
  const invFreq = referenceInvFreq(c, headDim);
  const layerCount = c.num_hidden_layers as number;
  const has = (name: string): boolean => model.tensors.has(name);

  const embed = matrix(model, 'model.embed_tokens.weight');
  let states = tokens.map((t) => Array.from(embed.data.subarray(t * hidden, (t + 1) * hidden)));
  for (let l = 0; l < layerCount; l++) {
    const p = `model.layers.${l}`;
    let window: number | null = null;
    if (c.model_type === 'mistral') window = (c.sliding_window as number | null) ?? null;
    if (c.model_type === 'qwen2' && c.use_sliding_window === true && l >= (c.max_window_layers as number)) {
      window = c.sliding_window as number;
    }
    const bias = (name: string): Float64Array | undefined =>
      has(`${p}.${name}.bias`) ? tensor(model, `${p}.${name}.bias`) : undefined;
    const normed = states.map((x) => rmsNormRef(x, tensor(model, `${p}.input_layernorm.weight`), eps));
    const qs = normed.map((x) => matVec(matrix(model, `${p}.self_attn.q_proj.weight`), x, bias('self_attn.q_proj')));
    const ks = normed.map((x) => matVec(matrix(model, `${p}.self_attn.k_proj.weight`), x, bias('self_attn.k_proj')));
    const vs = normed.map((x) => matVec(matrix(model, `${p}.self_attn.v_proj.weight`), x, bias('self_attn.v_proj')));
    const headOf = (v: number[], h: number): number[] => v.slice(h * headDim, (h + 1) * headDim);
    const ropedQ = qs.map((q, pos) => Array.from({ length: heads }, (_, h) => applyRope(headOf(q, h), pos, invFreq)));
    const ropedK = ks.map((k, pos) => Array.from({ length: kvHeads }, (_, h) => applyRope(headOf(k, h), pos, invFreq)));
    const attnOut = states.map((_, i) => {
      const out: number[] = [];
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / (heads / kvHeads)); // repeat_kv
        const visible: number[] = [];
        for (let j = 0; j <= i; j++) if (window === null || i - j < window) visible.push(j);
        const scores = visible.map(
          (j) => ropedQ[i]![h]!.reduce((a, v, d) => a + v * ropedK[j]![kvh]![d]!, 0) / Math.sqrt(headDim),
        );
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const total = exps.reduce((a, b) => a + b, 0);
        for (let d = 0; d < headDim; d++) {
          out.push(visible.reduce((a, j, n) => a + (exps[n]! / total) * headOf(vs[j]!, kvh)[d]!, 0));
        }
      }
      return out;
    });
    states = states.map((x, i) => {
      const o = matVec(matrix(model, `${p}.self_attn.o_proj.weight`), attnOut[i]!, bias('self_attn.o_proj'));
      const afterAttention = x.map((v, d) => v + o[d]!);
      const n = rmsNormRef(afterAttention, tensor(model, `${p}.post_attention_layernorm.weight`), eps);
      const gate = matVec(matrix(model, `${p}.mlp.gate_proj.weight`), n);
      const up = matVec(matrix(model, `${p}.mlp.up_proj.weight`), n);
      const act = gate.map((g, k) => (g / (1 + Math.exp(-g))) * up[k]!);
      const down = matVec(matrix(model, `${p}.mlp.down_proj.weight`), act);
      return afterAttention.map((v, d) => v + down[d]!);
    });
  }
  return states.map((x) => rmsNormRef(x, tensor(model, 'model.norm.weight'), eps));
}

/** Logits `[tokens.length][vocab]` for every position of `tokens`. */
export function referenceForward(model: TinyModel, tokens: readonly number[]): number[][] {
  const head = referenceHead(model);
  return referenceHiddenStates(model, tokens).map((x) => matVec(head, x));
}

/** The output embedding `[vocab, hidden]`: `lm_head.weight`, or the input embedding when tied. */
export function referenceHead(model: TinyModel): Matrix {
  const untied = model.tensors.has('lm_head.weight') && model.config.tie_word_embeddings !== true;
  return matrix(model, untied ? 'lm_head.weight' : 'model.embed_tokens.weight');
}

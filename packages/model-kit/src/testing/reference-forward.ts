/**
 * An independent float64 forward pass of a Llama-family model directory, for tests: it reads `config.json` and the
 * safetensors files itself (no code shared with the writer or the ONNX graph) and computes, position by position,
 * what transformers' LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM compute.
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
  forward(tokens: readonly number[]): Float64Array[];
}

/** Loads `dir` (config.json + safetensors) into a {@link ReferenceModel}. */
export function loadReferenceModel(dir: string): ReferenceModel {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as {
    model_type: string;
    hidden_size: number;
    num_attention_heads: number;
    num_key_value_heads?: number;
    head_dim?: number | null;
    num_hidden_layers: number;
    rms_norm_eps: number;
    rope_theta?: number;
    sliding_window?: number | null;
    rope_scaling?: Record<string, number | string> | null;
    tie_word_embeddings?: boolean;
  };
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
  const hidden = config.hidden_size;
  const heads = config.num_attention_heads;
  const kvHeads = config.num_key_value_heads ?? heads;
  const headDim = config.head_dim ?? hidden / heads;
  const layers = config.num_hidden_layers;
  const eps = config.rms_norm_eps;
  const theta = config.rope_theta ?? 10000;
  const window = config.model_type === 'mistral' ? (config.sliding_window ?? null) : null;
  const lmHead = config.tie_word_embeddings ? need('model.embed_tokens.weight') : need('lm_head.weight');

  // Inverse frequencies in float64, with rope_scaling (linear or llama3) applied as transformers does.
  const invFreq = Array.from({ length: headDim / 2 }, (_, i) => 1 / theta ** ((2 * i) / headDim));
  const scaling = config.rope_scaling;
  if (scaling) {
    const type = scaling['rope_type'] ?? scaling['type'];
    const factor = scaling['factor'] as number;
    if (type === 'linear') invFreq.forEach((f, i) => (invFreq[i] = f / factor));
    else if (type === 'llama3') {
      const low = scaling['low_freq_factor'] as number;
      const high = scaling['high_freq_factor'] as number;
      const old = scaling['original_max_position_embeddings'] as number;
      invFreq.forEach((f, i) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < old / high) return;
        if (wavelen > old / low) invFreq[i] = f / factor;
        else {
          const smooth = (old / wavelen - low) / (high - low);
          invFreq[i] = (1 - smooth) * (f / factor) + smooth * f;
        }
      });
    } else if (type !== 'default') throw new Error(`reference: rope type ${String(type)}`);
  }

  const matVec = (m: Matrix, x: Float64Array, bias?: Matrix): Float64Array => {
    const y = new Float64Array(m.rows);
    for (let r = 0; r < m.rows; r++) {
      let sum = bias ? bias.data[r]! : 0;
      const offset = r * m.cols;
      for (let c = 0; c < m.cols; c++) sum += m.data[offset + c]! * x[c]!;
      y[r] = sum;
    }
    return y;
  };
  const rmsNorm = (x: Float64Array, weight: Matrix): Float64Array => {
    let sum = 0;
    for (const v of x) sum += v * v;
    const inv = 1 / Math.sqrt(sum / x.length + eps);
    return x.map((v, i) => v * inv * weight.data[i]!);
  };
  const rope = (vec: Float64Array, headsIn: number, position: number): void => {
    const half = headDim / 2;
    for (let head = 0; head < headsIn; head++) {
      const base = head * headDim;
      for (let i = 0; i < half; i++) {
        const angle = position * invFreq[i]!;
        const cos = Math.cos(angle);
        const sin = Math.sin(angle);
        const a = vec[base + i]!;
        const b = vec[base + half + i]!;
        vec[base + i] = a * cos - b * sin;
        vec[base + half + i] = b * cos + a * sin;
      }
    }
  };

  return {
    vocabSize: lmHead.rows,
    forward(tokens) {
      const embed = need('model.embed_tokens.weight');
      let states = tokens.map((t) => embed.data.slice(t * hidden, (t + 1) * hidden));
      for (let l = 0; l < layers; l++) {
        const p = `model.layers.${l}`;
        const keys: Float64Array[] = [];
        const values: Float64Array[] = [];
        const queries: Float64Array[] = [];
        for (const [position, x] of states.entries()) {
          const n = rmsNorm(x, need(`${p}.input_layernorm.weight`));
          const q = matVec(need(`${p}.self_attn.q_proj.weight`), n, get(`${p}.self_attn.q_proj.bias`));
          const k = matVec(need(`${p}.self_attn.k_proj.weight`), n, get(`${p}.self_attn.k_proj.bias`));
          const v = matVec(need(`${p}.self_attn.v_proj.weight`), n, get(`${p}.self_attn.v_proj.bias`));
          rope(q, heads, position);
          rope(k, kvHeads, position);
          queries.push(q);
          keys.push(k);
          values.push(v);
        }
        states = states.map((x, i) => {
          const attended = new Float64Array(heads * headDim);
          for (let head = 0; head < heads; head++) {
            const kvHead = Math.floor(head / (heads / kvHeads)); // repeat_kv
            const first = window === null ? 0 : Math.max(0, i - window + 1);
            const scores: number[] = [];
            for (let j = first; j <= i; j++) {
              let dot = 0;
              for (let d = 0; d < headDim; d++)
                dot += queries[i]![head * headDim + d]! * keys[j]![kvHead * headDim + d]!;
              scores.push(dot / Math.sqrt(headDim));
            }
            const max = Math.max(...scores);
            const weights = scores.map((s) => Math.exp(s - max));
            const total = weights.reduce((a, b) => a + b, 0);
            for (let j = first; j <= i; j++) {
              const w = weights[j - first]! / total;
              for (let d = 0; d < headDim; d++) attended[head * headDim + d]! += w * values[j]![kvHead * headDim + d]!;
            }
          }
          const o = matVec(need(`${p}.self_attn.o_proj.weight`), attended, get(`${p}.self_attn.o_proj.bias`));
          const h = x.map((v, k) => v + o[k]!);
          const n = rmsNorm(h, need(`${p}.post_attention_layernorm.weight`));
          const gate = matVec(need(`${p}.mlp.gate_proj.weight`), n, get(`${p}.mlp.gate_proj.bias`));
          const up = matVec(need(`${p}.mlp.up_proj.weight`), n, get(`${p}.mlp.up_proj.bias`));
          const act = gate.map((g, k) => (g / (1 + Math.exp(-g))) * up[k]!);
          const down = matVec(need(`${p}.mlp.down_proj.weight`), act, get(`${p}.mlp.down_proj.bias`));
          return h.map((v, k) => v + down[k]!);
        });
      }
      return states.map((x) => matVec(lmHead, rmsNorm(x, need('model.norm.weight'))));
    },
  };
}

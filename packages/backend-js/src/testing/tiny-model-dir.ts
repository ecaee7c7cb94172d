import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Test-only writer of tiny Hugging Face model directories with seeded random weights: `config.json`,
 * `generation_config.json` and safetensors weights (single file or two shards), in F32, F16 or BF16. It returns
 * the exact stored values so that tests can compute reference outputs without going through the loader.
 */
export interface TinyModelOptions {
  modelType?: 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'gemma2' | 'gemma3_text' | 'phi3';
  vocabSize?: number;
  hiddenSize?: number;
  intermediateSize?: number;
  numLayers?: number;
  numAttentionHeads?: number;
  numKeyValueHeads?: number;
  headDim?: number;
  maxPositions?: number;
  tieWordEmbeddings?: boolean;
  /** Llama `attention_bias` (q, k, v and o). Qwen2 always has q, k, v biases. */
  attentionBias?: boolean;
  ropeTheta?: number;
  ropeScaling?: Record<string, unknown>;
  slidingWindow?: number | null;
  rmsNormEps?: number;
  dtype?: 'F32' | 'F16' | 'BF16';
  sharded?: boolean;
  seed?: number;
  /** Replace generated tensors (values are stored as given, rounded to `dtype`). */
  tensors?: Record<string, { shape: number[]; values: number[] }>;
  /** Extra or overriding config.json fields. */
  config?: Record<string, unknown>;
}

/** A tensor as stored: row-major values exactly as the file holds them. */
export interface StoredTensor {
  shape: number[];
  values: Float64Array;
}

/** What {@link writeTinyModelDir} wrote. */
export interface TinyModel {
  dir: string;
  config: Record<string, unknown>;
  tensors: Map<string, StoredTensor>;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The bfloat16 bits of a value: float32 bits rounded to nearest even on the upper 16 bits. */
function toBfloat16Bits(value: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, value);
  const bits = view.getUint32(0);
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

function fromBfloat16Bits(bits: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, bits << 16);
  return view.getFloat32(0);
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function toFloat16Bits(value: number): number {
  const sign = value < 0 ? 0x8000 : 0;
  const a = Math.abs(value);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a / 2 ** -24);
  let exponent = Math.floor(Math.log2(a));
  if (2 ** exponent > a) exponent--;
  let mantissa = roundHalfEven((a / 2 ** exponent - 1) * 1024);
  if (mantissa === 1024) {
    exponent++;
    mantissa = 0;
  }
  return sign | ((exponent + 15) << 10) | mantissa;
}

function fromFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  return exponent === 0 ? sign * mantissa * 2 ** -24 : sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function encode(values: Float64Array, dtype: 'F32' | 'F16' | 'BF16'): { bytes: Uint8Array; stored: Float64Array } {
  const stored = new Float64Array(values.length);
  if (dtype === 'F32') {
    const array = Float32Array.from(values);
    stored.set(array);
    return { bytes: new Uint8Array(array.buffer), stored };
  }
  const bits = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    bits[i] = dtype === 'F16' ? toFloat16Bits(values[i]!) : toBfloat16Bits(values[i]!);
    stored[i] = dtype === 'F16' ? fromFloat16Bits(bits[i]!) : fromBfloat16Bits(bits[i]!);
  }
  return { bytes: new Uint8Array(bits.buffer), stored };
}

function safetensors(entries: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[]): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const e of entries) {
    out.set(e.bytes, position);
    position += e.bytes.length;
  }
  return out;
}

/** Writes a tiny model into `dir` (created). */
export async function writeTinyModelDir(dir: string, options: TinyModelOptions = {}): Promise<TinyModel> {
  const modelType = options.modelType ?? 'llama';
  const vocab = options.vocabSize ?? 97;
  const hidden = options.hiddenSize ?? 32;
  const intermediate = options.intermediateSize ?? 48;
  const layers = options.numLayers ?? 2;
  const heads = options.numAttentionHeads ?? 4;
  const kvHeads = options.numKeyValueHeads ?? 2;
  const headDim = options.headDim ?? hidden / heads;
  const gemma = modelType === 'gemma2' || modelType === 'gemma3_text';
  const tie = options.tieWordEmbeddings ?? (modelType === 'qwen2' || gemma);
  const dtype = options.dtype ?? 'F32';
  const biasFamily = modelType === 'llama' || modelType === 'qwen3' || gemma;
  const qkvBias = modelType === 'qwen2' || (biasFamily && options.attentionBias === true);
  const outputBias = biasFamily && options.attentionBias === true;
  const queryKeyNorm = modelType === 'qwen3' || modelType === 'gemma3_text';
  const packed = modelType === 'phi3';
  // Gemma stores norm weights as offsets from one.
  const normOffset = gemma ? 0 : 1;
  const random = mulberry32(options.seed ?? 1);
  const uniform = (scale: number): number => (random() * 2 - 1) * scale;

  const config: Record<string, unknown> = {
    architectures: [
      {
        llama: 'LlamaForCausalLM',
        mistral: 'MistralForCausalLM',
        qwen2: 'Qwen2ForCausalLM',
        qwen3: 'Qwen3ForCausalLM',
        gemma2: 'Gemma2ForCausalLM',
        gemma3_text: 'Gemma3ForCausalLM',
        phi3: 'Phi3ForCausalLM',
      }[modelType],
    ],
    model_type: modelType,
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    max_position_embeddings: options.maxPositions ?? 64,
    rms_norm_eps: options.rmsNormEps ?? 1e-5,
    rope_theta: options.ropeTheta ?? 10000,
    hidden_act: gemma ? 'gelu_pytorch_tanh' : 'silu',
    tie_word_embeddings: tie,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
  };
  if (options.headDim !== undefined || modelType === 'qwen3' || gemma) config.head_dim = headDim;
  if (options.ropeScaling !== undefined) config.rope_scaling = options.ropeScaling;
  if (biasFamily) config.attention_bias = options.attentionBias ?? false;
  if (modelType === 'mistral' || modelType === 'phi3') config.sliding_window = options.slidingWindow ?? null;
  if (gemma) {
    config.hidden_activation = 'gelu_pytorch_tanh';
    config.sliding_window = options.slidingWindow ?? 4096;
    config.query_pre_attn_scalar = headDim;
  }
  if (modelType === 'qwen2' || modelType === 'qwen3') {
    config.use_sliding_window = options.slidingWindow != null;
    config.sliding_window = options.slidingWindow ?? 4096;
    config.max_window_layers = 0;
  }
  Object.assign(config, options.config);

  const specs: { name: string; shape: number[]; scale: number; offset?: number }[] = [
    { name: 'model.embed_tokens.weight', shape: [vocab, hidden], scale: 1 },
  ];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    const w = (name: string, out: number, inFeatures: number, bias: boolean): void => {
      specs.push({ name: `${p}.${name}.weight`, shape: [out, inFeatures], scale: 1.5 / Math.sqrt(inFeatures) });
      if (bias) specs.push({ name: `${p}.${name}.bias`, shape: [out], scale: 0.2 });
    };
    const norm = (name: string, size: number): void => {
      specs.push({ name: `${p}.${name}.weight`, shape: [size], scale: 0.3, offset: normOffset });
    };
    norm('input_layernorm', hidden);
    if (packed) {
      w('self_attn.qkv_proj', (heads + 2 * kvHeads) * headDim, hidden, qkvBias);
    } else {
      w('self_attn.q_proj', heads * headDim, hidden, qkvBias);
      w('self_attn.k_proj', kvHeads * headDim, hidden, qkvBias);
      w('self_attn.v_proj', kvHeads * headDim, hidden, qkvBias);
    }
    if (queryKeyNorm) {
      norm('self_attn.q_norm', headDim);
      norm('self_attn.k_norm', headDim);
    }
    w('self_attn.o_proj', hidden, heads * headDim, outputBias);
    norm('post_attention_layernorm', hidden);
    if (gemma) {
      norm('pre_feedforward_layernorm', hidden);
      norm('post_feedforward_layernorm', hidden);
    }
    if (packed) {
      w('mlp.gate_up_proj', 2 * intermediate, hidden, false);
    } else {
      w('mlp.gate_proj', intermediate, hidden, false);
      w('mlp.up_proj', intermediate, hidden, false);
    }
    w('mlp.down_proj', hidden, intermediate, false);
  }
  specs.push({ name: 'model.norm.weight', shape: [hidden], scale: 0.3, offset: normOffset });
  if (!tie) specs.push({ name: 'lm_head.weight', shape: [vocab, hidden], scale: 2 / Math.sqrt(hidden) });

  const tensors = new Map<string, StoredTensor>();
  const entries: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[] = [];
  for (const spec of specs) {
    const override = options.tensors?.[spec.name];
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const values = override !== undefined ? Float64Array.from(override.values) : new Float64Array(n);
    if (override === undefined) for (let i = 0; i < n; i++) values[i] = (spec.offset ?? 0) + uniform(spec.scale);
    const shape = override?.shape ?? spec.shape;
    const { bytes, stored } = encode(values, dtype);
    tensors.set(spec.name, { shape, values: stored });
    entries.push({ name: spec.name, dtype, shape, bytes });
  }

  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  await writeFile(
    path.join(dir, 'generation_config.json'),
    JSON.stringify({ bos_token_id: 1, eos_token_id: [2, 3], do_sample: true, temperature: 0.7 }, null, 2),
  );
  if (options.sharded === true) {
    const half = Math.ceil(entries.length / 2);
    const shards = [entries.slice(0, half), entries.slice(half)];
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < shards.length; s++) {
      const file = `model-0000${s + 1}-of-00002.safetensors`;
      for (const e of shards[s]!) weightMap[e.name] = file;
      await writeFile(path.join(dir, file), safetensors(shards[s]!));
    }
    await writeFile(
      path.join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }, null, 2),
    );
  } else {
    await writeFile(path.join(dir, 'model.safetensors'), safetensors(entries));
  }
  return { dir, config, tensors };
}

/**
 * Reads a float32 single-file model directory written by anyone (for example `@gen/model-kit`) into the
 * {@link TinyModel} form, with a minimal safetensors parser of its own (tests only; independent of
 * `@gen/backend`'s loader, so the reference does not inherit its bugs).
 */
export async function readStoredModel(dir: string): Promise<TinyModel> {
  const config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const bytes = await readFile(path.join(dir, 'model.safetensors'));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const tensors = new Map<string, StoredTensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (entry.dtype !== 'F32') throw new Error(`readStoredModel reads F32 only, ${name} is ${entry.dtype}`);
    const [begin, end] = entry.data_offsets;
    const values = new Float64Array((end - begin) / 4);
    for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(8 + headerLength + begin + 4 * i, true);
    tensors.set(name, { shape: entry.shape, values });
  }
  return { dir, config, tensors };
}

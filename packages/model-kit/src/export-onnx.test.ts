import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeAsDtype, roundToDtype, type WeightDtype } from './dtype.js';
import { InvalidModelConfigError, ModelDirectoryError } from './errors.js';
import { exportOnnx } from './export-onnx.js';
import { createRandomStream, fillUniform } from './prng.js';
import { loadFusedDecoder } from './testing/fused-decoder.js';
import { loadOnnxDecoder, maxAbsDiff } from './testing/onnx-decoder.js';
import { loadReferenceModel } from './testing/reference-forward.js';
import { writeModelDir } from './write-model-dir.js';

const temp = () => mkdtemp(join(tmpdir(), 'mk-export-'));

interface ForeignTensor {
  name: string;
  shape: number[];
  values: Float32Array;
}

/** Random weights for a Llama-family checkpoint, named and shaped as transformers saves them. */
function foreignTensors(options: {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  qkvBias: boolean;
  lmHead: boolean;
}): ForeignTensor[] {
  const { vocab, hidden, intermediate, heads, kvHeads, headDim } = options;
  const out: ForeignTensor[] = [];
  const add = (name: string, shape: number[], bound: number, center = 0) =>
    out.push({
      name,
      shape,
      values: fillUniform(
        new Float32Array(shape.reduce((a, b) => a * b, 1)),
        createRandomStream(99, name),
        bound,
        center,
      ),
    });
  add('model.embed_tokens.weight', [vocab, hidden], 1);
  for (let i = 0; i < options.layers; i++) {
    const p = `model.layers.${i}`;
    add(`${p}.self_attn.q_proj.weight`, [heads * headDim, hidden], 1.7 / Math.sqrt(hidden));
    add(`${p}.self_attn.k_proj.weight`, [kvHeads * headDim, hidden], 1.7 / Math.sqrt(hidden));
    add(`${p}.self_attn.v_proj.weight`, [kvHeads * headDim, hidden], 1.7 / Math.sqrt(hidden));
    if (options.qkvBias) {
      add(`${p}.self_attn.q_proj.bias`, [heads * headDim], 0.3);
      add(`${p}.self_attn.k_proj.bias`, [kvHeads * headDim], 0.3);
      add(`${p}.self_attn.v_proj.bias`, [kvHeads * headDim], 0.3);
    }
    add(`${p}.self_attn.o_proj.weight`, [hidden, heads * headDim], 1.7 / Math.sqrt(heads * headDim));
    add(`${p}.mlp.gate_proj.weight`, [intermediate, hidden], 1.7 / Math.sqrt(hidden));
    add(`${p}.mlp.up_proj.weight`, [intermediate, hidden], 1.7 / Math.sqrt(hidden));
    add(`${p}.mlp.down_proj.weight`, [hidden, intermediate], 1.7 / Math.sqrt(intermediate));
    add(`${p}.input_layernorm.weight`, [hidden], 0.3, 1);
    add(`${p}.post_attention_layernorm.weight`, [hidden], 0.3, 1);
    // Old Llama checkpoints saved the rotary buffer too; loaders ignore it.
    add(`${p}.self_attn.rotary_emb.inv_freq`, [headDim / 2], 1, 1);
  }
  add('model.norm.weight', [hidden], 0.3, 1);
  if (options.lmHead) add('lm_head.weight', [vocab, hidden], 5 / Math.sqrt(hidden));
  return out;
}

/**
 * Writes tensors as a third-party tool might: reversed order, no `__metadata__`, no header padding, split into
 * `shards` files with an index (or one `model.safetensors`).
 */
async function writeForeignCheckpoint(dir: string, tensors: ForeignTensor[], dtype: WeightDtype, shards: number) {
  const code = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' }[dtype];
  const groups: ForeignTensor[][] = Array.from({ length: shards }, () => []);
  [...tensors].reverse().forEach((t, i) => groups[i % shards]!.push(t));
  const weightMap: Record<string, string> = {};
  for (const [index, group] of groups.entries()) {
    const file = shards === 1 ? 'model.safetensors' : `model-0000${index + 1}-of-0000${shards}.safetensors`;
    const header: Record<string, unknown> = {};
    const bodies: Buffer[] = [];
    let offset = 0;
    for (const t of group) {
      const bytes = Buffer.from(encodeAsDtype(roundToDtype(t.values.slice(), dtype), dtype));
      header[t.name] = { dtype: code, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
      offset += bytes.length;
      bodies.push(bytes);
      weightMap[t.name] = file;
    }
    const json = Buffer.from(JSON.stringify(header));
    const size = Buffer.alloc(8);
    size.writeBigUInt64LE(BigInt(json.length));
    await writeFile(join(dir, file), Buffer.concat([size, json, ...bodies]));
  }
  if (shards > 1) {
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  }
}

/** Largest logit difference to the float64 reference over an 11-token prefill, for the graph in `dir`'s style. */
async function checkAgainstReference(dir: string, vocab: number, style: 'standard' | 'fused' = 'standard') {
  if (style === 'fused') return checkFusedAgainstReference(dir, dir, vocab);
  const decoder = await loadOnnxDecoder(dir);
  const ids = Array.from({ length: 11 }, (_, i) => (i * 37 + 5) % vocab);
  const result = await decoder.step({
    inputIds: [ids],
    attentionMask: [ids.map(() => 1)],
    positionIds: [ids.map((_, i) => i)],
  });
  const reference = loadReferenceModel(dir).forward(ids);
  let worst = 0;
  for (let s = 0; s < ids.length; s++) worst = Math.max(worst, maxAbsDiff(result.at(0, s), reference[s]!));
  return worst;
}

/** The fused graph in `out` against the reference forward pass of the checkpoint in `dir`. */
async function checkFusedAgainstReference(dir: string, out: string, vocab: number) {
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, number | null>;
  const heads = config['num_attention_heads']!;
  const decoder = await loadFusedDecoder(join(out, 'onnx', 'model.onnx'), {
    layers: config['num_hidden_layers']!,
    kvHeads: config['num_key_value_heads'] ?? heads,
    headDim: config['head_dim'] ?? config['hidden_size']! / heads,
  });
  const ids = Array.from({ length: 11 }, (_, i) => (i * 37 + 5) % vocab);
  const result = await decoder.step(decoder.allocate(1, ids.length), [{ tokens: ids, past: 0 }]);
  const reference = loadReferenceModel(dir).forward(ids);
  let worst = 0;
  for (let s = 0; s < ids.length; s++) worst = Math.max(worst, maxAbsDiff(result.at(0, s), reference[s]!));
  return worst;
}

describe('exportOnnx', () => {
  it('exports a directory written by writeModelDir to the same bytes writeModelDir writes', async () => {
    const [both, safetensorsOnly] = await Promise.all([temp(), temp()]);
    await writeModelDir({ preset: 'tiny-qwen2', seed: 4, outDir: both });
    await writeModelDir({ preset: 'tiny-qwen2', seed: 4, outDir: safetensorsOnly, formats: ['safetensors'] });
    const result = await exportOnnx(safetensorsOnly);
    expect(result).toMatchObject({ files: ['onnx/model.onnx'], architecture: 'qwen2', sourceDtype: 'float32' });
    const expected = await readFile(join(both, 'onnx', 'model.onnx'));
    expect((await readFile(join(safetensorsOnly, 'onnx', 'model.onnx'))).equals(expected)).toBe(true);
  });

  it('exports a Llama 3.1-style checkpoint it did not write (bf16, 2 shards, llama3 rope scaling, tied)', async () => {
    const dir = await temp();
    const shape = { vocab: 300, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, headDim: 16 };
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({
        architectures: ['LlamaForCausalLM'],
        bos_token_id: 1,
        eos_token_id: [2, 3],
        hidden_act: 'silu',
        hidden_size: 64,
        intermediate_size: 96,
        max_position_embeddings: 4096,
        model_type: 'llama',
        num_attention_heads: 4,
        num_hidden_layers: 2,
        num_key_value_heads: 2,
        rms_norm_eps: 1e-5,
        rope_scaling: {
          factor: 8.0,
          low_freq_factor: 1.0,
          high_freq_factor: 4.0,
          original_max_position_embeddings: 64,
          rope_type: 'llama3',
        },
        rope_theta: 500000.0,
        tie_word_embeddings: true,
        torch_dtype: 'bfloat16',
        vocab_size: 300,
      }),
    );
    await writeFile(join(dir, 'tokenizer.json'), '{}');
    await writeForeignCheckpoint(dir, foreignTensors({ ...shape, qkvBias: false, lmHead: false }), 'bfloat16', 2);
    const out = await temp();
    const result = await exportOnnx(dir, { outDir: out, graphStyle: 'standard' });
    expect(result.sourceDtype).toBe('bfloat16');
    // The output directory is complete: config and tokenizer copied beside the graph.
    expect(existsSync(join(out, 'config.json')) && existsSync(join(out, 'tokenizer.json'))).toBe(true);
    expect(existsSync(join(dir, 'onnx'))).toBe(false);
    // The reference reads the original bf16 shards; the ONNX graph holds the same values in float32.
    const decoder = await loadOnnxDecoder(out);
    const ids = Array.from({ length: 11 }, (_, i) => (i * 37 + 5) % 300);
    const onnx = await decoder.step({
      inputIds: [ids],
      attentionMask: [ids.map(() => 1)],
      positionIds: [ids.map((_, i) => i)],
    });
    const reference = loadReferenceModel(dir).forward(ids);
    for (let s = 0; s < ids.length; s++) expect(maxAbsDiff(onnx.at(0, s), reference[s]!)).toBeLessThan(1e-4);
    // The fused graph (the default style): rotary tables with llama3 scaling, tied lm_head.
    const fused = await temp();
    await exportOnnx(dir, { outDir: fused });
    expect(await checkFusedAgainstReference(dir, fused, 300)).toBeLessThan(1e-4);
  });

  it('exports a Qwen2-style float16 checkpoint with biases and linear rope scaling, in place', async () => {
    const dir = await temp();
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({
        architectures: ['Qwen2ForCausalLM'],
        hidden_size: 64,
        intermediate_size: 80,
        max_position_embeddings: 1024,
        max_window_layers: 2,
        model_type: 'qwen2',
        num_attention_heads: 8,
        num_hidden_layers: 2,
        num_key_value_heads: 2,
        rms_norm_eps: 1e-6,
        rope_scaling: { type: 'linear', factor: 2.0 },
        rope_theta: 1000000.0,
        sliding_window: 1024,
        tie_word_embeddings: false,
        torch_dtype: 'float16',
        use_sliding_window: false,
        vocab_size: 260,
      }),
    );
    const shape = { vocab: 260, hidden: 64, intermediate: 80, layers: 2, heads: 8, kvHeads: 2, headDim: 8 };
    await writeForeignCheckpoint(dir, foreignTensors({ ...shape, qkvBias: true, lmHead: true }), 'float16', 1);
    for (const graphStyle of ['standard', 'fused'] as const) {
      const result = await exportOnnx(dir, { graphStyle });
      expect(result).toMatchObject({ architecture: 'qwen2', sourceDtype: 'float16' });
      expect(await checkAgainstReference(dir, 260, graphStyle), graphStyle).toBeLessThan(1e-4);
    }
  });

  it('exports a Mistral-style float32 checkpoint with head_dim null and no sliding window', async () => {
    const dir = await temp();
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({
        architectures: ['MistralForCausalLM'],
        head_dim: null,
        hidden_size: 48,
        intermediate_size: 64,
        max_position_embeddings: 32768,
        model_type: 'mistral',
        num_attention_heads: 6,
        num_hidden_layers: 1,
        num_key_value_heads: 2,
        rms_norm_eps: 1e-5,
        rope_theta: 1000000.0,
        sliding_window: null,
        vocab_size: 270,
      }),
    );
    const shape = { vocab: 270, hidden: 48, intermediate: 64, layers: 1, heads: 6, kvHeads: 2, headDim: 8 };
    await writeForeignCheckpoint(dir, foreignTensors({ ...shape, qkvBias: false, lmHead: true }), 'float32', 1);
    for (const graphStyle of ['standard', 'fused'] as const) {
      await exportOnnx(dir, { externalData: 'always', graphStyle });
      expect(existsSync(join(dir, 'onnx', 'model.onnx_data'))).toBe(true);
      expect(await checkAgainstReference(dir, 270, graphStyle), graphStyle).toBeLessThan(1e-4);
    }
  });

  it.each(['tiny-qwen3', 'tiny-gemma2', 'tiny-gemma3', 'tiny-phi3'] as const)(
    'exports a %s checkpoint in both graph styles, equal to the float64 reference',
    async (preset) => {
      const dir = await temp();
      await writeModelDir({ preset, seed: 7, outDir: dir, formats: ['safetensors'] });
      const vocab = (JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
      for (const graphStyle of ['standard', 'fused'] as const) {
        const result = await exportOnnx(dir, { graphStyle });
        expect(result.architecture).toBe(preset === 'tiny-gemma3' ? 'gemma3_text' : preset.slice(5));
        expect(await checkAgainstReference(dir, vocab, graphStyle), graphStyle).toBeLessThan(1e-4);
      }
    },
  );

  it('refuses checkpoints that do not match their config, and configs it cannot express', async () => {
    const base = await temp();
    await writeModelDir({ preset: 'tiny', seed: 1, outDir: base, formats: ['safetensors'] });
    const config = JSON.parse(await readFile(join(base, 'config.json'), 'utf8')) as Record<string, unknown>;
    const withConfig = async (patch: Record<string, unknown>) => {
      await writeFile(join(base, 'config.json'), JSON.stringify({ ...config, ...patch }));
      return exportOnnx(base, { outDir: await temp() });
    };
    const configErrors: Array<[Record<string, unknown>, RegExp]> = [
      [{ model_type: 'gpt2' }, /model_type "gpt2" is not supported/],
      [{ hidden_act: 'gelu' }, /hidden activation "gelu" is not supported/],
      [{ rope_scaling: { rope_type: 'mrope', factor: 4 } }, /rope_scaling type "mrope" is not supported/],
      [{ quantization_config: { quant_method: 'gptq' } }, /Quantized checkpoints/],
      [{ num_key_value_heads: 3 }, /multiple of num_key_value_heads/],
    ];
    for (const [patch, message] of configErrors) {
      const error: unknown = await withConfig(patch).catch((e: unknown) => e);
      expect(InvalidModelConfigError.isInstance(error), JSON.stringify(patch)).toBe(true);
      expect((error as Error).message).toMatch(message);
    }
    const directoryErrors: Array<[Record<string, unknown>, RegExp]> = [
      [{ attention_bias: true }, /Tensor model\.layers\.0\.self_attn\.q_proj\.bias is missing/],
      [{ intermediate_size: 100 }, /has shape \[176, 64\]; config\.json implies \[100, 64\]/],
      [{ tie_word_embeddings: true, num_hidden_layers: 1 }, /model\.layers\.1\..* is not part of a llama model/],
    ];
    for (const [patch, message] of directoryErrors) {
      const error: unknown = await withConfig(patch).catch((e: unknown) => e);
      expect(ModelDirectoryError.isInstance(error), JSON.stringify(patch)).toBe(true);
      expect((error as Error).message).toMatch(message);
    }
    await writeFile(join(base, 'config.json'), '{ not json');
    await expect(exportOnnx(base)).rejects.toThrow(/config\.json is not valid JSON/);
    await expect(exportOnnx(join(base, 'missing'))).rejects.toThrow(/Cannot read config\.json/);
  });
});

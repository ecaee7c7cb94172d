import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { InvalidModelConfigError } from './errors.js';
import { resolveModelConfig } from './model-config.js';
import { openSafetensorsCheckpoint } from './safetensors.js';
import { buildTokenizerFiles } from './tokenizer/tokenizer-files.js';
import { planModelDir, writeModelDir } from './write-model-dir.js';

const temp = () => mkdtemp(join(tmpdir(), 'mk-write-'));

async function readTree(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(path.slice(dir.length + 1), await readFile(path));
  }
  return out;
}

describe('writeModelDir', () => {
  it('is deterministic: the same seed gives byte-identical directories, another seed other weights', async () => {
    const [a, b, c] = await Promise.all([temp(), temp(), temp()]);
    await writeModelDir({ preset: 'tiny', seed: 11, outDir: a });
    await writeModelDir({ preset: 'tiny', seed: 11, outDir: b });
    await writeModelDir({ preset: 'tiny', seed: 12, outDir: c });
    const [treeA, treeB, treeC] = await Promise.all([readTree(a), readTree(b), readTree(c)]);
    expect([...treeA.keys()].sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'onnx/model.onnx',
      'special_tokens_map.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    for (const [name, bytes] of treeA) expect(bytes.equals(treeB.get(name)!), name).toBe(true);
    expect(treeA.get('tokenizer.json')!.equals(treeC.get('tokenizer.json')!)).toBe(true);
    expect(treeA.get('model.safetensors')!.equals(treeC.get('model.safetensors')!)).toBe(false);
    expect(treeA.get('onnx/model.onnx')!.equals(treeC.get('onnx/model.onnx')!)).toBe(false);
  });

  it('writes a llama config.json with the real transformers fields', async () => {
    const dir = await temp();
    const info = await writeModelDir({ preset: 'tiny', seed: 1, outDir: dir, formats: ['safetensors'] });
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toEqual({
      architectures: ['LlamaForCausalLM'],
      attention_bias: false,
      attention_dropout: 0,
      bos_token_id: info.tokenIds.bos,
      eos_token_id: info.tokenIds.eos,
      head_dim: 16,
      hidden_act: 'silu',
      hidden_size: 64,
      initializer_range: 0.02,
      intermediate_size: 176,
      max_position_embeddings: 512,
      mlp_bias: false,
      model_type: 'llama',
      num_attention_heads: 4,
      num_hidden_layers: 2,
      num_key_value_heads: 2,
      pretraining_tp: 1,
      rms_norm_eps: 1e-5,
      rope_scaling: null,
      rope_theta: 500000,
      tie_word_embeddings: false,
      torch_dtype: 'float32',
      use_cache: true,
      vocab_size: 512,
    });
    expect(Object.keys(config)).toEqual(Object.keys(config).sort());
    const generation = JSON.parse(await readFile(join(dir, 'generation_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(generation).toEqual({
      bos_token_id: info.tokenIds.bos,
      do_sample: true,
      eos_token_id: info.tokenIds.eos,
      temperature: 0.6,
      top_p: 0.9,
    });
    expect(info.files).not.toContain('onnx/model.onnx');
    expect(existsSync(join(dir, 'onnx', 'model.onnx'))).toBe(false);
  });

  it('writes HF tensor names and shapes; qwen2 has q/k/v biases and ties lm_head to the embedding', async () => {
    const dir = await temp();
    const info = await writeModelDir({ preset: 'tiny-qwen2', seed: 1, outDir: dir, formats: ['safetensors'] });
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config['model_type']).toBe('qwen2');
    expect(config['architectures']).toEqual(['Qwen2ForCausalLM']);
    expect(config['tie_word_embeddings']).toBe(true);
    expect(config['use_sliding_window']).toBe(false);
    expect(config).not.toHaveProperty('head_dim'); // as real Qwen2 configs
    expect(info.files).toEqual(expect.arrayContaining(['vocab.json', 'merges.txt']));
    const checkpoint = await openSafetensorsCheckpoint(dir);
    const shapes = Object.fromEntries([...checkpoint.tensors].map(([name, t]) => [name, t.shape]));
    expect(shapes).toEqual({
      'model.embed_tokens.weight': [640, 64],
      'model.norm.weight': [64],
      ...Object.fromEntries(
        [0, 1].flatMap((i) => [
          [`model.layers.${i}.self_attn.q_proj.weight`, [64, 64]],
          [`model.layers.${i}.self_attn.q_proj.bias`, [64]],
          [`model.layers.${i}.self_attn.k_proj.weight`, [32, 64]],
          [`model.layers.${i}.self_attn.k_proj.bias`, [32]],
          [`model.layers.${i}.self_attn.v_proj.weight`, [32, 64]],
          [`model.layers.${i}.self_attn.v_proj.bias`, [32]],
          [`model.layers.${i}.self_attn.o_proj.weight`, [64, 64]],
          [`model.layers.${i}.mlp.gate_proj.weight`, [176, 64]],
          [`model.layers.${i}.mlp.up_proj.weight`, [176, 64]],
          [`model.layers.${i}.mlp.down_proj.weight`, [64, 176]],
          [`model.layers.${i}.input_layernorm.weight`, [64]],
          [`model.layers.${i}.post_attention_layernorm.weight`, [64]],
        ]),
      ),
    });
    expect(info.parameterCount).toBe(
      [...checkpoint.tensors.values()].reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0),
    );
    const bytes = await readFile(join(dir, 'model.safetensors'));
    const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString()) as Record<
      string,
      unknown
    >;
    expect(header['__metadata__']).toEqual({ format: 'pt' });
  });

  it('stores float16 and bfloat16 checkpoints holding the rounded float32 weights', async () => {
    const [f32, f16, bf16] = await Promise.all([temp(), temp(), temp()]);
    const formats = ['safetensors'] as const;
    await writeModelDir({ preset: 'tiny', seed: 5, outDir: f32, formats });
    await writeModelDir({ preset: 'tiny', seed: 5, outDir: f16, formats, dtype: 'float16' });
    await writeModelDir({ preset: 'tiny', seed: 5, outDir: bf16, formats, dtype: 'bfloat16' });
    const name = 'model.layers.1.mlp.down_proj.weight';
    const exact = await (await openSafetensorsCheckpoint(f32)).readFloat32(name);
    for (const [dir, dtype, relative] of [
      [f16, 'float16', 2 ** -11],
      [bf16, 'bfloat16', 2 ** -8],
    ] as const) {
      const checkpoint = await openSafetensorsCheckpoint(dir);
      expect(checkpoint.dtype).toBe(dtype);
      expect(checkpoint.tensors.get(name)!.dtype).toBe(dtype === 'float16' ? 'F16' : 'BF16');
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { torch_dtype: string };
      expect(config.torch_dtype).toBe(dtype);
      const rounded = await checkpoint.readFloat32(name);
      let changed = 0;
      for (let i = 0; i < exact.length; i++) {
        // Within half an ulp (or the float16 subnormal step) of the float32 value.
        const tolerance = Math.max(Math.abs(exact[i]!) * relative, 2 ** -25);
        expect(Math.abs(rounded[i]! - exact[i]!)).toBeLessThanOrEqual(tolerance);
        if (rounded[i] !== exact[i]) changed++;
      }
      expect(changed).toBeGreaterThan(exact.length / 2);
    }
  });

  it('shards the checkpoint like transformers, with an index, and removes stale files on rewrite', async () => {
    const dir = await temp();
    const info = await writeModelDir({
      preset: 'tiny',
      seed: 2,
      outDir: dir,
      formats: ['safetensors'],
      maxShardSize: 200_000,
    });
    const shards = info.files.filter((f) => f.endsWith('.safetensors'));
    expect(shards.length).toBeGreaterThan(2);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as {
      metadata: { total_size: number };
      weight_map: Record<string, string>;
    };
    expect(index.metadata.total_size).toBe(info.parameterCount * 4);
    expect(index.weight_map['model.embed_tokens.weight']).toBe(shards[0]);
    expect(index.weight_map['lm_head.weight']).toBe(shards.at(-1));
    const sharded = await openSafetensorsCheckpoint(dir);
    const name = 'model.layers.1.self_attn.v_proj.weight';
    const fromShards = await sharded.readFloat32(name);

    await writeModelDir({ preset: 'tiny', seed: 2, outDir: dir, formats: ['safetensors'] });
    expect((await readdir(dir)).filter((f) => f.includes('safetensors'))).toEqual(['model.safetensors']);
    expect(await (await openSafetensorsCheckpoint(dir)).readFloat32(name)).toEqual(fromShards);
  });

  it('rejects inconsistent configurations with InvalidModelConfigError', async () => {
    const outDir = await temp();
    const bad: Array<Parameters<typeof writeModelDir>[0]> = [
      { preset: 'tiny', config: { numKeyValueHeads: 3 }, outDir },
      { preset: 'tiny', config: { hiddenSize: 0 }, outDir },
      { preset: 'tiny', config: { headDim: 7 }, outDir },
      { preset: 'tiny-qwen2', config: { attentionBias: true }, outDir },
      { preset: 'tiny', config: { slidingWindow: 16 }, outDir },
      { preset: 'nope' as 'tiny', outDir },
      { config: { architecture: 'llama' }, outDir },
      { preset: 'tiny', seed: -1, outDir },
      { preset: 'tiny', seed: 1.5, outDir },
      { preset: 'tiny', formats: ['gguf' as 'onnx'], outDir },
    ];
    for (const options of bad) {
      await expect(writeModelDir(options), JSON.stringify(options)).rejects.toSatisfy(
        InvalidModelConfigError.isInstance,
      );
    }
  });
});

describe('presets', () => {
  it('bench is the ~125M-parameter Llama of the performance reference', () => {
    const plan = planModelDir({ preset: 'bench' });
    expect(plan.parameterCount).toBe(124_668_672);
    expect(plan.hfConfig).toMatchObject({
      hidden_size: 768,
      num_hidden_layers: 12,
      num_attention_heads: 12,
      num_key_value_heads: 4,
      head_dim: 64,
      intermediate_size: 2048,
      vocab_size: 32000,
      tie_word_embeddings: false,
    });
    expect(plan.tensors.find((t) => t.name === 'lm_head.weight')!.shape).toEqual([32000, 768]);
    expect(plan.tensors.find((t) => t.name === 'model.layers.11.self_attn.k_proj.weight')!.shape).toEqual([256, 768]);
    // The tokenizer learned from the embedded corpus is much smaller than the model's vocabulary.
    expect(plan.tokenizerVocabSize).toBeLessThan(2000);
  });

  it('big-vocab has Qwen2-sized vocabulary with a small hidden size', () => {
    const plan = planModelDir({ preset: 'big-vocab' });
    expect(plan.hfConfig).toMatchObject({ model_type: 'qwen2', vocab_size: 151936, hidden_size: 128 });
    expect(plan.parameterCount).toBeLessThan(25_000_000);
  });

  it('has tokenizers that @huggingface/tokenizers loads, for every preset', async () => {
    for (const preset of ['tiny', 'tiny-qwen2', 'bench', 'big-vocab'] as const) {
      const config = resolveModelConfig(preset);
      const { files, tokenizerVocabSize } = buildTokenizerFiles(config.chatFormat!, {
        modelVocabSize: config.vocabSize,
        modelMaxLength: config.maxPositionEmbeddings,
      });
      expect(tokenizerVocabSize).toBe(planModelDir({ preset }).tokenizerVocabSize);
      const tokenizer = new Tokenizer(
        JSON.parse(files['tokenizer.json']!) as object,
        JSON.parse(files['tokenizer_config.json']!) as object,
      );
      const ids = tokenizer.encode('Hello 世界 👋', { add_special_tokens: false }).ids;
      expect(tokenizer.decode(ids)).toBe('Hello 世界 👋');
      expect(Math.max(...ids)).toBeLessThan(config.vocabSize);
    }
  });
});

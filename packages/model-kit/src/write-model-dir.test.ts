import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { InvalidModelConfigError } from './errors.js';
import { writeGgufModel } from './gguf/export-gguf.js';
import { presets, resolveModelConfig, type PresetName } from './model-config.js';
import { openSafetensorsCheckpoint } from './safetensors.js';
import { buildTokenizerFiles } from './tokenizer/tokenizer-files.js';
import { loadReferenceModel } from './testing/reference-forward.js';
import { planModelDir, writeModelDir, type ModelDirInfo } from './write-model-dir.js';

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
    for (const preset of Object.keys(presets) as PresetName[]) {
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

describe('family presets', () => {
  const familyPresets = ['tiny-qwen3', 'tiny-gemma2', 'tiny-gemma3', 'tiny-phi3'] as const;
  const common = (info: { tokenIds: { bos: number; eos: number[]; pad: number } }) => ({
    attention_dropout: 0,
    bos_token_id: info.tokenIds.bos,
    hidden_size: 64,
    initializer_range: 0.02,
    intermediate_size: 176,
    rms_norm_eps: 1e-6,
    torch_dtype: 'float32',
    use_cache: true,
    vocab_size: 640,
  });
  const gemmaKeys = (info: { tokenIds: { bos: number; eos: number[]; pad: number } }) => ({
    ...common(info),
    attention_bias: false,
    cache_implementation: 'hybrid',
    eos_token_id: info.tokenIds.eos,
    head_dim: 16,
    hidden_activation: 'gelu_pytorch_tanh',
    max_position_embeddings: 512,
    num_attention_heads: 4,
    pad_token_id: info.tokenIds.pad,
    sliding_window: 8,
    tie_word_embeddings: true,
  });

  it('write config.json with exactly the keys transformers saves for each family', async () => {
    const expected: Record<(typeof familyPresets)[number], (info: ModelDirInfo) => Record<string, unknown>> = {
      'tiny-qwen3': (info) => ({
        ...common(info),
        architectures: ['Qwen3ForCausalLM'],
        attention_bias: false,
        eos_token_id: info.tokenIds.eos[0],
        head_dim: 32,
        hidden_act: 'silu',
        layer_types: ['full_attention', 'full_attention'],
        max_position_embeddings: 512,
        max_window_layers: 2,
        model_type: 'qwen3',
        num_attention_heads: 4,
        num_hidden_layers: 2,
        num_key_value_heads: 2,
        rope_scaling: null,
        rope_theta: 1000000,
        sliding_window: null,
        tie_word_embeddings: false,
        use_sliding_window: false,
      }),
      'tiny-gemma2': (info) => ({
        ...gemmaKeys(info),
        architectures: ['Gemma2ForCausalLM'],
        attn_logit_softcapping: 5,
        final_logit_softcapping: 3,
        hidden_act: 'gelu_pytorch_tanh',
        layer_types: ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'],
        model_type: 'gemma2',
        num_hidden_layers: 4,
        num_key_value_heads: 2,
        query_pre_attn_scalar: 24,
        rope_theta: 10000,
      }),
      'tiny-gemma3': (info) => ({
        ...gemmaKeys(info),
        architectures: ['Gemma3ForCausalLM'],
        attn_logit_softcapping: null,
        final_logit_softcapping: null,
        layer_types: ['sliding_attention', 'sliding_attention', 'full_attention'],
        model_type: 'gemma3_text',
        num_hidden_layers: 3,
        num_key_value_heads: 1,
        query_pre_attn_scalar: 16,
        rope_local_base_freq: 10000,
        rope_scaling: { factor: 2, rope_type: 'linear' },
        rope_theta: 1000000,
        sliding_window_pattern: 3,
        use_bidirectional_attention: false,
      }),
      'tiny-phi3': (info) => ({
        ...common(info),
        architectures: ['Phi3ForCausalLM'],
        attention_bias: false,
        embd_pdrop: 0,
        eos_token_id: info.tokenIds.eos[0],
        hidden_act: 'silu',
        max_position_embeddings: 256,
        model_type: 'phi3',
        num_attention_heads: 4,
        num_hidden_layers: 2,
        num_key_value_heads: 2,
        original_max_position_embeddings: 32,
        pad_token_id: info.tokenIds.pad,
        partial_rotary_factor: 0.75,
        resid_pdrop: 0,
        rms_norm_eps: 1e-5,
        rope_scaling: {
          long_factor: [2, 2.75, 3.5, 4.625, 6.25, 8],
          short_factor: [1, 1.0625, 1.125, 1.25, 1.375, 1.5],
          type: 'longrope',
        },
        rope_theta: 10000,
        sliding_window: null,
        tie_word_embeddings: false,
      }),
    };
    for (const preset of familyPresets) {
      const dir = await temp();
      const info = await writeModelDir({ preset, seed: 1, outDir: dir, formats: ['safetensors'] });
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(config, preset).toEqual(expected[preset](info));
      const generation = JSON.parse(await readFile(join(dir, 'generation_config.json'), 'utf8')) as {
        eos_token_id: number[];
      };
      expect(generation.eos_token_id, preset).toEqual(info.tokenIds.eos);
      const tokenizerConfig = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')) as {
        chat_template: string;
        eos_token: string;
      };
      const tokenizerJson = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')) as {
        added_tokens: Array<{ id: number; content: string }>;
      };
      const token = (id: number | undefined) => tokenizerJson.added_tokens.find((t) => t.id === id)?.content;
      const eosNames = {
        'tiny-qwen3': ['<|im_end|>', '<|endoftext|>'],
        'tiny-gemma2': ['<eos>', '<end_of_turn>'],
        'tiny-gemma3': ['<eos>', '<end_of_turn>'],
        'tiny-phi3': ['<|endoftext|>', '<|end|>'],
      }[preset];
      expect(info.tokenIds.eos.map(token), preset).toEqual(eosNames);
      expect(tokenizerConfig.chat_template.length, preset).toBeGreaterThan(300);
    }
  });

  it('write each family’s tensors: qwen3 q/k norms, gemma’s four norms (offsets around 0), phi3 packed', async () => {
    const names = (preset: (typeof familyPresets)[number]) =>
      new Map(planModelDir({ preset }).tensors.map((t) => [t.name, t.shape]));
    const qwen3 = names('tiny-qwen3');
    expect(qwen3.get('model.layers.0.self_attn.q_proj.weight')).toEqual([128, 64]);
    expect(qwen3.get('model.layers.0.self_attn.k_proj.weight')).toEqual([64, 64]);
    expect(qwen3.get('model.layers.0.self_attn.o_proj.weight')).toEqual([64, 128]);
    expect(qwen3.get('model.layers.1.self_attn.q_norm.weight')).toEqual([32]);
    expect(qwen3.get('model.layers.1.self_attn.k_norm.weight')).toEqual([32]);
    expect(qwen3.has('lm_head.weight')).toBe(true);
    const gemma2 = names('tiny-gemma2');
    for (const norm of ['input', 'post_attention', 'pre_feedforward', 'post_feedforward']) {
      expect(gemma2.get(`model.layers.3.${norm}_layernorm.weight`)).toEqual([64]);
    }
    expect(gemma2.has('model.layers.0.self_attn.q_norm.weight')).toBe(false);
    expect(gemma2.has('lm_head.weight')).toBe(false);
    const gemma3 = names('tiny-gemma3');
    expect(gemma3.get('model.layers.2.self_attn.k_norm.weight')).toEqual([16]);
    expect(gemma3.get('model.layers.2.self_attn.k_proj.weight')).toEqual([16, 64]);
    expect(gemma3.get('model.layers.2.pre_feedforward_layernorm.weight')).toEqual([64]);
    const phi3 = names('tiny-phi3');
    expect(phi3.get('model.layers.0.self_attn.qkv_proj.weight')).toEqual([(4 + 2 * 2) * 16, 64]);
    expect(phi3.get('model.layers.0.mlp.gate_up_proj.weight')).toEqual([2 * 176, 64]);
    expect(phi3.has('model.layers.0.self_attn.q_proj.weight')).toBe(false);
    expect(phi3.has('model.layers.0.mlp.gate_proj.weight')).toBe(false);

    const dir = await temp();
    await writeModelDir({ preset: 'tiny-gemma3', seed: 4, outDir: dir, formats: ['safetensors'] });
    const checkpoint = await openSafetensorsCheckpoint(dir);
    for (const name of ['model.layers.0.post_feedforward_layernorm.weight', 'model.layers.1.self_attn.q_norm.weight']) {
      const values = [...(await checkpoint.readFloat32(name))];
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      expect(Math.abs(mean), name).toBeLessThan(0.1);
      expect(Math.max(...values.map(Math.abs)), name).toBeLessThan(0.18);
    }
  });

  it('have a deterministic, finite reference forward in which the family features matter', async () => {
    const tokens = Array.from({ length: 40 }, (_, i) => (i * 37 + 5) % 600);
    for (const preset of familyPresets) {
      const dir = await temp();
      await writeModelDir({ preset, seed: 2, outDir: dir, formats: ['safetensors'] });
      const first = loadReferenceModel(dir).forward(tokens);
      const again = loadReferenceModel(dir).forward(tokens);
      expect(first.length).toBe(40);
      for (const [i, row] of first.entries()) {
        expect(row.length).toBe(640);
        expect(row.every(Number.isFinite), `${preset} position ${i}`).toBe(true);
        expect([...row]).toEqual([...again[i]!]);
      }
      if (preset === 'tiny-gemma2') {
        // Final softcap 3: every logit inside (-3, 3), and the cap binds.
        const all = first.flatMap((row) => [...row]);
        expect(Math.max(...all.map(Math.abs))).toBeLessThan(3);
        expect(Math.max(...all.map(Math.abs))).toBeGreaterThan(2.9);
      }
      if (preset === 'tiny-phi3') {
        // longrope: a cached generation that crosses 32 positions keeps the short-factor keys of its first chunk.
        const chunked = loadReferenceModel(dir).forward(tokens, { chunks: [30, 10] });
        expect([...chunked[10]!]).not.toEqual([...first[10]!]);
        const short = loadReferenceModel(dir).forward(tokens.slice(0, 30));
        expect([...chunked[29]!]).toEqual([...short[29]!]);
      }
    }
  });

  it('reject family fields on the wrong architecture and bad values, naming the field', () => {
    const cases: Array<[Parameters<typeof resolveModelConfig>, RegExp]> = [
      [['tiny', { queryPreAttnScalar: 8 }], /`queryPreAttnScalar` applies to gemma2, gemma3_text only/],
      [['tiny-qwen2', { attnLogitSoftcapping: 5 }], /`attnLogitSoftcapping` applies to gemma2, gemma3_text/],
      [['tiny', { partialRotaryFactor: 0.5 }], /`partialRotaryFactor` applies to phi3 only/],
      [['tiny-gemma2', { slidingWindowPattern: 2 }], /`slidingWindowPattern` applies to gemma3_text only/],
      [['tiny-qwen2', { slidingWindow: 8 }], /`slidingWindow` applies to mistral, qwen3, gemma2, gemma3_text, phi3/],
      [['tiny-phi3', { attentionBias: true }], /`attentionBias` applies to llama, qwen3, gemma2 and gemma3_text/],
      [['tiny-phi3', { partialRotaryFactor: 0.7 }], /floor\(16 \* 0.7\) = 11 must be even/],
      [['tiny-phi3', { headDim: 32 }], /phi3 derives the head size/],
      [
        ['tiny-phi3', { ropeScaling: { type: 'longrope', short_factor: [1, 1], long_factor: [1, 1] } }],
        /`ropeScaling`: rope_scaling.short_factor must list rotaryDim \/ 2 = 6 positive numbers; got 2 entries/,
      ],
      [['tiny', { ropeScaling: { rope_type: 'ntk' } }], /rope_scaling type "ntk" is not supported/],
      [['tiny-gemma2', { layerTypes: ['full_attention'] }], /`layerTypes` must list `numHiddenLayers` \(4\)/],
      [['tiny-gemma2', { finalLogitSoftcapping: -3 }], /`finalLogitSoftcapping` must be a positive number/],
      [['tiny-qwen3', { maxWindowLayers: -1 }], /`maxWindowLayers` must be an integer >= 0/],
    ];
    for (const [args, message] of cases) {
      let error: unknown;
      try {
        resolveModelConfig(...args);
      } catch (caught) {
        error = caught;
      }
      expect(InvalidModelConfigError.isInstance(error), JSON.stringify(args)).toBe(true);
      expect((error as Error).message, JSON.stringify(args)).toMatch(message);
    }
    // Fields that apply are accepted: qwen3 with a window from layer 1, yarn and dynamic scaling.
    expect(
      resolveModelConfig('tiny-qwen3', {
        slidingWindow: 4,
        maxWindowLayers: 1,
        ropeScaling: { rope_type: 'yarn', factor: 4 },
      }).slidingWindow,
    ).toBe(4);
    expect(
      planModelDir({ preset: 'tiny-qwen3', config: { slidingWindow: 4, maxWindowLayers: 1 } }).hfConfig,
    ).toMatchObject({
      use_sliding_window: true,
      sliding_window: 4,
      max_window_layers: 1,
      layer_types: ['full_attention', 'sliding_attention'],
    });
    expect(resolveModelConfig('tiny', { ropeScaling: { rope_type: 'dynamic', factor: 2 } }).ropeScaling).toEqual({
      rope_type: 'dynamic',
      factor: 2,
    });
  });

  it('export to GGUF, except what llama.cpp cannot reproduce (gemma2 with query_pre_attn_scalar != head_dim)', async () => {
    const dir = await temp();
    for (const preset of familyPresets) {
      const outFile = join(dir, `${preset}.gguf`);
      if (preset === 'tiny-gemma2') {
        await expect(writeGgufModel({ preset, outFile })).rejects.toMatchObject({ field: 'queryPreAttnScalar' });
        await writeGgufModel({ preset, outFile, config: { queryPreAttnScalar: 16 } });
      } else {
        await writeGgufModel({ preset, outFile });
      }
    }
  });
});

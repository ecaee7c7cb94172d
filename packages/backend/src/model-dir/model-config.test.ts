import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelLoadError, UnsupportedModelError } from '../errors.js';
import { parseModelConfig, readModelConfig } from './model-config.js';

const fixtures = path.join(import.meta.dirname, '../../fixtures/configs');

async function fixture(name: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path.join(fixtures, name, 'config.json'), 'utf8')) as Record<string, unknown>;
}

function loadError(fn: () => unknown): ModelLoadError {
  try {
    fn();
  } catch (error) {
    if (ModelLoadError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a ModelLoadError');
}

describe('parseModelConfig on real config.json files', () => {
  it('reads Llama 3.1 8B Instruct (GQA, llama3 rope scaling, untied)', async () => {
    const config = await readModelConfig(path.join(fixtures, 'llama-3.1-8b-instruct'));
    expect(config).toMatchObject({
      modelType: 'llama',
      architecture: 'LlamaForCausalLM',
      vocabSize: 128256,
      hiddenSize: 4096,
      intermediateSize: 14336,
      numLayers: 32,
      numAttentionHeads: 32,
      numKeyValueHeads: 8,
      headDim: 128,
      rmsNormEps: 1e-5,
      ropeTheta: 500000,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
      maxPositions: 131072,
      tieWordEmbeddings: false,
      qkvBias: false,
      outputBias: false,
      mlpBias: false,
      slidingWindow: null,
      hiddenAct: 'silu',
      bosTokenId: 128000,
      eosTokenIds: [128001, 128008, 128009],
      torchDtype: 'bfloat16',
    });
    expect(config.layerTypes).toHaveLength(32);
    expect(new Set(config.layerTypes)).toEqual(new Set(['full_attention']));
    expect(config.file).toBe(path.join(fixtures, 'llama-3.1-8b-instruct', 'config.json'));
  });

  it('reads Llama 3.2 1B Instruct (explicit head_dim, tied embeddings)', async () => {
    const config = parseModelConfig(await fixture('llama-3.2-1b-instruct'));
    expect(config).toMatchObject({ headDim: 64, tieWordEmbeddings: true, numLayers: 16, numKeyValueHeads: 8 });
    expect(config.ropeScaling).toMatchObject({ type: 'llama3', factor: 32 });
  });

  it('reads Qwen2.5 0.5B Instruct (qkv biases, tied, sliding window off)', async () => {
    const config = parseModelConfig(await fixture('qwen2.5-0.5b-instruct'));
    expect(config).toMatchObject({
      modelType: 'qwen2',
      architecture: 'Qwen2ForCausalLM',
      vocabSize: 151936,
      hiddenSize: 896,
      intermediateSize: 4864,
      numLayers: 24,
      numAttentionHeads: 14,
      numKeyValueHeads: 2,
      headDim: 64,
      rmsNormEps: 1e-6,
      ropeTheta: 1000000,
      ropeScaling: null,
      maxPositions: 32768,
      tieWordEmbeddings: true,
      qkvBias: true,
      outputBias: false,
      mlpBias: false,
      slidingWindow: null,
      bosTokenId: 151643,
      eosTokenIds: [151645],
    });
    expect(config.layerTypes.every((t) => t === 'full_attention')).toBe(true);
  });

  it('reads Qwen2.5 7B Instruct (untied)', async () => {
    const config = parseModelConfig(await fixture('qwen2.5-7b-instruct'));
    expect(config).toMatchObject({ tieWordEmbeddings: false, headDim: 128, numKeyValueHeads: 4, vocabSize: 152064 });
  });

  it('applies Qwen2 use_sliding_window to layers from max_window_layers on', async () => {
    const json = { ...(await fixture('qwen2.5-0.5b-instruct')), use_sliding_window: true, sliding_window: 1024 };
    const config = parseModelConfig(json);
    expect(config.slidingWindow).toBe(1024);
    expect(config.layerTypes.slice(0, 21).every((t) => t === 'full_attention')).toBe(true);
    expect(config.layerTypes.slice(21).every((t) => t === 'sliding_attention')).toBe(true);
  });

  it('reads Mistral 7B v0.1 (sliding window 4096) and v0.3 (sliding_window null)', async () => {
    const v01 = parseModelConfig(await fixture('mistral-7b-v0.1'));
    expect(v01).toMatchObject({ modelType: 'mistral', slidingWindow: 4096, ropeTheta: 10000, vocabSize: 32000 });
    expect(v01.layerTypes.every((t) => t === 'sliding_attention')).toBe(true);
    const v03 = parseModelConfig(await fixture('mistral-7b-instruct-v0.3'));
    expect(v03).toMatchObject({ slidingWindow: null, ropeTheta: 1000000, vocabSize: 32768, headDim: 128 });
    expect(v03.layerTypes.every((t) => t === 'full_attention')).toBe(true);
  });

  it('uses the MistralConfig default window of 4096 when sliding_window is absent', async () => {
    const json = await fixture('mistral-7b-v0.1');
    delete json.sliding_window;
    expect(parseModelConfig(json).slidingWindow).toBe(4096);
  });

  it('reads the transformers 5 rope_parameters layout and an explicit layer_types', async () => {
    const json = await fixture('llama-3.1-8b-instruct');
    delete json.rope_scaling;
    delete json.rope_theta;
    json.rope_parameters = {
      rope_type: 'llama3',
      rope_theta: 500000.0,
      factor: 8.0,
      low_freq_factor: 1.0,
      high_freq_factor: 4.0,
      original_max_position_embeddings: 8192,
    };
    json.dtype = 'bfloat16';
    delete json.torch_dtype;
    const config = parseModelConfig(json);
    expect(config.ropeTheta).toBe(500000);
    expect(config.ropeScaling).toMatchObject({ type: 'llama3', factor: 8 });
    expect(config.torchDtype).toBe('bfloat16');
  });

  it('applies defaults for a minimal llama config (the older "type" key, linear scaling, attention_bias)', () => {
    const config = parseModelConfig({
      model_type: 'llama',
      vocab_size: 100,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      attention_bias: true,
      rope_scaling: { type: 'linear', factor: 2 },
    });
    expect(config).toMatchObject({
      architecture: 'LlamaForCausalLM',
      numKeyValueHeads: 4,
      headDim: 8,
      ropeTheta: 10000,
      rmsNormEps: 1e-6,
      maxPositions: 2048,
      qkvBias: true,
      outputBias: true,
      ropeScaling: { type: 'linear', factor: 2 },
      eosTokenIds: [],
      bosTokenId: undefined,
    });
  });
});

describe('parseModelConfig on the 2026 families', () => {
  it('reads Qwen3 0.6B (q/k norms, head_dim 128 != hidden/heads, no biases, tied)', async () => {
    const config = await readModelConfig(path.join(fixtures, 'qwen3-0.6b'));
    expect(config).toMatchObject({
      modelType: 'qwen3',
      architecture: 'Qwen3ForCausalLM',
      hiddenSize: 1024,
      headDim: 128,
      rotaryDim: 128,
      numAttentionHeads: 16,
      numKeyValueHeads: 8,
      queryKeyNorm: true,
      qkvBias: false,
      outputBias: false,
      normWeightOffset: 0,
      sandwichNorms: false,
      hiddenAct: 'silu',
      embeddingScale: null,
      attentionScale: 128 ** -0.5,
      ropeTheta: 1000000,
      ropeScaling: null,
      slidingWindow: null,
      tieWordEmbeddings: true,
      maxPositions: 40960,
      packedProjections: false,
    });
  });

  it('reads Gemma 2 2B it (soft-capping, query_pre_attn_scalar, alternating sliding layers, (1 + w) norms)', async () => {
    const config = await readModelConfig(path.join(fixtures, 'gemma-2-2b-it'));
    expect(config).toMatchObject({
      modelType: 'gemma2',
      headDim: 256,
      hiddenAct: 'gelu_pytorch_tanh',
      normWeightOffset: 1,
      sandwichNorms: true,
      queryKeyNorm: false,
      embeddingScale: Math.fround(Math.sqrt(2304)),
      attentionScale: 256 ** -0.5,
      attnLogitSoftcapping: 50,
      finalLogitSoftcapping: 30,
      slidingWindow: 4096,
      localRope: null,
      tieWordEmbeddings: true,
      eosTokenIds: [1, 107],
    });
    expect(config.layerTypes.slice(0, 4)).toEqual([
      'sliding_attention',
      'full_attention',
      'sliding_attention',
      'full_attention',
    ]);
  });

  it('reads Gemma 3 1B it (gemma3_text: q/k norms, 5 sliding layers per full one, local rope base)', async () => {
    const config = await readModelConfig(path.join(fixtures, 'gemma-3-1b-it'));
    expect(config).toMatchObject({
      modelType: 'gemma3_text',
      architecture: 'Gemma3ForCausalLM',
      queryKeyNorm: true,
      sandwichNorms: true,
      attnLogitSoftcapping: null,
      finalLogitSoftcapping: null,
      slidingWindow: 512,
      ropeTheta: 1000000,
      localRope: { theta: 10000, scaling: null },
      numKeyValueHeads: 1,
      vocabSize: 262144,
    });
    expect(config.layerTypes.filter((t) => t === 'full_attention')).toHaveLength(4);
    expect(config.layerTypes[5]).toBe('full_attention');
    expect(config.layerTypes[4]).toBe('sliding_attention');
  });

  it('reads the Phi-4-mini layout (packed projections, partial rotary 0.75, top-level longrope context)', async () => {
    const config = await readModelConfig(path.join(fixtures, 'phi-4-mini-instruct-shape'));
    expect(config).toMatchObject({
      modelType: 'phi3',
      headDim: 128,
      rotaryDim: 96,
      packedProjections: true,
      qkvBias: false,
      tieWordEmbeddings: true,
      slidingWindow: 262144,
    });
    const scaling = config.ropeScaling;
    expect(scaling?.type).toBe('longrope');
    if (scaling?.type !== 'longrope') return;
    expect(scaling.originalMaxPositions).toBe(4096);
    expect(scaling.shortFactor).toHaveLength(48);
    // factor = 131072 / 4096 = 32: sqrt(1 + ln 32 / ln 4096).
    expect(scaling.attentionFactor).toBeCloseTo(Math.sqrt(1 + Math.log(32) / Math.log(4096)), 12);
  });

  it('reads yarn and dynamic scaling with their defaults', () => {
    const base = {
      model_type: 'qwen3',
      vocab_size: 10,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      head_dim: 16,
      max_position_embeddings: 40960,
    };
    const yarn = parseModelConfig({
      ...base,
      rope_scaling: { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 32768 },
    });
    expect(yarn.ropeScaling).toEqual({
      type: 'yarn',
      factor: 4,
      originalMaxPositions: 32768,
      betaFast: 32,
      betaSlow: 1,
      attentionFactor: 0.1 * Math.log(4) + 1,
      truncate: true,
    });
    const dynamic = parseModelConfig({ ...base, rope_scaling: { type: 'dynamic', factor: 2 } });
    expect(dynamic.ropeScaling).toEqual({ type: 'dynamic', factor: 2, originalMaxPositions: 40960 });
    expect(dynamic.maxPositions).toBe(81920);
    expect(dynamic.maxPositionEmbeddings).toBe(40960);
    // Qwen3's long-context recipe: yarn factor 4 over 32,768 trained positions serves 131,072.
    expect(yarn.maxPositions).toBe(131072);
  });

  it('rejects longrope factor lists of the wrong length and a non-GELU Gemma activation', () => {
    const phi = {
      model_type: 'phi3',
      vocab_size: 10,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      rope_scaling: { type: 'longrope', short_factor: [1, 1], long_factor: [1, 1] },
    };
    const error = loadError(() => parseModelConfig(phi));
    expect(error.message).toContain('short_factor');
    expect(error.message).toContain('8 positive numbers');
    const gemma = { ...phi, model_type: 'gemma2', rope_scaling: null, hidden_activation: 'relu' };
    expect(UnsupportedModelError.isInstance(loadError(() => parseModelConfig(gemma)))).toBe(true);
  });
});

describe('parseModelConfig errors', () => {
  const base = {
    model_type: 'llama',
    vocab_size: 100,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
  };

  it('rejects an unsupported model_type with the supported list', () => {
    const error = loadError(() => parseModelConfig({ ...base, model_type: 'gpt2' }, '/m/config.json'));
    expect(UnsupportedModelError.isInstance(error)).toBe(true);
    expect(error.message).toContain('/m/config.json');
    expect(error.message).toContain('"gpt2"');
    expect(error.message).toContain('"llama", "mistral", "qwen2"');
    expect((error as UnsupportedModelError).feature).toBe('model_type');
  });

  it('rejects unsupported activations, rope types and architectures', () => {
    expect(UnsupportedModelError.isInstance(loadError(() => parseModelConfig({ ...base, hidden_act: 'gelu' })))).toBe(
      true,
    );
    const rope = loadError(() => parseModelConfig({ ...base, rope_scaling: { rope_type: 'mrope', factor: 4 } }));
    expect(UnsupportedModelError.isInstance(rope)).toBe(true);
    expect(rope.message).toContain('rope_scaling.rope_type');
    expect(rope.message).toContain('"mrope"');
    const architecture = loadError(() =>
      parseModelConfig({ ...base, architectures: ['LlamaForSequenceClassification'] }),
    );
    expect(UnsupportedModelError.isInstance(architecture)).toBe(true);
  });

  it('names the missing or ill-typed field', () => {
    const { hidden_size: _, ...missing } = base;
    const error = loadError(() => parseModelConfig(missing, 'x/config.json'));
    expect(error.reason).toBe('invalid-config');
    expect(error.message).toContain('x/config.json');
    expect(error.message).toContain('`hidden_size`');
    expect(error.expected).toContain('positive integer');
    expect(loadError(() => parseModelConfig({ ...base, vocab_size: '100' })).message).toContain('`vocab_size`');
    expect(loadError(() => parseModelConfig({ ...base, eos_token_id: [1, -2] })).message).toContain('eos_token_id');
    expect(loadError(() => parseModelConfig({ ...base, tie_word_embeddings: 'yes' })).message).toContain(
      'tie_word_embeddings',
    );
    expect(loadError(() => parseModelConfig([1, 2])).reason).toBe('invalid-config');
  });

  it('rejects head counts that do not divide', () => {
    expect(loadError(() => parseModelConfig({ ...base, num_key_value_heads: 3 })).message).toContain(
      'num_key_value_heads',
    );
    expect(loadError(() => parseModelConfig({ ...base, hidden_size: 30 })).message).toContain('head_dim');
    expect(
      loadError(() => parseModelConfig({ ...base, rope_scaling: { rope_type: 'llama3', factor: 8 } })).message,
    ).toContain('rope_scaling.low_freq_factor');
    expect(loadError(() => parseModelConfig({ ...base, layer_types: ['full_attention'] })).message).toContain(
      'layer_types',
    );
  });

  describe('reading files', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'gen-config-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('reports a missing config.json', async () => {
      const error = await readModelConfig(dir).catch((e: unknown) => e);
      expect(ModelLoadError.isInstance(error)).toBe(true);
      expect((error as ModelLoadError).reason).toBe('missing-file');
      expect((error as ModelLoadError).file).toBe(path.join(dir, 'config.json'));
      expect((error as ModelLoadError).message).toContain('config.json');
    });

    it('reports invalid JSON', async () => {
      await writeFile(path.join(dir, 'config.json'), '{"model_type": "llama",');
      const error = await readModelConfig(dir).catch((e: unknown) => e);
      expect((error as ModelLoadError).reason).toBe('invalid-json');
      expect((error as ModelLoadError).message).toContain(path.join(dir, 'config.json'));
    });
  });
});

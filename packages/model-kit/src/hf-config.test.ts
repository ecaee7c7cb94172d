import { describe, expect, it } from 'vitest';
import { InvalidModelConfigError } from './errors.js';
import { parseHfConfig, ropeAttentionFactor, ropeInverseFrequencies, type DecoderSpec } from './hf-config.js';
import { OrderedObject, stringifyJson } from './json.js';

const llama2 = {
  model_type: 'llama',
  hidden_size: 4096,
  intermediate_size: 11008,
  num_attention_heads: 32,
  num_hidden_layers: 32,
  vocab_size: 32000,
  max_position_embeddings: 4096,
  rms_norm_eps: 1e-5,
};

describe('parseHfConfig', () => {
  it("fills transformers' defaults for fields old configs lack", () => {
    expect(parseHfConfig(llama2)).toEqual({
      architecture: 'llama',
      vocabSize: 32000,
      hiddenSize: 4096,
      intermediateSize: 11008,
      numLayers: 32,
      numHeads: 32,
      numKvHeads: 32,
      headDim: 128,
      maxPositionEmbeddings: 4096,
      contextLength: 4096,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: null,
      tieWordEmbeddings: false,
      qkvBias: false,
      outputBias: false,
      mlpBias: false,
      slidingWindow: null,
      layerTypes: new Array(32).fill('full_attention'),
      queryKeyNorm: false,
      normWeightOffset: false,
      sandwichNorms: false,
      hiddenAct: 'silu',
      embeddingScale: null,
      attentionScale: 1 / Math.sqrt(128),
      attnLogitSoftcapping: null,
      finalLogitSoftcapping: null,
      packedProjections: false,
      rotaryDim: 128,
      localRopeTheta: null,
    });
  });

  it('derives biases and windows from the architecture', () => {
    expect(parseHfConfig({ ...llama2, attention_bias: true, mlp_bias: true })).toMatchObject({
      qkvBias: true,
      outputBias: true,
      mlpBias: true,
    });
    expect(parseHfConfig({ ...llama2, model_type: 'qwen2', sliding_window: 4096 })).toMatchObject({
      qkvBias: true,
      outputBias: false,
      slidingWindow: null,
    });
    expect(parseHfConfig({ ...llama2, model_type: 'mistral', sliding_window: 4096 }).slidingWindow).toBe(4096);
    expect(parseHfConfig({ ...llama2, model_type: 'mistral', head_dim: null }).headDim).toBe(128);
    expect(parseHfConfig({ ...llama2, rope_scaling: { type: 'linear', factor: 4 } }).ropeScaling).toEqual({
      ropeType: 'linear',
      factor: 4,
    });
    expect(parseHfConfig({ ...llama2, rope_scaling: { rope_type: 'default' } }).ropeScaling).toBeNull();
  });

  it('rejects what the ONNX graph cannot express', () => {
    const bad: unknown[] = [
      null,
      [],
      { ...llama2, model_type: 'gemma' },
      { ...llama2, hidden_size: -1 },
      { ...llama2, rms_norm_eps: 0 },
      { ...llama2, head_dim: 7 },
      { ...llama2, tie_word_embeddings: 'yes' },
      { ...llama2, partial_rotary_factor: 0.5 },
      { ...llama2, rope_scaling: { rope_type: 'dynamic' } },
      { ...llama2, rope_scaling: { rope_type: 'yarn', factor: 4, truncate: 'yes' } },
      { ...llama2, rope_scaling: { rope_type: 'longrope', short_factor: [1], long_factor: [1] } },
      { ...llama2, hidden_act: 'gelu' },
      { ...llama2, model_type: 'qwen3', use_sliding_window: true, layer_types: ['full_attention'] },
      { ...llama2, model_type: 'gemma2', attn_logit_softcapping: -1 },
      { ...llama2, model_type: 'phi3', partial_rotary_factor: 0.7 },
      { ...llama2, rope_scaling: { rope_type: 'llama3', factor: 8 } },
      { ...llama2, rope_scaling: 'linear' },
    ];
    for (const config of bad) {
      let error: unknown;
      try {
        parseHfConfig(config);
      } catch (caught) {
        error = caught;
      }
      expect(InvalidModelConfigError.isInstance(error), JSON.stringify(config)).toBe(true);
    }
  });
});

describe('ropeInverseFrequencies', () => {
  it('computes 1 / theta^(2i/d) and applies linear and llama3 scaling', () => {
    const spec = parseHfConfig({ ...llama2, hidden_size: 256, num_attention_heads: 32, rope_theta: 10000 });
    const plain = ropeInverseFrequencies(spec);
    expect(plain.length).toBe(4);
    expect([...plain]).toEqual([1, 0.10000000149011612, 0.009999999776482582, 0.0010000000474974513]);
    const linear = ropeInverseFrequencies({ ...spec, ropeScaling: { ropeType: 'linear', factor: 4 } });
    expect([...linear]).toEqual([...plain].map((f) => Math.fround(f / 4)));
    const llama3 = ropeInverseFrequencies({
      ...spec,
      ropeScaling: {
        ropeType: 'llama3',
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 200,
      },
    });
    // wavelengths 6.3 (kept), 62.8 (smoothed), 628 and 6283 (> 200: divided by 8)
    expect(llama3[0]).toBe(plain[0]);
    const smooth = (200 / ((2 * Math.PI) / plain[1]!) - 1) / 3;
    expect(llama3[1]).toBeCloseTo(((1 - smooth) * plain[1]!) / 8 + smooth * plain[1]!, 7);
    expect(llama3[2]).toBeCloseTo(plain[2]! / 8, 9);
    expect(llama3[3]).toBeCloseTo(plain[3]! / 8, 9);
  });
});

describe('parseHfConfig: families', () => {
  const small = { ...llama2, hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 4, head_dim: 16 };

  it("gemma2: transformers' defaults (softcaps 50 / 30, query_pre_attn_scalar 256, alternating windows)", () => {
    const spec = parseHfConfig({ ...small, model_type: 'gemma2' });
    expect(spec).toMatchObject({
      tieWordEmbeddings: true,
      hiddenAct: 'gelu_pytorch_tanh',
      normWeightOffset: true,
      sandwichNorms: true,
      queryKeyNorm: false,
      embeddingScale: 8,
      attentionScale: 1 / 16,
      attnLogitSoftcapping: 50,
      finalLogitSoftcapping: 30,
      slidingWindow: 4096,
      layerTypes: ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'],
      localRopeTheta: null,
    });
    // Null switches capping off; hidden_activation wins over hidden_act.
    const off = parseHfConfig({
      ...small,
      model_type: 'gemma2',
      attn_logit_softcapping: null,
      final_logit_softcapping: null,
      hidden_act: 'silu',
      hidden_activation: 'gelu_pytorch_tanh',
    });
    expect([off.attnLogitSoftcapping, off.finalLogitSoftcapping, off.hiddenAct]).toEqual([
      null,
      null,
      'gelu_pytorch_tanh',
    ]);
    expect(parseHfConfig({ ...small, model_type: 'gemma2', hidden_size: 2304 }).embeddingScale).toBe(
      Math.fround(Math.sqrt(2304)),
    );
  });

  it('gemma3_text: q/k norms, pattern 6 (or the older _sliding_window_pattern), local rotary base, no softcaps', () => {
    const layers = { ...small, num_hidden_layers: 7, model_type: 'gemma3_text' };
    const spec = parseHfConfig(layers);
    expect(spec).toMatchObject({
      queryKeyNorm: true,
      ropeTheta: 1_000_000,
      localRopeTheta: 10000,
      attnLogitSoftcapping: null,
      finalLogitSoftcapping: null,
    });
    expect(spec.layerTypes.map((t) => t[0])).toEqual(['s', 's', 's', 's', 's', 'f', 's']);
    expect(parseHfConfig({ ...layers, _sliding_window_pattern: 2 }).layerTypes[1]).toBe('full_attention');
    // transformers 5: rope_parameters per layer type.
    const v5 = parseHfConfig({
      ...layers,
      rope_parameters: {
        full_attention: { rope_type: 'linear', factor: 8, rope_theta: 500000 },
        sliding_attention: { rope_type: 'default', rope_theta: 20000 },
      },
    });
    expect([v5.ropeTheta, v5.localRopeTheta, v5.ropeScaling]).toEqual([
      500000,
      20000,
      { ropeType: 'linear', factor: 8 },
    ]);
  });

  it('qwen3: head_dim default 128, q/k norms, sliding from max_window_layers when use_sliding_window', () => {
    const base = { ...small, model_type: 'qwen3', head_dim: undefined };
    expect(parseHfConfig(base)).toMatchObject({
      headDim: 128,
      queryKeyNorm: true,
      qkvBias: false,
      slidingWindow: null,
    });
    expect(parseHfConfig({ ...base, attention_bias: true })).toMatchObject({ qkvBias: true, outputBias: true });
    const sliding = parseHfConfig({ ...base, use_sliding_window: true, sliding_window: 16, max_window_layers: 2 });
    expect(sliding.slidingWindow).toBe(16);
    expect(sliding.layerTypes).toEqual(['full_attention', 'full_attention', 'sliding_attention', 'sliding_attention']);
    // Without use_sliding_window transformers keeps sliding_window = None: every layer attends fully.
    expect(parseHfConfig({ ...base, sliding_window: 16, max_window_layers: 0 }).slidingWindow).toBeNull();
  });

  it('phi3: packed projections, partial rotary, longrope with the attention factor resolved', () => {
    const phi = {
      ...small,
      model_type: 'phi3',
      head_dim: undefined,
      partial_rotary_factor: 0.75,
      max_position_embeddings: 131072,
      original_max_position_embeddings: 4096,
      rope_scaling: { type: 'longrope', short_factor: [1, 1, 1, 1, 1, 1], long_factor: [2, 2, 2, 2, 2, 2] },
    };
    const spec = parseHfConfig(phi);
    expect(spec).toMatchObject({ packedProjections: true, rotaryDim: 12, rmsNormEps: 1e-5, headDim: 16 });
    expect(spec.ropeScaling).toEqual({
      ropeType: 'longrope',
      shortFactor: [1, 1, 1, 1, 1, 1],
      longFactor: [2, 2, 2, 2, 2, 2],
      originalMaxPositionEmbeddings: 4096,
      attentionFactor: Math.sqrt(1 + Math.log(32) / Math.log(4096)),
    });
    expect(ropeAttentionFactor(spec)).toBe(Math.sqrt(1 + Math.log(32) / Math.log(4096)));
    const given = parseHfConfig({ ...phi, rope_scaling: { ...phi.rope_scaling, attention_factor: 1.5 } });
    expect(ropeAttentionFactor(given)).toBe(1.5);
    // Without the top-level key phi3 still has Phi3Config's default of 4096.
    const { original_max_position_embeddings: _dropped, ...noOriginal } = phi;
    void _dropped;
    expect(parseHfConfig(noOriginal).ropeScaling).toMatchObject({ originalMaxPositionEmbeddings: 4096 });
    expect(() => parseHfConfig({ ...phi, rope_scaling: { ...phi.rope_scaling, long_factor: [1, 2] } })).toThrow(
      /rotaryDim \/ 2 = 6/,
    );
    expect(parseHfConfig({ ...phi, sliding_window: 64 }).layerTypes).toEqual(new Array(4).fill('sliding_attention'));
  });

  it('yarn: defaults, mscale ratio and explicit attention factor', () => {
    const yarn = (extra: Record<string, unknown>) =>
      parseHfConfig({ ...llama2, rope_scaling: { rope_type: 'yarn', factor: 4, ...extra } }).ropeScaling;
    expect(yarn({})).toEqual({
      ropeType: 'yarn',
      factor: 4,
      originalMaxPositionEmbeddings: 4096,
      betaFast: 32,
      betaSlow: 1,
      attentionFactor: 0.1 * Math.log(4) + 1,
      truncate: true,
    });
    expect(yarn({ mscale: 2, mscale_all_dim: 1 })).toMatchObject({
      attentionFactor: (0.2 * Math.log(4) + 1) / (0.1 * Math.log(4) + 1),
    });
    expect(yarn({ attention_factor: 0.5, truncate: false, original_max_position_embeddings: 1024 })).toMatchObject({
      attentionFactor: 0.5,
      truncate: false,
      originalMaxPositionEmbeddings: 1024,
    });
  });

  it('round-trips every preset: config.json as written reads back to the preset', async () => {
    const { planModelDir } = await import('./write-model-dir.js');
    for (const preset of ['tiny', 'tiny-qwen2', 'tiny-qwen3', 'tiny-gemma2', 'tiny-gemma3', 'tiny-phi3'] as const) {
      const { config, hfConfig } = planModelDir({ preset });
      const spec = parseHfConfig(JSON.parse(stringifyJson(hfConfig)));
      expect(spec, preset).toMatchObject({
        architecture: config.architecture,
        vocabSize: config.vocabSize,
        hiddenSize: config.hiddenSize,
        intermediateSize: config.intermediateSize,
        numLayers: config.numHiddenLayers,
        numHeads: config.numAttentionHeads,
        numKvHeads: config.numKeyValueHeads,
        headDim: config.headDim,
        maxPositionEmbeddings: config.maxPositionEmbeddings,
        rmsNormEps: config.rmsNormEps,
        ropeTheta: config.ropeTheta,
        tieWordEmbeddings: config.tieWordEmbeddings,
      });
    }
    const spec = (preset: 'tiny-qwen3' | 'tiny-gemma2' | 'tiny-gemma3' | 'tiny-phi3'): DecoderSpec =>
      parseHfConfig(planModelDir({ preset }).hfConfig);
    expect(spec('tiny-qwen3')).toMatchObject({ headDim: 32, queryKeyNorm: true, attentionScale: 1 / Math.sqrt(32) });
    expect(spec('tiny-gemma2')).toMatchObject({
      attentionScale: 24 ** -0.5,
      attnLogitSoftcapping: 5,
      finalLogitSoftcapping: 3,
      slidingWindow: 8,
      layerTypes: ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'],
      embeddingScale: 8,
    });
    expect(spec('tiny-gemma3')).toMatchObject({
      layerTypes: ['sliding_attention', 'sliding_attention', 'full_attention'],
      localRopeTheta: 10000,
      ropeTheta: 1e6,
      ropeScaling: { ropeType: 'linear', factor: 2 },
      queryKeyNorm: true,
      attnLogitSoftcapping: null,
    });
    expect(spec('tiny-phi3')).toMatchObject({
      rotaryDim: 12,
      packedProjections: true,
      ropeScaling: { ropeType: 'longrope', originalMaxPositionEmbeddings: 32, attentionFactor: Math.sqrt(1.6) },
    });
  });
});

describe('ropeInverseFrequencies: rotary size and scaled types', () => {
  const base = parseHfConfig({ ...llama2, hidden_size: 256, num_attention_heads: 32, max_position_embeddings: 64 });
  const plain = [...ropeInverseFrequencies(base)];

  it('dynamic NTK raises the base only for forwards longer than max_position_embeddings', () => {
    const spec: DecoderSpec = { ...base, ropeScaling: { ropeType: 'dynamic', factor: 2 } };
    expect([...ropeInverseFrequencies(spec)]).toEqual(plain);
    expect([...ropeInverseFrequencies(spec, { sequenceLength: 64 })]).toEqual(plain);
    const grown = 10000 * ((2 * 100) / 64 - 1) ** (8 / 6);
    const long = ropeInverseFrequencies(spec, { sequenceLength: 100 });
    for (let i = 0; i < 4; i++) expect(long[i]).toBeCloseTo(1 / grown ** ((2 * i) / 8), 7);
  });

  it('yarn ramps between interpolated and original frequencies over the correction range', () => {
    const spec: DecoderSpec = {
      ...base,
      ropeScaling: {
        ropeType: 'yarn',
        factor: 4,
        originalMaxPositionEmbeddings: 64,
        betaFast: 32,
        betaSlow: 1,
        attentionFactor: 1.1386,
        truncate: true,
      },
    };
    const yarn = ropeInverseFrequencies(spec);
    // corr(32) = 8 ln(64 / 64 pi) / 2 ln 1e4 < 0 -> low 0; corr(1) = 8 ln(64 / 2 pi) / 2 ln 1e4 = 1.01 -> high 2.
    const ramp = (i: number) => Math.min(1, Math.max(0, i / 2));
    for (let i = 0; i < 4; i++) {
      expect(yarn[i]).toBeCloseTo((plain[i]! / 4) * ramp(i) + plain[i]! * (1 - ramp(i)), 8);
    }
    expect(ropeAttentionFactor(spec)).toBe(1.1386);
  });

  it('longrope divides by the short or long factors, switching past the original context', () => {
    const spec: DecoderSpec = {
      ...base,
      ropeScaling: {
        ropeType: 'longrope',
        shortFactor: [1, 1.5, 2, 3],
        longFactor: [4, 5, 6, 7],
        originalMaxPositionEmbeddings: 32,
        attentionFactor: 1.2,
      },
    };
    const short = ropeInverseFrequencies(spec, { sequenceLength: 32 });
    const long = ropeInverseFrequencies(spec, { sequenceLength: 33 });
    [1, 1.5, 2, 3].forEach((f, i) => expect(short[i]).toBeCloseTo(plain[i]! / f, 8));
    [4, 5, 6, 7].forEach((f, i) => expect(long[i]).toBeCloseTo(plain[i]! / f, 8));
    expect([...ropeInverseFrequencies(spec)]).toEqual([...short]);
  });

  it('partial rotary: rotaryDim / 2 frequencies of theta^(-2i / rotaryDim); gemma3 sliding layers use the local base', () => {
    const partial = ropeInverseFrequencies({ ...base, rotaryDim: 6 });
    expect(partial.length).toBe(3);
    expect(partial[1]).toBeCloseTo(1 / 10000 ** (2 / 6), 7);
    const gemma3: DecoderSpec = {
      ...base,
      ropeTheta: 1e6,
      localRopeTheta: 10000,
      ropeScaling: { ropeType: 'linear', factor: 8 },
    };
    expect([...ropeInverseFrequencies(gemma3, { layerType: 'sliding_attention' })]).toEqual(plain);
    expect(ropeInverseFrequencies(gemma3)[1]).toBeCloseTo(1 / 1e6 ** (2 / 8) / 8, 9);
    expect(ropeAttentionFactor(gemma3, 'sliding_attention')).toBe(1);
  });
});

describe('stringifyJson', () => {
  it('matches JSON.stringify(…, 2), sorts keys on request and keeps OrderedObject order', () => {
    const value = { b: [1, { d: null, c: 'x' }], a: {}, e: [] };
    expect(stringifyJson(value)).toBe(`${JSON.stringify(value, null, 2)}\n`);
    expect(stringifyJson(value, { sortKeys: true })).toBe(
      '{\n  "a": {},\n  "b": [\n    1,\n    {\n      "c": "x",\n      "d": null\n    }\n  ],\n  "e": []\n}\n',
    );
    expect(
      stringifyJson(
        new OrderedObject([
          ['10', 1],
          ['2', 2],
          ['a', 3],
        ]),
      ),
    ).toBe('{\n  "10": 1,\n  "2": 2,\n  "a": 3\n}\n');
  });
});

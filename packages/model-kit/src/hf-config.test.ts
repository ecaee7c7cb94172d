import { describe, expect, it } from 'vitest';
import { InvalidModelConfigError } from './errors.js';
import { parseHfConfig, ropeInverseFrequencies } from './hf-config.js';
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
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: null,
      tieWordEmbeddings: false,
      qkvBias: false,
      outputBias: false,
      mlpBias: false,
      slidingWindow: null,
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
      { ...llama2, model_type: 'qwen2', use_sliding_window: true },
      { ...llama2, rope_scaling: { rope_type: 'dynamic', factor: 2 } },
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

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BackendV1 } from '@gen/backend';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJsBackend } from './index.js';
import { writeModelDir } from '@gen/model-kit';
import { referenceForward } from './testing/reference-decoder.js';
import { readStoredModel, writeTinyModelDir, type TinyModel, type TinyModelOptions } from './testing/tiny-model-dir.js';

// The reference is an independent float64 decoder that shares nothing with the implementation (see
// testing/reference-decoder.ts).

let root: string;
let counter = 0;
let worstError = 0;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'gen-backend-js-oracle-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  console.info(`backend-js vs float64 reference: max abs logit error ${worstError.toExponential(2)}`);
});

async function tinyModel(options: TinyModelOptions): Promise<TinyModel> {
  return writeTinyModelDir(path.join(root, `m${counter++}`), options);
}

function maxAbsDiff(actual: Float32Array, expected: readonly number[][]): number {
  const flat = expected.flat();
  expect(actual.length).toBe(flat.length);
  let worst = 0;
  for (let i = 0; i < flat.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - flat[i]!));
  return worst;
}

function seededTokens(n: number, vocab: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729 + ((i * i) % 13)) % vocab);
}

describe('hand-computed one-layer model', () => {
  // hidden 2, one head of size 2, intermediate 1, vocab 3; identity projections; eps 1e-12.
  // embed: t0 = [1, 0], t1 = [0, 1], t2 = [1, 1]; norms all ones; gate = [1, 0], up = [0, 1], down = [1, -1]ᵀ;
  // lm_head rows [1, 0], [0, 1], [1, -1].
  const options: TinyModelOptions = {
    vocabSize: 3,
    hiddenSize: 2,
    intermediateSize: 1,
    numLayers: 1,
    numAttentionHeads: 1,
    numKeyValueHeads: 1,
    rmsNormEps: 1e-12,
    ropeTheta: 10000,
    tensors: {
      'model.embed_tokens.weight': { shape: [3, 2], values: [1, 0, 0, 1, 1, 1] },
      'model.layers.0.input_layernorm.weight': { shape: [2], values: [1, 1] },
      'model.layers.0.self_attn.q_proj.weight': { shape: [2, 2], values: [1, 0, 0, 1] },
      'model.layers.0.self_attn.k_proj.weight': { shape: [2, 2], values: [1, 0, 0, 1] },
      'model.layers.0.self_attn.v_proj.weight': { shape: [2, 2], values: [1, 0, 0, 1] },
      'model.layers.0.self_attn.o_proj.weight': { shape: [2, 2], values: [1, 0, 0, 1] },
      'model.layers.0.post_attention_layernorm.weight': { shape: [2], values: [1, 1] },
      'model.layers.0.mlp.gate_proj.weight': { shape: [1, 2], values: [1, 0] },
      'model.layers.0.mlp.up_proj.weight': { shape: [1, 2], values: [0, 1] },
      'model.layers.0.mlp.down_proj.weight': { shape: [2, 1], values: [1, -1] },
      'model.norm.weight': { shape: [2], values: [1, 1] },
      'lm_head.weight': { shape: [3, 2], values: [1, 0, 0, 1, 1, -1] },
    },
  };

  it('matches the values derived by hand', async () => {
    const model = await tinyModel(options);
    const backend = await createJsBackend({ modelDir: model.dir });
    try {
      // Token 0 alone: x = [1, 0]; norm -> [√2, 0]; attention over itself returns v = [√2, 0]; x = [1 + √2, 0];
      // MLP: up = 0 so silu(gate) * up = 0; final norm of [1 + √2, 0] is [√2, 0]; logits = [√2, 0, √2].
      const first = await backend.doForward({ sequences: [{ id: 'a', tokens: [0] }] });
      expect([...first.sequences[0]!.logits].map((v) => Number(v.toFixed(6)))).toEqual([1.414214, 0, 1.414214]);

      // Token 1 at position 1: norm -> [0, √2]; q = k = [0, √2] rotated by angle 1 (inv_freq = 1 for head_dim 2):
      // √2 (-sin 1, cos 1). k0 = [√2, 0], v0 = [√2, 0], v1 = [0, √2]. Scores / √2: s0 = -√2 sin 1, s1 = √2;
      // w0 = e^s0 / (e^s0 + e^s1) = 0.0688665; attention = [√2 w0, √2 (1 - w0)]; x = [a, b] = [0.0973919, 2.3168217];
      // MLP with n = x / rms(x): silu(n0) * n1 = 0.0432086; x = [a + 0.0432086, b - 0.0432086];
      // final norm -> [0.0872884, 1.4115172]; logits = [y0, y1, y0 - y1].
      const second = await backend.doForward({ sequences: [{ id: 'a', tokens: [1] }] });
      const logits = [...second.sequences[0]!.logits];
      const expected = [0.0872884, 1.4115172, -1.3242288];
      for (let i = 0; i < 3; i++) expect(Math.abs(logits[i]! - expected[i]!)).toBeLessThan(1e-6);
    } finally {
      await backend.doDispose();
    }
  });

  it('agrees with the float64 reference on the same model', async () => {
    const model = await tinyModel(options);
    expect(referenceForward(model, [0, 1])[1]!.map((v) => Number(v.toFixed(6)))).toEqual([
      0.087288, 1.411517, -1.324229,
    ]);
  });
});

const cases: { name: string; options: TinyModelOptions; length: number }[] = [
  { name: 'llama, GQA 4:2, untied', options: { seed: 11 }, length: 24 },
  {
    name: 'llama 3.1 rope scaling, attention and o_proj biases, head_dim 16 != hidden/heads',
    options: {
      seed: 12,
      headDim: 16,
      attentionBias: true,
      ropeScaling: {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 64,
      },
      ropeTheta: 500000,
    },
    length: 30,
  },
  { name: 'mistral with sliding window 5', options: { modelType: 'mistral', slidingWindow: 5, seed: 13 }, length: 20 },
  {
    name: 'qwen2: q/k/v biases, tied embeddings, sliding window 7 on every layer',
    options: { modelType: 'qwen2', slidingWindow: 7, seed: 14, numKeyValueHeads: 1 },
    length: 20,
  },
  { name: 'llama stored as BF16, sharded', options: { seed: 15, dtype: 'BF16', sharded: true }, length: 16 },
  { name: 'qwen2 stored as F16', options: { modelType: 'qwen2', seed: 16, dtype: 'F16' }, length: 16 },
  {
    name: 'llama with linear rope scaling',
    options: { seed: 17, ropeScaling: { type: 'linear', factor: 4 } },
    length: 12,
  },
  {
    name: 'llama with yarn rope scaling (attention factor on cos / sin)',
    options: { seed: 18, ropeScaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 16 } },
    length: 24,
  },
  {
    name: 'llama with dynamic NTK scaling past max_position_embeddings (16, served to 32)',
    options: { seed: 19, ropeScaling: { rope_type: 'dynamic', factor: 2 }, maxPositions: 16 },
    length: 28,
  },
  {
    name: 'qwen3: per-head q/k RMSNorm, head_dim 16 != hidden/heads, no biases',
    options: { modelType: 'qwen3', seed: 20, headDim: 16 },
    length: 20,
  },
  {
    name: 'qwen3 with a sliding window on the layers past max_window_layers',
    options: { modelType: 'qwen3', seed: 21, slidingWindow: 6, config: { max_window_layers: 1 } },
    length: 20,
  },
  {
    name: 'gemma2: embedding scale, (1 + w) sandwich norms, GeGLU, attention and final soft-capping, alternating windows',
    options: {
      modelType: 'gemma2',
      seed: 22,
      numLayers: 3,
      slidingWindow: 5,
      config: { query_pre_attn_scalar: 12, attn_logit_softcapping: 1.5, final_logit_softcapping: 2.5 },
    },
    length: 20,
  },
  {
    name: 'gemma3_text: q/k norms, one full layer in 3, local rope base for sliding layers, linear-scaled global rope',
    options: {
      modelType: 'gemma3_text',
      seed: 23,
      numLayers: 3,
      slidingWindow: 5,
      ropeTheta: 1000000,
      ropeScaling: { rope_type: 'linear', factor: 2 },
      config: { sliding_window_pattern: 3, rope_local_base_freq: 100, query_pre_attn_scalar: 8 },
    },
    length: 20,
  },
  {
    name: 'phi3: packed qkv / gate_up, partial rotary 0.5, longrope crossing original_max_position_embeddings',
    options: {
      modelType: 'phi3',
      seed: 24,
      maxPositions: 64,
      config: {
        partial_rotary_factor: 0.5,
        original_max_position_embeddings: 10,
        rope_scaling: { type: 'longrope', short_factor: [1.0, 1.25], long_factor: [3.0, 7.5] },
      },
    },
    length: 24,
  },
  {
    name: 'phi3 with a sliding window on every layer',
    options: { modelType: 'phi3', seed: 25, slidingWindow: 6 },
    length: 16,
  },
];

describe('backend-js against the float64 reference', () => {
  for (const { name, options, length } of cases) {
    it(`${name}: prompt logits, chunked prefill and decode within 1e-5`, async () => {
      const model = await tinyModel(options);
      const backend: BackendV1 = await createJsBackend({ modelDir: model.dir });
      try {
        const vocab = backend.model.vocabSize;
        const tokens = seededTokens(length, vocab, counter);
        const expected = referenceForward(model, tokens);
        const split = Math.floor(length / 2);
        // The forwards below, for the rotary embeddings that depend on the sequence length (longrope, dynamic).
        const chunks = [
          ...Array.from({ length: Math.ceil(split / 5) }, (_, i) => Math.min(5, split - 5 * i)),
          ...Array.from({ length: length - split }, () => 1),
        ];
        const expectedChunked = referenceForward(model, tokens, { chunks });
        // Whole prompt with prompt logits.
        const full = await backend.doForward({ sequences: [{ id: 'full', tokens, wantPromptLogits: true }] });
        const fullError = maxAbsDiff(full.sequences[0]!.promptLogits!, expected);
        // Chunks of 5, then token by token.
        const chunked: number[][] = [];
        for (let i = 0; i < split; i += 5) {
          const chunk = tokens.slice(i, Math.min(i + 5, split));
          const r = await backend.doForward({ sequences: [{ id: 'chunked', tokens: chunk, wantPromptLogits: true }] });
          for (let j = 0; j < chunk.length; j++)
            chunked.push([...r.sequences[0]!.promptLogits!.subarray(j * vocab, (j + 1) * vocab)]);
        }
        for (let i = split; i < length; i++) {
          const r = await backend.doForward({ sequences: [{ id: 'chunked', tokens: [tokens[i]!] }] });
          chunked.push([...r.sequences[0]!.logits]);
        }
        const chunkedError = maxAbsDiff(Float32Array.from(chunked.flat()), expectedChunked);
        const error = Math.max(fullError, chunkedError);
        worstError = Math.max(worstError, error);
        expect(error).toBeLessThan(1e-5);
        // The comparison is not vacuous: logits vary across positions by far more than the tolerance.
        const spread = Math.max(...expected.map((row) => Math.abs(row[0]! - expected[0]![0]!)));
        expect(spread).toBeGreaterThan(1e-2);
      } finally {
        await backend.doDispose();
      }
    });
  }

  for (const preset of ['tiny', 'tiny-qwen2'] as const) {
    it(`a directory written by @gen/model-kit (${preset}) matches the reference within 1e-5 relative`, async () => {
      const { dir } = await writeModelDir({
        preset,
        seed: 7,
        outDir: path.join(root, `kit-${preset}`),
        formats: ['safetensors'],
      });
      const model = await readStoredModel(dir);
      const backend = await createJsBackend({ modelDir: dir });
      try {
        const tokens = seededTokens(20, backend.model.vocabSize, 9);
        const result = await backend.doForward({ sequences: [{ id: 'kit', tokens, wantPromptLogits: true }] });
        const expected = referenceForward(model, tokens);
        const error = maxAbsDiff(result.sequences[0]!.promptLogits!, expected);
        worstError = Math.max(worstError, error);
        // Weights are model-kit's choice, so the bound scales with the logits (1e-5 absolute at magnitude 1).
        const magnitude = Math.max(1, ...expected.flat().map(Math.abs));
        expect(error).toBeLessThan(1e-5 * magnitude);
        const spread = Math.max(...expected.flat()) - Math.min(...expected.flat());
        expect(spread, 'logits are not vanishingly small').toBeGreaterThan(0.1);
      } finally {
        await backend.doDispose();
      }
    });
  }

  it('the sliding window changes the result (so the window test above can fail)', async () => {
    const model = await tinyModel({ modelType: 'mistral', slidingWindow: 5, seed: 13 });
    const tokens = seededTokens(20, 97, 3);
    const windowed = referenceForward(model, tokens);
    const full = referenceForward({ ...model, config: { ...model.config, sliding_window: null } }, tokens);
    expect(Math.abs(windowed[19]![0]! - full[19]![0]!)).toBeGreaterThan(1e-3);
    expect(Math.abs(windowed[3]![0]! - full[3]![0]!)).toBe(0);
  });

  it('llama3 rope scaling changes the result at positions past a few tokens', async () => {
    const scaled = await tinyModel(cases[1]!.options);
    const tokens = seededTokens(30, 97, 5);
    const plain = referenceForward({ ...scaled, config: { ...scaled.config, rope_scaling: undefined } }, tokens);
    const withScaling = referenceForward(scaled, tokens);
    expect(Math.abs(plain[29]![1]! - withScaling[29]![1]!)).toBeGreaterThan(1e-4);
  });
});

describe('the family features change the reference (so the comparisons above can fail)', () => {
  const byName = (prefix: string): TinyModelOptions => cases.find((c) => c.name.startsWith(prefix))!.options;
  const last = (rows: number[][]): number[] => rows[rows.length - 1]!;
  const differs = (a: number[], b: number[]): number => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));

  it('gemma2 soft-capping of attention scores and of logits', async () => {
    const model = await tinyModel(byName('gemma2'));
    const tokens = seededTokens(20, 97, 4);
    const capped = referenceForward(model, tokens);
    const withConfig = (patch: Record<string, unknown>): number[][] =>
      referenceForward({ ...model, config: { ...model.config, ...patch } }, tokens);
    expect(differs(last(capped), last(withConfig({ attn_logit_softcapping: null })))).toBeGreaterThan(1e-3);
    expect(differs(last(capped), last(withConfig({ final_logit_softcapping: null })))).toBeGreaterThan(1e-3);
    expect(Math.max(...capped.flat().map(Math.abs))).toBeLessThan(2.5);
  });

  it('gemma3 local rope base on sliding layers', async () => {
    const model = await tinyModel(byName('gemma3_text'));
    const tokens = seededTokens(20, 97, 4);
    const local = referenceForward(model, tokens);
    const global = referenceForward({ ...model, config: { ...model.config, rope_local_base_freq: 1000000 } }, tokens);
    expect(differs(last(local), last(global))).toBeGreaterThan(1e-3);
  });

  it('phi3 longrope: positions computed before the sequence crossed original_max_position_embeddings keep the short factors', async () => {
    const model = await tinyModel(byName('phi3: packed'));
    const tokens = seededTokens(24, 97, 4);
    const single = referenceForward(model, tokens);
    const crossing = referenceForward(model, tokens, { chunks: [8, 16] });
    expect(differs(last(single), last(crossing))).toBeGreaterThan(1e-3);
    // Within one regime the split does not matter.
    const short = referenceForward(model, tokens.slice(0, 10), { chunks: [4, 6] });
    expect(differs(last(short), last(referenceForward(model, tokens.slice(0, 10))))).toBeLessThan(1e-12);
  });

  it('dynamic NTK scaling past max_position_embeddings, per forward', async () => {
    const model = await tinyModel(byName('llama with dynamic'));
    const tokens = seededTokens(28, 97, 4);
    const plain = referenceForward({ ...model, config: { ...model.config, rope_scaling: undefined } }, tokens);
    expect(differs(last(referenceForward(model, tokens)), last(plain))).toBeGreaterThan(1e-3);
    // Within max_position_embeddings it is exactly the unscaled embedding.
    const short = tokens.slice(0, 16);
    expect(differs(last(referenceForward(model, short)), last(plain.slice(0, 16)))).toBeLessThan(1e-12);
    const backend = await createJsBackend({ modelDir: model.dir });
    try {
      expect(backend.model.maxPositions).toBe(32);
    } finally {
      await backend.doDispose();
    }
  });

  it('yarn scaling', async () => {
    const model = await tinyModel(byName('llama with yarn'));
    const tokens = seededTokens(24, 97, 4);
    const plain = referenceForward({ ...model, config: { ...model.config, rope_scaling: undefined } }, tokens);
    expect(differs(last(referenceForward(model, tokens)), last(plain))).toBeGreaterThan(1e-3);
  });
});

/**
 * The fused graph run by onnxruntime-node: float32 against the independent float64 forward pass (prefill, decode
 * through the shared KV buffer, batches of rows at different lengths, multi-token chunks), against the standard
 * graph, and the node layout it is meant to have.
 */
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidModelConfigError } from '../errors.js';
import { parseHfConfig } from '../hf-config.js';
import type { ModelConfig, PresetName } from '../model-config.js';
import { openSafetensorsCheckpoint } from '../safetensors.js';
import { loadFusedDecoder } from '../testing/fused-decoder.js';
import { maxAbsDiff } from '../testing/onnx-decoder.js';
import { loadReferenceModel, type ReferenceModel } from '../testing/reference-forward.js';
import { writeModelDir } from '../write-model-dir.js';
import { contribOpsets, decoderOpsetVersion } from './decoder-graph.js';
import { buildFusedDecoderGraph } from './fused-decoder-graph.js';
import { writeOnnxModel } from './write-onnx.js';

const tolerance = 1e-4;

/** Deterministic token ids below `limit`. */
const tokens = (count: number, salt: number, limit: number) =>
  Array.from({ length: count }, (_, i) => (i * 131 + salt * 977 + 7) % limit);

type Decoder = Awaited<ReturnType<typeof loadFusedDecoder>>;

interface Case {
  name: string;
  options: { preset?: PresetName; config?: Partial<ModelConfig>; dtype?: 'float16' | 'bfloat16' };
  rotary?: 'attention' | 'node';
  /** The graph takes position_ids (rotary outside GroupQueryAttention); default: with `rotary: 'node'`. */
  positions?: boolean;
}

const cases: Case[] = [
  { name: 'tiny (llama)', options: { preset: 'tiny' } },
  { name: 'tiny with RotaryEmbedding nodes and position_ids', options: { preset: 'tiny' }, rotary: 'node' },
  { name: 'tiny-qwen2 (q/k/v biases, tied embeddings)', options: { preset: 'tiny-qwen2' } },
  {
    name: 'llama with attention/MLP biases, head_dim != hidden/heads, 1 KV head, bfloat16',
    options: {
      preset: 'tiny',
      dtype: 'bfloat16',
      config: { hiddenSize: 48, headDim: 16, numKeyValueHeads: 1, attentionBias: true, mlpBias: true },
    },
  },
  {
    name: 'mistral with a sliding window of 5, float16',
    options: {
      dtype: 'float16',
      config: {
        architecture: 'mistral',
        hiddenSize: 64,
        intermediateSize: 96,
        numHiddenLayers: 2,
        numAttentionHeads: 4,
        numKeyValueHeads: 2,
        vocabSize: 512,
        maxPositionEmbeddings: 512,
        rmsNormEps: 1e-5,
        ropeTheta: 10000,
        tieWordEmbeddings: false,
        slidingWindow: 5,
        chatFormat: 'llama3',
      },
    },
  },
  { name: 'tiny-qwen3 (q/k norms before rotary in GroupQueryAttention)', options: { preset: 'tiny-qwen3' } },
  {
    name: 'tiny-gemma2 (scale, softcap and local_window_size of GroupQueryAttention, FastGelu, sandwich norms)',
    options: { preset: 'tiny-gemma2' },
  },
  {
    name: 'tiny-gemma3 (q/k norms, a cos/sin cache per layer type)',
    options: { preset: 'tiny-gemma3' },
  },
  {
    name: 'tiny-gemma3 with RotaryEmbedding nodes after the q/k norms',
    options: { preset: 'tiny-gemma3' },
    rotary: 'node',
  },
  {
    name: 'tiny-phi3 (partial rotary and longrope computed from position_ids outside GroupQueryAttention)',
    options: { preset: 'tiny-phi3' },
    positions: true,
  },
  {
    name: 'llama with yarn scaling (attention factor folded into the cos / sin caches)',
    options: {
      preset: 'tiny',
      config: { ropeScaling: { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 64 } },
    },
  },
];

/** Writes the model's safetensors, then its fused graph beside it (through writeModelDir, or the builder). */
async function fusedModel(c: Case): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mk-fused-'));
  if (c.rotary !== 'node') {
    await writeModelDir({ ...c.options, seed: 3, outDir: dir, onnxGraphStyle: 'fused' });
    return { dir, file: join(dir, 'onnx', 'model.onnx') };
  }
  await writeModelDir({ ...c.options, seed: 3, outDir: dir, formats: ['safetensors'] });
  const spec = parseHfConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')));
  const checkpoint = await openSafetensorsCheckpoint(dir);
  const file = join(dir, 'onnx', 'model.onnx');
  await writeOnnxModel({
    modelPath: file,
    graph: buildFusedDecoderGraph(spec, { read: (name) => checkpoint.readFloat32(name) }, { rotary: 'node' }),
    opsetVersion: decoderOpsetVersion,
    extraOpsets: contribOpsets,
    producerVersion: 'test',
  });
  return { dir, file };
}

async function open(dir: string, file: string): Promise<Decoder> {
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, number>;
  return loadFusedDecoder(file, {
    layers: config['num_hidden_layers']!,
    kvHeads: config['num_key_value_heads']!,
    headDim: config['head_dim'] ?? config['hidden_size']! / config['num_attention_heads']!,
  });
}

describe.each(cases)('fused graph: $name', (c) => {
  let decoder: Decoder;
  let reference: ReferenceModel;
  let vocab: number;
  beforeAll(async () => {
    const { dir, file } = await fusedModel(c);
    decoder = await open(dir, file);
    reference = loadReferenceModel(dir);
    vocab = reference.vocabSize;
    expect(decoder.hasPositions).toBe(c.positions ?? c.rotary === 'node');
  });

  it('prefill logits at every position equal the float64 reference', async () => {
    const ids = tokens(12, 1, vocab);
    const expected = reference.forward(ids);
    const buffers = decoder.allocate(1, 16);
    const result = await decoder.step(buffers, [{ tokens: ids, past: 0 }]);
    expect(result.kept).toBe(12);
    for (let p = 0; p < ids.length; p++) expect(maxAbsDiff(result.at(0, p), expected[p]!)).toBeLessThan(tolerance);
  });

  it('decodes token by token in the shared buffer, writing only the new slots', async () => {
    const ids = tokens(14, 2, vocab);
    const expected = reference.forward(ids);
    const capacity = 20;
    const buffers = decoder.allocate(1, capacity);
    // Sentinels in slots the steps must not touch: GroupQueryAttention writes in place, into the bound buffer.
    const key = buffers.tensors[0]!.data as Float32Array;
    const headDim = key.length / buffers.tensors[0]!.dims[1]! / capacity;
    key[(capacity - 1) * headDim] = 1234.5;
    const prefill = await decoder.step(buffers, [{ tokens: ids.slice(0, 6), past: 0 }], 1);
    expect(prefill.kept).toBe(1);
    expect(maxAbsDiff(prefill.last(0), expected[5]!)).toBeLessThan(tolerance);
    for (let p = 6; p < ids.length; p++) {
      const written = key[(p - 1) * headDim];
      const step = await decoder.step(buffers, [{ tokens: [ids[p]!], past: p }], 1);
      expect(maxAbsDiff(step.last(0), expected[p]!)).toBeLessThan(tolerance);
      expect(key[(p - 1) * headDim], 'earlier slots keep their values').toBe(written);
      expect(key[p * headDim], 'the new slot is written').not.toBe(0);
    }
    expect(key[(capacity - 1) * headDim]).toBe(1234.5);
  });

  it('batches prompts of different lengths (right-padded), then decode rows at different lengths', async () => {
    const prompts = [tokens(9, 3, vocab), tokens(4, 4, vocab), tokens(1, 5, vocab)];
    const continuations = [tokens(3, 6, vocab), tokens(3, 7, vocab), tokens(3, 8, vocab)];
    const full = prompts.map((p, i) => [...p, ...continuations[i]!]);
    const expected = full.map((f) => reference.forward(f));
    const buffers = decoder.allocate(3, 16);
    const first = await decoder.step(
      buffers,
      prompts.map((p) => ({ tokens: p, past: 0 })),
    );
    prompts.forEach((p, b) => expect(maxAbsDiff(first.last(b), expected[b]![p.length - 1]!)).toBeLessThan(tolerance));
    for (let k = 0; k < 3; k++) {
      const step = await decoder.step(
        buffers,
        prompts.map((p, b) => ({ tokens: [continuations[b]![k]!], past: p.length + k })),
        1,
      );
      prompts.forEach((p, b) => expect(maxAbsDiff(step.last(b), expected[b]![p.length + k]!)).toBeLessThan(tolerance));
    }
  });

  it('appends a chunk of several tokens to a non-empty cache (batch 1)', async () => {
    const ids = tokens(13, 9, vocab);
    const expected = reference.forward(ids);
    const buffers = decoder.allocate(1, 16);
    await decoder.step(buffers, [{ tokens: ids.slice(0, 5), past: 0 }], 1);
    const chunk = await decoder.step(buffers, [{ tokens: ids.slice(5, 12), past: 5 }]);
    for (let i = 0; i < 7; i++) expect(maxAbsDiff(chunk.at(0, i), expected[5 + i]!)).toBeLessThan(tolerance);
    const next = await decoder.step(buffers, [{ tokens: [ids[12]!], past: 12 }], 1);
    expect(maxAbsDiff(next.last(0), expected[12]!)).toBeLessThan(tolerance);
  });
});

describe('the fused graph of tiny', () => {
  it('matches the standard graph of the same weights', async () => {
    const fusedDir = await mkdtemp(join(tmpdir(), 'mk-fused-'));
    const standardDir = await mkdtemp(join(tmpdir(), 'mk-standard-'));
    await writeModelDir({ preset: 'tiny', seed: 4, outDir: fusedDir, formats: ['onnx'], onnxGraphStyle: 'fused' });
    await writeModelDir({
      preset: 'tiny',
      seed: 4,
      outDir: standardDir,
      formats: ['onnx'],
      onnxGraphStyle: 'standard',
    });
    const fused = await open(fusedDir, join(fusedDir, 'onnx', 'model.onnx'));
    const standard = await ort.InferenceSession.create(join(standardDir, 'onnx', 'model.onnx'));
    const ids = tokens(10, 10, 512);
    const int64 = (values: number[]) =>
      new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), [1, values.length]);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64(ids),
      attention_mask: int64(ids.map(() => 1)),
      position_ids: int64(ids.map((_, i) => i)),
    };
    for (let i = 0; i < 2; i++) {
      for (const kind of ['key', 'value']) {
        feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, 2, 0, 16]);
      }
    }
    const expected = (await standard.run(feeds))['logits']!.data as Float32Array;
    const actual = await fused.step(fused.allocate(1, 10), [{ tokens: ids, past: 0 }]);
    expect(maxAbsDiff(actual.logits, expected)).toBeLessThan(tolerance);
  });

  it('fp16 stores float16 weights and computes in float32: equal to the reference of those weights', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mk-fused-fp16-'));
    // float16 safetensors: the weights are float16 values, which the fp16 file stores exactly.
    await writeModelDir({
      preset: 'tiny',
      seed: 6,
      dtype: 'float16',
      outDir: dir,
      onnxGraphStyle: 'fused',
      onnxVariants: ['fp32', 'fp16'],
    });
    const fp32 = await stat(join(dir, 'onnx', 'model.onnx'));
    const fp16 = await stat(join(dir, 'onnx', 'model_fp16.onnx'));
    expect(fp16.size / fp32.size).toBeCloseTo(0.5, 1);
    const decoder = await open(dir, join(dir, 'onnx', 'model_fp16.onnx'));
    const ids = tokens(10, 11, 512);
    const expected = loadReferenceModel(dir).forward(ids);
    const result = await decoder.step(decoder.allocate(1, 10), [{ tokens: ids, past: 0 }]);
    for (let p = 0; p < ids.length; p++) expect(maxAbsDiff(result.at(0, p), expected[p]!)).toBeLessThan(tolerance);
  });

  it('refuses head sizes GroupQueryAttention cannot take, and rotates in RotaryEmbedding nodes below 16', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mk-fused-head-'));
    await expect(
      writeModelDir({ preset: 'tiny', seed: 1, outDir: dir, config: { headDim: 12 }, formats: ['onnx'] }),
    ).rejects.toSatisfy((error) => InvalidModelConfigError.isInstance(error) && error.field === 'head_dim');
    await writeModelDir({ preset: 'tiny', seed: 1, outDir: dir, config: { headDim: 8 } });
    const decoder = await open(dir, join(dir, 'onnx', 'model.onnx'));
    expect(decoder.hasPositions).toBe(true);
    const ids = tokens(9, 12, 512);
    const expected = loadReferenceModel(dir).forward(ids);
    const result = await decoder.step(decoder.allocate(1, 9), [{ tokens: ids, past: 0 }]);
    for (let p = 0; p < ids.length; p++) expect(maxAbsDiff(result.at(0, p), expected[p]!)).toBeLessThan(tolerance);
  });

  it('runs about ten nodes per layer, all fused operators', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mk-fused-'));
    await writeModelDir({ preset: 'tiny', seed: 1, outDir: dir, formats: ['safetensors'] });
    const spec = parseHfConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')));
    const weights = { read: () => Promise.resolve(new Float32Array(0)) };
    const fp32 = buildFusedDecoderGraph(spec, weights);
    const q4 = buildFusedDecoderGraph(spec, weights, { variant: 'q4' });
    const count = (nodes: readonly { opType: string }[]) => {
      const counts: Record<string, number> = {};
      for (const node of nodes) counts[node.opType] = (counts[node.opType] ?? 0) + 1;
      return counts;
    };
    // Per layer: 2 norms, qkv, attention, o, gate+up, Split, QuickGelu, Mul, down; then embedding, first norm,
    // logits_to_keep (Unsqueeze, Neg, Slice) and lm_head.
    expect(fp32.nodes.length).toBe(10 * spec.numLayers + 6);
    expect(count(fp32.nodes)).toEqual({
      Gather: 1,
      SimplifiedLayerNormalization: 1,
      SkipSimplifiedLayerNormalization: 2 * spec.numLayers,
      MatMul: 4 * spec.numLayers + 1,
      GroupQueryAttention: spec.numLayers,
      Split: spec.numLayers,
      QuickGelu: spec.numLayers,
      Mul: spec.numLayers,
      Unsqueeze: 1,
      Neg: 1,
      Slice: 1,
    });
    expect(count(q4.nodes)['MatMulNBits']).toBe(4 * spec.numLayers + 1);
    const attention = fp32.nodes.find((n) => n.opType === 'GroupQueryAttention')!;
    expect(attention.domain).toBe('com.microsoft');
    expect(attention.attributes).toMatchObject({
      num_heads: { value: spec.numHeads },
      kv_num_heads: { value: spec.numKvHeads },
      do_rotary: { value: 1 },
      rotary_interleaved: { value: 0 },
    });
    expect(fp32.initializers.find((t) => t.name === 'cos_cache')!.dims).toEqual([
      spec.maxPositionEmbeddings,
      spec.headDim / 2,
    ]);
  });
});

describe('fused graphs of the new families', () => {
  const specOf = async (preset: PresetName) => {
    const dir = await mkdtemp(join(tmpdir(), 'mk-fused-spec-'));
    await writeModelDir({ preset, seed: 1, outDir: dir, formats: ['safetensors'] });
    return { dir, spec: parseHfConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))) };
  };
  const noWeights = { read: () => Promise.resolve(new Float32Array(0)) };

  it("sets GroupQueryAttention's scale, softcap and per-layer local_window_size from gemma2's config", async () => {
    const { spec } = await specOf('tiny-gemma2');
    const graph = buildFusedDecoderGraph(spec, noWeights);
    const attention = graph.nodes.filter((n) => n.opType === 'GroupQueryAttention');
    expect(attention).toHaveLength(4);
    for (const [i, node] of attention.entries()) {
      expect(node.attributes).toMatchObject({
        scale: { value: spec.attentionScale },
        softcap: { value: spec.attnLogitSoftcapping },
        do_rotary: { value: 1 },
      });
      expect(node.attributes?.['local_window_size']?.value).toBe(i % 2 === 0 ? spec.slidingWindow : undefined);
    }
    expect(graph.nodes.filter((n) => n.opType === 'FastGelu')).toHaveLength(4);
    expect(graph.nodes.filter((n) => n.opType === 'Tanh')).toHaveLength(1); // the final softcap
  });

  it('gives gemma3 a cos/sin cache per layer type: the local base on sliding layers', async () => {
    const { spec } = await specOf('tiny-gemma3');
    const graph = buildFusedDecoderGraph(spec, noWeights);
    const caches = graph.nodes.filter((n) => n.opType === 'GroupQueryAttention').map((n) => n.inputs[7]);
    expect(caches).toEqual(['cos_cache_local', 'cos_cache_local', 'cos_cache']);
  });

  it('refuses rotary in GroupQueryAttention for phi3 (partial rotary of 12, longrope)', async () => {
    const { spec } = await specOf('tiny-phi3');
    expect(() => buildFusedDecoderGraph(spec, noWeights, { rotary: 'attention' })).toThrow(
      expect.objectContaining({ field: 'rotary' }),
    );
  });
});

describe.each([
  { name: 'tiny-phi3 (longrope past 32)', options: { preset: 'tiny-phi3' as const }, prefill: 28 },
  {
    name: 'llama with dynamic NTK past 16',
    options: {
      preset: 'tiny' as const,
      config: { maxPositionEmbeddings: 16, ropeScaling: { rope_type: 'dynamic', factor: 2.0 } },
    },
    prefill: 12,
  },
])('fused graph of $name: rotary frequencies that depend on each row length', ({ options, prefill }) => {
  let decoder: Decoder;
  let reference: ReferenceModel;
  let vocab: number;
  beforeAll(async () => {
    const { dir, file } = await fusedModel({ name: '', options });
    decoder = await open(dir, file);
    expect(decoder.hasPositions).toBe(true);
    reference = loadReferenceModel(dir);
    vocab = reference.vocabSize;
  });

  it('a 40-token prefill uses the scaled frequencies at every position', async () => {
    const ids = tokens(40, 16, vocab);
    const expected = reference.forward(ids);
    const result = await decoder.step(decoder.allocate(1, 40), [{ tokens: ids, past: 0 }]);
    for (let p = 0; p < ids.length; p++) expect(maxAbsDiff(result.at(0, p), expected[p]!)).toBeLessThan(tolerance);
  });

  it('decodes across the threshold, the cached keys keeping their rotation (reference replayed per step)', async () => {
    const ids = tokens(prefill + 12, 17, vocab);
    const replayed = reference.forward(ids, { chunks: [prefill, ...new Array<number>(12).fill(1)] });
    const buffers = decoder.allocate(1, 48);
    await decoder.step(buffers, [{ tokens: ids.slice(0, prefill), past: 0 }], 1);
    for (let p = prefill; p < ids.length; p++) {
      const step = await decoder.step(buffers, [{ tokens: [ids[p]!], past: p }], 1);
      expect(maxAbsDiff(step.last(0), replayed[p]!)).toBeLessThan(tolerance);
    }
  });

  it('picks the frequencies per row in a batch of a short and a long prompt (right-padded)', async () => {
    const prompts = [tokens(6, 18, vocab), tokens(40, 19, vocab)];
    const result = await decoder.step(
      decoder.allocate(2, 40),
      prompts.map((p) => ({ tokens: p, past: 0 })),
    );
    prompts.forEach((p, b) => {
      const expected = reference.forward(p);
      for (let s = 0; s < p.length; s++) expect(maxAbsDiff(result.at(b, s), expected[s]!)).toBeLessThan(tolerance);
    });
  });
});

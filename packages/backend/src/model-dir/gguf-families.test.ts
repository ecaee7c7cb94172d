import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GGML_TYPE, kv, writeGguf, type GgufValue } from '@gen/gguf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGgufModel } from './gguf-model.js';

// What a GGUF file's metadata means to llama.cpp (src/models/<arch>.cpp), read into the config backend-js runs.

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'gen-gguf-families-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const f32 = (name: string, shape: number[], values?: number[]) => ({
  name,
  shape,
  type: GGML_TYPE.F32,
  data: Float32Array.from(values ?? new Array<number>(shape.reduce((a, b) => a * b, 1)).fill(0)),
});

async function configOf(arch: string, keys: Record<string, GgufValue>, extraTensors: ReturnType<typeof f32>[] = []) {
  const metadata = new Map<string, GgufValue>([
    ['general.architecture', kv.string(arch)],
    [`${arch}.embedding_length`, kv.uint32(64)],
    [`${arch}.feed_forward_length`, kv.uint32(128)],
    [`${arch}.attention.head_count`, kv.uint32(4)],
    [`${arch}.attention.head_count_kv`, kv.uint32(2)],
    [`${arch}.attention.layer_norm_rms_epsilon`, kv.float32(1e-6)],
    ...Object.entries(keys).map(([key, value]) => [`${arch}.${key}`, value] as [string, GgufValue]),
  ]);
  const file = path.join(root, `${arch}-${Math.random().toString(36).slice(2)}.gguf`);
  await writeFile(file, writeGguf({ metadata, tensors: [f32('token_embd.weight', [64, 8]), ...extraTensors] }));
  return (await openGgufModel(file)).directory.config;
}

describe('GGUF metadata as llama.cpp reads it', () => {
  it('gemma2: defaults of gemma2.cpp (window 4096, pattern 2, caps 50 / 30, tied), 1/sqrt(head_dim)', async () => {
    const config = await configOf(
      'gemma2',
      { block_count: kv.uint32(4), 'attention.key_length': kv.uint32(32), 'attention.value_length': kv.uint32(32) },
      [f32('output.weight', [64, 8])],
    );
    expect(config.modelType).toBe('gemma2');
    expect(config.headDim).toBe(32);
    expect(config.attentionScale).toBe(32 ** -0.5);
    expect(config.attnLogitSoftcapping).toBe(50);
    expect(config.finalLogitSoftcapping).toBe(30);
    expect(config.slidingWindow).toBe(4096);
    expect(config.layerTypes).toEqual(['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention']);
    expect(config.tieWordEmbeddings).toBe(true);
    expect(config.normWeightOffset).toBe(0);
    expect(config.localRope).toBeNull();
  });

  it('gemma2 / gemma3 27B shapes: scale 1/sqrt(hidden / heads), not 1/sqrt(head_dim)', async () => {
    const keys = { 'attention.key_length': kv.uint32(32), 'attention.value_length': kv.uint32(32) };
    const gemma2 = await configOf('gemma2', { ...keys, block_count: kv.uint32(46) });
    expect(gemma2.attentionScale).toBe(16 ** -0.5);
    const gemma3 = await configOf('gemma3', { ...keys, block_count: kv.uint32(62) });
    expect(gemma3.attentionScale).toBe(16 ** -0.5);
  });

  it('gemma3: no sliding_window means full attention everywhere; pattern 6 by default; no attention soft-cap', async () => {
    const full = await configOf('gemma3', { block_count: kv.uint32(6), 'attention.key_length': kv.uint32(16) });
    expect(full.modelType).toBe('gemma3_text');
    expect(full.slidingWindow).toBeNull();
    expect(full.layerTypes.every((t) => t === 'full_attention')).toBe(true);
    expect(full.attnLogitSoftcapping).toBeNull();
    expect(full.finalLogitSoftcapping).toBeNull();
    expect(full.tieWordEmbeddings).toBe(true);
    const sliding = await configOf('gemma3', {
      block_count: kv.uint32(7),
      'attention.key_length': kv.uint32(16),
      'attention.sliding_window': kv.uint32(512),
      'rope.freq_base': kv.float32(1e6),
      final_logit_softcapping: kv.float32(30),
    });
    expect(sliding.slidingWindow).toBe(512);
    expect(sliding.layerTypes.map((t) => t[0])).toEqual(['s', 's', 's', 's', 's', 'f', 's']);
    expect(sliding.localRope).toEqual({ theta: 10000, scaling: null });
    expect(sliding.ropeTheta).toBe(1e6);
    expect(sliding.finalLogitSoftcapping).toBe(30);
  });

  it('qwen3: q/k/v biases without an output bias', async () => {
    const config = await configOf('qwen3', { block_count: kv.uint32(1), 'attention.key_length': kv.uint32(32) }, [
      f32('blk.0.attn_q.bias', [128]),
    ]);
    expect(config.headDim).toBe(32);
    expect(config.queryKeyNorm).toBe(true);
    expect(config.qkvBias).toBe(true);
    expect(config.outputBias).toBe(false);
  });

  it('phi3: sliding window ignored, rope.dimension_count as the rotary size, longrope from the factor tensors', async () => {
    const config = await configOf(
      'phi3',
      {
        block_count: kv.uint32(2),
        context_length: kv.uint32(1024),
        'rope.dimension_count': kv.uint32(12),
        'rope.scaling.original_context_length': kv.uint32(256),
        'rope.scaling.attn_factor': kv.float32(1.25),
        'attention.sliding_window': kv.uint32(2047),
      },
      [
        f32('rope_factors_long.weight', [6], [2, 3, 4, 5, 6, 7]),
        f32('rope_factors_short.weight', [6], [1, 1, 1, 1, 1, 2]),
      ],
    );
    expect(config.slidingWindow).toBeNull();
    expect(config.rotaryDim).toBe(12);
    expect(config.packedProjections).toBe(true);
    expect(config.ropeScaling).toEqual({
      type: 'longrope',
      longFactor: [2, 3, 4, 5, 6, 7],
      shortFactor: [1, 1, 1, 1, 1, 2],
      originalMaxPositions: 256,
      attentionFactor: 1.25,
    });
  });
});

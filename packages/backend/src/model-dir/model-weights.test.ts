import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelLoadError } from '../errors.js';
import { encodeSafetensors, float32Bytes, uint16Bytes, type RawTensor } from '../testing/encode-safetensors.js';
import { decoderTensorSpecs, loadDecoderWeights } from './decoder-weights.js';
import { parseModelConfig } from './model-config.js';
import { openModelWeights } from './model-weights.js';

let root: string;
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'gen-weights-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function modelDir(files: Record<string, Uint8Array | string>): Promise<string> {
  const dir = path.join(root, `model-${counter++}`);
  await mkdir(dir);
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
  return dir;
}

async function loadError(promise: Promise<unknown>): Promise<ModelLoadError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!ModelLoadError.isInstance(error)) throw new Error(`expected a ModelLoadError, got ${String(error)}`);
  return error;
}

const f32 = (name: string, values: number[], shape = [values.length]): RawTensor => ({
  name,
  dtype: 'F32',
  shape,
  bytes: float32Bytes(values),
});

function index(weightMap: Record<string, string>): string {
  return JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap });
}

describe('openModelWeights', () => {
  it('reads sharded weights through model.safetensors.index.json', async () => {
    const dir = await modelDir({
      'model-00001-of-00002.safetensors': encodeSafetensors([f32('a', [1, 2]), f32('b', [3])]),
      'model-00002-of-00002.safetensors': encodeSafetensors([
        { name: 'c', dtype: 'F16', shape: [2], bytes: uint16Bytes([0x3c00, 0x4400]) },
      ]),
      'model.safetensors.index.json': index({
        a: 'model-00001-of-00002.safetensors',
        b: 'model-00001-of-00002.safetensors',
        c: 'model-00002-of-00002.safetensors',
      }),
    });
    const weights = await openModelWeights(dir);
    try {
      expect(weights.files).toHaveLength(2);
      expect(weights.names().sort()).toEqual(['a', 'b', 'c']);
      expect(weights.has('c')).toBe(true);
      expect(weights.info('c')).toMatchObject({
        dtype: 'F16',
        file: path.join(dir, 'model-00002-of-00002.safetensors'),
      });
      expect([...(await weights.readFloat32('a'))]).toEqual([1, 2]);
      expect([...(await weights.readFloat32('c'))]).toEqual([1, 4]);
      const missing = await loadError(weights.readFloat32('zzz'));
      expect(missing.reason).toBe('missing-tensor');
      expect(missing.file).toBe(path.join(dir, 'model.safetensors.index.json'));
    } finally {
      await weights.close();
    }
  });

  it('prefers model.safetensors when both layouts exist', async () => {
    const dir = await modelDir({
      'model.safetensors': encodeSafetensors([f32('single', [1])]),
      'model.safetensors.index.json': index({ x: 'missing.safetensors' }),
    });
    const weights = await openModelWeights(dir);
    expect(weights.names()).toEqual(['single']);
    await weights.close();
  });

  it('reports a directory without safetensors weights', async () => {
    const dir = await modelDir({ 'pytorch_model.bin': 'x' });
    const error = await loadError(openModelWeights(dir));
    expect(error.reason).toBe('missing-file');
    expect(error.file).toBe(dir);
    expect(error.expected).toContain('model.safetensors.index.json');
  });

  it('reports a shard named by the index that does not exist', async () => {
    const dir = await modelDir({
      'model-00001-of-00002.safetensors': encodeSafetensors([f32('a', [1])]),
      'model.safetensors.index.json': index({
        a: 'model-00001-of-00002.safetensors',
        b: 'model-00002-of-00002.safetensors',
      }),
    });
    const error = await loadError(openModelWeights(dir));
    expect(error.reason).toBe('missing-file');
    expect(error.file).toBe(path.join(dir, 'model-00002-of-00002.safetensors'));
    expect(error.expected).toContain('model.safetensors.index.json');
  });

  it('reports a tensor the index puts in a shard that lacks it', async () => {
    const dir = await modelDir({
      'shard.safetensors': encodeSafetensors([f32('a', [1])]),
      'model.safetensors.index.json': index({ a: 'shard.safetensors', b: 'shard.safetensors' }),
    });
    const error = await loadError(openModelWeights(dir));
    expect(error.reason).toBe('missing-tensor');
    expect(error.file).toBe(path.join(dir, 'shard.safetensors'));
    expect(error.message).toContain('"b"');
  });

  it('rejects a malformed index and shard paths outside the directory', async () => {
    const bad = await modelDir({ 'model.safetensors.index.json': '{"weight_map": [1]}' });
    expect((await loadError(openModelWeights(bad))).reason).toBe('invalid-config');
    const notJson = await modelDir({ 'model.safetensors.index.json': '{' });
    expect((await loadError(openModelWeights(notJson))).reason).toBe('invalid-json');
    const escape = await modelDir({ 'model.safetensors.index.json': index({ a: '../x.safetensors' }) });
    expect((await loadError(openModelWeights(escape))).message).toContain('../x.safetensors');
  });
});

describe('loadDecoderWeights', () => {
  const config = (extra: Record<string, unknown>) =>
    parseModelConfig({
      model_type: 'qwen2',
      vocab_size: 5,
      hidden_size: 4,
      intermediate_size: 6,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      ...extra,
    });

  function tensorsFor(specs: ReturnType<typeof decoderTensorSpecs>): RawTensor[] {
    return specs.map((spec, i) => {
      const n = spec.shape.reduce((a, b) => a * b, 1);
      return f32(
        spec.name,
        Array.from({ length: n }, (_, j) => i + j / 100),
        [...spec.shape],
      );
    });
  }

  it('loads every Hugging Face tensor with biases and tied embeddings', async () => {
    const tied = config({ tie_word_embeddings: true });
    const specs = decoderTensorSpecs(tied);
    expect(specs.map((s) => s.name)).toEqual([
      'model.embed_tokens.weight',
      'model.layers.0.input_layernorm.weight',
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.0.self_attn.q_proj.bias',
      'model.layers.0.self_attn.k_proj.weight',
      'model.layers.0.self_attn.k_proj.bias',
      'model.layers.0.self_attn.v_proj.weight',
      'model.layers.0.self_attn.v_proj.bias',
      'model.layers.0.self_attn.o_proj.weight',
      'model.layers.0.post_attention_layernorm.weight',
      'model.layers.0.mlp.gate_proj.weight',
      'model.layers.0.mlp.up_proj.weight',
      'model.layers.0.mlp.down_proj.weight',
      'model.norm.weight',
    ]);
    expect(specs.find((s) => s.name.endsWith('k_proj.weight'))?.shape).toEqual([2, 4]);
    const dir = await modelDir({ 'model.safetensors': encodeSafetensors(tensorsFor(specs)) });
    const weights = await loadDecoderWeights(dir, tied);
    expect(weights.lmHead).toBe(weights.embedTokens);
    expect(weights.layers[0]!.queryProjection.bias).toHaveLength(4);
    expect(weights.layers[0]!.outputProjection.bias).toBeUndefined();
    expect(weights.layers[0]!.keyProjection).toMatchObject({ outFeatures: 2, inFeatures: 4 });
    expect(weights.finalNorm[0]).toBe(13);
  });

  it('reports a missing lm_head when embeddings are not tied', async () => {
    const untied = config({});
    const specs = decoderTensorSpecs(untied).filter((s) => s.name !== 'lm_head.weight');
    const dir = await modelDir({ 'model.safetensors': encodeSafetensors(tensorsFor(specs)) });
    const error = await loadError(loadDecoderWeights(dir, untied));
    expect(error.reason).toBe('missing-tensor');
    expect(error.message).toContain('lm_head.weight');
    expect(error.file).toBe(path.join(dir, 'model.safetensors'));
  });

  it('reports a tensor whose shape disagrees with config.json', async () => {
    const cfg = config({ tie_word_embeddings: true });
    const specs = decoderTensorSpecs(cfg).map((s) =>
      s.name === 'model.layers.0.mlp.up_proj.weight' ? { ...s, shape: [4, 6] } : s,
    );
    const dir = await modelDir({ 'model.safetensors': encodeSafetensors(tensorsFor(specs)) });
    const error = await loadError(loadDecoderWeights(dir, cfg));
    expect(error.reason).toBe('shape-mismatch');
    expect(error.message).toContain('model.layers.0.mlp.up_proj.weight');
    expect(error.expected).toContain('[6,4]');
  });
});

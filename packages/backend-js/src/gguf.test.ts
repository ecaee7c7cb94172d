import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ModelLoadError, UnsupportedModelError, openGgufModel, readModelConfig, type BackendV1 } from '@gen/backend';
import { GGML_TYPE, kv, writeGguf } from '@gen/gguf';
import {
  ggufWeightSource,
  writeGgufModel,
  writeModelDir,
  type GgufWeightType,
  type ModelConfig,
  type PresetName,
} from '@gen/model-kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJsBackend } from './index.js';

// backend-js on GGUF files (llama.cpp's format) written by @gen/model-kit. F32 files must give exactly the logits of
// the same model's Hugging Face directory (names, config and the q/k permutation undone); quantized files exactly the
// logits of a directory holding their dequantized weights (so the oracle runs what llama.cpp runs).

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'gen-backend-js-gguf-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const prompt = [1, 17, 42, 99, 5, 256, 7, 3];

async function logitsOf(
  modelDir: string,
): Promise<{ prompt: Float32Array; step: Float32Array; model: BackendV1['model'] }> {
  const backend = await createJsBackend({ modelDir, maxBatchSize: 2 });
  try {
    const first = await backend.doForward({ sequences: [{ id: 'a', tokens: prompt, wantPromptLogits: true }] });
    const second = await backend.doForward({ sequences: [{ id: 'a', tokens: [11] }] });
    return { prompt: first.sequences[0]!.promptLogits!, step: second.sequences[0]!.logits, model: backend.model };
  } finally {
    await backend.doDispose();
  }
}

// Presets with the overrides that make them expressible in llama.cpp (Gemma 2: query_pre_attn_scalar = head_dim).
const families: Array<[PresetName, Partial<ModelConfig>]> = [
  ['tiny', {}],
  ['tiny-qwen2', {}],
  ['tiny-qwen3', {}],
  ['tiny-gemma2', { queryPreAttnScalar: 16 }],
  ['tiny-gemma3', {}],
  ['tiny-phi3', {}],
];

describe.each(families)('backend-js on GGUF files of %s', (preset, config) => {
  it('F32: the logits of the Hugging Face directory, bit for bit; the same model description', async () => {
    const dir = await writeModelDir({
      preset,
      config,
      outDir: path.join(root, `${preset}-hf`),
      formats: ['safetensors'],
      seed: 3,
    });
    const gguf = await writeGgufModel({
      preset,
      config,
      outFile: path.join(root, `${preset}-f32.gguf`),
      type: 'f32',
      seed: 3,
    });
    const [fromDir, fromGguf] = await Promise.all([logitsOf(dir.dir), logitsOf(gguf.file)]);
    expect(fromGguf.prompt).toEqual(fromDir.prompt);
    expect(fromGguf.step).toEqual(fromDir.step);
    const { maxPositions: _a, generationDefaults: _b, details: _c, architecture: _d, ...same } = fromDir.model;
    expect(fromGguf.model).toMatchObject(same);
    // The config read back from the GGUF metadata is the config.json one, except: Gemma files hold the effective
    // norm weights (1 + w), so no offset is added; eps is float32; the end-of-generation ids are llama.cpp's set
    // (a superset); the file, class name, dtype and pad id are the GGUF's.
    const fromJson = await readModelConfig(dir.dir);
    const fromFile = (await openGgufModel(gguf.file)).directory.config;
    const {
      file: _e,
      architecture: _f,
      torchDtype: _g,
      eosTokenIds,
      padTokenId: _h,
      normWeightOffset,
      rmsNormEps,
      ...fields
    } = fromJson;
    expect(fromFile).toMatchObject(fields);
    expect(fromFile.rmsNormEps).toBe(Math.fround(rmsNormEps)); // stored as float32
    expect(fromFile.normWeightOffset).toBe(0);
    expect(normWeightOffset).toBe(preset.startsWith('tiny-gemma') ? 1 : 0);
    expect(fromFile.eosTokenIds).toEqual(expect.arrayContaining([...eosTokenIds]));
  });

  it.each(['f16', 'q8_0', 'q4_0'] satisfies GgufWeightType[])(
    '%s: the logits of a directory of its dequantized weights, bit for bit',
    async (type) => {
      const outFile = path.join(root, `${preset}-${type}.gguf`);
      const gguf = await writeGgufModel({ preset, config, outFile, type, seed: 3 });
      const dir = await writeModelDir({
        preset,
        config,
        outDir: path.join(root, `${preset}-${type}-dequantized`),
        formats: ['safetensors'],
        weights: await ggufWeightSource(gguf.file),
      });
      const [fromDir, fromGguf] = await Promise.all([logitsOf(dir.dir), logitsOf(gguf.file)]);
      expect(fromGguf.prompt).toEqual(fromDir.prompt);
      expect(fromGguf.step).toEqual(fromDir.step);
    },
  );
});

describe('backend-js on a Q4_K_M file (Q4_K, Q6_K; rows of 256 values)', () => {
  it('the logits of a directory of its dequantized weights, bit for bit', async () => {
    const config = { hiddenSize: 256, intermediateSize: 512, numHiddenLayers: 8, headDim: 64 };
    const gguf = await writeGgufModel({ preset: 'tiny', config, outFile: path.join(root, 'k.gguf'), type: 'q4_k_m' });
    expect(new Set(gguf.tensors.map((t) => t.type))).toEqual(new Set([GGML_TYPE.F32, GGML_TYPE.Q4_K, GGML_TYPE.Q6_K]));
    const dir = await writeModelDir({
      preset: 'tiny',
      config,
      outDir: path.join(root, 'k-dequantized'),
      formats: ['safetensors'],
      weights: await ggufWeightSource(gguf.file),
    });
    const [fromDir, fromGguf] = await Promise.all([logitsOf(dir.dir), logitsOf(gguf.file)]);
    expect(fromGguf.prompt).toEqual(fromDir.prompt);
    expect(fromGguf.step).toEqual(fromDir.step);
  });
});

describe('GGUF load errors', () => {
  it('missing file, not GGUF, unsupported architecture, missing tensor', async () => {
    await expect(createJsBackend({ modelDir: path.join(root, 'none.gguf') })).rejects.toSatisfy(
      (error) => ModelLoadError.isInstance(error) && error.reason === 'missing-file',
    );
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path.join(root, 'text.gguf'), 'hello');
    await expect(createJsBackend({ modelDir: path.join(root, 'text.gguf') })).rejects.toSatisfy(
      (error) => ModelLoadError.isInstance(error) && error.reason === 'invalid-header',
    );
    const tensor = { name: 'token_embd.weight', shape: [4, 8], type: GGML_TYPE.F32, data: new Float32Array(32) };
    await writeFile(
      path.join(root, 'falcon.gguf'),
      writeGguf({ metadata: new Map([['general.architecture', kv.string('falcon')]]), tensors: [tensor] }),
    );
    await expect(createJsBackend({ modelDir: path.join(root, 'falcon.gguf') })).rejects.toSatisfy(
      (error) => UnsupportedModelError.isInstance(error) && /general\.architecture/.test((error as Error).message),
    );
    const llama = new Map([
      ['general.architecture', kv.string('llama')],
      ['llama.embedding_length', kv.uint32(4)],
      ['llama.feed_forward_length', kv.uint32(8)],
      ['llama.block_count', kv.uint32(1)],
      ['llama.attention.head_count', kv.uint32(2)],
    ]);
    await writeFile(path.join(root, 'partial.gguf'), writeGguf({ metadata: llama, tensors: [tensor] }));
    await expect(createJsBackend({ modelDir: path.join(root, 'partial.gguf') })).rejects.toSatisfy(
      (error) => ModelLoadError.isInstance(error) && error.reason === 'missing-tensor',
    );
  });
});

import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  BackendError,
  BatchLimitError,
  ModelLoadError,
  PositionLimitError,
  UnsupportedModelError,
  type BackendV1,
} from '@gen/backend';
import { writeModelDir } from '@gen/model-kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnnxBackend } from './index.js';
import { encodeIdentityModel } from './testing/minimal-onnx.js';

let root: string;
let base: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'gen-backend-onnx-errors-'));
  base = (
    await writeModelDir({
      preset: 'tiny',
      seed: 3,
      outDir: path.join(root, 'base'),
      formats: ['onnx'],
      onnxGraphStyle: 'standard',
    })
  ).dir;
});
afterAll(() => rm(root, { recursive: true, force: true }));

let copies = 0;
/** A copy of the tiny ONNX model directory to break. */
async function copy(): Promise<string> {
  const dir = path.join(root, `copy-${copies++}`);
  await cp(base, dir, { recursive: true });
  return dir;
}

async function loadError(promise: Promise<BackendV1>): Promise<Error> {
  try {
    const backend = await promise;
    await backend.doDispose();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected createOnnxBackend to reject');
}

async function editConfig(dir: string, edit: (config: Record<string, unknown>) => void): Promise<void> {
  const file = path.join(dir, 'config.json');
  const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  edit(config);
  await writeFile(file, JSON.stringify(config));
}

describe('loading errors name the file and what was expected', () => {
  it('a dtype whose file is absent lists the variants that exist', async () => {
    const error = await loadError(createOnnxBackend({ modelDir: base, dtype: 'q4' }));
    expect(ModelLoadError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ reason: 'missing-file', file: path.join(base, 'onnx', 'model_q4.onnx') });
    expect(error.message).toContain('no q4 ONNX model in the directory');
    expect(error.message).toContain('available: onnx/model.onnx (dtype fp32)');
  });

  it('a directory without any .onnx file says so; so does a missing explicit modelFile', async () => {
    const dir = await copy();
    await rm(path.join(dir, 'onnx'), { recursive: true });
    const error = await loadError(createOnnxBackend({ modelDir: dir }));
    expect(error).toMatchObject({ reason: 'missing-file' });
    expect(error.message).toContain('the directory has no .onnx file');
    const explicit = await loadError(
      createOnnxBackend({ modelDir: base, modelFile: 'onnx/decoder_model_merged.onnx' }),
    );
    expect(explicit).toMatchObject({
      reason: 'missing-file',
      file: path.join(base, 'onnx', 'decoder_model_merged.onnx'),
    });
    expect(explicit.message).toContain('available: onnx/model.onnx');
  });

  it('a missing config.json is a ModelLoadError from @gen/backend', async () => {
    const dir = await copy();
    await rm(path.join(dir, 'config.json'));
    const error = await loadError(createOnnxBackend({ modelDir: dir }));
    expect(error).toMatchObject({ reason: 'missing-file', file: path.join(dir, 'config.json') });
  });

  it('a corrupt or truncated .onnx is a ModelLoadError, not a native crash', async () => {
    const dir = await copy();
    const file = path.join(dir, 'onnx', 'model.onnx');
    await writeFile(file, 'this is not a protobuf');
    const corrupt = await loadError(createOnnxBackend({ modelDir: dir }));
    expect(ModelLoadError.isInstance(corrupt)).toBe(true);
    expect(corrupt).toMatchObject({ reason: 'invalid-header', file });
    expect(corrupt.message).toMatch(/onnxruntime could not load it: .*Protobuf parsing failed/);
    expect(corrupt.message).toContain('expected a valid ONNX model');

    await cp(path.join(base, 'onnx', 'model.onnx'), file);
    await truncate(file, 100_000);
    const truncated = await loadError(createOnnxBackend({ modelDir: dir }));
    expect(ModelLoadError.isInstance(truncated)).toBe(true);
    expect(truncated).toMatchObject({ file });
  });

  it('missing external data (model.onnx_data) is a missing-file ModelLoadError', async () => {
    const dir = path.join(root, 'external');
    await writeModelDir({ preset: 'tiny', seed: 3, outDir: dir, formats: ['onnx'], onnxExternalData: 'always' });
    const backend = await createOnnxBackend({ modelDir: dir });
    expect(backend.model.details?.['fileBytes']).toBeGreaterThan(500_000); // graph + model.onnx_data
    await backend.doDispose();
    await rm(path.join(dir, 'onnx', 'model.onnx_data'));
    const error = await loadError(createOnnxBackend({ modelDir: dir }));
    expect(ModelLoadError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ reason: 'missing-file', file: path.join(dir, 'onnx', 'model.onnx') });
    expect(error.message).toContain('external data');
  });

  it('a graph that is not a decoder with a KV cache is an UnsupportedModelError listing its inputs', async () => {
    const dir = await copy();
    const ids = { name: 'input_ids', type: 'int64', dims: ['batch', 'sequence'] } as const;
    await writeFile(
      path.join(dir, 'onnx', 'model.onnx'),
      encodeIdentityModel([ids], [{ name: 'logits', type: 'int64', dims: ['batch', 'sequence'], from: 'input_ids' }]),
    );
    const noCache = await loadError(createOnnxBackend({ modelDir: dir }));
    expect(UnsupportedModelError.isInstance(noCache)).toBe(true);
    expect(noCache.message).toContain(path.join(dir, 'onnx', 'model.onnx'));
    expect(noCache.message).toContain('no past_key_values inputs');
    expect(noCache.message).toContain('inputs ["input_ids"]');

    await writeFile(
      path.join(dir, 'onnx', 'model.onnx'),
      encodeIdentityModel(
        [{ name: 'pixel_values', type: 'float32', dims: ['batch', 3, 224, 224] }],
        [{ name: 'logits', type: 'float32', dims: ['batch', 3, 224, 224], from: 'pixel_values' }],
      ),
    );
    const vision = await loadError(createOnnxBackend({ modelDir: dir }));
    expect(UnsupportedModelError.isInstance(vision)).toBe(true);
    expect(vision.message).toContain('no input_ids input');
  });

  it('cache shapes or layers that disagree with config.json are shape-mismatch errors', async () => {
    const heads = await copy();
    await editConfig(heads, (c) => {
      c['num_key_value_heads'] = 1;
    });
    const headError = await loadError(createOnnxBackend({ modelDir: heads }));
    expect(headError).toMatchObject({ reason: 'shape-mismatch', file: path.join(heads, 'onnx', 'model.onnx') });
    expect(headError.message).toContain('past_key_values.0.key has shape [batch_size, 2, past_sequence_length, 16]');
    expect(headError.message).toContain('expected past_key_values.0.key of shape [batch, 1, sequence, 16]');

    const layers = await copy();
    await editConfig(layers, (c) => {
      c['num_hidden_layers'] = 3;
    });
    const layerError = await loadError(createOnnxBackend({ modelDir: layers }));
    expect(layerError).toMatchObject({ reason: 'shape-mismatch' });
    expect(layerError.message).toContain('the graph has KV-cache inputs for 2 layers');

    const vocab = await copy();
    await editConfig(vocab, (c) => {
      c['vocab_size'] = 1000;
    });
    const vocabError = await loadError(createOnnxBackend({ modelDir: vocab }));
    expect(vocabError).toMatchObject({ reason: 'shape-mismatch' });
    expect(vocabError.message).toContain("the graph's logits have 512 entries per position");
  });

  it('rejects bad settings with RangeError', async () => {
    await expect(createOnnxBackend({ modelDir: base, maxBatchSize: 0 })).rejects.toThrow(RangeError);
    await expect(createOnnxBackend({ modelDir: base, intraOpThreads: 1.5 })).rejects.toThrow(RangeError);
    await expect(createOnnxBackend({ modelDir: base, dtype: 'int3' as never })).rejects.toThrow(RangeError);
  });
});

describe('execution providers', () => {
  it('skips a provider whose library is not installed (cuda here) with a warning, and runs on the next', async () => {
    const backend = await createOnnxBackend({ modelDir: base, executionProviders: ['cuda', 'cpu'] });
    try {
      expect(backend.capabilities.device).toBe('cpu');
      expect(backend.capabilities.details?.['executionProvider']).toBe('cpu');
      expect(backend.warnings).toContainEqual(
        expect.objectContaining({ type: 'unsupported-setting', setting: 'executionProviders' }),
      );
      const result = await backend.doForward({ sequences: [{ id: 'a', tokens: [1, 2, 3] }] });
      expect(result.logits.length).toBe(512);
    } finally {
      await backend.doDispose();
    }
  });

  it('fails with a BackendError when no listed provider can be loaded', async () => {
    const error = await loadError(createOnnxBackend({ modelDir: base, executionProviders: ['cuda'] }));
    expect(BackendError.isInstance(error)).toBe(true);
    expect(error.message).toContain('no execution provider could be loaded');
    expect(error.message).toContain('cuda is not available');
  });
});

describe('limits', () => {
  it('BatchLimitError for a batch over maxBatchSize, PositionLimitError past maxPositions', async () => {
    const backend = await createOnnxBackend({ modelDir: base, maxBatchSize: 2, maxPositions: 8 });
    try {
      expect(backend.model.maxPositions).toBe(8);
      const sequences = ['a', 'b', 'c'].map((id) => ({ id, tokens: [1] }));
      await expect(backend.doForward({ sequences })).rejects.toSatisfy(BatchLimitError.isInstance);
      await backend.doForward({ sequences: [{ id: 'a', tokens: [1, 2, 3, 4, 5, 6, 7] }] });
      const error = await backend.doForward({ sequences: [{ id: 'a', tokens: [8, 9] }] }).catch((e: unknown) => e);
      expect(PositionLimitError.isInstance(error)).toBe(true);
      expect(error).toMatchObject({ sequenceId: 'a', requestedPositions: 9, maxPositions: 8 });
      expect(backend.stats()).toMatchObject({ sequences: 1, cachedTokens: 7 });
    } finally {
      await backend.doDispose();
    }
  });
});

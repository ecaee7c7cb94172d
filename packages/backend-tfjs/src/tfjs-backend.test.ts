import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ModelLoadError, type BackendForwardResultV1 } from '@gen/backend';
import { writeModelDir } from '@gen/model-kit';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTfjsBackend } from './index.js';

let root: string;
let count = 0;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'gen-backend-tfjs-backend-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

async function tinyDir(options: { dtype?: 'float32' | 'bfloat16'; maxShardSize?: number } = {}): Promise<string> {
  const outDir = path.join(root, `m${count++}`);
  return (await writeModelDir({ preset: 'tiny', seed: 21, outDir, formats: ['safetensors'], ...options })).dir;
}

async function loadError(modelDir: string): Promise<ModelLoadError> {
  const error = await createTfjsBackend({ modelDir, tfjsBackend: 'wasm' }).catch((e: unknown) => e);
  expect(ModelLoadError.isInstance(error), String(error)).toBe(true);
  // Whatever was uploaded before the error is disposed.
  expect(tf.engine().state.numTensors).toBe(0);
  return error as ModelLoadError;
}

describe('createTfjsBackend', () => {
  it('wasm and cpu backends coexist in one process: interleaved calls give the same numbers', async () => {
    const modelDir = await tinyDir();
    const wasm = await createTfjsBackend({ modelDir, tfjsBackend: 'wasm' });
    const cpu = await createTfjsBackend({ modelDir, tfjsBackend: 'cpu' });
    try {
      expect(wasm.capabilities.device).toBe('wasm');
      expect(wasm.capabilities.details).toMatchObject({
        tfjsBackend: 'wasm',
        simd: true,
        threads: 1,
        kvCache: 'in-place',
      });
      expect(cpu.capabilities.details).toMatchObject({ tfjsBackend: 'cpu', kvCache: 'in-place' });
      expect(wasm.model.details).toMatchObject({ tfjsBackend: 'wasm', device: 'wasm' });
      const calls = [wasm, cpu, wasm, cpu].map((b, i) =>
        b.doForward({ sequences: [{ id: 's', tokens: i < 2 ? [5, 6, 7, 8] : [9] }] }),
      );
      const [a, b, c, d] = await Promise.all(calls);
      const pairs: [BackendForwardResultV1, BackendForwardResultV1][] = [
        [a!, b!],
        [c!, d!],
      ];
      for (const [x, y] of pairs) {
        let worst = 0;
        for (let i = 0; i < x.logits.length; i++) worst = Math.max(worst, Math.abs(x.logits[i]! - y.logits[i]!));
        expect(worst).toBeLessThan(1e-4);
      }
    } finally {
      await wasm.doDispose();
      await cpu.doDispose();
    }
    expect(tf.engine().state.numTensors).toBe(0);
  });

  it('clamps maxPositions with a warning and rejects bad settings', async () => {
    const modelDir = await tinyDir();
    const backend = await createTfjsBackend({ modelDir, tfjsBackend: 'cpu', maxPositions: 100_000 });
    expect(backend.model.maxPositions).toBe(512);
    expect(backend.warnings).toContainEqual(
      expect.objectContaining({ type: 'unsupported-setting', setting: 'maxPositions' }),
    );
    await backend.doDispose();
    await expect(createTfjsBackend({ modelDir, maxBatchSize: 0 })).rejects.toThrow(RangeError);
    await expect(createTfjsBackend({ modelDir, tfjsBackend: 'webgl' as 'cpu' })).rejects.toThrow(/tfjsBackend must be/);
  });

  it('bad model directories are typed errors naming the file and what was expected', async () => {
    const missingConfig = await loadError(path.join(root, 'nowhere'));
    expect(missingConfig.reason).toBe('missing-file');
    expect(missingConfig.file).toMatch(/config\.json$/);

    const noWeights = await tinyDir();
    await rm(path.join(noWeights, 'model.safetensors'));
    const missing = await loadError(noWeights);
    expect(missing.reason).toBe('missing-file');
    expect(missing.message).toMatch(/model\.safetensors/);

    const truncated = await tinyDir();
    const file = path.join(truncated, 'model.safetensors');
    const size = (await readFile(file)).length;
    await truncate(file, size - 1000);
    const short = await loadError(truncated);
    expect(short.reason).toBe('truncated');
    expect(short.file).toBe(file);

    // config.json promises a wider model than the weights hold: the first mismatching tensor is named.
    const widened = await tinyDir({ dtype: 'bfloat16', maxShardSize: 64 * 1024 });
    const configFile = path.join(widened, 'config.json');
    const config = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
    await writeFile(configFile, JSON.stringify({ ...config, intermediate_size: 200 }));
    const mismatch = await loadError(widened);
    expect(mismatch.reason).toBe('shape-mismatch');
    expect(mismatch.message).toMatch(/model\.layers\.0\.mlp\.gate_proj\.weight/);
    expect(mismatch.file).toMatch(/model-\d+-of-\d+\.safetensors$/);
    expect(mismatch.expected).toMatch(/of shape \[200,64\]/);
  });
});

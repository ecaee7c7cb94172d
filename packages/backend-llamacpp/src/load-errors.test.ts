import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelLoadError, UnsupportedModelError } from '@gen/backend';
import { GGML_TYPE, kv, quantize, readGguf, writeGguf } from '@gen/gguf';
import { ensureGgufModel } from '@gen/model-kit';
import { describe, expect, it } from 'vitest';
import { createLlamaCppBackend } from './index.js';
import { llamaCppUnavailable } from './testing/availability.js';

const unavailable = llamaCppUnavailable();
const test = unavailable === undefined ? it : it.skip;
const reason = unavailable === undefined ? '' : ` (skipped: ${unavailable})`;
const dir = mkdtempSync(join(tmpdir(), 'gen-llamacpp-load-'));

async function loadError(modelPath: string): Promise<unknown> {
  try {
    const backend = await createLlamaCppBackend({ modelPath, maxBatchSize: 1 });
    await backend.doDispose();
  } catch (error) {
    return error;
  }
  throw new Error('expected createLlamaCppBackend to reject');
}

describe('load errors', () => {
  test(`a missing file is a ModelLoadError (missing-file)${reason}`, async () => {
    const error = await loadError(join(dir, 'absent.gguf'));
    expect(ModelLoadError.isInstance(error)).toBe(true);
    expect((error as ModelLoadError).reason).toBe('missing-file');
    expect((error as ModelLoadError).file).toBe(join(dir, 'absent.gguf'));
  });

  test(`a file that is not GGUF is a ModelLoadError (invalid-header)${reason}`, async () => {
    const path = join(dir, 'model.safetensors');
    writeFileSync(path, Buffer.from('{"__metadata__":{}}'.padEnd(64)));
    const error = await loadError(path);
    expect(ModelLoadError.isInstance(error)).toBe(true);
    expect((error as ModelLoadError).reason).toBe('invalid-header');
    expect((error as Error).message).toMatch(/not a GGUF file/);
  });

  test(`a truncated GGUF header is a ModelLoadError (truncated)${reason}`, async () => {
    const { file } = await ensureGgufModel('tiny', { seed: 1 });
    const path = join(dir, 'truncated.gguf');
    writeFileSync(path, readFileSync(file).subarray(0, 1000));
    const error = await loadError(path);
    expect(ModelLoadError.isInstance(error)).toBe(true);
    expect((error as ModelLoadError).reason).toBe('truncated');
  });

  test(`an architecture llama.cpp does not know is an UnsupportedModelError${reason}`, async () => {
    const path = join(dir, 'unknown-arch.gguf');
    const data = quantize(GGML_TYPE.F32, new Float32Array(64));
    writeFileSync(
      path,
      writeGguf({
        metadata: { 'general.architecture': kv.string('frobnicator'), 'frobnicator.block_count': kv.uint32(1) },
        tensors: [{ name: 'token_embd.weight', shape: [32, 2], type: GGML_TYPE.F32, data }],
      }),
    );
    const error = await loadError(path);
    expect(UnsupportedModelError.isInstance(error)).toBe(true);
    expect((error as UnsupportedModelError).feature).toBe('general.architecture');
    expect((error as UnsupportedModelError).value).toBe('frobnicator');
  });

  test(`a missing tensor is a ModelLoadError (missing-tensor) with llama.cpp's words${reason}`, async () => {
    const { file } = await ensureGgufModel('tiny', { seed: 1 });
    const bytes = new Uint8Array(readFileSync(file));
    const gguf = readGguf(bytes);
    const path = join(dir, 'missing-tensor.gguf');
    writeFileSync(
      path,
      writeGguf({
        metadata: gguf.metadata,
        tensors: gguf.tensors
          .filter((t) => t.name !== 'blk.1.ffn_up.weight')
          .map((t) => ({ name: t.name, shape: t.shape, type: t.type, data: gguf.tensorData(t.name) })),
      }),
    );
    const error = await loadError(path);
    expect(ModelLoadError.isInstance(error)).toBe(true);
    expect((error as ModelLoadError).reason).toBe('missing-tensor');
    expect((error as Error).message).toMatch(/blk\.1\.ffn_up\.weight/);
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelLoadError } from '../errors.js';
import {
  generationDefaults,
  parseGenerationConfig,
  readGenerationConfig,
  resolveEosTokenIds,
} from './generation-config.js';
import { readModelDirectory, describeModel } from './model-directory.js';
import { readModelConfig } from './model-config.js';

const fixtures = path.join(import.meta.dirname, '../../fixtures/configs');

describe('generation_config.json', () => {
  it('reads Qwen2.5 Instruct sampling defaults and eos list', async () => {
    const generation = await readGenerationConfig(path.join(fixtures, 'qwen2.5-0.5b-instruct'));
    expect(generation).toMatchObject({
      eosTokenIds: [151645, 151643],
      bosTokenId: 151643,
      padTokenId: 151643,
      doSample: true,
      repetitionPenalty: 1.1,
      temperature: 0.7,
      topP: 0.8,
      topK: 20,
    });
    expect(generationDefaults(generation)).toEqual({
      doSample: true,
      repetitionPenalty: 1.1,
      temperature: 0.7,
      topP: 0.8,
      topK: 20,
    });
  });

  it('prefers generation_config eos ids over config.json, else falls back', async () => {
    const dir = path.join(fixtures, 'qwen2.5-0.5b-instruct');
    const config = await readModelConfig(dir);
    expect(resolveEosTokenIds(config, await readGenerationConfig(dir))).toEqual([151645, 151643]);
    expect(resolveEosTokenIds(config, undefined)).toEqual([151645]);
    const mistral = path.join(fixtures, 'mistral-7b-instruct-v0.3');
    expect(resolveEosTokenIds(await readModelConfig(mistral), await readGenerationConfig(mistral))).toEqual([2]);
  });

  it('is optional', async () => {
    expect(await readGenerationConfig(path.join(fixtures, 'qwen2.5-7b-instruct'))).toBeUndefined();
  });

  it('ignores unknown fields and nulls, reads max_new_tokens / max_length', () => {
    expect(
      parseGenerationConfig({ _from_model_config: true, temperature: null, max_new_tokens: 256, max_length: 4096 }),
    ).toEqual({ file: 'generation_config.json', maxNewTokens: 256, maxLength: 4096 });
  });

  it('rejects ill-typed known fields, naming the file and field', () => {
    for (const [json, field] of [
      [{ temperature: 'hot' }, 'temperature'],
      [{ top_p: 1.5 }, 'top_p'],
      [{ top_k: -1 }, 'top_k'],
      [{ top_k: 2.5 }, 'top_k'],
      [{ repetition_penalty: 0 }, 'repetition_penalty'],
      [{ do_sample: 'yes' }, 'do_sample'],
      [{ eos_token_id: 'x' }, 'eos_token_id'],
    ] as const) {
      let caught: unknown;
      try {
        parseGenerationConfig(json, '/dir/generation_config.json');
      } catch (error) {
        caught = error;
      }
      expect(ModelLoadError.isInstance(caught), field).toBe(true);
      expect((caught as ModelLoadError).message).toContain('/dir/generation_config.json');
      expect((caught as ModelLoadError).message).toContain(`\`${field}\``);
    }
  });

  it('rejects invalid JSON with the file name', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'gen-generation-'));
    try {
      await writeFile(path.join(dir, 'generation_config.json'), 'not json');
      const error = await readGenerationConfig(dir).catch((e: unknown) => e);
      expect((error as ModelLoadError).reason).toBe('invalid-json');
      expect((error as ModelLoadError).file).toBe(path.join(dir, 'generation_config.json'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('describeModel', () => {
  it('builds the BackendV1 model description from a directory', async () => {
    const directory = await readModelDirectory(path.join(fixtures, 'llama-3.1-8b-instruct'));
    const model = describeModel(directory, { dtype: 'float32', maxPositions: 4096 });
    expect(model).toMatchObject({
      architecture: 'LlamaForCausalLM',
      modelType: 'llama',
      vocabSize: 128256,
      maxPositions: 4096,
      eosTokenIds: [128001, 128008, 128009],
      bosTokenId: 128000,
      dtype: 'float32',
      numLayers: 32,
      numKeyValueHeads: 8,
      headDim: 128,
      generationDefaults: { doSample: true, temperature: 0.6, topP: 0.9 },
    });
    expect(describeModel(directory, { dtype: 'float32', maxPositions: 1e9 }).maxPositions).toBe(131072);
  });
});

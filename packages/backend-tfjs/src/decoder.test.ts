import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readModelConfig } from '@gen/backend';
import { createJsBackend } from '@gen/backend-js';
import { writeModelDir, type WriteModelDirOptions } from '@gen/model-kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TfjsDecoder, type Segment } from './decoder.js';
import { createKvCache, type KvCache } from './kv-cache.js';
import { createTfjsBackend } from './index.js';
import { selectBackend, type TfjsBackendKind } from './select-backend.js';
import { tensorMemory } from './tensor-memory.js';
import { loadModelTensors } from './weights.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'gen-backend-tfjs-decoder-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

async function modelDir(name: string, options: Omit<WriteModelDirOptions, 'outDir' | 'formats'>, patch = {}) {
  const { dir } = await writeModelDir({ ...options, outDir: path.join(root, name), formats: ['safetensors'] });
  const file = path.join(dir, 'config.json');
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), ...patch }));
  return dir;
}

function tokens(length: number, seed: number, vocab: number): number[] {
  let state = seed >>> 0;
  return Array.from({ length }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % vocab;
  });
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe('KV cache strategies', () => {
  for (const kind of ['wasm', 'cpu'] satisfies TfjsBackendKind[]) {
    it(`${kind}: the concat cache (the tfjs-node path) gives the in-place cache's logits`, async () => {
      const dir = await modelDir(`window-${kind}`, {
        preset: 'tiny',
        seed: 9,
        config: { architecture: 'mistral', slidingWindow: 6, maxPositionEmbeddings: 128 },
      });
      const config = await readModelConfig(dir);
      const selected = await selectBackend({ order: [kind] });
      const memory = tensorMemory(selected.tfjsBackend);
      expect(memory).toBeDefined();
      const weights = await loadModelTensors(dir, config);
      const decoder = new TfjsDecoder(config, weights, { perHeadFromTokens: 16 });
      const shape = {
        numLayers: config.numLayers,
        numHeads: config.numAttentionHeads,
        numKeyValueHeads: config.numKeyValueHeads,
        headDim: config.headDim,
      };
      const run = async (caches: KvCache[]) => {
        const outputs: Float32Array[] = [];
        const call = async (items: { cache: KvCache; tokens: number[]; allLogits: boolean }[]) => {
          const segments: Segment[] = items.map((item) => ({ ...item, start: item.cache.length }));
          for (const s of segments) s.cache.reserve(s.start + s.tokens.length, config.maxPositions);
          outputs.push(await decoder.forward(segments));
          for (const s of segments) s.cache.commit(s.tokens.length);
        };
        await call([
          { cache: caches[0]!, tokens: tokens(20, 1, config.vocabSize), allLogits: true },
          { cache: caches[1]!, tokens: tokens(3, 2, config.vocabSize), allLogits: false },
        ]);
        for (let step = 0; step < 5; step++) {
          await call(
            caches.map((cache, i) => ({ cache, tokens: [(step * 7 + i) % config.vocabSize], allLogits: false })),
          );
        }
        const fork = caches[0]!.clone();
        await call([{ cache: fork, tokens: tokens(4, 3, config.vocabSize), allLogits: true }]);
        for (const cache of [...caches, fork]) cache.dispose();
        return outputs;
      };
      try {
        const inPlace = await run([createKvCache(shape, memory), createKvCache(shape, memory)]);
        const concat = await run([createKvCache(shape, undefined), createKvCache(shape, undefined)]);
        for (let i = 0; i < inPlace.length; i++) expect(maxAbsDifference(inPlace[i]!, concat[i]!)).toBeLessThan(1e-5);
      } finally {
        decoder.dispose();
      }
    });
  }
});

describe('architectures against the oracle', () => {
  const cases: [string, Omit<WriteModelDirOptions, 'outDir' | 'formats'>, Record<string, unknown>][] = [
    [
      'llama 3.1 rope scaling, attention and mlp biases, untied',
      { preset: 'tiny', seed: 11, config: { attentionBias: true, mlpBias: true, maxPositionEmbeddings: 256 } },
      {
        rope_theta: 10000,
        rope_scaling: {
          rope_type: 'llama3',
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 32,
        },
      },
    ],
    ['qwen2 tied, q/k/v biases, f16', { preset: 'tiny-qwen2', seed: 12, dtype: 'float16' }, {}],
    [
      'multi-query attention (one kv head), linear rope scaling',
      { preset: 'tiny', seed: 13, config: { numKeyValueHeads: 1 } },
      { rope_scaling: { rope_type: 'linear', factor: 2 } },
    ],
  ];
  for (const [name, options, patch] of cases) {
    it(`${name}: wasm logits within 1e-4 of backend-js`, async () => {
      const dir = await modelDir(name.replace(/\W+/g, '-'), options, patch);
      const backend = await createTfjsBackend({ modelDir: dir, tfjsBackend: 'wasm' });
      const oracle = await createJsBackend({ modelDir: dir });
      try {
        const vocab = backend.model.vocabSize;
        const script = async (b: typeof backend) => {
          const out: Float32Array[] = [];
          const first = await b.doForward({
            sequences: [
              { id: 'a', tokens: tokens(45, 5, vocab), wantPromptLogits: true },
              { id: 'b', tokens: tokens(5, 6, vocab), wantPromptLogits: true },
            ],
          });
          out.push(...first.sequences.map((s) => s.promptLogits!));
          for (let step = 0; step < 6; step++) {
            const next = await b.doForward({
              sequences: ['a', 'b'].map((id, i) => ({ id, tokens: [(5 * step + i) % vocab] })),
            });
            out.push(Float32Array.from(next.logits));
          }
          return out;
        };
        const actual = await script(backend);
        const expected = await script(oracle);
        let worst = 0;
        for (let i = 0; i < actual.length; i++) worst = Math.max(worst, maxAbsDifference(actual[i]!, expected[i]!));
        expect(worst).toBeLessThanOrEqual(1e-4);
      } finally {
        await backend.doDispose();
        await oracle.doDispose();
      }
    });
  }
});

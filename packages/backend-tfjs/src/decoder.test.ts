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
        // A prefix fork (the engine's prefix cache): the first 13 of 25 positions, then new tokens.
        const prefix = caches[0]!.clone(13);
        await call([{ cache: prefix, tokens: tokens(4, 4, config.vocabSize), allLogits: true }]);
        for (const cache of [...caches, fork, prefix]) cache.dispose();
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
      'yarn rope scaling (attention factor on cos and sin)',
      { preset: 'tiny', seed: 14 },
      { rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 16 } },
    ],
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

describe('families against the oracle', () => {
  /** Runs `steps` (each a batch of (id, tokens) pairs) on a backend, returning every logits row. */
  async function run(
    backend: Awaited<ReturnType<typeof createTfjsBackend>>,
    steps: readonly (readonly [string, number[]])[][],
  ): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (const step of steps) {
      const result = await backend.doForward({
        sequences: step.map(([id, t]) => ({ id, tokens: t, wantPromptLogits: true })),
      });
      out.push(...result.sequences.map((s) => s.promptLogits!));
    }
    return out;
  }

  async function compare(dir: string, steps: readonly (readonly [string, number[]])[][]) {
    const backend = await createTfjsBackend({ modelDir: dir, tfjsBackend: 'wasm' });
    const oracle = await createJsBackend({ modelDir: dir });
    try {
      const actual = await run(backend, steps);
      const expected = await run(oracle, steps);
      let worst = 0;
      for (let i = 0; i < actual.length; i++) worst = Math.max(worst, maxAbsDifference(actual[i]!, expected[i]!));
      return { actual, worst };
    } finally {
      await backend.doDispose();
      await oracle.doDispose();
    }
  }

  it('phi3 longrope: sequences crossing original_max_position_embeddings (32) match backend-js on wasm', async () => {
    const dir = await modelDir('phi3-longrope', { preset: 'tiny-phi3', seed: 21 });
    const config = await readModelConfig(dir);
    expect(config.ropeScaling?.type).toBe('longrope');
    const vocab = config.vocabSize;
    const steps: [string, number[]][][] = [
      // a: 30 positions (short factors), b: 3.
      [
        ['a', tokens(30, 1, vocab)],
        ['b', tokens(3, 2, vocab)],
      ],
      // Decode steps: a crosses 32 (length 33 on the third) while b stays short in the same batch.
      ...Array.from({ length: 4 }, (_, step) => [
        ['a', [(7 * step + 1) % vocab]] as [string, number[]],
        ['b', [(7 * step + 2) % vocab]] as [string, number[]],
      ]),
      // b's chunk crosses 32 within one forward (7 -> 42), batched with a decode step of a.
      [
        ['b', tokens(35, 3, vocab)],
        ['a', [5]],
      ],
    ];
    const { worst } = await compare(dir, steps);
    expect(worst).toBeLessThanOrEqual(1e-4);
  });

  it('gemma2: logits stay inside the final softcap and match backend-js on wasm', async () => {
    const dir = await modelDir('gemma2-softcap', { preset: 'tiny-gemma2', seed: 22 });
    const config = await readModelConfig(dir);
    const cap = config.finalLogitSoftcapping!;
    expect(cap).toBeGreaterThan(0);
    expect(config.attnLogitSoftcapping).not.toBeNull();
    const vocab = config.vocabSize;
    const { actual, worst } = await compare(dir, [
      [
        ['a', tokens(20, 4, vocab)],
        ['b', tokens(6, 5, vocab)],
      ],
      [
        ['a', [1]],
        ['b', [2]],
      ],
    ]);
    expect(worst).toBeLessThanOrEqual(1e-4);
    let largest = 0;
    for (const logits of actual) for (const l of logits) largest = Math.max(largest, Math.abs(l));
    expect(largest).toBeLessThan(cap);
    // The cap binds: without it some logits would be far larger.
    expect(largest).toBeGreaterThan(0.9 * cap);
  });
});

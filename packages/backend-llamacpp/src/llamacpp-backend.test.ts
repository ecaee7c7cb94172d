import { AbortError, BackendError, type BackendV1 } from '@gen/backend';
import { ensureGgufModel } from '@gen/model-kit';
import { beforeAll, describe, expect, it } from 'vitest';
import { createLlamaCppBackend, loadLlamaCApi, type LlamaCppBackendSettings } from './index.js';
import type { LlamaCApi } from './llama-c-api.js';
import { llamaCppUnavailable } from './testing/availability.js';

const unavailable = llamaCppUnavailable();
const test = unavailable === undefined ? it : it.skip;
const reason = unavailable === undefined ? '' : ` (skipped: ${unavailable})`;

let modelPath = '';
beforeAll(async () => {
  if (unavailable === undefined) modelPath = (await ensureGgufModel('tiny', { seed: 1 })).file;
});

async function withBackend(
  settings: Partial<LlamaCppBackendSettings>,
  fn: (backend: BackendV1) => Promise<void>,
): Promise<void> {
  const backend = await createLlamaCppBackend({ modelPath, threads: 1, kvCacheType: 'f32', ...settings });
  try {
    await fn(backend);
  } finally {
    await backend.doDispose();
  }
}

function tokens(length: number, seed: number): number[] {
  return Array.from({ length }, (_, i) => (seed * 131 + i * 17) % 500);
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe('llamacpp backend', () => {
  test(`describes the GGUF model${reason}`, async () => {
    await withBackend({ maxBatchSize: 4 }, async (backend) => {
      expect(backend.backendId).toBe('llamacpp');
      expect(backend.model).toMatchObject({
        architecture: 'LlamaForCausalLM',
        modelType: 'llama',
        vocabSize: 512,
        maxPositions: 512,
        eosTokenIds: [508, 511],
        bosTokenId: 507,
        dtype: 'float32',
        numLayers: 2,
        hiddenSize: 64,
        numAttentionHeads: 4,
        numKeyValueHeads: 2,
        headDim: 16,
      });
      expect(backend.capabilities).toMatchObject({
        maxBatchSize: 4,
        device: 'cpu',
        promptLogits: true,
        fork: true,
        embeddings: true,
      });
      expect(backend.capabilities.details).toMatchObject({ contextSize: 4 * 512, maxSequences: 64, threads: 1 });
      expect(backend.stats()).toEqual({ sequences: 0, cachedTokens: 0, kvCacheBytes: 0 });
    });
  });

  test(`a persistent thread pool (the default) gives the logits of threads started per decode${reason}`, async () => {
    const prompt = tokens(40, 7);
    const run = async (settings: Partial<LlamaCppBackendSettings>) => {
      const logits: Float32Array[] = [];
      let details: unknown;
      await withBackend({ threads: 2, ...settings }, async (backend) => {
        details = backend.capabilities.details;
        logits.push(Float32Array.from((await backend.doForward({ sequences: [{ id: 'a', tokens: prompt }] })).logits));
        for (const token of [3, 4, 5]) {
          const step = await backend.doForward({ sequences: [{ id: 'a', tokens: [token] }] });
          logits.push(Float32Array.from(step.logits));
        }
      });
      return { logits, details };
    };
    const pooled = await run({});
    const polling = await run({ threadPoll: 50 });
    const perDecode = await run({ threadPool: false });
    expect(pooled.details).toMatchObject({ threads: 2, threadPool: 'persistent', threadPoll: 0 });
    expect(polling.details).toMatchObject({ threadPool: 'persistent', threadPoll: 50 });
    expect(perDecode.details).toMatchObject({ threads: 2, threadPool: 'per-decode' });
    expect(perDecode.details).not.toHaveProperty('threadPoll');
    for (let i = 0; i < 4; i++) {
      expect(maxDifference(pooled.logits[i]!, perDecode.logits[i]!)).toBeLessThanOrEqual(1e-5);
      expect(maxDifference(polling.logits[i]!, perDecode.logits[i]!)).toBeLessThanOrEqual(1e-5);
    }
  });

  test(`without ggml_threadpool_new in the CPU backend, it warns and starts threads per decode${reason}`, async () => {
    // A CPU backend build that does not export the pool functions: the C API then has no threadPools.
    const api = loadLlamaCApi() as { threadPools: LlamaCApi['threadPools'] };
    const threadPools = api.threadPools;
    api.threadPools = undefined;
    try {
      await withBackend({ threads: 2 }, async (backend) => {
        expect(backend.capabilities.details).toMatchObject({ threads: 2, threadPool: 'per-decode' });
        expect(backend.warnings).toContainEqual(
          expect.objectContaining({ type: 'unsupported-setting', setting: 'threadPool' }),
        );
        const result = await backend.doForward({ sequences: [{ id: 'a', tokens: tokens(8, 3) }] });
        expect(result.logits.every(Number.isFinite)).toBe(true);
      });
      // threadPool: false asks for no pool: nothing to warn about.
      await withBackend({ threads: 2, threadPool: false }, async (backend) => {
        expect(backend.warnings.filter((w) => w.type === 'unsupported-setting')).toEqual([]);
      });
    } finally {
      api.threadPools = threadPools;
    }
    await withBackend({ threads: 2 }, async (backend) => {
      expect(backend.capabilities.details).toMatchObject({ threadPool: 'persistent' });
      expect(backend.warnings.filter((w) => w.type === 'unsupported-setting')).toEqual([]);
    });
  });

  test(`threadPoll must be an integer from 0 to 100${reason}`, async () => {
    for (const threadPoll of [-1, 101, 2.5, Number.NaN]) {
      await expect(createLlamaCppBackend({ modelPath, threadPoll })).rejects.toThrow(
        /threadPoll must be an integer from 0 to 100/,
      );
    }
  });

  test(`the worker decode thread gives the same logits and keeps the event loop serving${reason}`, async () => {
    const prompt = tokens(300, 1);
    let main: Float32Array | undefined;
    await withBackend({ decodeThread: 'main' }, async (backend) => {
      main = (await backend.doForward({ sequences: [{ id: 'a', tokens: prompt }] })).logits;
    });
    await withBackend({ decodeThread: 'worker', batchTokens: 32 }, async (backend) => {
      expect(backend.capabilities.details).toMatchObject({ decodeThread: 'worker' });
      let ticks = 0;
      const timer = setInterval(() => ticks++, 0);
      const result = await backend.doForward({ sequences: [{ id: 'a', tokens: prompt }] });
      clearInterval(timer);
      expect(maxDifference(result.logits, main!)).toBeLessThanOrEqual(1e-4);
      expect(ticks, 'timers ran during the decode').toBeGreaterThan(0);
    });
  });

  test(`aborting a decode on the worker thread rejects with AbortError and changes nothing${reason}`, async () => {
    await withBackend({ decodeThread: 'worker', batchTokens: 512 }, async (backend) => {
      const prompt = tokens(6, 2);
      await backend.doForward({ sequences: [{ id: 'kept', tokens: prompt }] });
      const before = backend.stats();
      const controller = new AbortController();
      const call = backend.doForward({
        sequences: [
          { id: 'kept', tokens: tokens(200, 3) },
          { id: 'new', tokens: tokens(300, 4) },
        ],
        signal: controller.signal,
      });
      setTimeout(() => controller.abort(new Error('stop')), 1);
      const error = await call.then(
        () => undefined,
        (e: unknown) => e,
      );
      if (error !== undefined) {
        expect(AbortError.isInstance(error)).toBe(true);
        expect(backend.stats()).toEqual(before);
        // The kept sequence continues from its committed length with the logits of a fresh prefill.
        const next = await backend.doForward({ sequences: [{ id: 'kept', tokens: [9], startPosition: 6 }] });
        const fresh = await backend.doForward({ sequences: [{ id: 'fresh', tokens: [...prompt, 9] }] });
        expect(maxDifference(next.logits, fresh.logits)).toBeLessThanOrEqual(1e-4);
      } else {
        expect(backend.stats().cachedTokens).toBe(before.cachedTokens + 500);
      }
    });
  });

  test(`fork shares KV cells; release returns kvCacheBytes to the baseline${reason}`, async () => {
    await withBackend({ maxBatchSize: 4 }, async (backend) => {
      const bytesPerToken = 2 * 2 * (16 + 16) * 4; // layers x kv heads x (key + value) x float32
      await backend.doForward({ sequences: [{ id: 'p', tokens: tokens(10, 5) }] });
      expect(backend.stats().kvCacheBytes).toBe(10 * bytesPerToken);
      await backend.doFork!('p', 'c');
      expect(backend.stats()).toEqual({ sequences: 2, cachedTokens: 20, kvCacheBytes: 10 * bytesPerToken });
      await backend.doForward({
        sequences: [
          { id: 'p', tokens: [1, 2] },
          { id: 'c', tokens: [3] },
        ],
      });
      expect(backend.stats().kvCacheBytes).toBe(13 * bytesPerToken);
      await backend.doRelease(['p']);
      expect(backend.stats()).toEqual({ sequences: 1, cachedTokens: 11, kvCacheBytes: 11 * bytesPerToken });
      await backend.doRelease(['c']);
      expect(backend.stats()).toEqual({ sequences: 0, cachedTokens: 0, kvCacheBytes: 0 });
    });
  });

  test(`more live sequences than maxSequences is a BackendError that changes nothing${reason}`, async () => {
    await withBackend({ maxBatchSize: 2, maxSequences: 3 }, async (backend) => {
      await backend.doForward({
        sequences: [
          { id: 'a', tokens: [1] },
          { id: 'b', tokens: [2] },
        ],
      });
      const error = await backend
        .doForward({
          sequences: [
            { id: 'c', tokens: [3] },
            { id: 'd', tokens: [4] },
          ],
        })
        .catch((e: unknown) => e);
      expect(BackendError.isInstance(error)).toBe(true);
      expect((error as Error).message).toMatch(/maxSequences/);
      expect(backend.stats()).toMatchObject({ sequences: 2, cachedTokens: 2 });
      await backend.doForward({ sequences: [{ id: 'c', tokens: [3] }] });
      expect((await backend.doFork!('a', 'e').catch((e: unknown) => e)) as Error).toBeInstanceOf(Error);
      await backend.doRelease(['a']);
      await backend.doFork!('b', 'e');
      expect(backend.stats()).toMatchObject({ sequences: 3 });
    });
  });

  test(`a full KV cache is a BackendError that rolls back the call${reason}`, async () => {
    // llama.cpp pads n_ctx to a multiple of 256: the cache has 256 cells.
    await withBackend({ maxBatchSize: 2, contextSize: 256, batchTokens: 16 }, async (backend) => {
      expect(backend.capabilities.details).toMatchObject({ contextSize: 256 });
      await backend.doForward({ sequences: [{ id: 'a', tokens: tokens(40, 6) }] });
      await backend.doForward({ sequences: [{ id: 'z', tokens: tokens(180, 5) }] });
      const before = backend.stats();
      const error = await backend
        .doForward({
          sequences: [
            { id: 'a', tokens: tokens(8, 7) },
            { id: 'b', tokens: tokens(40, 8) },
          ],
        })
        .catch((e: unknown) => e);
      expect(BackendError.isInstance(error)).toBe(true);
      expect((error as Error).message).toMatch(/KV cache has no room/);
      expect(backend.stats()).toEqual(before);
      // The cells are free again: a call that fits succeeds, and 'a' continues correctly.
      const next = await backend.doForward({ sequences: [{ id: 'a', tokens: [9], startPosition: 40 }] });
      await backend.doRelease(['a', 'z']);
      const fresh = await backend.doForward({ sequences: [{ id: 'f', tokens: [...tokens(40, 6), 9] }] });
      expect(maxDifference(next.logits, fresh.logits)).toBeLessThanOrEqual(1e-4);
    });
  });

  test(`prompts longer than batchTokens are split across llama_decode calls${reason}`, async () => {
    const prompt = tokens(70, 9);
    let whole: Float32Array | undefined;
    await withBackend({ batchTokens: 512 }, async (backend) => {
      whole = (await backend.doForward({ sequences: [{ id: 'a', tokens: prompt, wantPromptLogits: true }] }))
        .sequences[0]!.promptLogits!;
    });
    await withBackend({ batchTokens: 16 }, async (backend) => {
      const split = (await backend.doForward({ sequences: [{ id: 'a', tokens: prompt, wantPromptLogits: true }] }))
        .sequences[0]!.promptLogits!;
      expect(maxDifference(split, whole!)).toBeLessThanOrEqual(1e-4);
    });
  });

  test(`a batch whose sequences straddle a batchTokens boundary gives each its own logits${reason}`, async () => {
    // 10 + 12 + 5 tokens in pieces of 16: the second sequence is split between the first two pieces.
    const inputs = [
      { id: 'a', tokens: tokens(10, 3) },
      { id: 'b', tokens: tokens(12, 5), wantPromptLogits: true },
      { id: 'c', tokens: tokens(5, 7) },
    ];
    const run = async (batchTokens: number) => {
      let rows: Array<{ id: string; length: number; logits: Float32Array; prompt: Float32Array | undefined }> = [];
      await withBackend({ batchTokens, maxBatchSize: 4 }, async (backend) => {
        const result = await backend.doForward({ sequences: inputs });
        rows = result.sequences.map((s) => ({
          id: s.id,
          length: s.length,
          logits: Float32Array.from(s.logits),
          prompt: s.promptLogits,
        }));
      });
      return rows;
    };
    const whole = await run(512);
    const split = await run(16);
    expect(split.map((s) => [s.id, s.length])).toEqual([
      ['a', 10],
      ['b', 12],
      ['c', 5],
    ]);
    for (let i = 0; i < 3; i++) {
      expect(maxDifference(split[i]!.logits, whole[i]!.logits)).toBeLessThanOrEqual(1e-4);
    }
    expect(split[1]!.prompt!.length).toBe(12 * whole[1]!.logits.length);
    expect(maxDifference(split[1]!.prompt!, whole[1]!.prompt!)).toBeLessThanOrEqual(1e-4);
  });
});

/**
 * The `direct` binding (onnxruntime's C API through koffi) against onnxruntime-node's `InferenceSession` on the same
 * files: the same metadata and numbers, bound outputs written in place, errors that leave the session usable, runs
 * on a worker thread that free the event loop and can be stopped, and the backend's `binding` setting.
 */
import { AbortError, BackendError } from '@gen/backend';
import { ensureModelDir } from '@gen/model-kit';
import * as ort from 'onnxruntime-node';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnnxBackend } from '../index.js';
import { DirectSession } from './direct-session.js';
import { loadOrtCApi, OrtStatusError } from './ort-c-api.js';

const layers = 2;
const kvHeads = 2;
const headDim = 16;
const vocab = 512;

/** Feeds of one fused-graph run over `kv` (batch rows of `capacity` slots): `n` tokens per row after `past`. */
function fusedFeeds(kv: ort.Tensor[], batch: number, past: number, tokens: number[]) {
  const n = tokens.length / batch;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [batch, n]),
    seqlens_k: new ort.Tensor('int32', new Int32Array(batch).fill(past + n - 1), [batch]),
    total_sequence_length: new ort.Tensor('int32', Int32Array.of(past + n), []),
    num_logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(1n), []),
  };
  const fetches: Record<string, ort.Tensor | null> = { logits: null };
  for (let i = 0; i < layers; i++) {
    feeds[`past_key_values.${i}.key`] = fetches[`present.${i}.key`] = kv[2 * i]!;
    feeds[`past_key_values.${i}.value`] = fetches[`present.${i}.value`] = kv[2 * i + 1]!;
  }
  return { feeds, fetches };
}

const kvBuffers = (batch: number, capacity: number) =>
  Array.from(
    { length: 2 * layers },
    () =>
      new ort.Tensor('float32', new Float32Array(batch * kvHeads * capacity * headDim), [
        batch,
        kvHeads,
        capacity,
        headDim,
      ]),
  );

const tokensOf = (count: number, salt: number) => Array.from({ length: count }, (_, i) => (i * 37 + salt * 11) % vocab);

describe('the direct binding', () => {
  let fusedFile: string;
  let standardFile: string;
  let fusedDir: string;
  const sessions: { release(): Promise<void> }[] = [];
  beforeAll(async () => {
    fusedDir = await ensureModelDir('tiny', { seed: 1, onnxGraphStyle: 'fused' });
    fusedFile = path.join(fusedDir, 'onnx', 'model.onnx');
    standardFile = path.join(
      await ensureModelDir('tiny', { seed: 1, onnxGraphStyle: 'standard' }),
      'onnx',
      'model.onnx',
    );
  });
  afterAll(async () => {
    for (const session of sessions) await session.release();
  });
  const direct = (file: string, runThread: 'main' | 'worker' = 'main') => {
    const session = DirectSession.create(file, { intraOpThreads: 1, runThread });
    sessions.push(session);
    return session;
  };
  const node = async (file: string) => {
    const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    sessions.push(session);
    return session;
  };

  it('loads on this platform, from the library onnxruntime-node installs', () => {
    const loaded = loadOrtCApi();
    expect('api' in loaded ? loaded.api.version : loaded.error).toBe(ort.env.versions.node);
    if ('api' in loaded) expect(loaded.api.library).toContain('onnxruntime-node');
  });

  it('reads the same inputs and outputs as onnxruntime-node, for both graph styles', async () => {
    for (const file of [fusedFile, standardFile]) {
      const [a, b] = [direct(file), await node(file)];
      expect(a.inputNames).toEqual(b.inputNames);
      expect(a.outputNames).toEqual(b.outputNames);
      expect(a.inputMetadata).toEqual(b.inputMetadata);
      expect(a.outputMetadata).toEqual(b.outputMetadata);
    }
  });

  it('computes the same logits and caches as onnxruntime-node, writing bound outputs in place', async () => {
    const a = direct(fusedFile);
    const b = await node(fusedFile);
    const [kvA, kvB] = [kvBuffers(3, 40), kvBuffers(3, 40)];
    const prompt = tokensOf(3 * 24, 1);
    let runA = fusedFeeds(kvA, 3, 0, prompt);
    const outA = await a.run(runA.feeds, runA.fetches);
    let runB = fusedFeeds(kvB, 3, 0, prompt);
    const outB = await b.run(runB.feeds, runB.fetches as ort.InferenceSession.FetchesType);
    expect(outA['logits']!.dims).toEqual([3, 1, vocab]);
    expect(outA['logits']!.data).toEqual(outB['logits']!.data);
    // The bound outputs are the tensors given, now holding the prompt's keys and values.
    expect(outA['present.1.value']).toBe(kvA[3]);
    expect((kvA[3]!.data as Float32Array).some((v) => v !== 0)).toBe(true);
    for (let step = 0; step < 12; step++) {
      const next = tokensOf(3, 100 + step);
      runA = fusedFeeds(kvA, 3, 24 + step, next);
      runB = fusedFeeds(kvB, 3, 24 + step, next);
      const [x, y] = [
        await a.run(runA.feeds, runA.fetches),
        await b.run(runB.feeds, runB.fetches as ort.InferenceSession.FetchesType),
      ];
      expect(x['logits']!.data).toEqual(y['logits']!.data);
    }
    // onnxruntime-node hands back copies of its bound outputs; the buffers it was given hold the same values.
    kvA.forEach((tensor, i) => expect(tensor.data).toEqual(kvB[i]!.data));
  });

  it('fetches outputs by name, or all of them, as copies', async () => {
    const a = direct(standardFile);
    const b = await node(standardFile);
    const feeds: Record<string, ort.Tensor> = {};
    const tokens = tokensOf(5, 3);
    for (const meta of b.inputMetadata) {
      if (!meta.isTensor) continue;
      if (meta.name === 'input_ids')
        feeds[meta.name] = new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, 5]);
      else if (meta.name === 'attention_mask')
        feeds[meta.name] = new ort.Tensor('int64', new BigInt64Array(5).fill(1n), [1, 5]);
      else if (meta.name === 'position_ids') {
        feeds[meta.name] = new ort.Tensor('int64', BigInt64Array.from([0n, 1n, 2n, 3n, 4n]), [1, 5]);
      } else feeds[meta.name] = new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim]);
    }
    const all = await a.run(feeds);
    const expected = await b.run(feeds);
    expect(Object.keys(all)).toEqual(b.outputNames);
    for (const name of b.outputNames) {
      expect(all[name]!.dims).toEqual(expected[name]!.dims);
      expect(all[name]!.data).toEqual(expected[name]!.data);
    }
    const some = await a.run(feeds, ['logits']);
    expect(Object.keys(some)).toEqual(['logits']);
    expect(some['logits']!.data).toEqual(expected['logits']!.data);
    expect(some['logits']!.data).not.toBe(all['logits']!.data);
  });

  it('keeps small inputs valid while the garbage collector runs between steps', async () => {
    const a = direct(fusedFile);
    const b = await node(fusedFile);
    const [kvA, kvB] = [kvBuffers(1, 200), kvBuffers(1, 200)];
    let garbage: unknown[] = [];
    for (let step = 0; step < 150; step++) {
      // Scalars and one-row inputs live in V8's heap until handed over; churn it so they would move.
      garbage = Array.from({ length: 2000 }, (_, i) => ({ i, s: `x${i}` }));
      const token = [(step * 7) % vocab];
      const runA = fusedFeeds(kvA, 1, step, token);
      const runB = fusedFeeds(kvB, 1, step, token);
      const x = await a.run(runA.feeds, runA.fetches);
      const y = await b.run(runB.feeds, runB.fetches as ort.InferenceSession.FetchesType);
      expect(x['logits']!.data).toEqual(y['logits']!.data);
    }
    expect(garbage.length).toBe(2000);
  });

  it('rejects bad feeds with a clear error and stays usable', async () => {
    const a = direct(fusedFile);
    const kv = kvBuffers(1, 16);
    const good = fusedFeeds(kv, 1, 0, [1, 2, 3]);
    await expect(a.run({ ...good.feeds, extra: good.feeds['input_ids']! }, good.fetches)).rejects.toThrow(
      /unknown input: extra/,
    );
    const { input_ids: _ids, ...missing } = good.feeds;
    await expect(a.run(missing, good.fetches)).rejects.toThrow(/input 'input_ids' is missing/);
    await expect(a.run(good.feeds, { nope: null })).rejects.toThrow(/unknown output: nope/);
    // seqlens_k has 2 rows where input_ids has 1: onnxruntime's own message, as an OrtStatusError.
    const bad = { ...good.feeds, seqlens_k: new ort.Tensor('int32', Int32Array.of(2, 2), [2]) };
    const error = await a.run(bad, good.fetches).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OrtStatusError);
    expect((error as Error).message).toMatch(/^Run: .+/);
    const out = await a.run(good.feeds, good.fetches);
    expect(out['logits']!.dims).toEqual([1, 1, vocab]);
  });

  it("writes onnxruntime's profile when asked, with a model_run event per run", async () => {
    const prefix = path.join(await mkdtemp(path.join(tmpdir(), 'direct-profile-')), 'run');
    const a = DirectSession.create(fusedFile, { intraOpThreads: 1, profileFilePrefix: prefix });
    const kv = kvBuffers(1, 16);
    for (let step = 0; step < 3; step++) {
      const { feeds, fetches } = fusedFeeds(kv, 1, step, [step + 1]);
      await a.run(feeds, fetches);
    }
    const file = a.endProfiling();
    await a.release();
    expect(path.basename(file)).toMatch(/^run.*\.json$/);
    const events = JSON.parse(await readFile(file, 'utf8')) as { cat: string; name: string }[];
    expect(events.filter((e) => e.cat === 'Session' && e.name === 'model_run')).toHaveLength(3);
    expect(events.some((e) => e.cat === 'Node' && e.name.includes('GroupQueryAttention'))).toBe(true);
    expect(() => direct(fusedFile).endProfiling()).toThrow(/profiling is off/);
  });

  it('release frees the session once queued runs are done; later runs reject', async () => {
    const a = DirectSession.create(fusedFile, { intraOpThreads: 1 });
    const kv = kvBuffers(1, 16);
    const { feeds, fetches } = fusedFeeds(kv, 1, 0, [4, 5]);
    const pending = a.run(feeds, fetches);
    await a.release();
    expect((await pending)['logits']!.dims).toEqual([1, 1, vocab]);
    await expect(a.run(feeds, fetches)).rejects.toThrow(/released/);
    await a.release();
  });

  it('worker runs leave the event loop free, and abort stops a run at its next operator', async () => {
    const a = direct(fusedFile, 'worker');
    expect(a.runThread).toBe('worker');
    // A long run: 48 prompts of 480 tokens.
    const kv = kvBuffers(48, 480);
    const long = fusedFeeds(kv, 48, 0, tokensOf(48 * 480, 5));
    let ticks = 0;
    let settled = false;
    const tick = () => {
      ticks++;
      if (!settled) setImmediate(tick);
    };
    setImmediate(tick);
    await a.run(long.feeds, long.fetches);
    settled = true;
    expect(ticks).toBeGreaterThan(0);

    const aborted = a.run(long.feeds, long.fetches);
    setImmediate(() => a.abort());
    await expect(aborted).rejects.toThrow(/terminat/i);
    // The next run is not affected.
    const short = fusedFeeds(kvBuffers(1, 8), 1, 0, [1, 2]);
    expect((await a.run(short.feeds, short.fetches))['logits']!.dims).toEqual([1, 1, vocab]);
  });

  describe('the backend setting', () => {
    it('runs direct or onnxruntime-node as asked, with the same logits, and says so', async () => {
      const logits: Float32Array[] = [];
      for (const binding of ['direct', 'onnxruntime-node'] as const) {
        const backend = await createOnnxBackend({ modelDir: fusedDir, intraOpThreads: 1, binding });
        expect(backend.capabilities.details).toMatchObject({ binding, bindingReason: `binding is ${binding}` });
        const result = await backend.doForward({ sequences: [{ id: 's', tokens: tokensOf(9, 2) }] });
        logits.push(result.sequences[0]!.logits.slice());
        await backend.doDispose();
      }
      expect(logits[0]).toEqual(logits[1]);
    });

    it('auto picks direct for the CPU provider here, unless GEN_ONNX_BINDING says otherwise', async () => {
      const saved = process.env['GEN_ONNX_BINDING'];
      try {
        delete process.env['GEN_ONNX_BINDING'];
        let backend = await createOnnxBackend({ modelDir: fusedDir, intraOpThreads: 1 });
        expect(backend.capabilities.details).toMatchObject({ binding: 'direct', runThread: 'main' });
        await backend.doDispose();
        process.env['GEN_ONNX_BINDING'] = 'onnxruntime-node';
        backend = await createOnnxBackend({ modelDir: fusedDir, intraOpThreads: 1 });
        expect(backend.capabilities.details).toMatchObject({ binding: 'onnxruntime-node' });
        await backend.doDispose();
        process.env['GEN_ONNX_BINDING'] = 'fast';
        await expect(createOnnxBackend({ modelDir: fusedDir })).rejects.toThrow(RangeError);
      } finally {
        if (saved === undefined) delete process.env['GEN_ONNX_BINDING'];
        else process.env['GEN_ONNX_BINDING'] = saved;
      }
    });

    it('rejects a bad binding or runThread, and direct with a GPU provider', async () => {
      await expect(createOnnxBackend({ modelDir: fusedDir, binding: 'koffi' as never })).rejects.toThrow(RangeError);
      await expect(
        createOnnxBackend({ modelDir: fusedDir, binding: 'onnxruntime-node', runThread: 'gpu' as never }),
      ).rejects.toThrow(RangeError);
      const node = await createOnnxBackend({ modelDir: fusedDir, binding: 'onnxruntime-node', runThread: 'worker' });
      expect(node.warnings).toContainEqual(
        expect.objectContaining({ type: 'unsupported-setting', setting: 'runThread' }),
      );
      await node.doDispose();
      await expect(
        createOnnxBackend({ modelDir: fusedDir, binding: 'direct', runThread: 'gpu' as never }),
      ).rejects.toThrow(RangeError);
      await expect(
        createOnnxBackend({ modelDir: fusedDir, binding: 'direct', executionProviders: ['cuda', 'cpu'] }),
      ).rejects.toThrow(BackendError);
    });

    it('an abort during a worker run stops it, and the sequences are as before the call', async () => {
      const backend = await createOnnxBackend({
        modelDir: fusedDir,
        intraOpThreads: 1,
        binding: 'direct',
        runThread: 'worker',
        maxBatchSize: 48,
      });
      await backend.doForward({ sequences: [{ id: 'kept', tokens: tokensOf(6, 1) }] });
      const controller = new AbortController();
      const call = backend.doForward({
        sequences: [
          { id: 'kept', tokens: [3] },
          ...Array.from({ length: 47 }, (_, i) => ({ id: `p${i}`, tokens: tokensOf(480, i) })),
        ],
        signal: controller.signal,
      });
      setImmediate(() => controller.abort());
      await expect(call).rejects.toBeInstanceOf(AbortError);
      const stats = backend.stats();
      expect(stats.sequences).toBe(1);
      // 'kept' still has its 6 tokens: the next token goes at position 6.
      const next = await backend.doForward({ sequences: [{ id: 'kept', tokens: [3] }] });
      const fresh = await createOnnxBackend({ modelDir: fusedDir, intraOpThreads: 1, binding: 'direct' });
      const expected = await fresh.doForward({ sequences: [{ id: 'x', tokens: [...tokensOf(6, 1), 3] }] });
      let diff = 0;
      next.sequences[0]!.logits.forEach(
        (v, i) => (diff = Math.max(diff, Math.abs(v - expected.sequences[0]!.logits[i]!))),
      );
      expect(diff).toBeLessThan(1e-4);
      await backend.doDispose();
      await fresh.doDispose();
    });
  });
});

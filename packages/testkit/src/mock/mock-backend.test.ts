import { AbortError, SequenceError } from '@gen/backend';
import { describe, expect, it } from 'vitest';
import { createMockBackend } from './mock-backend.js';

describe('createMockBackend', () => {
  it('is deterministic across instances and depends on the seed and on the whole history', async () => {
    const a = createMockBackend({ vocabSize: 32 });
    const b = createMockBackend({ vocabSize: 32 });
    const c = createMockBackend({ vocabSize: 32, seed: 1 });
    const tokens = [3, 1, 4, 1, 5];
    const [ra, rb, rc] = await Promise.all([a, b, c].map((m) => m.doForward({ sequences: [{ id: 's', tokens }] })));
    expect(Array.from(ra!.logits)).toEqual(Array.from(rb!.logits));
    expect(Array.from(ra!.logits)).not.toEqual(Array.from(rc!.logits));
    const other = await a.doForward({ sequences: [{ id: 't', tokens: [9, 1, 4, 1, 5] }] });
    expect(Array.from(other.logits)).not.toEqual(Array.from(ra!.logits));
    for (const v of ra!.logits) expect(v >= -4 && v < 4).toBe(true);
  });

  it('uses a custom logits function of the history (scripted engine tests)', async () => {
    const eos = 1;
    const backend = createMockBackend({
      vocabSize: 8,
      eosTokenIds: [eos],
      // Greedy decoding continues counting up and emits eos once the history has 5 tokens.
      logits: (history, out) => {
        out[history.length >= 5 ? eos : (history.at(-1)! + 1) % 8] = 10;
      },
    });
    let result = await backend.doForward({ sequences: [{ id: 'g', tokens: [2, 3], wantPromptLogits: true }] });
    expect(result.sequences[0]!.promptLogits![0 * 8 + 3]).toBe(10);
    const generated: number[] = [];
    for (;;) {
      const logits = result.sequences[0]!.logits;
      const next = logits.indexOf(Math.max(...logits));
      generated.push(next);
      if (next === eos) break;
      result = await backend.doForward({ sequences: [{ id: 'g', tokens: [next] }] });
    }
    expect(generated).toEqual([4, 5, 6, eos]);
    expect(backend.history('g')).toEqual([2, 3, 4, 5, 6]);
    expect(backend.calls.map((c) => c.sequences[0]!.startPosition)).toEqual([0, 2, 3, 4]);
  });

  it('aborts during its latency with AbortError and records the call', async () => {
    const backend = createMockBackend({ latencyMs: 10_000 });
    const controller = new AbortController();
    const started = Date.now();
    const call = backend.doForward({ sequences: [{ id: 'a', tokens: [1, 2] }], signal: controller.signal });
    setTimeout(() => controller.abort('bye'), 5);
    const error = await call.catch((e: unknown) => e);
    expect(AbortError.isInstance(error)).toBe(true);
    expect((error as AbortError).cause).toBe('bye');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(backend.stats().sequences).toBe(0);
    expect(backend.calls).toHaveLength(1);
  });

  it('injects failures without changing state, and keeps working afterwards', async () => {
    const backend = createMockBackend({
      failure: (call) => (call.index === 1 ? new Error('device lost') : undefined),
    });
    await backend.doForward({ sequences: [{ id: 'a', tokens: [1] }] });
    await expect(backend.doForward({ sequences: [{ id: 'a', tokens: [2] }] })).rejects.toThrow('device lost');
    expect(backend.history('a')).toEqual([1]);
    const ok = await backend.doForward({ sequences: [{ id: 'a', tokens: [2] }] });
    expect(ok.sequences[0]!.length).toBe(2);
  });

  it('leaves every sequence unchanged when a custom logits function throws', async () => {
    let fail = false;
    const backend = createMockBackend({
      logits: (_history, out) => {
        if (fail) throw new Error('boom');
        out[0] = 1;
      },
    });
    await backend.doForward({ sequences: [{ id: 'a', tokens: [1, 2] }] });
    fail = true;
    await expect(
      backend.doForward({
        sequences: [
          { id: 'a', tokens: [3] },
          { id: 'b', tokens: [4] },
        ],
      }),
    ).rejects.toThrow('boom');
    expect(backend.history('a')).toEqual([1, 2]);
    expect(backend.history('b')).toBeUndefined();
  });

  it('has no doFork when fork is disabled, and warns about prompt logits when they are disabled', async () => {
    const backend = createMockBackend({ fork: false, promptLogits: false });
    expect(backend.doFork).toBeUndefined();
    expect(backend.capabilities.fork).toBe(false);
    const result = await backend.doForward({ sequences: [{ id: 'p', tokens: [1, 2], wantPromptLogits: true }] });
    expect(result.warnings).toEqual([{ type: 'unsupported-option', option: 'wantPromptLogits', sequenceId: 'p' }]);
    const forkable = createMockBackend();
    await forkable.doForward({ sequences: [{ id: 'p', tokens: [1] }] });
    await expect(forkable.doFork!('p', 'p')).rejects.toSatisfy(SequenceError.isInstance);
  });

  it('embeds only when asked: a hash of each prefix, pooled, recorded in embedCalls', async () => {
    const plain = createMockBackend();
    expect(plain.doEmbed).toBeUndefined();
    expect(plain.capabilities.embeddings).toBe(false);
    expect(plain.model.hiddenSize).toBeUndefined();

    const backend = createMockBackend({ embeddings: true, hiddenSize: 4 });
    expect(backend.capabilities.embeddings).toBe(true);
    expect(backend.model.hiddenSize).toBe(4);
    const [mean, last] = [
      await backend.doEmbed!({ tokens: [[3, 1, 4]], pooling: 'mean' }),
      await backend.doEmbed!({ tokens: [[3], [3, 1], [3, 1, 4]], pooling: 'last' }),
    ];
    expect(mean[0]).toHaveLength(4);
    for (let d = 0; d < 4; d++) {
      expect(mean[0]![d]).toBeCloseTo((last[0]![d]! + last[1]![d]! + last[2]![d]!) / 3, 6);
    }
    expect([
      ...(
        await createMockBackend({ embeddings: true, hiddenSize: 4 }).doEmbed!({ tokens: [[3, 1, 4]], pooling: 'mean' })
      )[0]!,
    ]).toEqual([...mean[0]!]);
    expect(backend.embedCalls).toEqual([[[3, 1, 4]], [[3], [3, 1], [3, 1, 4]]]);
    expect(backend.stats()).toMatchObject({ sequences: 0, cachedTokens: 0 });
  });
});

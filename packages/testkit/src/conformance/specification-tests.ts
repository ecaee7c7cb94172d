import { BackendDisposedError, type BackendV1 } from '@gen/backend';
import { expect, it } from 'vitest';
import {
  describeTargets,
  expectClose,
  expectErrorClass,
  rejectionOf,
  rowOf,
  sampleTokens,
  withBackend,
} from './helpers.js';
import type { BackendConformanceOptions } from './options.js';

function isTokenId(value: unknown, vocabSize: number): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < vocabSize;
}

/**
 * The shape of the contract: the backend describes itself consistently, returns one logits row per input in
 * input order (row views of one `[n, vocab]` array), prompt logits or an `unsupported-option` warning, stats that
 * track live sequences, caller-owned results, `logitsBuffer` honoured exactly where advertised, and
 * `BackendDisposedError` after `doDispose`.
 */
export function specificationTests(options: BackendConformanceOptions): void {
  describeTargets(options, 'specification', (target) => {
    it('describes itself: version, ids, model and capabilities', async () => {
      await withBackend(target, async (backend: BackendV1) => {
        expect(backend.specificationVersion).toBe('v1');
        expect(typeof backend.backendId).toBe('string');
        expect(backend.backendId.length).toBeGreaterThan(0);
        const { model, capabilities } = backend;
        expect(Number.isInteger(model.vocabSize) && model.vocabSize > 0, 'model.vocabSize').toBe(true);
        expect(Number.isInteger(model.maxPositions) && model.maxPositions > 0, 'model.maxPositions').toBe(true);
        expect(Array.isArray(model.eosTokenIds)).toBe(true);
        for (const id of model.eosTokenIds) expect(isTokenId(id, model.vocabSize), `eos id ${id}`).toBe(true);
        if (model.bosTokenId !== undefined) expect(isTokenId(model.bosTokenId, model.vocabSize)).toBe(true);
        expect(typeof model.architecture).toBe('string');
        expect(typeof model.modelType).toBe('string');
        expect(typeof model.dtype).toBe('string');
        expect(Number.isInteger(capabilities.maxBatchSize) && capabilities.maxBatchSize > 0).toBe(true);
        expect(typeof capabilities.device).toBe('string');
        expect(typeof capabilities.promptLogits).toBe('boolean');
        expect(capabilities.fork, 'capabilities.fork must equal typeof doFork === "function"').toBe(
          typeof backend.doFork === 'function',
        );
        expect(
          capabilities.embeddings ?? false,
          'capabilities.embeddings (absent = false) must equal typeof doEmbed === "function"',
        ).toBe(typeof backend.doEmbed === 'function');
        expect(Array.isArray(backend.warnings)).toBe(true);
        expect(backend.stats()).toMatchObject({ sequences: 0, cachedTokens: 0 });
      });
    });

    it('returns one finite logits row per sequence, in input order, as views of one [n, vocab] array', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const count = Math.min(3, backend.capabilities.maxBatchSize);
        const inputs = Array.from({ length: count }, (_, i) => ({
          id: `spec-${i}`,
          tokens: sampleTokens(2 + i, vocab, 100 + i),
        }));
        const result = await backend.doForward({ sequences: inputs });
        expect(result.logits).toBeInstanceOf(Float32Array);
        expect(result.logits.length).toBe(count * vocab);
        expect(result.sequences.map((s) => s.id)).toEqual(inputs.map((s) => s.id));
        expect(Array.isArray(result.warnings)).toBe(true);
        for (let i = 0; i < count; i++) {
          const sequence = result.sequences[i]!;
          expect(sequence.logits).toBeInstanceOf(Float32Array);
          expect(sequence.logits.length).toBe(vocab);
          expect(sequence.logits.buffer, 'row view of result.logits').toBe(result.logits.buffer);
          expect(sequence.logits.byteOffset - result.logits.byteOffset).toBe(i * vocab * 4);
          expect(sequence.length).toBe(inputs[i]!.tokens.length);
          expect(sequence.promptLogits).toBeUndefined();
          expect(sequence.logits.every(Number.isFinite), 'finite logits').toBe(true);
        }
        // Different histories give different distributions (a backend returning constants fails here).
        if (count > 1) {
          expect(Array.from(result.sequences[0]!.logits)).not.toEqual(Array.from(result.sequences[count - 1]!.logits));
        }
      });
    });

    it('returns prompt logits where asked (last row = next-token logits), or warns', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const tokens = sampleTokens(5, vocab, 7);
        const result = await backend.doForward({
          sequences: [
            { id: 'with', tokens, wantPromptLogits: true },
            { id: 'without', tokens: tokens.slice(0, 2) },
          ].slice(0, backend.capabilities.maxBatchSize),
        });
        const sequence = result.sequences[0]!;
        if (backend.capabilities.promptLogits) {
          expect(sequence.promptLogits).toBeInstanceOf(Float32Array);
          expect(sequence.promptLogits!.length).toBe(tokens.length * vocab);
          expect(Array.from(rowOf(sequence.promptLogits!, tokens.length - 1, vocab))).toEqual(
            Array.from(sequence.logits),
          );
          expect(result.warnings).toEqual([]);
        } else {
          expect(sequence.promptLogits).toBeUndefined();
          expect(result.warnings).toContainEqual(
            expect.objectContaining({ type: 'unsupported-option', option: 'wantPromptLogits' }),
          );
        }
        expect(result.sequences[1]?.promptLogits).toBeUndefined();
      });
    });

    it('reports live sequences and cached tokens in stats()', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const baseline = backend.stats();
        await backend.doForward({ sequences: [{ id: 'a', tokens: sampleTokens(3, vocab, 1) }] });
        await backend.doForward({ sequences: [{ id: 'b', tokens: sampleTokens(5, vocab, 2) }] });
        await backend.doForward({ sequences: [{ id: 'a', tokens: sampleTokens(1, vocab, 3) }] });
        const stats = backend.stats();
        expect(stats.sequences).toBe(2);
        expect(stats.cachedTokens).toBe(9);
        if (baseline.kvCacheBytes !== undefined) expect(stats.kvCacheBytes).toBeGreaterThan(baseline.kvCacheBytes);
      });
    });

    it('hands results to the caller: later calls neither reuse nor modify returned arrays', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const tokens = sampleTokens(4, vocab, 11);
        const first = await backend.doForward({ sequences: [{ id: 'x', tokens }] });
        const snapshot = Float32Array.from(first.logits);
        first.logits.fill(12345); // processors modify logits in place
        const second = await backend.doForward({ sequences: [{ id: 'y', tokens }] });
        expectClose(second.logits, snapshot, options.consistencyTolerance ?? 1e-4, 'same history, new id');
        expect(second.logits.buffer).not.toBe(first.logits.buffer);
        expect(first.logits.every((v) => v === 12345)).toBe(true);
      });
    });

    it('writes next-token logits into a long enough logitsBuffer with capabilities.logitsBuffer, else ignores it', async () => {
      await withBackend(target, async (backend) => {
        const vocab = backend.model.vocabSize;
        const count = Math.min(2, backend.capabilities.maxBatchSize);
        const inputs = (prefix: string) =>
          Array.from({ length: count }, (_, i) => ({
            id: `${prefix}-${i}`,
            tokens: sampleTokens(3 + i, vocab, 40 + i),
          }));
        const reference = await backend.doForward({ sequences: inputs('fresh') });
        const tolerance = options.consistencyTolerance ?? 1e-4;
        // One row longer than needed, filled with a marker the backend must not leave or write past.
        const buffer = new Float32Array((count + 1) * vocab).fill(-7777);
        const result = await backend.doForward({ sequences: inputs('buffered'), logitsBuffer: buffer });
        expectClose(result.logits, reference.logits, tolerance, 'logits with a logitsBuffer');
        const short = new Float32Array(count * vocab - 1).fill(-7777);
        const unbuffered = await backend.doForward({ sequences: inputs('short'), logitsBuffer: short });
        expect(unbuffered.logits.buffer, 'a short logitsBuffer is not used').not.toBe(short.buffer);
        expect(
          short.every((v) => v === -7777),
          'a short logitsBuffer is left untouched',
        ).toBe(true);
        expectClose(unbuffered.logits, reference.logits, tolerance, 'logits with a short logitsBuffer');
        if (backend.capabilities.logitsBuffer === true) {
          expect(result.logits.buffer, 'logits are a view of logitsBuffer').toBe(buffer.buffer);
          expect(result.logits.byteOffset).toBe(buffer.byteOffset);
          expect(result.logits.length).toBe(count * vocab);
          for (let i = 0; i < count; i++) {
            const row = result.sequences[i]!.logits;
            expect(row.buffer).toBe(buffer.buffer);
            expect(row.byteOffset - buffer.byteOffset).toBe(i * vocab * 4);
          }
          expect(
            buffer.subarray(count * vocab).every((v) => v === -7777),
            'nothing written past the rows',
          ).toBe(true);
        } else {
          expect(result.logits.buffer, 'without the capability, fresh arrays').not.toBe(buffer.buffer);
          expect(
            buffer.every((v) => v === -7777),
            'without the capability, logitsBuffer is left untouched',
          ).toBe(true);
        }
      });
    });

    it('rejects every call after doDispose with BackendDisposedError; doDispose is idempotent', async () => {
      const backend = await target.createBackend();
      await backend.doForward({ sequences: [{ id: 'a', tokens: [0] }] });
      await backend.doDispose();
      await backend.doDispose();
      expectErrorClass(
        await rejectionOf(backend.doForward({ sequences: [{ id: 'a', tokens: [0] }] })),
        BackendDisposedError.isInstance,
        'BackendDisposedError',
      );
      expectErrorClass(
        await rejectionOf(backend.doRelease(['a'])),
        BackendDisposedError.isInstance,
        'BackendDisposedError',
      );
    });
  });
}

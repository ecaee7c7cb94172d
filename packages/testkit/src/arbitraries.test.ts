import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import {
  forwardBatchArbitrary,
  generationRequestsArbitrary,
  tokenIdArbitrary,
  tokenSequenceArbitrary,
} from './arbitraries.js';
import { createMockBackend } from './mock/mock-backend.js';

describe('arbitraries', () => {
  test.prop([tokenIdArbitrary(10)])('token ids are in range', (token) => {
    expect(Number.isInteger(token) && token >= 0 && token < 10).toBe(true);
  });

  test.prop([tokenSequenceArbitrary({ vocabSize: 5, minLength: 2, maxLength: 4 })])(
    'token sequences respect their length bounds',
    (tokens) => {
      expect(tokens.length).toBeGreaterThanOrEqual(2);
      expect(tokens.length).toBeLessThanOrEqual(4);
      expect(tokens.every((t) => t >= 0 && t < 5)).toBe(true);
    },
  );

  test.prop([forwardBatchArbitrary({ vocabSize: 7, maxBatchSize: 3, maxLength: 5 })])(
    'forward batches have unique ids and valid tokens, and the mock accepts them',
    async (batch) => {
      expect(new Set(batch.map((s) => s.id)).size).toBe(batch.length);
      expect(batch.length).toBeLessThanOrEqual(3);
      const result = await createMockBackend({ vocabSize: 7, maxBatchSize: 3 }).doForward({ sequences: batch });
      expect(result.sequences.map((s) => s.length)).toEqual(batch.map((s) => s.tokens.length));
    },
  );

  test.prop([generationRequestsArbitrary({ vocabSize: 50, maxRequests: 4, maxNewTokens: 3, maxArrivalStep: 2 })])(
    'generation requests respect their bounds',
    (requests) => {
      expect(requests.length).toBeGreaterThanOrEqual(1);
      expect(requests.length).toBeLessThanOrEqual(4);
      expect(new Set(requests.map((r) => r.id)).size).toBe(requests.length);
      for (const r of requests) {
        expect(r.maxNewTokens).toBeGreaterThanOrEqual(1);
        expect(r.maxNewTokens).toBeLessThanOrEqual(3);
        expect(r.arrivalStep).toBeLessThanOrEqual(2);
        expect(r.prompt.length).toBeGreaterThanOrEqual(1);
      }
    },
  );

  test('the arbitraries are usable with plain fast-check', () => {
    const samples = fc.sample(forwardBatchArbitrary({ vocabSize: 3 }), { numRuns: 20, seed: 1 });
    expect(samples.some((b) => b.length > 1)).toBe(true);
    expect(samples.some((b) => b.some((s) => s.wantPromptLogits === true))).toBe(true);
  });
});

import { describe, expect, it } from 'vitest';
import { test, fc } from '@fast-check/vitest';

import { statelessProcessor, type LogitsProcessor, type SequenceProcessor } from './logits-processor.js';
import { normalizeSamplingParameters, type SamplingParameters } from './parameters.js';
import { applyRepetitionPenalty } from './processors.js';
import { builtinProcessors, isBuiltinState } from './processors/builtin.js';
import { createSampler, sampleBatch, type SamplerOptions } from './sampler.js';
import { SequenceState } from './sequence-state.js';
import { GreenlistCache } from './watermark.js';

/** Bans one token id. */
const ban = (id: number): LogitsProcessor =>
  statelessProcessor('ban', true, (logits) => {
    logits[id] = -Infinity;
  });

/** Copies the row it is applied to (what the processors before it left), then does nothing. */
function recorder(): { processor: LogitsProcessor; seen: Float32Array[] } {
  const seen: Float32Array[] = [];
  return { processor: statelessProcessor('recorder', false, (logits) => seen.push(Float32Array.from(logits))), seen };
}

/**
 * A processor with real per-sequence state: the number of tokens accepted since its state was created. It forces
 * the token `count % vocabSize`, so the state shows in what is sampled.
 */
class CountingState implements SequenceProcessor {
  constructor(public count = 0) {}
  apply(logits: Float32Array): void {
    logits[this.count % logits.length] = 1000;
  }
  accept(): void {
    this.count++;
  }
  fork(): CountingState {
    return new CountingState(this.count);
  }
}
function counting(): { processor: LogitsProcessor; created: CountingState[] } {
  const created: CountingState[] = [];
  const processor: LogitsProcessor = {
    name: 'counting',
    changesArgmax: true,
    createState: () => {
      const state = new CountingState();
      created.push(state);
      return state;
    },
  };
  return { processor, created };
}

const row = (...values: number[]) => Float32Array.from(values);

describe('logits processors in the fused sampler', () => {
  it('applies SamplerOptions.processors after the built-ins, on the penalized row', () => {
    const { processor: record, seen } = recorder();
    // history [0], repetition penalty 2: [3, 2, 1, 0] -> [1.5, 2, 1, 0]; the ban of 1 then leaves 0 the best
    const options: SamplerOptions = { vocabSize: 4, processors: [record, ban(1)] };
    const sampler = createSampler({ repetitionPenalty: 2 }, options);
    const sequence = sampler.createSequence([0]);
    expect(sequence.processors).toHaveLength(3);
    expect(isBuiltinState(sequence.processors[0]!)).toBe(true);
    expect(isBuiltinState(sequence.processors[1]!)).toBe(false);
    expect(sampler.sample(row(3, 2, 1, 0), sequence).tokenId).toBe(0);
    expect([...seen[0]!]).toEqual([1.5, 2, 1, 0]);
    const unbanned = createSampler({ repetitionPenalty: 2 }, { vocabSize: 4 });
    expect(unbanned.sample(row(3, 2, 1, 0), unbanned.createSequence([0])).tokenId).toBe(1);
    // the extra processor has the last word: over the logit bias (and min_new_tokens' EOS ban)
    const last = createSampler({ minNewTokens: 5, logitBias: { 2: 50 } }, { vocabSize: 4, eosTokenIds: [3] });
    const masked = createSampler(
      { minNewTokens: 5, logitBias: { 2: 50 } },
      { vocabSize: 4, eosTokenIds: [3], processors: [ban(2)] },
    );
    expect(last.sample(row(0, 1, 0, 9), last.createSequence()).tokenId).toBe(2);
    expect(masked.sample(row(0, 1, 0, 9), masked.createSequence()).tokenId).toBe(1);
  });

  test.prop(
    [
      fc.array(fc.integer({ min: -40, max: 40 }), { minLength: 8, maxLength: 8 }),
      fc.array(fc.integer({ min: 0, max: 7 }), { maxLength: 6 }),
      fc.integer({ min: 0, max: 7 }),
      fc.boolean(),
    ],
    { numRuns: 100, seed: 17 },
  )('a ban after the repetition penalty matches the dense reference chain', (values, history, banned, doSample) => {
    const logits = Float32Array.from(values, (v) => v / 4);
    const parameters: SamplingParameters = { repetitionPenalty: 1.3, topNTokens: 8, seed: 3, doSample };
    const sampler = createSampler(parameters, { vocabSize: 8, maxTopNTokens: 8, processors: [ban(banned)] });
    const result = sampler.sample(Float32Array.from(logits), sampler.createSequence(history));
    const expected = Float32Array.from(logits);
    applyRepetitionPenalty(expected, history, 1.3);
    expected[banned] = -Infinity;
    expect(result.tokenId).not.toBe(banned);
    if (!doSample) {
      let best = 0;
      for (let i = 1; i < 8; i++) if (expected[i]! > expected[best]!) best = i;
      expect(result.tokenId).toBe(best);
    }
    expect(result.topTokens.map((t) => t.id)).not.toContain(banned);
  });

  it('keeps per-sequence state: advanced on accept, copied on fork, one state per sequence', () => {
    const { processor, created } = counting();
    const sampler = createSampler({ temperature: 0.7, seed: 5 }, { vocabSize: 6, processors: [processor] });
    const sequence = sampler.createSequence([5]);
    expect(created).toHaveLength(1);
    const flat = () => new Float32Array(6);
    const tokens: number[] = [];
    for (let step = 0; step < 2; step++) {
      const { tokenId } = sampler.sample(flat(), sequence);
      sequence.accept(tokenId);
      tokens.push(tokenId);
    }
    expect(tokens).toEqual([0, 1]);
    const fork = sequence.fork(1);
    expect(created).toHaveLength(1); // forked, not created anew
    expect(fork.processors[0]).not.toBe(sequence.processors[0]);
    expect((fork.processors[0] as CountingState).count).toBe(2);
    for (let step = 0; step < 2; step++) sequence.accept(sampler.sample(flat(), sequence).tokenId);
    expect((sequence.processors[0] as CountingState).count).toBe(4);
    expect((fork.processors[0] as CountingState).count).toBe(2);
    expect(sampler.sample(flat(), fork).tokenId).toBe(2);
    expect(sampler.sample(flat(), sequence).tokenId).toBe(4);
    // a batch of the original and its fork: each row uses its own state
    const batch = new Float32Array(12);
    const [a, b] = sampleBatch(batch, 6, [
      { sampler, sequence: fork },
      { sampler, sequence },
    ]);
    expect([a!.tokenId, b!.tokenId]).toEqual([2, 4]);
    expect(created).toHaveLength(1);
  });

  it('applies the built-ins (and the extra processors) to a sequence made with new SequenceState', () => {
    const parameters: SamplingParameters = { repetitionPenalty: 2, suppressTokens: [2], noRepeatNgramSize: 2 };
    const plain = createSampler(parameters, { vocabSize: 5 });
    const logits = row(3, 2, 9, 1, 1.9);
    // history [4, 0, 4]: penalty -> [1.5, 2, 9, 1, 0.95]; suppress 2; the bigram (4, 0) bans 0 -> 1
    const expected = plain.sample(Float32Array.from(logits), plain.createSequence([4, 0, 4])).tokenId;
    expect(expected).toBe(1);
    const bare = new SequenceState([4, 0, 4]);
    expect(plain.sample(Float32Array.from(logits), bare).tokenId).toBe(expected);
    expect(bare.processors).toHaveLength(3);
    expect(bare.attachedBy).toBe(plain);
    // attached once: sampling again does not add them twice
    plain.sample(Float32Array.from(logits), bare);
    expect(bare.processors).toHaveLength(3);

    const { processor, created } = counting();
    const withExtra = createSampler(parameters, { vocabSize: 5, processors: [processor, ban(1)] });
    const rows = [new SequenceState([4, 0, 4]), new SequenceState([4, 0, 4], 1)];
    const forkedBare = rows[0]!.fork(2); // forked before any processor was attached: gets its own on first sample
    const results = sampleBatch(new Float32Array(15), 5, [
      ...rows.map((sequence) => ({ sampler: withExtra, sequence })),
      { sampler: withExtra, sequence: forkedBare },
    ]);
    // the counting processor runs after the built-ins: it forces id 0 over no_repeat_ngram's ban of it
    for (const result of results) expect(result.tokenId).toBe(0);
    expect(created).toHaveLength(3);
    expect(rows[0]!.processors.map((state) => isBuiltinState(state))).toEqual([true, true, true, false, false]);
  });

  it('a sequence sampled by another sampler gets its built-ins and keeps its own extra processors', () => {
    const first = createSampler({ repetitionPenalty: 3 }, { vocabSize: 4, processors: [ban(3)] });
    const second = createSampler({ suppressTokens: [0] }, { vocabSize: 4, processors: [ban(1)] });
    const sequence = first.createSequence([1]);
    const banState = sequence.processors[1];
    // second: suppress 0, then first's ban of 3 (not second's ban of 1, not first's penalty of 1) -> 1
    expect(second.sample(row(5, 4, 2, 9), sequence).tokenId).toBe(1);
    expect(sequence.processors).toHaveLength(2);
    expect(sequence.processors[1]).toBe(banState);
    expect(sequence.attachedBy).toBe(second);
    // first again: its penalty (4 / 3 < 2) and its ban, no suppression -> 0
    expect(first.sample(row(5, 4, 2, 9), sequence).tokenId).toBe(0);
    expect(sequence.processors[1]).toBe(banState);
  });

  it('keeps the built-ins of hand-attached processors, without duplicating any', () => {
    const sampler = createSampler({ suppressTokens: [3] }, { vocabSize: 4 });
    const sequence = sampler.createSequence();
    sequence.attachProcessors([...sequence.processors, ban(2).createState(sequence)]);
    expect(sequence.attachedBy).toBeUndefined();
    expect(sampler.sample(row(0, 1, 8, 9), sequence).tokenId).toBe(1);
    expect(sequence.processors).toHaveLength(2);
  });

  it('lists the built-ins the parameters turn on, in TGI order, all changing the argmax', () => {
    const normalized = normalizeSamplingParameters(
      {
        watermark: true,
        repetitionPenalty: 1.2,
        frequencyPenalty: 0.5,
        logitBias: { 1: 2 },
        noRepeatNgramSize: 3,
        minNewTokens: 2,
        suppressTokens: [4],
        allowedTokens: [1, 2, 3],
      },
      { vocabSize: 8 },
    );
    const all = builtinProcessors(normalized, {
      vocabSize: 8,
      eosTokenIds: [7],
      greenlists: new GreenlistCache({ vocabSize: 8, gamma: normalized.watermark!.gamma }),
    });
    expect(all.map((p) => p.name)).toEqual([
      'watermark',
      'repetition_penalty',
      'frequency_presence_penalty',
      'logit_bias',
      'no_repeat_ngram',
      'min_new_tokens',
      'suppress_tokens',
      'allowed_tokens',
    ]);
    expect(all.every((p) => p.changesArgmax)).toBe(true);
    const none = builtinProcessors(normalizeSamplingParameters({}, { vocabSize: 8 }), {
      vocabSize: 8,
      eosTokenIds: [7],
      greenlists: undefined,
    });
    expect(none).toEqual([]);
  });
});

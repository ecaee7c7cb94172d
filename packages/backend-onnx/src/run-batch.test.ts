import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { GraphSignature } from './graph-signature.js';
import { CacheGroup } from './kv-group.js';
import { planRuns, reusableGroup, type RowInput, type RunContext } from './run-batch.js';

const signature = { attentionMask: { name: 'attention_mask', type: 'int64' } };
const context = {
  signature: signature as unknown as GraphSignature,
  vocabSize: 100,
  maxPositions: 512,
  paddedBatches: true,
} as RunContext;

function row(index: number, tokens: number, start = 0): RowInput {
  return { index, id: `s${index}`, tokens: new Int32Array(tokens), state: undefined, start, wantPromptLogits: false };
}

const ids = (runs: RowInput[][]) => runs.map((run) => run.map((r) => r.index));

describe('planRuns', () => {
  it('runs decode steps and short prefills together, a long prefill on its own', () => {
    expect(ids(planRuns([row(0, 1), row(1, 9), row(2, 1), row(3, 5)], context, 32))).toEqual([[1, 3, 0, 2]]);
    expect(ids(planRuns([row(0, 1), row(1, 200), row(2, 1)], context, 32))).toEqual([[1], [0, 2]]);
    expect(ids(planRuns([row(0, 100), row(1, 90), row(2, 1)], context, 32))).toEqual([[0, 1], [2]]);
  });

  it('respects the run batch limit, the position limit and the logits budget', () => {
    expect(ids(planRuns([row(0, 1), row(1, 1), row(2, 1)], context, 2))).toEqual([[0, 1], [2]]);
    expect(ids(planRuns([row(0, 10, 500), row(1, 10)], context, 32))).toEqual([[0, 1]]);
    expect(ids(planRuns([row(0, 1, 505), row(1, 9)], context, 32))).toEqual([[1], [0]]);
    const wide = { ...context, vocabSize: 151936 } as RunContext;
    const prompts = [0, 1, 2, 3].map((i) => row(i, 300));
    expect(ids(planRuns(prompts, wide, 32))).toEqual([[0], [1], [2], [3]]);
  });

  it('runs every sequence alone when the graph cannot pad', () => {
    const noMask = { ...context, paddedBatches: false };
    expect(ids(planRuns([row(0, 1), row(1, 1)], noMask, 32))).toEqual([[0], [1]]);
  });
});

describe('reusableGroup', () => {
  const tensor = new ort.Tensor('float32', new Float32Array(0), [2, 1, 0, 1]);
  const group = new CacheGroup([tensor], 2, 10, new Uint8Array(20), 0);
  const member = (index: number, groupRow: number, length: number, g = group): RowInput => ({
    ...row(index, 1, length),
    state: { length, group: g, row: groupRow },
  });

  it('feeds the previous step’s caches directly when the batch is exactly the group’s rows, in any order', () => {
    expect(reusableGroup([member(0, 1, 10), member(1, 0, 8)], context, 1)).toBe(group);
  });

  it('compacts when rows are missing, foreign, repeated (forks), new, or the group holds many gaps', () => {
    const other = new CacheGroup([tensor], 1, 10, new Uint8Array(10), 0);
    expect(reusableGroup([member(0, 0, 10)], context, 1)).toBeUndefined();
    expect(reusableGroup([member(0, 0, 10), member(1, 0, 10, other)], context, 1)).toBeUndefined();
    expect(reusableGroup([member(0, 0, 10), member(1, 0, 10)], context, 1)).toBeUndefined();
    expect(reusableGroup([member(0, 0, 10), row(1, 1)], context, 1)).toBeUndefined();
    const gappy = new CacheGroup([tensor], 2, 60, new Uint8Array(120), 0);
    expect(reusableGroup([member(0, 0, 10, gappy), member(1, 1, 9, gappy)], context, 1)).toBeUndefined();
  });
});

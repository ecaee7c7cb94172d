import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  applyMinP,
  applyNoRepeatNgram,
  applyRepetitionPenalty,
  applyTemperature,
  applyTopK,
  applyTopP,
  applyTypicalP,
} from './processors.js';

interface GoldenCase {
  processor: string;
  params: Record<string, number>;
  input_ids: number[];
  logits: number[];
  expected: (number | null)[];
}

const golden = JSON.parse(readFileSync(new URL('../fixtures/sampling-golden.json', import.meta.url), 'utf8')) as {
  cases: GoldenCase[];
};

function run(testCase: GoldenCase): Float32Array {
  const row = Float32Array.from(testCase.logits);
  const p = testCase.params;
  switch (testCase.processor) {
    case 'temperature':
      applyTemperature(row, p.temperature!);
      break;
    case 'top_k':
      applyTopK(row, p.top_k!);
      break;
    case 'top_p':
      applyTopP(row, p.top_p!);
      break;
    case 'min_p':
      applyMinP(row, p.min_p!);
      break;
    case 'typical_p':
      applyTypicalP(row, p.typical_p!);
      break;
    case 'repetition_penalty':
      applyRepetitionPenalty(row, testCase.input_ids, p.repetition_penalty!);
      break;
    case 'no_repeat_ngram':
      applyNoRepeatNgram(row, testCase.input_ids, p.no_repeat_ngram_size!);
      break;
    default:
      throw new Error(`no processor for golden case ${testCase.processor}`);
  }
  return row;
}

describe('golden vectors from transformers', () => {
  it('has cases for every processor', () => {
    expect(new Set(golden.cases.map((c) => c.processor)).size).toBe(7);
    expect(golden.cases.length).toBeGreaterThan(150);
  });

  for (const [index, testCase] of golden.cases.entries()) {
    it(`${testCase.processor} ${JSON.stringify(testCase.params)} V=${testCase.logits.length} #${index}`, () => {
      const row = run(testCase);
      for (let i = 0; i < row.length; i++) {
        const expected = testCase.expected[i];
        const actual = row[i]!;
        if (expected === null || expected === undefined) {
          expect(actual, `index ${i}`).toBe(-Infinity);
        } else {
          expect(Math.abs(actual - expected), `index ${i}: ${actual} vs ${expected}`).toBeLessThanOrEqual(
            1e-6 * Math.max(1, Math.abs(expected)),
          );
        }
      }
    });
  }
});

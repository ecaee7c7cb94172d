import { describe, expect, it } from 'vitest';
import { kv, type GgufValue } from './metadata.js';
import { endOfGenerationIds } from './tokens.js';

describe('endOfGenerationIds', () => {
  it('eos, eot, eom, then tokens llama.cpp knows by name; out-of-range ids left out; no duplicates', () => {
    const tokens = ['a', '<|end_of_text|>', '<|eot_id|>', 'b', '<|eom_id|>', '<|im_end|>'];
    const metadata = new Map<string, GgufValue>([
      ['tokenizer.ggml.tokens', kv.array('string', tokens)],
      ['tokenizer.ggml.eos_token_id', kv.uint32(2)],
      ['tokenizer.ggml.eot_token_id', kv.uint32(99)],
      ['tokenizer.ggml.eom_token_id', kv.uint32(4)],
    ]);
    expect(endOfGenerationIds(metadata)).toEqual([2, 4, 1, 5]);
    expect(endOfGenerationIds(new Map())).toEqual([]);
  });
});

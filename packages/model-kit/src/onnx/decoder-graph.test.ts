import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ModelConfig, PresetName } from '../model-config.js';
import { loadOnnxDecoder, maxAbsDiff, type StepResult } from '../testing/onnx-decoder.js';
import { loadReferenceModel } from '../testing/reference-forward.js';
import { writeModelDir } from '../write-model-dir.js';

type Decoder = Awaited<ReturnType<typeof loadOnnxDecoder>>;

/** Deterministic token ids below `limit`. */
const tokens = (count: number, salt: number, limit: number) =>
  Array.from({ length: count }, (_, i) => (i * 131 + salt * 977 + 7) % limit);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const argmax = (values: Float32Array) => values.reduce((best, v, i, all) => (v > all[best]! ? i : best), 0);

const tolerance = 1e-4;

async function prefillLogits(decoder: Decoder, ids: number[]): Promise<StepResult> {
  return decoder.step({
    inputIds: [ids],
    attentionMask: [ids.map(() => 1)],
    positionIds: [range(0, ids.length)],
  });
}

/** Prefill `ids`, then feed each of `next` one at a time; returns the logits after every token of `next`. */
async function decodeSingle(decoder: Decoder, ids: number[], next: number[]): Promise<Float32Array[]> {
  let result = await prefillLogits(decoder, ids);
  const out = [result.at(0, ids.length - 1).slice()];
  for (const [k, token] of next.entries()) {
    const length = ids.length + k + 1;
    result = await decoder.step({
      inputIds: [[token]],
      attentionMask: [range(0, length).map(() => 1)],
      positionIds: [[length - 1]],
      cache: result.cache,
    });
    out.push(result.at(0, 0).slice());
  }
  return out;
}

/**
 * `spread`: whether the logits-spread check applies (gemma2's final softcapping at 3 bounds the logits to +-3).
 */
const cases: Array<{ name: string; dir: () => Promise<string>; spread?: boolean }> = [
  { name: 'tiny (llama)', dir: () => fresh({ preset: 'tiny' }) },
  { name: 'tiny-qwen2 (biases, tied)', dir: () => fresh({ preset: 'tiny-qwen2' }) },
  {
    name: 'llama with attention/MLP biases, head_dim != hidden/heads, 1 KV head, bfloat16',
    dir: () =>
      fresh({
        preset: 'tiny',
        dtype: 'bfloat16',
        config: { hiddenSize: 48, headDim: 16, numKeyValueHeads: 1, attentionBias: true, mlpBias: true },
      }),
  },
  {
    name: 'mistral with a sliding window of 5, float16',
    dir: () =>
      fresh({
        preset: 'tiny',
        dtype: 'float16',
        config: { architecture: 'mistral', slidingWindow: 5, numHiddenLayers: 3 },
      }),
  },
  { name: 'tiny-qwen3 (q/k norms, head_dim 32 != hidden / heads)', dir: () => fresh({ preset: 'tiny-qwen3' }) },
  {
    name: 'tiny-gemma2 (scaled embedding, (1 + w) sandwich norms, GELU-tanh, softcaps, sliding layers)',
    dir: () => fresh({ preset: 'tiny-gemma2' }),
    spread: false,
  },
  {
    name: 'tiny-gemma3 ((1 + w) q/k norms, local rotary base on sliding layers, linear scaling on full ones)',
    dir: () => fresh({ preset: 'tiny-gemma3' }),
  },
  {
    name: 'tiny-phi3 (packed projections, partial rotary, longrope below its original context)',
    dir: () => fresh({ preset: 'tiny-phi3' }),
  },
  {
    name: 'llama with yarn scaling (factor 4 over an original context of 64; attention factor on cos / sin)',
    dir: () =>
      fresh({
        preset: 'tiny',
        config: { ropeScaling: { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 64 } },
      }),
  },
];

/** A freshly written directory (never the cache: these tests check the generator itself). */
async function fresh(options: {
  preset: PresetName;
  dtype?: 'float16' | 'bfloat16';
  config?: Partial<ModelConfig>;
}): Promise<string> {
  const outDir = await mkdtemp(join(tmpdir(), 'mk-variant-'));
  await writeModelDir({ ...options, seed: 3, outDir, onnxGraphStyle: 'standard' });
  return outDir;
}

describe.each(cases)('ONNX decoder: $name', ({ dir: makeDir, spread }) => {
  let dir: string;
  let decoder: Decoder;
  let vocab: number;
  beforeAll(async () => {
    dir = await makeDir();
    decoder = await loadOnnxDecoder(dir);
    vocab = (JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
  });

  it('matches an independent float64 forward pass from the safetensors weights', async () => {
    const ids = tokens(12, 1, vocab);
    const onnx = await prefillLogits(decoder, ids);
    const reference = loadReferenceModel(dir).forward(ids);
    let worst = 0;
    for (let s = 0; s < ids.length; s++) worst = Math.max(worst, maxAbsDiff(onnx.at(0, s), reference[s]!));
    expect(worst).toBeLessThan(tolerance);
  });

  it('gives the same logits for a full prefill as for a short prefill plus decode steps (present -> past)', async () => {
    const ids = tokens(14, 2, vocab);
    const full = await prefillLogits(decoder, ids);
    const stepwise = await decodeSingle(decoder, ids.slice(0, 5), ids.slice(5));
    for (const [k, logits] of stepwise.entries()) expect(maxAbsDiff(logits, full.at(0, 4 + k))).toBeLessThan(tolerance);
    // Chunked prefill: 6 + 8 tokens.
    const first = await prefillLogits(decoder, ids.slice(0, 6));
    const second = await decoder.step({
      inputIds: [ids.slice(6)],
      attentionMask: [ids.map(() => 1)],
      positionIds: [range(6, 14)],
      cache: first.cache,
    });
    for (let s = 0; s < 8; s++) expect(maxAbsDiff(second.at(0, s), full.at(0, 6 + s))).toBeLessThan(tolerance);
    expect(second.cache[0]!.dims[2]).toBe(14);
  });

  it('gives each left-padded batch row the logits of its unpadded single run, through decode steps', async () => {
    const rows = [tokens(7, 3, vocab), tokens(3, 4, vocab), tokens(10, 5, vocab)];
    const width = Math.max(...rows.map((r) => r.length));
    const pad = 0;
    const padded = rows.map((r) => [...new Array<number>(width - r.length).fill(pad), ...r]);
    let mask = rows.map((r) => [...new Array<number>(width - r.length).fill(0), ...r.map(() => 1)]);
    // transformers: position_ids = cumsum(mask) - 1, with 1 where masked.
    const positions = rows.map((r) => [...new Array<number>(width - r.length).fill(1), ...range(0, r.length)]);
    let batch = await decoder.step({ inputIds: padded, attentionMask: mask, positionIds: positions });
    const steps = 4;
    const singles = await Promise.all(
      rows.map(async (r) => {
        const first = await prefillLogits(decoder, r);
        // Greedy continuation of the single run, fed identically to the batch.
        const next: number[] = [];
        let logits = first.at(0, r.length - 1);
        const all = [first];
        for (let k = 0; k < steps; k++) {
          next.push(argmax(logits));
          const length = r.length + k + 1;
          const step = await decoder.step({
            inputIds: [[next[k]!]],
            attentionMask: [range(0, length).map(() => 1)],
            positionIds: [[length - 1]],
            cache: all[all.length - 1]!.cache,
          });
          all.push(step);
          logits = step.at(0, 0);
        }
        return { prefill: first, steps: all.slice(1), next };
      }),
    );
    for (const [b, r] of rows.entries()) {
      for (let s = 0; s < r.length; s++) {
        expect(maxAbsDiff(batch.at(b, width - r.length + s), singles[b]!.prefill.at(0, s))).toBeLessThan(tolerance);
      }
    }
    for (let k = 0; k < steps; k++) {
      mask = mask.map((m) => [...m, 1]);
      batch = await decoder.step({
        inputIds: rows.map((_, b) => [singles[b]!.next[k]!]),
        attentionMask: mask,
        positionIds: rows.map((r) => [r.length + k]),
        cache: batch.cache,
      });
      for (const b of rows.keys()) {
        expect(maxAbsDiff(batch.at(b, 0), singles[b]!.steps[k]!.at(0, 0))).toBeLessThan(tolerance);
      }
    }
  });

  it('handles right padding: masked gaps in the middle of the cache during decode', async () => {
    const rows = [tokens(4, 6, vocab), tokens(9, 7, vocab)];
    const width = 9;
    const padded = rows.map((r) => [...r, ...new Array<number>(width - r.length).fill(0)]);
    let mask = rows.map((r) => [...r.map(() => 1), ...new Array<number>(width - r.length).fill(0)]);
    const positions = rows.map((r) => [...range(0, r.length), ...new Array<number>(width - r.length).fill(1)]);
    let batch = await decoder.step({ inputIds: padded, attentionMask: mask, positionIds: positions });
    const follow = [tokens(3, 8, vocab), tokens(3, 9, vocab)];
    const singles = await Promise.all(rows.map((r, b) => decodeSingle(decoder, r, follow[b]!)));
    for (const [b, r] of rows.entries()) {
      expect(maxAbsDiff(batch.at(b, r.length - 1), singles[b]![0]!)).toBeLessThan(tolerance);
    }
    for (let k = 0; k < 3; k++) {
      mask = mask.map((m) => [...m, 1]);
      batch = await decoder.step({
        inputIds: follow.map((f) => [f[k]!]),
        attentionMask: mask,
        positionIds: rows.map((r) => [r.length + k]),
        cache: batch.cache,
      });
      for (const b of rows.keys()) expect(maxAbsDiff(batch.at(b, 0), singles[b]![k + 1]!)).toBeLessThan(tolerance);
    }
  });

  it.skipIf(spread === false)('produces logits far from uniform (standard deviation of a few units)', async () => {
    const result = await prefillLogits(decoder, tokens(8, 10, vocab));
    for (let s = 0; s < 8; s++) {
      const logits = result.at(0, s);
      const mean = logits.reduce((a, b) => a + b, 0) / logits.length;
      const std = Math.sqrt(logits.reduce((a, b) => a + (b - mean) ** 2, 0) / logits.length);
      expect(std).toBeGreaterThan(2);
      expect(std).toBeLessThan(8);
      const max = Math.max(...logits);
      const top = 1 / logits.reduce((a, b) => a + Math.exp(b - max), 0);
      expect(top).toBeGreaterThan(20 / logits.length); // the top token is far likelier than uniform
    }
  });
});

describe.each(['tiny', 'tiny-qwen2'] as const)('%s greedy decoding', (preset) => {
  it('wanders through the vocabulary instead of settling into a one- or two-token loop', async () => {
    for (const seed of [0, 1, 2]) {
      const outDir = await mkdtemp(join(tmpdir(), 'mk-greedy-'));
      await writeModelDir({ preset, seed, outDir, onnxGraphStyle: 'standard' });
      const decoder = await loadOnnxDecoder(outDir);
      const ids = tokens(6, seed, 500);
      const generated = (await decodeSingle(decoder, ids, [])).map(argmax);
      let result = await prefillLogits(decoder, ids);
      let next = argmax(result.at(0, ids.length - 1));
      for (let k = 0; k < 15; k++) {
        result = await decoder.step({
          inputIds: [[next]],
          attentionMask: [range(0, ids.length + k + 1).map(() => 1)],
          positionIds: [[ids.length + k]],
          cache: result.cache,
        });
        next = argmax(result.at(0, 0));
        generated.push(next);
      }
      const seen = `seed ${seed}: ${generated.join(' ')}`;
      expect(new Set(generated).size, seen).toBeGreaterThanOrEqual(8);
      expect(new Set(generated.slice(-8)).size, seen).toBeGreaterThanOrEqual(4); // no short cycle at the end
    }
  });
});

describe('ONNX external data', () => {
  it('writes onnx/model.onnx_data (Optimum naming, page-aligned) when forced, with identical outputs', async () => {
    const inline = await fresh({ preset: 'tiny' });
    const external = await mkdtemp(join(tmpdir(), 'mk-external-'));
    const info = await writeModelDir({
      preset: 'tiny',
      seed: 3,
      outDir: external,
      onnxExternalData: 'always',
      onnxGraphStyle: 'standard',
    });
    expect(info.files).toContain('onnx/model.onnx_data');
    const model = await readFile(join(external, 'onnx', 'model.onnx'));
    const data = await readFile(join(external, 'onnx', 'model.onnx_data'));
    expect(model.length).toBeLessThan(100_000);
    // Norm weights (256 bytes) stay inline, under onnx's 1 KiB external-data threshold.
    expect(data.length).toBeGreaterThan(info.parameterCount * 4 * 0.99);
    // Each external tensor is a StringStringEntryProto triple: location, offset (page-aligned), length.
    const entry = new RegExp(String.raw`\x0a\x06offset\x12.(\d+)`, 'g');
    const offsets = [...model.toString('latin1').matchAll(entry)].map((m) => Number(m[1]));
    expect(offsets.length).toBe(2 * 7 + 2); // 7 projections per layer, embedding, lm_head
    expect(offsets.every((o) => o % 4096 === 0)).toBe(true);
    expect(model.toString('latin1').split('\x0a\x08location\x12\x0fmodel.onnx_data').length - 1).toBe(offsets.length);
    const ids = tokens(9, 11, 512);
    const [a, b] = await Promise.all([inline, external].map(async (d) => prefillLogits(await loadOnnxDecoder(d), ids)));
    expect(maxAbsDiff(a!.logits, b!.logits)).toBe(0);
  });
});

describe('big-vocab preset (one layer, to keep the suite fast)', () => {
  it('runs at vocab 151,936 with sensible logits', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mk-big-'));
    await writeModelDir({
      preset: 'big-vocab',
      config: { numHiddenLayers: 1 },
      seed: 0,
      outDir: dir,
      onnxGraphStyle: 'standard',
    });
    const decoder = await loadOnnxDecoder(dir);
    const result = await prefillLogits(decoder, [1, 2, 3]);
    expect(result.dims).toEqual([1, 3, 151936]);
    const reference = loadReferenceModel(dir).forward([1, 2, 3]);
    expect(maxAbsDiff(result.at(0, 2), reference[2]!)).toBeLessThan(tolerance);
  });
});

const lengthDependent = [
  {
    name: 'tiny-phi3 past its original context of 32 (longrope long factors)',
    dir: () => fresh({ preset: 'tiny-phi3' }),
    prefill: 28,
  },
  {
    name: 'llama with dynamic NTK scaling past max_position_embeddings 16',
    dir: () =>
      fresh({
        preset: 'tiny',
        config: { maxPositionEmbeddings: 16, ropeScaling: { rope_type: 'dynamic', factor: 2.0 } },
      }),
    prefill: 12,
  },
];

describe.each(lengthDependent)('$name: frequencies that depend on each row length', ({ dir: makeDir, prefill }) => {
  let dir: string;
  let decoder: Decoder;
  let vocab: number;
  beforeAll(async () => {
    dir = await makeDir();
    decoder = await loadOnnxDecoder(dir);
    vocab = loadReferenceModel(dir).vocabSize;
  });

  it('a 40-token prefill uses the scaled frequencies at every position, as the float64 reference', async () => {
    const ids = tokens(40, 13, vocab);
    const onnx = await prefillLogits(decoder, ids);
    const reference = loadReferenceModel(dir).forward(ids);
    let worst = 0;
    for (let s = 0; s < ids.length; s++) worst = Math.max(worst, maxAbsDiff(onnx.at(0, s), reference[s]!));
    expect(worst).toBeLessThan(tolerance);
    // The same first tokens in a forward of 10 (unscaled or short factors) give other logits.
    const short = await prefillLogits(decoder, ids.slice(0, 10));
    expect(maxAbsDiff(short.at(0, 5), onnx.at(0, 5))).toBeGreaterThan(1e-3);
  });

  it("decodes across the threshold: new keys rotate with their step's frequencies, cached keys keep theirs", async () => {
    const ids = tokens(prefill + 12, 16, vocab);
    const steps = await decodeSingle(decoder, ids.slice(0, prefill), ids.slice(prefill));
    // The reference replays the same forwards: the prefill, then one per token.
    const chunks = [prefill, ...new Array<number>(12).fill(1)];
    const reference = loadReferenceModel(dir).forward(ids, { chunks });
    for (const [k, logits] of steps.entries()) {
      expect(maxAbsDiff(logits, reference[prefill - 1 + k]!)).toBeLessThan(tolerance);
    }
    // Not what one long forward computes: there every key uses the scaled frequencies.
    const full = loadReferenceModel(dir).forward(ids);
    expect(maxAbsDiff(steps[12]!, full[ids.length - 1]!)).toBeGreaterThan(1e-3);
  });

  it('picks the frequencies per batch row: a short and a long left-padded row each match their own run', async () => {
    const rows = [tokens(10, 14, vocab), tokens(40, 15, vocab)];
    const width = 40;
    const padded = rows.map((r) => [...new Array<number>(width - r.length).fill(0), ...r]);
    const mask = rows.map((r) => [...new Array<number>(width - r.length).fill(0), ...r.map(() => 1)]);
    const positions = rows.map((r) => [...new Array<number>(width - r.length).fill(1), ...range(0, r.length)]);
    const batch = await decoder.step({ inputIds: padded, attentionMask: mask, positionIds: positions });
    for (const [b, r] of rows.entries()) {
      const reference = loadReferenceModel(dir).forward(r);
      for (let s = 0; s < r.length; s++) {
        expect(maxAbsDiff(batch.at(b, width - r.length + s), reference[s]!)).toBeLessThan(tolerance);
      }
    }
  });
});

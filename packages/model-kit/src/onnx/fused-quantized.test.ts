/**
 * The 8-bit and 4-bit fused graphs (`MatMulNBits`) against a float64 forward pass of their own dequantized weights,
 * so that kernel error and quantization error are measured apart:
 *
 * - kernel: with float32 activations (`accuracy_level` 0) the graph computes exactly the dequantized model, so it
 *   must match that model's float64 forward pass as tightly as the float32 graph matches the original;
 * - activation quantization: `accuracy_level` 4 (what the written files use) quantizes activations to int8 per
 *   block of 32, a small further error against the same dequantized reference;
 * - weight quantization: the dequantized model against the original float32 model.
 */
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseHfConfig, type DecoderSpec } from '../hf-config.js';
import { openSafetensorsCheckpoint, writeSafetensors } from '../safetensors.js';
import { loadFusedDecoder } from '../testing/fused-decoder.js';
import { maxAbsDiff } from '../testing/onnx-decoder.js';
import { loadReferenceModel, type ReferenceModel } from '../testing/reference-forward.js';
import { decoderTensors, type WeightSource } from '../weights.js';
import { writeModelDir } from '../write-model-dir.js';
import { contribOpsets, decoderOpsetVersion } from './decoder-graph.js';
import { buildFusedDecoderGraph, type FusedDecoderGraphOptions } from './fused-decoder-graph.js';
import { dequantizeBlockwise, quantizeBlockwise } from './quantize.js';
import { writeOnnxModel } from './write-onnx.js';

const tokens = (count: number, salt: number, limit: number) =>
  Array.from({ length: count }, (_, i) => (i * 131 + salt * 977 + 7) % limit);

/** Root-mean-square difference over the reference's root-mean-square. */
function relativeRms(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let error = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    error += (actual[i]! - expected[i]!) ** 2;
    scale += expected[i]! ** 2;
  }
  return Math.sqrt(error / scale);
}

const argmax = (values: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
};

/** Whether a checkpoint tensor is stored as `MatMulNBits` codes in the quantized fused graphs. */
const isQuantized = (name: string) => /_proj\.weight$/.test(name) || name === 'lm_head.weight';

/** Block-wise quantized then dequantized, exactly as the graph writer quantizes (symmetric). */
function roundTrip(weight: Float32Array, shape: readonly number[], bits: 4 | 8, blockSize: number): Float32Array {
  const [n, k] = shape as [number, number];
  return dequantizeBlockwise(quantizeBlockwise(weight, n, k, { bits, blockSize }));
}

/**
 * A model directory whose weights are the dequantized ones: every projection and `lm_head` quantized and
 * dequantized; a tied `lm_head` becomes an untied one (the quantized graphs quantize `lm_head` but gather the
 * embedding in float32).
 */
async function writeDequantized(source: string, spec: DecoderSpec, bits: 4 | 8, blockSize = 32): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `mk-dequantized-${bits}-${blockSize}-`));
  const config = JSON.parse(await readFile(join(source, 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, tie_word_embeddings: false }));
  const checkpoint = await openSafetensorsCheckpoint(source);
  const untied = { ...spec, tieWordEmbeddings: false };
  await writeSafetensors(
    join(dir, 'model.safetensors'),
    decoderTensors(untied).map(({ name, shape }) => ({
      name,
      dtype: 'F32',
      shape,
      byteLength: shape.reduce((a, b) => a * b, 4),
      produce: async () => {
        const stored = name === 'lm_head.weight' && spec.tieWordEmbeddings ? 'model.embed_tokens.weight' : name;
        const values = await checkpoint.readFloat32(stored);
        const out = isQuantized(name) ? roundTrip(values, shape, bits, blockSize) : values;
        return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      },
    })),
    { metadata: { format: 'pt' } },
  );
  return dir;
}

describe.each(['tiny', 'tiny-qwen2', 'tiny-qwen3', 'tiny-gemma2', 'tiny-gemma3', 'tiny-phi3'] as const)(
  'quantized fused graphs of %s',
  (preset) => {
    let dir: string;
    let spec: DecoderSpec;
    let original: ReferenceModel;
    const dequantized = new Map<4 | 8, ReferenceModel>();
    let dequantized64: ReferenceModel;
    const files = new Map<string, string>();

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), `mk-fused-q-${preset}-`));
      await writeModelDir({ preset, seed: 5, outDir: dir, formats: ['safetensors'] });
      spec = parseHfConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')));
      const checkpoint = await openSafetensorsCheckpoint(dir);
      const weights: WeightSource = { read: (name) => checkpoint.readFloat32(name) };
      await mkdir(join(dir, 'onnx'), { recursive: true });
      const graphs: Record<string, FusedDecoderGraphOptions> = {
        fp32: {},
        'q4-acc0': { variant: 'q4', accuracyLevel: 0 },
        // 64-weight blocks: the intermediate size (176 in tiny) ends in a zero-padded block.
        'q4-b64-acc0': { variant: 'q4', accuracyLevel: 0, quantBlockSize: 64 },
        'q4-acc4': { variant: 'q4' },
        'int8-acc0': { variant: 'int8', accuracyLevel: 0 },
        'int8-acc4': { variant: 'int8' },
      };
      for (const [name, options] of Object.entries(graphs)) {
        const file = join(dir, 'onnx', `${name}.onnx`);
        await writeOnnxModel({
          modelPath: file,
          graph: buildFusedDecoderGraph(spec, weights, options),
          opsetVersion: decoderOpsetVersion,
          extraOpsets: contribOpsets,
          producerVersion: 'test',
        });
        files.set(name, file);
      }
      original = loadReferenceModel(dir);
      for (const bits of [4, 8] as const)
        dequantized.set(bits, loadReferenceModel(await writeDequantized(dir, spec, bits)));
      dequantized64 = loadReferenceModel(await writeDequantized(dir, spec, 4, 64));
    });

    const open = (name: string) =>
      loadFusedDecoder(files.get(name)!, { layers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim });

    /** Prefill logits of 24 positions of one prompt. */
    async function prefill(name: string, ids: number[]): Promise<Float32Array[]> {
      const decoder = await open(name);
      const result = await decoder.step(decoder.allocate(1, ids.length), [{ tokens: ids, past: 0 }]);
      return ids.map((_, p) => result.at(0, p).slice());
    }

    it('re-quantizing the dequantized weights gives the same codes and scales', async () => {
      const weight = await (await openSafetensorsCheckpoint(dir)).readFloat32('model.layers.0.mlp.down_proj.weight');
      const [n, k] = [spec.hiddenSize, spec.intermediateSize];
      for (const bits of [4, 8] as const) {
        const once = quantizeBlockwise(weight, n, k, { bits, blockSize: 32 });
        const twice = quantizeBlockwise(dequantizeBlockwise(once), n, k, { bits, blockSize: 32 });
        expect(twice.packed).toEqual(once.packed);
        expect(maxAbsDiff(twice.scales, once.scales)).toBeLessThan(1e-9);
      }
    });

    it.each([
      [4, 'q4-acc0'],
      [8, 'int8-acc0'],
      [4, 'q4-b64-acc0'],
    ] as const)(
      '%i-bit with float32 activations equals the float64 forward pass of its dequantized weights (%s)',
      async (bits, name) => {
        const ids = tokens(24, 1, spec.vocabSize);
        const expected = (name === 'q4-b64-acc0' ? dequantized64 : dequantized.get(bits)!).forward(ids);
        const actual = await prefill(name, ids);
        const worst = Math.max(...ids.map((_, p) => maxAbsDiff(actual[p]!, expected[p]!)));
        console.info(`${preset} ${name}: max |logit - dequantized float64 reference| ${worst.toExponential(2)}`);
        expect(worst).toBeLessThan(1e-4);
      },
    );

    it.each([
      [4, 'q4-acc4', 0.03],
      [8, 'int8-acc4', 0.03],
    ] as const)(
      '%i-bit with int8 activations (accuracy_level 4) stays close to its dequantized reference',
      async (bits, name, bound) => {
        const ids = tokens(24, 2, spec.vocabSize);
        const expected = dequantized.get(bits)!.forward(ids);
        const actual = await prefill(name, ids);
        const error = relativeRms(
          actual.flatMap((row) => [...row]),
          expected.flatMap((row) => [...row]),
        );
        console.info(`${preset} ${name}: relative RMS logit error vs dequantized reference ${error.toFixed(4)}`);
        expect(error).toBeGreaterThan(0);
        expect(error).toBeLessThan(bound);
      },
    );

    it.each([
      [4, 0.25, 16],
      [8, 0.03, 28],
    ] as const)(
      'weight quantization error: %i-bit dequantized model against the float32 model',
      async (bits, bound, top1) => {
        const ids = tokens(32, 3, spec.vocabSize);
        const expected = original.forward(ids);
        const actual = dequantized.get(bits)!.forward(ids);
        const error = relativeRms(
          actual.flatMap((row) => [...row]),
          expected.flatMap((row) => [...row]),
        );
        const agree = ids.filter((_, p) => argmax(actual[p]!) === argmax(expected[p]!)).length;
        console.info(
          `${preset} ${bits}-bit weights: relative RMS logit error vs float32 ${error.toFixed(4)}, top-1 ${agree}/32`,
        );
        expect(error).toBeLessThan(bound);
        expect(agree).toBeGreaterThanOrEqual(top1);
        // The float32 fused graph is the float32 model.
        const fp32 = await prefill('fp32', ids);
        expect(Math.max(...ids.map((_, p) => maxAbsDiff(fp32[p]!, expected[p]!)))).toBeLessThan(1e-4);
      },
    );

    it.each(['q4-acc4', 'int8-acc4', 'q4-acc0'])(
      '%s: prefill equals prefill + decode in the shared buffer',
      async (name) => {
        const ids = tokens(12, 4, spec.vocabSize);
        const full = await prefill(name, ids);
        const decoder = await open(name);
        const buffers = decoder.allocate(1, 16);
        await decoder.step(buffers, [{ tokens: ids.slice(0, 6), past: 0 }], 1);
        for (let p = 6; p < ids.length; p++) {
          const step = await decoder.step(buffers, [{ tokens: [ids[p]!], past: p }], 1);
          // One-row and many-row products take different kernel paths (and, at accuracy_level 4, quantize the
          // activations in different blocks of rows), so they agree to rounding, not bit for bit.
          expect(maxAbsDiff(step.last(0), full[p]!)).toBeLessThan(name.endsWith('acc0') ? 1e-4 : 2e-2);
        }
      },
    );
  },
);

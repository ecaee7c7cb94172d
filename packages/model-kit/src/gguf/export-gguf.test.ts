import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GGML_TYPE, dequantize, getArray, getNumber, getString, readGgufFile, type GgufArrayValue } from '@gen/gguf';
import { describe, expect, it } from 'vitest';
import { InvalidModelConfigError } from '../errors.js';
import { parseHfConfig, toHfConfig, type LayerType } from '../hf-config.js';
import { resolveModelConfig, type ModelConfig, type PresetName } from '../model-config.js';
import { buildTokenizerFiles } from '../tokenizer/tokenizer-files.js';
import { decoderTensors, seededWeights } from '../weights.js';
import {
  ggufTensorName,
  ggufWeightSource,
  permuteRopeRows,
  writeGgufModel,
  type GgufArchitecture,
} from './export-gguf.js';

const dir = mkdtempSync(join(tmpdir(), 'gen-gguf-export-'));

function specOf(preset: PresetName) {
  const config = resolveModelConfig(preset);
  const tokenizer = buildTokenizerFiles(config.chatFormat!, {
    modelVocabSize: config.vocabSize,
    modelMaxLength: config.maxPositionEmbeddings,
  });
  return { config, tokenizer, spec: parseHfConfig(toHfConfig(config, tokenizer.tokenIds, 'float32')) };
}

describe('permuteRopeRows', () => {
  it("is llama.cpp's LlamaModel.permute and its inverse undoes it", () => {
    // 1 head of size 4, 2 columns: rows [r0, r1, r2, r3] become [r0, r2, r1, r3].
    const rows = Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3]);
    expect(Array.from(permuteRopeRows(rows, 1, 2))).toEqual([0, 0, 2, 2, 1, 1, 3, 3]);
    const values = Float32Array.from({ length: 4 * 16 * 3 }, (_, i) => i);
    expect(Array.from(permuteRopeRows(permuteRopeRows(values, 4, 3), 4, 3, true))).toEqual(Array.from(values));
  });
});

describe('writeGgufModel', () => {
  for (const [preset, arch] of [
    ['tiny', 'llama'],
    ['tiny-qwen2', 'qwen2'],
  ] as const) {
    it(`${preset}: writes ${arch} metadata, the tokenizer and every tensor, F32 equal to the seeded weights`, async () => {
      const outFile = join(dir, `${preset}-f32.gguf`);
      const info = await writeGgufModel({ preset, seed: 3, outFile, type: 'f32' });
      expect(info.architecture).toBe(arch);
      const file = await readGgufFile(outFile);
      const { config, tokenizer, spec } = specOf(preset);
      expect(getString(file, 'general.architecture')).toBe(arch);
      expect(getNumber(file, 'general.file_type')).toBe(0);
      expect(getNumber(file, `${arch}.context_length`)).toBe(config.maxPositionEmbeddings);
      expect(getNumber(file, `${arch}.embedding_length`)).toBe(config.hiddenSize);
      expect(getNumber(file, `${arch}.block_count`)).toBe(config.numHiddenLayers);
      expect(getNumber(file, `${arch}.feed_forward_length`)).toBe(config.intermediateSize);
      expect(getNumber(file, `${arch}.attention.head_count`)).toBe(config.numAttentionHeads);
      expect(getNumber(file, `${arch}.attention.head_count_kv`)).toBe(config.numKeyValueHeads);
      expect(getNumber(file, `${arch}.rope.freq_base`)).toBe(Math.fround(config.ropeTheta));
      expect(getNumber(file, `${arch}.attention.layer_norm_rms_epsilon`)).toBe(Math.fround(config.rmsNormEps));
      expect(getString(file, 'tokenizer.ggml.model')).toBe('gpt2');
      expect(getString(file, 'tokenizer.ggml.pre')).toBe(arch === 'llama' ? 'llama-bpe' : 'qwen2');
      const tokens = getArray(file, 'tokenizer.ggml.tokens') as GgufArrayValue;
      expect(tokens.value).toHaveLength(config.vocabSize);
      expect((getArray(file, 'tokenizer.ggml.token_type') as GgufArrayValue).value).toHaveLength(config.vocabSize);
      expect((getArray(file, 'tokenizer.ggml.merges') as GgufArrayValue).value.length).toBeGreaterThan(0);
      expect(getNumber(file, 'tokenizer.ggml.bos_token_id')).toBe(tokenizer.tokenIds.bos);
      expect(getNumber(file, 'tokenizer.ggml.eos_token_id')).toBe(tokenizer.tokenIds.eos[0]);
      expect(getString(file, 'tokenizer.chat_template')).toContain(arch === 'llama' ? '<|eot_id|>' : '<|im_start|>');
      expect((tokens.value as string[])[tokenizer.tokenIds.bos]).toBe(
        arch === 'llama' ? '<|begin_of_text|>' : '<|endoftext|>',
      );

      const hfTensors = decoderTensors(spec);
      expect(file.tensors.map((t) => t.name)).toEqual(hfTensors.map((t) => ggufTensorName(t.name)));
      expect(file.tensor('output.weight') === undefined).toBe(spec.tieWordEmbeddings);
      if (arch === 'qwen2') expect(file.tensor('blk.0.attn_q.bias')).toBeDefined();
      const weights = seededWeights(spec, 3, 'float32');
      for (const { name: hfName, shape } of hfTensors) {
        const info = file.tensor(ggufTensorName(hfName)!)!;
        expect(info.type).toBe(GGML_TYPE.F32);
        expect([...info.shape]).toEqual([...shape].reverse());
        let values = dequantize(info.type, file.tensorData(info.name), info.elementCount);
        const isQ = /attn_q\./.test(info.name);
        const isK = /attn_k\./.test(info.name);
        if (arch === 'llama' && (isQ || isK)) {
          const heads = isQ ? spec.numHeads : spec.numKvHeads;
          const permuted = values;
          values = permuteRopeRows(values, heads, shape.length === 1 ? 1 : shape[1]!, true);
          expect(Array.from(permuted), `${info.name} is permuted`).not.toEqual(Array.from(values));
        }
        expect(Array.from(values), info.name).toEqual(Array.from(await weights.read(hfName)));
      }
      // ggufWeightSource undoes the permutation the same way.
      const source = await ggufWeightSource(outFile);
      const name = 'model.layers.1.self_attn.k_proj.weight';
      expect(Array.from(await source.read(name))).toEqual(Array.from(await weights.read(name)));
    });
  }

  it('quantized files keep 1-D tensors F32 and fall back to F16 for rows that are not whole blocks', async () => {
    for (const [type, ggml, fileType] of [
      ['q8_0', GGML_TYPE.Q8_0, 7],
      ['q4_0', GGML_TYPE.Q4_0, 2],
      ['f16', GGML_TYPE.F16, 1],
    ] as const) {
      const outFile = join(dir, `tiny-${type}.gguf`);
      await writeGgufModel({ preset: 'tiny', seed: 3, outFile, type });
      const file = await readGgufFile(outFile);
      expect(getNumber(file, 'general.file_type')).toBe(fileType);
      expect(file.tensor('blk.0.attn_norm.weight')!.type).toBe(GGML_TYPE.F32);
      expect(file.tensor('output_norm.weight')!.type).toBe(GGML_TYPE.F32);
      expect(file.tensor('token_embd.weight')!.type).toBe(ggml);
      expect(file.tensor('blk.0.attn_q.weight')!.type).toBe(ggml);
      // ffn_down reads intermediateSize 176 values per row: not a multiple of 32.
      expect(file.tensor('blk.0.ffn_down.weight')!.type).toBe(GGML_TYPE.F16);
      // Dequantized values are close to the seeded ones.
      const { spec } = specOf('tiny');
      const expected = await seededWeights(spec, 3, 'float32').read('model.layers.0.mlp.up_proj.weight');
      const actual = await (await ggufWeightSource(outFile)).read('model.layers.0.mlp.up_proj.weight');
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
      expect(worst).toBeLessThan(type === 'q4_0' ? 0.05 : 0.005);
    }
  });

  it("q4_k_m is llama-quantize's Q4_K_M mix: Q6_K where use_more_bits says, Q6_K output, fallbacks by row width", async () => {
    // Rows of 256 (K-quant blocks) everywhere: hidden 256, intermediate 512, 8 layers.
    const config = {
      hiddenSize: 256,
      intermediateSize: 512,
      numHiddenLayers: 8,
      headDim: 64,
    } satisfies Partial<ModelConfig>;
    const outFile = join(dir, 'k-q4_k_m.gguf');
    await writeGgufModel({ preset: 'tiny', config, seed: 3, outFile, type: 'q4_k_m' });
    const file = await readGgufFile(outFile);
    expect(getNumber(file, 'general.file_type')).toBe(15);
    expect(file.tensor('output.weight')!.type).toBe(GGML_TYPE.Q6_K);
    expect(file.tensor('token_embd.weight')!.type).toBe(GGML_TYPE.Q4_K);
    expect(file.tensor('blk.0.attn_norm.weight')!.type).toBe(GGML_TYPE.F32);
    // use_more_bits(i, 8): i < 1, i >= 7, (i - 1) % 3 == 2 -> layers 0, 3, 6, 7.
    const more = [0, 3, 6, 7];
    for (let layer = 0; layer < 8; layer++) {
      const expected = more.includes(layer) ? GGML_TYPE.Q6_K : GGML_TYPE.Q4_K;
      expect(file.tensor(`blk.${layer}.attn_v.weight`)!.type, `attn_v ${layer}`).toBe(expected);
      expect(file.tensor(`blk.${layer}.ffn_down.weight`)!.type, `ffn_down ${layer}`).toBe(expected);
      for (const other of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up']) {
        expect(file.tensor(`blk.${layer}.${other}.weight`)!.type).toBe(GGML_TYPE.Q4_K);
      }
    }
    // tiny: rows of 64 and 176 values are not K blocks: Q4_K -> Q5_0, Q6_K -> Q8_0, F16 below 32-value blocks.
    const small = join(dir, 'tiny-q4_k_m.gguf');
    await writeGgufModel({ preset: 'tiny', seed: 3, outFile: small, type: 'q4_k_m' });
    const tiny = await readGgufFile(small);
    expect(tiny.tensor('output.weight')!.type).toBe(GGML_TYPE.Q8_0);
    expect(tiny.tensor('blk.1.attn_q.weight')!.type).toBe(GGML_TYPE.Q5_0);
    // 2 layers: use_more_bits picks layer 1 only.
    expect(tiny.tensor('blk.0.attn_v.weight')!.type).toBe(GGML_TYPE.Q5_0);
    expect(tiny.tensor('blk.1.attn_v.weight')!.type).toBe(GGML_TYPE.Q8_0);
    expect(tiny.tensor('blk.0.ffn_down.weight')!.type).toBe(GGML_TYPE.F16);
  });

  it('rejects unknown types and mistral with a sliding window', async () => {
    await expect(
      writeGgufModel({ preset: 'tiny', outFile: join(dir, 'x.gguf'), type: 'q5_k' as never }),
    ).rejects.toSatisfy(InvalidModelConfigError.isInstance);
    await expect(
      writeGgufModel({
        preset: 'tiny',
        config: { architecture: 'mistral', slidingWindow: 64 },
        outFile: join(dir, 'y.gguf'),
      }),
    ).rejects.toSatisfy(InvalidModelConfigError.isInstance);
  });
});

describe('writeGgufModel: qwen3, gemma2, gemma3_text, phi3 as convert_hf_to_gguf.py writes them', () => {
  const common = [
    'vocab_size',
    'context_length',
    'embedding_length',
    'block_count',
    'feed_forward_length',
    'attention.head_count',
    'attention.head_count_kv',
    'attention.layer_norm_rms_epsilon',
  ];
  const cases: Array<{
    preset: PresetName;
    config?: Partial<ModelConfig>;
    arch: string;
    keys: Record<string, number | string>;
    layer0: string[];
    extra?: string[];
  }> = [
    {
      preset: 'tiny-qwen3',
      arch: 'qwen3',
      keys: { 'rope.freq_base': 1e6, 'attention.key_length': 32, 'attention.value_length': 32 },
      layer0: ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'attn_q_norm', 'attn_k_norm', 'ffn_gate', 'ffn_up'],
    },
    {
      preset: 'tiny-gemma2',
      config: { queryPreAttnScalar: 16 },
      arch: 'gemma2',
      keys: {
        'attention.key_length': 16,
        'attention.value_length': 16,
        attn_logit_softcapping: 5,
        final_logit_softcapping: 3,
        'attention.sliding_window': 8,
      },
      layer0: ['attn_q', 'attn_output', 'ffn_gate', 'attn_norm', 'post_attention_norm', 'ffn_norm', 'post_ffw_norm'],
    },
    {
      preset: 'tiny-gemma3',
      arch: 'gemma3',
      keys: {
        'rope.freq_base': 1e6,
        'rope.freq_base_swa': 10000,
        'rope.scaling.type': 'linear',
        'rope.scaling.factor': 2,
        'attention.key_length': 16,
        'attention.value_length': 16,
        'attention.sliding_window': 8,
        'attention.sliding_window_pattern': 3,
      },
      layer0: ['attn_q_norm', 'attn_k_norm', 'attn_norm', 'post_attention_norm', 'ffn_norm', 'post_ffw_norm'],
    },
    {
      preset: 'tiny-phi3',
      arch: 'phi3',
      keys: {
        'rope.freq_base': 10000,
        'rope.scaling.original_context_length': 32,
        'rope.dimension_count': 12,
        'attention.sliding_window': 0,
        // sqrt(1 + ln(256 / 32) / ln(32)), the converter's value.
        'rope.scaling.attn_factor': Math.fround(Math.sqrt(1 + Math.log(8) / Math.log(32))),
      },
      layer0: ['attn_qkv', 'attn_output', 'ffn_up', 'ffn_down', 'attn_norm', 'ffn_norm'],
      extra: ['rope_factors_long.weight', 'rope_factors_short.weight'],
    },
  ];
  for (const { preset, config: overrides, arch, keys, layer0, extra = [] } of cases) {
    it(`${preset}: ${arch} metadata keys, tensor names, transforms`, async () => {
      const outFile = join(dir, `${preset}-family.gguf`);
      await writeGgufModel({ preset, ...(overrides === undefined ? {} : { config: overrides }), seed: 3, outFile });
      const file = await readGgufFile(outFile);
      const config = resolveModelConfig(preset, overrides);
      const tokenizer = buildTokenizerFiles(config.chatFormat!, {
        modelVocabSize: config.vocabSize,
        modelMaxLength: config.maxPositionEmbeddings,
      });
      const spec = parseHfConfig(toHfConfig(config, tokenizer.tokenIds, 'float32'));
      expect(getString(file, 'general.architecture')).toBe(arch);
      const archKeys = [...file.metadata.keys()]
        .filter((k) => k.startsWith(`${arch}.`))
        .map((k) => k.slice(arch.length + 1));
      expect(archKeys.sort()).toEqual([...common, ...Object.keys(keys)].sort());
      for (const [key, value] of Object.entries(keys)) {
        const actual =
          typeof value === 'string' ? getString(file, `${arch}.${key}`) : getNumber(file, `${arch}.${key}`);
        expect(actual, key).toBe(typeof value === 'string' ? value : Math.fround(value));
      }
      const names = file.tensors.map((t) => t.name);
      expect(names.slice(0, extra.length)).toEqual(extra);
      for (const part of layer0) expect(names, part).toContain(`blk.0.${part}.weight`);
      expect(names).toEqual([
        ...extra,
        ...decoderTensors(spec).map((t) => ggufTensorName(t.name, arch as GgufArchitecture)),
      ]);
      const weights = seededWeights(spec, 3, 'float32');
      for (const { name: hfName } of decoderTensors(spec)) {
        const info = file.tensor(ggufTensorName(hfName, arch as GgufArchitecture)!)!;
        const values = dequantize(info.type, file.tensorData(info.name), info.elementCount);
        const seeded = await weights.read(hfName);
        // Gemma's norms are stored as 1 + w (float32), everything else as is.
        const expected = arch.startsWith('gemma') && hfName.endsWith('norm.weight') ? seeded.map((w) => 1 + w) : seeded;
        expect(Array.from(values), info.name).toEqual(Array.from(expected));
      }
      if (arch === 'phi3') {
        const long = file.tensor('rope_factors_long.weight')!;
        expect(Array.from(dequantize(long.type, file.tensorData(long.name), 6))).toEqual([
          2, 2.75, 3.5, 4.625, 6.25, 8,
        ]);
      }
      // Model names containing "phi3" trigger llama.cpp's SentencePiece Phi-3 vocabulary rules.
      expect(getString(file, 'general.name')).not.toMatch(/phi-?3/i);
      const template = getString(file, 'tokenizer.chat_template')!;
      expect(template).toBe(
        (JSON.parse(tokenizer.files['tokenizer_config.json']!) as { chat_template: string }).chat_template,
      );
      expect(file.metadata.get('tokenizer.ggml.add_bos_token')?.value).toBe(arch.startsWith('gemma'));
      expect(getString(file, 'tokenizer.ggml.pre')).toBe(arch === 'qwen3' ? 'qwen2' : 'llama-bpe');
    });
  }

  it('refuses what llama.cpp computes differently, naming the field', async () => {
    const refused: Array<[PresetName, Partial<ModelConfig>, string]> = [
      ['tiny-gemma2', {}, 'queryPreAttnScalar'],
      ['tiny-gemma2', { queryPreAttnScalar: 16, attnLogitSoftcapping: null }, 'attnLogitSoftcapping'],
      ['tiny-gemma2', { queryPreAttnScalar: 16, tieWordEmbeddings: false }, 'tieWordEmbeddings'],
      ['tiny-gemma3', { queryPreAttnScalar: 24 }, 'queryPreAttnScalar'],
      ['tiny-gemma3', { attnLogitSoftcapping: 50 }, 'attnLogitSoftcapping'],
      ['tiny-gemma3', { attentionBias: true }, 'attentionBias'],
      [
        'tiny-gemma3',
        { layerTypes: ['sliding_attention', 'full_attention', 'full_attention'] as LayerType[] },
        'layerTypes',
      ],
      ['tiny-qwen3', { attentionBias: true }, 'attentionBias'],
      ['tiny-qwen3', { slidingWindow: 16 }, 'slidingWindow'],
      ['tiny-qwen3', { ropeScaling: { rope_type: 'yarn', factor: 4 } }, 'ropeScaling'],
      ['tiny-phi3', { slidingWindow: 16 }, 'slidingWindow'],
      ['tiny-phi3', { ropeScaling: { rope_type: 'linear', factor: 2 } }, 'ropeScaling'],
    ];
    for (const [preset, config, field] of refused) {
      const error = await writeGgufModel({ preset, config, outFile: join(dir, 'refused.gguf') }).catch(
        (e: unknown) => e,
      );
      expect(InvalidModelConfigError.isInstance(error), `${preset} ${field}`).toBe(true);
      expect((error as InvalidModelConfigError).field).toBe(field);
    }
  });
});

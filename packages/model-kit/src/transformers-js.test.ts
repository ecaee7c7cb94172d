/**
 * A third-party loader reads the directories: transformers.js (which users run on Node) loads config,
 * generation config, tokenizer, chat template and `onnx/model.onnx` by itself, and its greedy generation must
 * equal a plain onnxruntime loop over the same graph.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, env, type Tensor } from '@huggingface/transformers';
import { describe, expect, it } from 'vitest';
import { loadOnnxDecoder } from './testing/onnx-decoder.js';
import { writeModelDir } from './write-model-dir.js';

describe.each(['tiny', 'tiny-qwen2'] as const)('transformers.js loads a %s directory', (preset) => {
  it('tokenizes the chat template and generates what a plain onnxruntime greedy loop generates', async () => {
    const dir = await mkdtemp(join(tmpdir(), `mk-transformers-${preset}-`));
    await writeModelDir({ preset, seed: 21, outDir: dir, onnxGraphStyle: 'standard' });
    env.allowRemoteModels = false;
    env.localModelPath = `${dirname(dir)}/`;
    const tokenizer = await AutoTokenizer.from_pretrained(basename(dir));
    const model = await AutoModelForCausalLM.from_pretrained(basename(dir), { dtype: 'fp32', device: 'cpu' });
    const prompt = tokenizer.apply_chat_template([{ role: 'user', content: 'Write a short note about tea.' }], {
      add_generation_prompt: true,
      tokenize: false,
    }) as string;
    expect(prompt).toContain(preset === 'tiny' ? '<|start_header_id|>assistant' : '<|im_start|>assistant');
    const inputs = tokenizer(prompt, { add_special_tokens: false }) as { input_ids: Tensor };
    const promptIds = Array.from(inputs.input_ids.data as BigInt64Array, Number);
    const generated = (await model.generate({
      ...inputs,
      max_new_tokens: 12,
      do_sample: false,
      repetition_penalty: 1,
    })) as Tensor;
    const fromTransformers = (generated.tolist() as bigint[][])[0]!.map(Number).slice(promptIds.length);
    await model.dispose();

    const generation = JSON.parse(await readFile(join(dir, 'generation_config.json'), 'utf8')) as {
      eos_token_id: number[];
    };
    const decoder = await loadOnnxDecoder(dir);
    const ours: number[] = [];
    let step = await decoder.step({
      inputIds: [promptIds],
      attentionMask: [promptIds.map(() => 1)],
      positionIds: [promptIds.map((_, i) => i)],
    });
    let logits = step.at(0, promptIds.length - 1);
    for (let k = 0; k < 12; k++) {
      const token = logits.indexOf(Math.max(...logits));
      ours.push(token);
      if (generation.eos_token_id.includes(token)) break;
      const length = promptIds.length + k + 1;
      step = await decoder.step({
        inputIds: [[token]],
        attentionMask: [Array.from({ length }, () => 1)],
        positionIds: [[length - 1]],
        cache: step.cache,
      });
      logits = step.at(0, 0);
    }
    expect(fromTransformers).toEqual(ours);
    expect(ours.length).toBeGreaterThan(0);
    expect(typeof tokenizer.decode(ours)).toBe('string');
  });
});

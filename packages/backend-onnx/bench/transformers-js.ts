/**
 * transformers.js (`@huggingface/transformers`) on the same model directory, as a user would run it on Node:
 * `AutoModelForCausalLM.from_pretrained(dir, { dtype })` with remote models disabled, then greedy `generate`.
 */
import path from 'node:path';
import { AutoModelForCausalLM, env, Tensor, type PreTrainedModel } from '@huggingface/transformers';

/** transformers.js's name for each of our dtypes (the file it then loads). */
export const transformersDtype = { fp32: 'fp32', int8: 'q8', q4: 'q4' } as const;

/** A loaded transformers.js model. */
export interface TransformersModel {
  /** Greedy generation of exactly `newTokens` tokens after `prompt`; returns the new tokens. */
  generate(prompt: readonly number[], newTokens: number): Promise<number[]>;
  dispose(): Promise<void>;
}

/**
 * Loads `modelDir` with transformers.js, local files only, on the CPU with `threads` intra-op threads. `spinning:
 * false` turns off onnxruntime's spin-waiting intra-op threads (on by default, as a user gets it), for benchmarks
 * that run other engines in the same process right after.
 */
export async function loadTransformersModel(
  modelDir: string,
  dtype: keyof typeof transformersDtype,
  threads: number,
  options: { spinning?: boolean } = {},
): Promise<TransformersModel> {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = `${path.dirname(modelDir)}/`;
  const model = (await AutoModelForCausalLM.from_pretrained(path.basename(modelDir), {
    dtype: transformersDtype[dtype],
    device: 'cpu',
    local_files_only: true,
    session_options: {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      ...(options.spinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
    },
  })) as PreTrainedModel;
  return {
    async generate(prompt, newTokens) {
      const ids = new Tensor('int64', BigInt64Array.from(prompt, BigInt), [1, prompt.length]);
      const mask = new Tensor('int64', new BigInt64Array(prompt.length).fill(1n), [1, prompt.length]);
      const output = (await model.generate({
        input_ids: ids,
        attention_mask: mask,
        max_new_tokens: newTokens,
        min_new_tokens: newTokens,
        do_sample: false,
        repetition_penalty: 1,
      } as never)) as Tensor;
      return (output.tolist() as bigint[][])[0]!.slice(prompt.length).map(Number);
    },
    dispose: async () => {
      await model.dispose();
    },
  };
}

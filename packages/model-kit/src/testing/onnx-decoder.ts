/**
 * Drives an Optimum-layout decoder (`onnx/model.onnx`) with onnxruntime-node the way a serving loop does: a
 * prefill, then decode steps that feed each `present.*` back as `past_key_values.*`. For tests.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';

/** The key/value cache of a batch: `present.{i}.key|value` tensors by layer. */
export type KvCache = ort.Tensor[];

/** Logits `[batch, seq, vocab]` and the cache after this step. */
export interface StepResult {
  logits: Float32Array;
  dims: readonly number[];
  cache: KvCache;
  /** Logits of row `b` at sequence position `s`. */
  at(b: number, s: number): Float32Array;
}

/** Loads `dir/onnx/model.onnx` and returns a step function. */
export async function loadOnnxDecoder(dir: string) {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, number>;
  const layers = config['num_hidden_layers']!;
  const kvHeads = config['num_key_value_heads']!;
  const headDim = config['head_dim'] ?? config['hidden_size']! / config['num_attention_heads']!;
  const session = await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const int64 = (rows: readonly (readonly number[])[]) =>
    new ort.Tensor('int64', BigInt64Array.from(rows.flat().map((v) => BigInt(v))), [rows.length, rows[0]!.length]);

  /**
   * Runs one step. `attentionMask` covers past + new tokens; `cache` is the previous step's, or empty (prefill).
   */
  async function step(options: {
    inputIds: readonly (readonly number[])[];
    attentionMask: readonly (readonly number[])[];
    positionIds: readonly (readonly number[])[];
    cache?: KvCache;
  }): Promise<StepResult> {
    const batch = options.inputIds.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64(options.inputIds),
      attention_mask: int64(options.attentionMask),
      position_ids: int64(options.positionIds),
    };
    for (let i = 0; i < layers; i++) {
      for (const [j, kind] of ['key', 'value'].entries()) {
        feeds[`past_key_values.${i}.${kind}`] =
          options.cache?.[2 * i + j] ?? new ort.Tensor('float32', new Float32Array(0), [batch, kvHeads, 0, headDim]);
      }
    }
    const out = await session.run(feeds);
    const logits = out['logits']!;
    const cache: KvCache = [];
    for (let i = 0; i < layers; i++) cache.push(out[`present.${i}.key`]!, out[`present.${i}.value`]!);
    const data = logits.data as Float32Array;
    const [, seq, vocab] = logits.dims as [number, number, number];
    return {
      logits: data,
      dims: logits.dims,
      cache,
      at: (b, s) => data.subarray((b * seq + s) * vocab, (b * seq + s + 1) * vocab),
    };
  }
  return { step, session, layers, kvHeads, headDim };
}

/** Largest absolute difference between two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/**
 * Drives a fused decoder graph (see `buildFusedDecoderGraph`) with onnxruntime-node the way a serving loop does:
 * one fixed-capacity KV buffer per layer and kind, fed as `past_key_values.*` and bound as the matching
 * `present.*` output, so `GroupQueryAttention` writes new entries into it in place. For tests.
 */
import * as ort from 'onnxruntime-node';

/** The KV buffers of `rows` sequences: per layer a key and a value `[rows, kvHeads, capacity, headDim]`. */
export interface KvBuffers {
  readonly rows: number;
  readonly capacity: number;
  /** Key of layer 0, value of layer 0, key of layer 1... */
  readonly tensors: ort.Tensor[];
}

/** One row of a step: the tokens it appends and how many its cache holds already. */
export interface FusedRow {
  tokens: readonly number[];
  past: number;
}

/** Logits of a step, `[rows, kept, vocab]`. */
export interface FusedStepResult {
  logits: Float32Array;
  kept: number;
  vocab: number;
  /** Logits of row `b` at kept position `s`. */
  at(b: number, s: number): Float32Array;
  /** Logits of row `b`'s last real token (rows are right-padded to the step's longest). */
  last(b: number): Float32Array;
}

/** Opens a fused decoder file; `layers`, `kvHeads` and `headDim` come from the model's config. */
export async function loadFusedDecoder(
  file: string,
  shape: { layers: number; kvHeads: number; headDim: number },
  sessionOptions: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 },
) {
  const session = await ort.InferenceSession.create(file, sessionOptions);
  const { layers, kvHeads, headDim } = shape;
  const hasPositions = session.inputNames.includes('position_ids');

  /** Zero-filled buffers for `rows` sequences of up to `capacity` tokens. */
  function allocate(rows: number, capacity: number): KvBuffers {
    const tensors = Array.from(
      { length: 2 * layers },
      () =>
        new ort.Tensor('float32', new Float32Array(rows * kvHeads * capacity * headDim), [
          rows,
          kvHeads,
          capacity,
          headDim,
        ]),
    );
    return { rows, capacity, tensors };
  }

  /**
   * Runs one step over all rows of `buffers`: row b appends `rows[b].tokens` after its `rows[b].past` cached
   * tokens (rows right-padded with id 0 to the longest). `keep` is `num_logits_to_keep` (0: every position).
   */
  async function step(buffers: KvBuffers, rows: readonly FusedRow[], keep = 0): Promise<FusedStepResult> {
    if (rows.length !== buffers.rows) throw new Error(`${rows.length} rows for buffers of ${buffers.rows}`);
    const seq = Math.max(...rows.map((r) => r.tokens.length));
    const ids = new BigInt64Array(rows.length * seq);
    const positions = new BigInt64Array(rows.length * seq);
    rows.forEach((row, b) => {
      for (let i = 0; i < seq; i++) {
        ids[b * seq + i] = BigInt(row.tokens[i] ?? 0);
        positions[b * seq + i] = BigInt(row.past + Math.min(i, row.tokens.length - 1));
      }
    });
    const totals = rows.map((r) => r.past + r.tokens.length);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [rows.length, seq]),
      seqlens_k: new ort.Tensor(
        'int32',
        Int32Array.from(totals, (t) => t - 1),
        [rows.length],
      ),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(Math.max(...totals)), []),
      num_logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(BigInt(keep)), []),
    };
    if (hasPositions) feeds['position_ids'] = new ort.Tensor('int64', positions, [rows.length, seq]);
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    for (let i = 0; i < layers; i++) {
      for (const [j, kind] of ['key', 'value'].entries()) {
        feeds[`past_key_values.${i}.${kind}`] = buffers.tensors[2 * i + j]!;
        fetches[`present.${i}.${kind}`] = buffers.tensors[2 * i + j]!;
      }
    }
    const out = await session.run(feeds, fetches as ort.InferenceSession.FetchesType);
    const logits = out['logits']!;
    const data = logits.data as Float32Array;
    const [, kept, vocab] = logits.dims as [number, number, number];
    const at = (b: number, s: number) => data.subarray((b * kept + s) * vocab, (b * kept + s + 1) * vocab);
    return {
      logits: data,
      kept,
      vocab,
      at,
      last: (b) => at(b, kept - 1 - (seq - rows[b]!.tokens.length)),
    };
  }

  return { session, allocate, step, hasPositions };
}

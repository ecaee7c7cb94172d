import { BackendError } from '@gen/backend';
import * as ort from 'onnxruntime-node';
import { float16ToFloat32 } from './float16.js';
import type { GraphSignature, IndexType } from './graph-signature.js';
import { runSession, type OnnxSession, type SessionFetches } from './onnx-session.js';
import {
  allocateKvUninitialized,
  CacheGroup,
  compactGroup,
  groupBytes,
  type KvLayout,
  type SequenceState,
} from './kv-group.js';

/** One sequence of a `doForward` call, validated; `S` is how the backend keeps a live sequence's cache. */
export interface RowInput<S = SequenceState> {
  /** Position in the call's input (and in the result). */
  readonly index: number;
  readonly id: string;
  readonly tokens: Int32Array;
  /** The live sequence, or `undefined` for a new one. */
  readonly state: S | undefined;
  /** Tokens the sequence holds before the call. */
  readonly start: number;
  readonly wantPromptLogits: boolean;
}

/** What a run computed for one row; committed by the caller only when the whole call succeeds. */
export interface RowOutput<S = SequenceState> {
  readonly input: RowInput<S>;
  readonly state: S;
  readonly promptLogits: Float32Array | undefined;
}

/** Everything a run needs besides its rows. */
export interface RunContext {
  readonly session: OnnxSession;
  readonly signature: GraphSignature;
  readonly layout: KvLayout;
  readonly vocabSize: number;
  readonly maxPositions: number;
  /**
   * Whether several sequences may share a run with padding: false for graphs without `attention_mask`, with a
   * batch dimension fixed to 1, or built on `GroupQueryAttention` (which expects each row's cache at the start of
   * its buffer, not right-aligned): those run each sequence alone.
   */
  readonly paddedBatches: boolean;
  /** The model file, for error messages. */
  readonly file: string;
}

/**
 * Extra padded token positions a row may add to a run rather than run on its own. Joining costs
 * `(run's longest - row's tokens)` wasted positions for that row; a separate run costs one more pass over all
 * weights (about what a dozen prefill positions cost on a CPU). A decode step (1 token) therefore joins a short
 * prefill but not a 500-token one.
 */
const paddingSlack = 16;

/** Logits a run may return at most (bytes), so a batch of long prompts does not allocate gigabytes at once. */
const logitsBudgetBytes = 256 * 1024 * 1024;

/**
 * Splits a call's rows into runs (onnxruntime calls). Rows are taken longest first; a row joins the current run
 * when it adds at most {@link paddingSlack} padded positions, the run stays within `runBatchLimit` rows and the
 * logits budget, and the padded mask stays within the position limit. Graphs that cannot pad
 * (`context.paddedBatches` false) run each sequence alone.
 */
export function planRuns(rows: readonly RowInput[], context: RunContext, runBatchLimit: number): RowInput[][] {
  const sorted = [...rows].sort((a, b) => b.tokens.length - a.tokens.length);
  const canPad = context.paddedBatches;
  const runs: RowInput[][] = [];
  let current: RowInput[] = [];
  let longest = 0;
  let maxStart = 0;
  for (const row of sorted) {
    const n = row.tokens.length;
    const start = Math.max(maxStart, row.start);
    const joins =
      current.length > 0 &&
      canPad &&
      current.length < runBatchLimit &&
      longest - n <= paddingSlack &&
      start + longest <= context.maxPositions &&
      (current.length + 1) * longest * context.vocabSize * 4 <= logitsBudgetBytes;
    if (!joins && current.length > 0) {
      runs.push(current);
      current = [];
    }
    if (current.length === 0) {
      longest = n;
      maxStart = row.start;
    } else {
      maxStart = start;
    }
    current.push(row);
  }
  if (current.length > 0) runs.push(current);
  return runs;
}

/**
 * The rows' caches can be fed as they are when they are exactly the rows of one group (the same batch as the
 * previous step, in any order) and the group holds few gaps; otherwise they are compacted into a new group.
 */
export function reusableGroup(
  rows: readonly RowInput[],
  context: RunContext,
  newTokens: number,
): CacheGroup | undefined {
  const group = rows[0]?.state?.group;
  if (group === undefined || group.rows !== rows.length) return undefined;
  const seen = new Set<number>();
  let longest = 0;
  for (const row of rows) {
    if (row.state === undefined || row.state.group !== group || seen.has(row.state.row)) return undefined;
    seen.add(row.state.row);
    longest = Math.max(longest, row.state.length);
  }
  if (group.width > longest + Math.max(16, longest >> 2)) return undefined;
  if (group.width + newTokens > context.maxPositions) return undefined;
  return group;
}

/** An integer tensor from small non-negative values (int64 written as two int32 halves, little-endian). */
export function indexTensor(type: IndexType, values: Int32Array, dims: readonly number[]): ort.Tensor {
  if (type === 'int32') return new ort.Tensor('int32', values, dims);
  const data = new BigInt64Array(values.length);
  const halves = new Int32Array(data.buffer);
  for (let i = 0; i < values.length; i++) halves[2 * i] = values[i]!;
  return new ort.Tensor('int64', data, dims);
}

function copyLogitsRow(
  data: Float32Array | Uint16Array,
  from: number,
  vocabSize: number,
  target: Float32Array,
  offset: number,
): void {
  const row = data.subarray(from * vocabSize, (from + 1) * vocabSize);
  if (row instanceof Float32Array) target.set(row, offset);
  else float16ToFloat32(row, target, offset);
}

/**
 * Runs one batch through the graph. Past caches are the rows' group when it can be fed as it is, else a compacted
 * copy with each row's cache right-aligned (left padding). New tokens are right-padded to the run's longest, so
 * each row's new cache slots follow its past directly; `attention_mask` marks the real slots of every row, and
 * `position_ids` are each row's true positions. Writes each row's next-token logits into `logits` at its
 * `index` and returns the rows' new states (not yet committed).
 *
 * Without `logits` the run holds the whole call: when onnxruntime's float32 logits are already one row per
 * sequence in input order (a decode step of a stable batch), that array, which onnxruntime-node allocates afresh
 * for every run, becomes the result as it is; otherwise a new array is filled.
 *
 * @throws {BackendError} onnxruntime failed, or returned outputs of unexpected shapes.
 */
export async function executeRun(
  rows: readonly RowInput[],
  context: RunContext,
  logits?: Float32Array,
  signal?: AbortSignal,
): Promise<{ outputs: RowOutput[]; logits: Float32Array }> {
  const { signature, layout, vocabSize } = context;
  const newTokens = rows.reduce((max, row) => Math.max(max, row.tokens.length), 0);
  const reused = reusableGroup(rows, context, newTokens);
  const ordered = reused === undefined ? rows : [...rows].sort((a, b) => a.state!.row - b.state!.row);
  const past =
    reused ??
    (await compactGroup(
      ordered.map((r) => r.state),
      layout,
    ));

  const batch = ordered.length;
  const width = past.width;
  const total = width + newTokens;
  const ids = new Int32Array(batch * newTokens);
  const positions = new Int32Array(batch * newTokens);
  const mask = new Uint8Array(batch * total);
  let minTokens = newTokens;
  let wantPromptLogits = false;
  for (let b = 0; b < batch; b++) {
    const row = ordered[b]!;
    const n = row.tokens.length;
    minTokens = Math.min(minTokens, n);
    wantPromptLogits ||= row.wantPromptLogits;
    ids.set(row.tokens, b * newTokens);
    for (let i = 0; i < newTokens; i++) positions[b * newTokens + i] = row.start + Math.min(i, n - 1);
    mask.set(past.mask.subarray(b * width, (b + 1) * width), b * total);
    mask.fill(1, b * total + width, b * total + width + n);
  }

  const feeds: Record<string, ort.Tensor> = {
    [signature.inputIds.name]: indexTensor(signature.inputIds.type, ids, [batch, newTokens]),
  };
  if (signature.attentionMask !== undefined) {
    feeds[signature.attentionMask.name] = indexTensor(signature.attentionMask.type, Int32Array.from(mask), [
      batch,
      total,
    ]);
  }
  if (signature.positionIds !== undefined) {
    feeds[signature.positionIds.name] = indexTensor(signature.positionIds.type, positions, [batch, newTokens]);
  }
  if (signature.useCacheBranch !== undefined) {
    feeds[signature.useCacheBranch] = new ort.Tensor('bool', Uint8Array.of(width > 0 ? 1 : 0), [1]);
  }
  // Logits of the last `keep` positions cover every row's last real token (rows are right-padded).
  const keep = wantPromptLogits ? newTokens : newTokens - minTokens + 1;
  if (signature.logitsToKeep !== undefined) {
    feeds[signature.logitsToKeep.name] = indexTensor(signature.logitsToKeep.type, Int32Array.of(keep), []);
  }
  signature.layers.forEach((layer, i) => {
    feeds[layer.pastKey] = past.tensors[2 * i]!;
    feeds[layer.pastValue] = past.tensors[2 * i + 1]!;
  });

  // Where bound outputs cost nothing (the direct binding), onnxruntime writes each layer's `present` (past + new
  // entries, the next step's cache) straight into a tensor of the expected shape instead of a buffer of its own
  // that would be copied out.
  let fetches: SessionFetches = signature.fetches;
  if (context.session.bindsOutputsInPlace === true) {
    const bound: Record<string, ort.Tensor | null> = { [signature.logits.name]: null };
    const dims = [batch, layout.kvHeads, total, layout.headDim];
    for (const layer of signature.layers) {
      for (const name of [layer.presentKey, layer.presentValue]) {
        bound[name] = new ort.Tensor(
          layout.kvType,
          allocateKvUninitialized(layout.kvType, batch * layout.kvHeads * total * layout.headDim),
          dims,
        );
      }
    }
    fetches = bound;
  }
  const results = await runSession(context.session, feeds, fetches, context.file, signal);

  const logitsTensor = results[signature.logits.name] as ort.Tensor;
  const [outBatch, outPositions, outVocab] = logitsTensor.dims as number[];
  if (outBatch !== batch || outVocab !== vocabSize || outPositions === undefined || outPositions < keep) {
    throw new BackendError(
      `${context.file}: logits have shape [${logitsTensor.dims.join(', ')}], expected [${batch}, ${newTokens} ` +
        `(or at least ${keep} with logits_to_keep), ${vocabSize}]`,
    );
  }
  const presents = signature.layers.flatMap((layer) => [
    results[layer.presentKey] as ort.Tensor,
    results[layer.presentValue] as ort.Tensor,
  ]);
  for (const present of presents) {
    const [pb, ph, pt, pd] = present.dims;
    if (pb !== batch || ph !== layout.kvHeads || pt !== total || pd !== layout.headDim) {
      throw new BackendError(
        `${context.file}: a present output has shape [${present.dims.join(', ')}], expected [${batch}, ` +
          `${layout.kvHeads}, ${total}, ${layout.headDim}] (past + new tokens; caches that drop positions, such as ` +
          'sliding-window caches, are not supported)',
      );
    }
  }
  const group = new CacheGroup(presents, batch, total, mask, groupBytes(layout, batch, total));

  const data = logitsTensor.data as Float32Array | Uint16Array;
  const skipped = newTokens - outPositions;
  const direct =
    logits === undefined &&
    data instanceof Float32Array &&
    outPositions === 1 &&
    data.length === batch * vocabSize &&
    ordered.every((row, b) => row.index === b);
  const target = direct ? data : (logits ?? new Float32Array(batch * vocabSize));
  const outputs = ordered.map((row, b) => {
    const n = row.tokens.length;
    if (!direct) copyLogitsRow(data, b * outPositions + n - 1 - skipped, vocabSize, target, row.index * vocabSize);
    let promptLogits: Float32Array | undefined;
    if (row.wantPromptLogits) {
      promptLogits = new Float32Array(n * vocabSize);
      for (let i = 0; i < n; i++) copyLogitsRow(data, b * outPositions + i, vocabSize, promptLogits, i * vocabSize);
    }
    return { input: row, state: { length: row.start + n, group, row: b }, promptLogits };
  });
  return { outputs, logits: target };
}

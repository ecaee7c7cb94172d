import { AbortError, BackendError } from '@gen/backend';
import * as ort from 'onnxruntime-node';
import { float16ToFloat32 } from './float16.js';
import type { GraphSignature } from './graph-signature.js';
import type { KvLayout } from './kv-group.js';
import { runSession, type OnnxSession } from './onnx-session.js';
import { KvSlab } from './kv-slab.js';
import { indexTensor, type RowInput, type RowOutput } from './run-batch.js';

/** Where a live sequence of a fused graph keeps its cache: a row of a slab, holding `length` tokens from slot 0. */
export interface FusedState {
  readonly slab: KvSlab;
  readonly row: number;
  readonly length: number;
}

/** Everything the fused runs need. */
export interface FusedContext {
  readonly session: OnnxSession;
  readonly signature: GraphSignature;
  readonly layout: KvLayout;
  readonly vocabSize: number;
  /**
   * Most slots a buffer row may have: the graph's rotary table covers `max_position_embeddings` positions, and
   * `GroupQueryAttention` refuses a buffer longer than it.
   */
  readonly maxCapacity: number;
  /** Slots per row: `grow` (start small, grow in steps of `capacityStep`) or a fixed number. */
  readonly capacity: number | 'grow';
  /** Growth step of `grow` buffers: see {@link capacitySteps}. */
  readonly capacityStep: number;
  /** Most rows of one prompt run. */
  readonly maxRunRows: number;
  /** The model file, for error messages. */
  readonly file: string;
}

/** What a call computed, committed by the caller only when the whole call succeeds. */
export interface FusedCallResult {
  readonly logits: Float32Array;
  readonly outputs: RowOutput<FusedState>[];
  /** Live sequences outside the call whose cache was moved into the call's new slab. */
  readonly relocated: ReadonlyMap<string, FusedState>;
}

/**
 * Capacity grows in steps of this many slots, per binding. onnxruntime-node copies every fetched output into a new
 * JavaScript buffer after each run (the bound `present` buffers included), so a step costs a copy of the whole
 * buffer: a small step keeps it close to the cache in use, and a regrowth (which copies the rows once) comes every
 * 32 tokens. The direct binding copies nothing per step, so its buffers grow less often (a regrowth allocates and
 * copies every row of the slab).
 */
export const capacitySteps = { direct: 128, 'onnxruntime-node': 32 } as const;
/** Rows of a new slab are a multiple of this, so sequences can join without a rebuild. */
const rowStep = 4;
/** Extra padded positions a prompt may add to a batch of new prompts rather than run apart. */
const paddingSlack = 16;
/** Logits a run may return at most (bytes). */
const logitsBudgetBytes = 256 * 1024 * 1024;

const roundUp = (value: number, step: number) => Math.ceil(value / step) * step;

/** One row of a run: its tokens (none for a row that only rides along) and the slots its cache holds before. */
interface RunRow {
  readonly tokens: Int32Array | undefined;
  readonly past: number;
}

/**
 * Keeps the KV caches of a fused graph (see {@link KvSlab}) and runs the calls. onnxruntime's
 * `GroupQueryAttention` rules shape the plan: each row's cache starts at slot 0; one run appends the same number of
 * positions to every row; several positions appended to a non-empty cache need a run of their own (batch 1). So a
 * call becomes:
 *
 * - new prompts of several tokens: batches of similar lengths (right-padded) in a scratch slab, each row copied into
 *   its row of the call's slab afterwards (a copy of the prompt's cache, small next to computing it);
 * - chunks appended to existing sequences: one run each, on that sequence's row (a view, no copy);
 * - every one-token row (decode steps, and one-token prompts at slot 0): one run over the rows they span in the
 *   call's slab. Rows in between that are not in the call ride along: each gets a dummy token written in its first
 *   free slot, which its next step overwrites, and its logits are dropped.
 *
 * The call's slab is the slab holding most of the call's sequences. A new slab is built (live rows copied, the
 * call's first so decode rows stay contiguous) when sequences would not fit in its free rows or capacity, or when
 * the one-token rows would drag more than as many idle rows along. Runs only ever write past each row's committed
 * length or into free rows, so a call that fails or is aborted leaves every committed cache as it was.
 */
export class FusedKvCache {
  /** The slab new sequences join when none of a call's sequences has one. */
  private home: KvSlab | undefined;

  constructor(private readonly context: FusedContext) {}

  /** Runs one validated call; `live` are the committed sequences. */
  async forward(
    rows: readonly RowInput<FusedState>[],
    live: ReadonlyMap<string, FusedState>,
    signal: AbortSignal | undefined,
  ): Promise<FusedCallResult> {
    const { vocabSize } = this.context;
    const { target, rowOf, relocated } = this.place(rows, live);
    const logits = new Float32Array(rows.length * vocabSize);
    const promptLogits = new Map<RowInput<FusedState>, Float32Array>();
    const final = (row: RowInput<FusedState>) => row.start + row.tokens.length;

    // New prompts of several tokens: batches in scratch slabs, copied into their rows.
    for (const batch of this.promptBatches(rows.filter((r) => r.state === undefined && r.tokens.length > 1))) {
      AbortError.throwIfAborted(signal);
      const longest = batch[0]!.tokens.length;
      const scratch = new KvSlab(this.context.layout, batch.length, longest);
      const wantAll = batch.some((r) => r.wantPromptLogits);
      const keep = wantAll ? 0 : longest - batch[batch.length - 1]!.tokens.length + 1;
      const result = await this.run(
        scratch,
        0,
        batch.map((r) => ({ tokens: r.tokens, past: 0 })),
        keep,
        signal,
      );
      batch.forEach((row, b) => {
        target.copyRow(rowOf.get(row)!, scratch, b, row.tokens.length);
        this.collect(result, b, row, longest, logits, promptLogits);
      });
    }
    // Chunks appended to existing sequences: one run each, on the sequence's row.
    for (const row of rows.filter((r) => r.state !== undefined && r.tokens.length > 1)) {
      AbortError.throwIfAborted(signal);
      const result = await this.run(
        target,
        rowOf.get(row)!,
        [{ tokens: row.tokens, past: row.start }],
        row.wantPromptLogits ? 0 : 1,
        signal,
      );
      this.collect(result, 0, row, row.tokens.length, logits, promptLogits);
    }
    // One-token rows: one run over the rows they span (split around rows too full to ride along).
    const single = rows.filter((r) => r.tokens.length === 1);
    if (single.length > 0) {
      const byRow = new Map(single.map((r) => [rowOf.get(r)!, r]));
      const lengths = new Map<number, number>();
      for (const s of live.values()) if (s.slab === target) lengths.set(s.row, s.length);
      for (const s of relocated.values()) lengths.set(s.row, s.length);
      for (const row of rows) lengths.set(rowOf.get(row)!, final(row));
      const indices = [...byRow.keys()].sort((a, b) => a - b);
      let from = indices[0]!;
      const last = indices[indices.length - 1]!;
      while (from <= last) {
        // A segment ends before a row that cannot take a dummy slot (its cache fills the buffer).
        let to = from;
        while (to <= last && (byRow.has(to) || (lengths.get(to) ?? 0) < target.capacity)) to++;
        const segment = Array.from({ length: to - from }, (_, i) => from + i);
        if (segment.some((r) => byRow.has(r))) {
          AbortError.throwIfAborted(signal);
          const runRows = segment.map((r): RunRow => {
            const input = byRow.get(r);
            return input === undefined
              ? { tokens: undefined, past: lengths.get(r) ?? 0 }
              : { tokens: input.tokens, past: input.start };
          });
          const result = await this.run(target, from, runRows, 1, signal);
          segment.forEach((r, b) => {
            const input = byRow.get(r);
            if (input !== undefined) this.collect(result, b, input, 1, logits, promptLogits);
          });
        }
        from = to + 1;
        while (from <= last && !byRow.has(from)) from++;
      }
    }
    AbortError.throwIfAborted(signal);
    const outputs = rows.map((row) => ({
      input: row,
      state: { slab: target, row: rowOf.get(row)!, length: final(row) },
      promptLogits: promptLogits.get(row),
    }));
    return { logits, outputs, relocated };
  }

  /** Makes the call's slab the home of new sequences (after a call has been committed). */
  committed(outputs: readonly RowOutput<FusedState>[]): void {
    this.home = outputs[0]?.state.slab ?? this.home;
  }

  /** Drops the home slab when no live sequence uses it any more (after a release). */
  released(live: ReadonlyMap<string, FusedState>): void {
    if (this.home !== undefined && ![...live.values()].some((s) => s.slab === this.home)) this.home = undefined;
  }

  /**
   * A copy of the first `length` slots (default all) of `source`'s cache in a free row of its slab, or in a new
   * slab when its rows are all taken.
   */
  fork(source: FusedState, live: ReadonlyMap<string, FusedState>, length = source.length): FusedState {
    const used = new Set<number>();
    for (const s of live.values()) if (s.slab === source.slab) used.add(s.row);
    let row = 0;
    while (row < source.slab.rows && used.has(row)) row++;
    const slab = row < source.slab.rows ? source.slab : new KvSlab(this.context.layout, rowStep, source.slab.capacity);
    if (slab !== source.slab) row = 0;
    slab.copyRow(row, source.slab, source.row, length);
    return { slab, row, length };
  }

  /** Bytes of the slabs live sequences use, each slab once. */
  bytes(live: ReadonlyMap<string, FusedState>): number {
    const slabs = new Set<KvSlab>();
    for (const s of live.values()) slabs.add(s.slab);
    let bytes = 0;
    for (const slab of slabs) bytes += slab.bytes;
    return bytes;
  }

  /** Slots per row for a slab whose rows need `required` slots (their longest cache after the call, plus one). */
  private capacityFor(required: number): number {
    const { capacity, maxCapacity } = this.context;
    return Math.min(
      maxCapacity,
      capacity === 'grow' ? roundUp(required, this.context.capacityStep) : Math.max(capacity, required),
    );
  }

  /**
   * Chooses the call's slab and each row's place in it: existing sequences keep their rows there, others take
   * free rows (copied in when they live elsewhere), or everything moves to a new slab.
   */
  private place(
    rows: readonly RowInput<FusedState>[],
    live: ReadonlyMap<string, FusedState>,
  ): { target: KvSlab; rowOf: Map<RowInput<FusedState>, number>; relocated: Map<string, FusedState> } {
    const inCall = new Set(rows.map((r) => r.id));
    const counts = new Map<KvSlab, number>();
    for (const row of rows)
      if (row.state !== undefined) counts.set(row.state.slab, (counts.get(row.state.slab) ?? 0) + 1);
    let current = this.home;
    let best = 0;
    for (const [slab, count] of counts) {
      if (count > best) [current, best] = [slab, count];
    }
    const others: [string, FusedState][] = [];
    if (current !== undefined)
      for (const [id, s] of live) if (s.slab === current && !inCall.has(id)) others.push([id, s]);
    const required = Math.max(...rows.map((r) => r.start + r.tokens.length), ...others.map(([, s]) => s.length)) + 1;

    const rowOf = new Map<RowInput<FusedState>, number>();
    if (current !== undefined && current.capacity >= Math.min(required, this.context.maxCapacity)) {
      const taken = new Set(others.map(([, s]) => s.row));
      for (const row of rows) if (row.state?.slab === current) taken.add(row.state.row);
      let free = 0;
      let fits = true;
      for (const row of rows) {
        if (row.state?.slab === current) {
          rowOf.set(row, row.state.row);
          continue;
        }
        while (free < current.rows && taken.has(free)) free++;
        if (free === current.rows) {
          fits = false;
          break;
        }
        rowOf.set(row, free++);
      }
      const single = rows.filter((r) => r.tokens.length === 1).map((r) => rowOf.get(r)!);
      const span = single.length === 0 ? 0 : Math.max(...single) - Math.min(...single) + 1;
      if (fits && span <= 2 * single.length + 2) {
        for (const row of rows) {
          if (row.state !== undefined && row.state.slab !== current) {
            current.copyRow(rowOf.get(row)!, row.state.slab, row.state.row, row.state.length);
          }
        }
        return { target: current, rowOf, relocated: new Map() };
      }
      rowOf.clear();
    }
    // A new slab: the call's one-token rows first (contiguous for the decode run), its other rows, then the other
    // live sequences of the slab it replaces.
    const target = new KvSlab(
      this.context.layout,
      roundUp(rows.length + others.length, rowStep),
      this.capacityFor(required),
    );
    const ordered = [...rows.filter((r) => r.tokens.length === 1), ...rows.filter((r) => r.tokens.length > 1)];
    let next = 0;
    for (const row of ordered) {
      if (row.state !== undefined) target.copyRow(next, row.state.slab, row.state.row, row.state.length);
      rowOf.set(row, next++);
    }
    const relocated = new Map<string, FusedState>();
    for (const [id, s] of others) {
      target.copyRow(next, s.slab, s.row, s.length);
      relocated.set(id, { slab: target, row: next++, length: s.length });
    }
    return { target, rowOf, relocated };
  }

  /** New prompts grouped into runs: longest first, joining while padding stays small and the run within limits. */
  private promptBatches(prompts: readonly RowInput<FusedState>[]): RowInput<FusedState>[][] {
    const sorted = [...prompts].sort((a, b) => b.tokens.length - a.tokens.length);
    const batches: RowInput<FusedState>[][] = [];
    for (const row of sorted) {
      const batch = batches[batches.length - 1];
      const longest = batch?.[0]!.tokens.length ?? 0;
      if (
        batch !== undefined &&
        batch.length < this.context.maxRunRows &&
        longest - row.tokens.length <= paddingSlack &&
        (batch.length + 1) * longest * this.context.vocabSize * 4 <= logitsBudgetBytes
      ) {
        batch.push(row);
      } else {
        batches.push([row]);
      }
    }
    return batches;
  }

  /**
   * One onnxruntime run over rows `[from, from + rows.length)` of `slab`: row b appends its tokens (right-padded
   * with id 0 to the longest) after its `past` slots; a row without tokens rides along with a dummy token written
   * at slot `past`. `keep` is `num_logits_to_keep` (0: all positions). An abort of `signal` stops the run where
   * the binding can.
   */
  private async run(
    slab: KvSlab,
    from: number,
    rows: readonly RunRow[],
    keep: number,
    signal: AbortSignal | undefined,
  ): Promise<{ data: Float32Array | Uint16Array; kept: number }> {
    const { signature, session, vocabSize } = this.context;
    const batch = rows.length;
    const seq = rows.reduce((max, r) => Math.max(max, r.tokens?.length ?? 1), 0);
    const ids = new Int32Array(batch * seq);
    const positions = new Int32Array(batch * seq);
    const seqlens = new Int32Array(batch);
    let total = 0;
    rows.forEach((row, b) => {
      const n = row.tokens?.length ?? 1;
      if (row.tokens !== undefined) ids.set(row.tokens, b * seq);
      for (let i = 0; i < seq; i++) positions[b * seq + i] = row.past + Math.min(i, n - 1);
      seqlens[b] = row.past + n - 1;
      total = Math.max(total, row.past + n);
    });
    if (total > slab.capacity) throw new Error(`unreachable: ${total} positions in a buffer of ${slab.capacity}`);
    const feeds: Record<string, ort.Tensor> = {
      [signature.inputIds.name]: indexTensor(signature.inputIds.type, ids, [batch, seq]),
      [signature.seqlensK!]: new ort.Tensor('int32', seqlens, [batch]),
      [signature.totalSequenceLength!]: new ort.Tensor('int32', Int32Array.of(total), []),
    };
    if (signature.positionIds !== undefined) {
      feeds[signature.positionIds.name] = indexTensor(signature.positionIds.type, positions, [batch, seq]);
    }
    if (signature.logitsToKeep !== undefined) {
      feeds[signature.logitsToKeep.name] = indexTensor(signature.logitsToKeep.type, Int32Array.of(keep), []);
    }
    const tensors = slab.tensors(from, from + batch);
    const fetches: Record<string, ort.Tensor | null> = { [signature.logits.name]: null };
    signature.layers.forEach((layer, i) => {
      feeds[layer.pastKey] = fetches[layer.presentKey] = tensors[2 * i]!;
      feeds[layer.pastValue] = fetches[layer.presentValue] = tensors[2 * i + 1]!;
    });
    const outputs = await runSession(session, feeds, fetches, this.context.file, signal);
    const logits = outputs[signature.logits.name] as ort.Tensor;
    const [outBatch, kept, outVocab] = logits.dims as number[];
    const expectedKept = keep === 0 ? seq : Math.min(keep, seq);
    if (outBatch !== batch || outVocab !== vocabSize || kept === undefined || kept < expectedKept) {
      throw new BackendError(
        `${this.context.file}: logits have shape [${logits.dims.join(', ')}], expected [${batch}, ${expectedKept}, ${vocabSize}]`,
      );
    }
    return { data: logits.data as Float32Array | Uint16Array, kept };
  }

  /** Copies row b's logits (its last real position, and all of them when it wants prompt logits) into the result. */
  private collect(
    result: { data: Float32Array | Uint16Array; kept: number },
    b: number,
    row: RowInput<FusedState>,
    seq: number,
    logits: Float32Array,
    promptLogits: Map<RowInput<FusedState>, Float32Array>,
  ): void {
    const { vocabSize } = this.context;
    const { data, kept } = result;
    const n = row.tokens.length;
    const copy = (position: number, target: Float32Array, offset: number) => {
      const at = (b * kept + position - (seq - kept)) * vocabSize;
      const source = data.subarray(at, at + vocabSize);
      if (source instanceof Float32Array) target.set(source, offset);
      else float16ToFloat32(source, target, offset);
    };
    copy(n - 1, logits, row.index * vocabSize);
    if (row.wantPromptLogits) {
      const all = new Float32Array(n * vocabSize);
      for (let i = 0; i < n; i++) copy(i, all, i * vocabSize);
      promptLogits.set(row, all);
    }
  }
}

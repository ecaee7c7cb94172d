import * as ort from 'onnxruntime-node';
import { allocateKv, bytesPerElement, type KvArray, type KvLayout } from './kv-group.js';

/**
 * The KV buffers of a fused (`GroupQueryAttention`) graph: per layer a key and a value buffer of `rows` sequences
 * x `capacity` slots (`[rows, kvHeads, capacity, headDim]`), fed as `past_key_values.*` and bound as the matching
 * `present.*` outputs, so each run writes its new keys and values in place. Row r holds its sequence's tokens
 * from slot 0; a run over rows `[from, to)` feeds a view of those rows (no copy).
 */
export class KvSlab {
  /** `2 x layers` buffers: key of layer 0, value of layer 0, key of layer 1... */
  readonly data: readonly KvArray[];
  /** Elements of one row in one buffer: `kvHeads x capacity x headDim`. */
  readonly rowSize: number;
  /** Bytes of all buffers. */
  readonly bytes: number;
  private view: { from: number; to: number; tensors: ort.Tensor[] } | undefined;

  constructor(
    readonly layout: KvLayout,
    readonly rows: number,
    readonly capacity: number,
  ) {
    this.rowSize = layout.kvHeads * capacity * layout.headDim;
    this.data = Array.from({ length: 2 * layout.layers }, () => allocateKv(layout.kvType, rows * this.rowSize));
    this.bytes = 2 * layout.layers * rows * this.rowSize * bytesPerElement(layout.kvType);
  }

  /** Tensors over rows `[from, to)` (views of the buffers; the last range asked for is kept for the next step). */
  tensors(from: number, to: number): ort.Tensor[] {
    if (this.view?.from !== from || this.view.to !== to) {
      const { kvHeads, headDim, kvType } = this.layout;
      const tensors = this.data.map(
        (buffer) =>
          new ort.Tensor(kvType, buffer.subarray(from * this.rowSize, to * this.rowSize), [
            to - from,
            kvHeads,
            this.capacity,
            headDim,
          ]),
      );
      this.view = { from, to, tensors };
    }
    return this.view.tensors;
  }

  /** Copies the first `length` slots of `source`'s row `sourceRow` into this slab's row `row`. */
  copyRow(row: number, source: KvSlab, sourceRow: number, length: number): void {
    const { kvHeads, headDim } = this.layout;
    if (length > this.capacity) throw new RangeError(`${length} slots do not fit in a capacity of ${this.capacity}`);
    for (let t = 0; t < this.data.length; t++) {
      const target = this.data[t]!;
      const from = source.data[t]!;
      for (let h = 0; h < kvHeads; h++) {
        const sourceStart = (sourceRow * kvHeads + h) * source.capacity * headDim;
        target.set(
          from.subarray(sourceStart, sourceStart + length * headDim),
          (row * kvHeads + h) * this.capacity * headDim,
        );
      }
    }
  }
}

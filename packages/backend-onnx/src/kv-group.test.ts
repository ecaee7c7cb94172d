import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { CacheGroup, compactGroup, groupBytes, type KvLayout } from './kv-group.js';

const layout: KvLayout = { layers: 1, kvHeads: 2, headDim: 3, kvType: 'float32' };

/** A group whose value at (row, head, slot, d) encodes its coordinates: row*1000 + head*100 + slot*10 + d. */
function labelledGroup(rows: number, width: number, mask: number[]): CacheGroup {
  const data = new Float32Array(rows * 2 * width * 3);
  for (let r = 0; r < rows; r++)
    for (let h = 0; h < 2; h++)
      for (let s = 0; s < width; s++)
        for (let d = 0; d < 3; d++) data[((r * 2 + h) * width + s) * 3 + d] = r * 1000 + h * 100 + s * 10 + d;
  const tensor = new ort.Tensor('float32', data, [rows, 2, width, 3]);
  return new CacheGroup([tensor, tensor], rows, width, Uint8Array.from(mask), groupBytes(layout, rows, width));
}

describe('compactGroup', () => {
  it('copies each row’s real slots in order, without gaps, right-aligned (left padding)', async () => {
    // Row 0: real slots 1, 2 and 4 (a left pad at 0, a gap at 3). Row 1: slots 0 to 4.
    const group = labelledGroup(2, 5, [0, 1, 1, 0, 1, 1, 1, 1, 1, 1]);
    const compact = await compactGroup([{ length: 3, group, row: 0 }, undefined, { length: 5, group, row: 1 }], layout);
    expect(compact.rows).toBe(3);
    expect(compact.width).toBe(5);
    expect(Array.from(compact.mask)).toEqual([0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    const data = compact.tensors[0]!.data as Float32Array;
    const slot = (r: number, h: number, s: number) => data[((r * 2 + h) * 5 + s) * 3]!;
    expect([2, 3, 4].map((s) => slot(0, 1, s))).toEqual([110, 120, 140]);
    expect([0, 1].map((s) => slot(0, 0, s))).toEqual([0, 0]);
    expect([0, 1, 2, 3, 4].map((s) => slot(1, 0, s))).toEqual([0, 0, 0, 0, 0]); // the new, empty sequence
    expect([0, 1, 2, 3, 4].map((s) => slot(2, 1, s))).toEqual([1100, 1110, 1120, 1130, 1140]);
    expect(compact.bytes).toBe(2 * 3 * 2 * 5 * 3 * 4);
  });

  it('keeps float16 caches as float16', async () => {
    const bits = Uint16Array.from({ length: 12 }, (_, i) => 0x3c00 + i);
    const tensor = new ort.Tensor('float16', bits, [1, 2, 2, 3]);
    const half: KvLayout = { ...layout, kvType: 'float16' };
    const group = new CacheGroup([tensor, tensor], 1, 2, Uint8Array.of(1, 1), groupBytes(half, 1, 2));
    const compact = await compactGroup([{ length: 2, group, row: 0 }], half);
    expect(compact.tensors[0]!.type).toBe('float16');
    expect(Array.from(compact.tensors[0]!.data as Uint16Array)).toEqual(Array.from(bits));
    expect(compact.bytes).toBe(2 * 1 * 2 * 2 * 3 * 2);
  });
});

import * as tf from '@tensorflow/tfjs-core';

/** Where a float32 tensor's values live: `array[offset, offset + size)`. */
export interface MemoryView {
  readonly array: Float32Array;
  readonly offset: number;
}

/**
 * Direct access to the storage of float32 tensors, for the backends whose tensors are plain memory that this
 * process owns: `wasm` (the WebAssembly heap) and `cpu` (a `Float32Array` per tensor). It is what lets the KV cache
 * be written in place instead of being concatenated every step. Other backends (`tensorflow`) return `undefined`
 * from {@link tensorMemory} and use tfjs ops only.
 *
 * The views must be taken again after any tfjs call: the WebAssembly heap can grow and move.
 */
export interface TensorMemory {
  view(tensor: tf.Tensor): MemoryView;
}

interface WasmTensorData {
  memoryOffset: number;
}
interface WasmBackendLike {
  wasm: { HEAPF32: Float32Array };
  dataIdMap: { get(dataId: object): WasmTensorData | undefined };
}
interface CpuBackendLike {
  data: { get(dataId: object): { values?: unknown } | undefined };
}

/** The {@link TensorMemory} of the active tfjs backend, or `undefined` when its tensors are not plain memory. */
export function tensorMemory(tfjsBackend: string): TensorMemory | undefined {
  if (tfjsBackend === 'wasm') {
    return {
      view(tensor) {
        const backend = tf.engine().findBackend('wasm') as unknown as WasmBackendLike;
        const data = backend.dataIdMap.get(tensor.dataId);
        if (data === undefined || tensor.dtype !== 'float32') throw new Error('not a live float32 wasm tensor');
        return { array: backend.wasm.HEAPF32, offset: data.memoryOffset / 4 };
      },
    };
  }
  if (tfjsBackend === 'cpu') {
    return {
      view(tensor) {
        const backend = tf.engine().findBackend('cpu') as unknown as CpuBackendLike;
        const values = backend.data.get(tensor.dataId)?.values;
        if (!(values instanceof Float32Array)) throw new Error('not a live float32 cpu tensor');
        return { array: values, offset: 0 };
      },
    };
  }
  return undefined;
}

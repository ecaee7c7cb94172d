/**
 * Logits rows that live in the sampling kernels' WebAssembly memory, so that a sampler reads a row where a backend
 * wrote it instead of copying it in first. A decode step's rows are written while the caches hold the model's
 * weights, not the rows: each 128 KB copy of a 32,000-entry row into cold memory cost a batch-1 step about as much
 * as the argmax itself (measured on llama.cpp decode, see docs/sampling.md#logits-arenas).
 */
import { SamplingError } from './errors.js';
import { WASM_TOP_K_LIMIT } from './stages/top-k.js';
import { createWasmKernels, wasmKernelsSwitchedOn, type WasmKernels } from './wasm/kernels.js';

/**
 * Memory for the logits rows of one decode loop, shared with the samplers created with it
 * (`SamplerOptions.arena`). Make one per engine (per loop that samples its rows one after another): its samplers
 * run their WebAssembly kernels in the arena's own memory, so no other loop's sampling can grow (and so detach)
 * it while a backend is writing rows.
 */
export interface LogitsArena {
  /** Entries per row. */
  readonly vocabSize: number;
  /**
   * A `Float32Array` of `count × vocabSize` floats in the arena's memory (row `i` at `[i × vocabSize, (i + 1) ×
   * vocabSize)`), or undefined when the WebAssembly SIMD kernels are off or unavailable (use an ordinary array
   * then). Call it again for every batch: a view from an earlier call is detached once the memory has grown (for
   * more rows, or a sampler asking for more top tokens than the arena was made for). Contents are kept while the
   * memory grows; a sampler created with this arena may modify the rows it is given, as with any row.
   */
  rows(count: number): Float32Array | undefined;
}

/** Options of {@link createLogitsArena}. */
export interface LogitsArenaOptions {
  /** Entries per row (the model's vocabulary size). */
  vocabSize: number;
  /**
   * The most top tokens a sampler of this arena will be asked for (`SamplerOptions.maxTopNTokens`): the scratch is
   * laid out for it up front, so sampling never grows the memory under rows handed out. Default 64.
   */
  maxTopNTokens?: number;
}

/**
 * Creates a {@link LogitsArena}: pass its rows to the backend as the step's logits buffer and the arena to
 * `createSampler`, and a greedy sampler picks its token from the row in place. Rows of a vocabulary that is not a
 * multiple of 16, and every sampled (non-greedy) step, are still copied into the kernels' scratch, as without an
 * arena; results are the same either way.
 *
 * @example
 * ```ts
 * const arena = createLogitsArena({ vocabSize: 32000 });
 * const sampler = createSampler({}, { vocabSize: 32000, arena });
 * const rows = arena.rows(1) ?? new Float32Array(32000);
 * rows.fill(0);
 * rows[42] = 1; // a backend writes its logits here
 * sampler.sample(rows.subarray(0, 32000), sampler.createSequence()).tokenId; // 42
 * ```
 */
export function createLogitsArena(options: LogitsArenaOptions): LogitsArena {
  const { vocabSize } = options;
  if (!Number.isInteger(vocabSize) || vocabSize < 1) {
    throw new SamplingError(`vocabSize must be a positive integer, got ${String(vocabSize)}`);
  }
  const maxTopNTokens = options.maxTopNTokens ?? 64;
  if (!Number.isInteger(maxTopNTokens) || maxTopNTokens < 0) {
    throw new SamplingError(`maxTopNTokens must be an integer >= 0, got ${String(maxTopNTokens)}`);
  }
  return new KernelArena(vocabSize, maxTopNTokens);
}

/** The kernels instance of an arena made by {@link createLogitsArena}, or undefined for anything else. */
export function arenaKernels(arena: LogitsArena | undefined, vocabSize: number): WasmKernels | undefined {
  if (arena === undefined) return undefined;
  if (!(arena instanceof KernelArena)) throw new SamplingError('arena must come from createLogitsArena');
  if (arena.vocabSize !== vocabSize) {
    throw new SamplingError(`the arena holds rows of ${arena.vocabSize} logits, the sampler ${vocabSize}`);
  }
  return arena.kernels;
}

class KernelArena implements LogitsArena {
  readonly kernels: WasmKernels | undefined;
  private view: Float32Array | undefined;

  constructor(
    readonly vocabSize: number,
    maxTopNTokens: number,
  ) {
    this.kernels = createWasmKernels();
    this.kernels?.ensure(vocabSize, Math.max(maxTopNTokens, WASM_TOP_K_LIMIT));
  }

  rows(count: number): Float32Array | undefined {
    const kernels = this.kernels;
    if (kernels === undefined || !wasmKernelsSwitchedOn()) return undefined;
    if (!Number.isInteger(count) || count < 0) {
      throw new SamplingError(`count must be an integer >= 0, got ${String(count)}`);
    }
    const length = count * this.vocabSize;
    const buffer = kernels.k.memory.buffer;
    if (this.view === undefined || this.view.length < length || this.view.buffer !== buffer) {
      try {
        kernels.reserveRows(length * 4);
      } catch {
        return undefined; // past what a WebAssembly memory can hold: ordinary arrays then
      }
      this.view = new Float32Array(kernels.k.memory.buffer, 0, Math.floor(kernels.base / 4));
    }
    return this.view.length === length ? this.view : this.view.subarray(0, length);
  }
}

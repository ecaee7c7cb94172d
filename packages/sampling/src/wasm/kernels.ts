/**
 * The WebAssembly SIMD kernels (src/wasm/kernels.wat) at run time: instantiated synchronously, once, on first use,
 * from the bytes shipped in kernels-bytes.ts; one module memory laid out for the largest vocabulary seen so far
 * (sampling is synchronous, so one set of regions suffices), grown when a larger one comes.
 *
 * The kernels are used when the runtime validates the module (WebAssembly with SIMD), unless the environment
 * variable `GEN_SAMPLING_WASM` is `0`, `false` or `off`, or {@link setWasmKernelsEnabled} turned them off; the
 * sampler then runs its JavaScript paths, which give the same results to float32 tolerance.
 */
import { KERNELS_WASM_BASE64 } from './kernels-bytes.js';

/** The parts of the WebAssembly JS API used here (declared locally: the package compiles without the DOM lib). */
interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: object };
}

/** The functions the module exports; pointers are byte offsets into its memory (see kernels.wat). */
interface KernelExports {
  readonly memory: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  readonly weighted: { value: number };
  readonly tieCount: { value: number };
  max(p: number, n: number): number;
  argmax(p: number, n: number): number;
  sumExp(p: number, n: number, max: number, scale: number): number;
  expPass(p: number, e: number, b: number, n: number, max: number, scale: number, lo: number, mode: number): number;
  scatter(b: number, e: number, mass: number, n: number, below: number): void;
  distBuckets(p: number, e: number, b: number, n: number, max: number, scale: number, mean: number): void;
  collect(b: number, n: number, bucket: number, out: number): number;
  draw(p: number, e: number, n: number, lo: number, hi: number, loId: number, target: number): number;
  keep(p: number, e: number, n: number, lo: number, hi: number, loId: number, out: number): number;
  topN(
    p: number,
    n: number,
    k: number,
    lo: number,
    hi: number,
    loId: number,
    values: number,
    ids: number,
    ties: number,
  ): number;
}

/** `expPass` mode bit: store the uint16 bucket of every token. */
export const EXP_PASS_BUCKETS = 1;
/** `expPass` mode bit: sum exp(x) * x into `weighted`. */
export const EXP_PASS_WEIGHTED = 2;
/** `expPass` mode bit: skip 16-lane blocks with no logit >= lo. */
export const EXP_PASS_SKIP_BELOW = 4;
/** Number of probability-mass buckets (as in the sampler's JS path). */
export const MASS_BUCKETS = 2048;

const PAGE = 65536;

/**
 * The module, its memory and the regions of the current layout. Regions hold `capacity` entries (a multiple of 16,
 * at least the padded vocabulary size): `row` and `raw` (float32 logits), `exps` (float32), `ids` (int32: collected
 * ids, ties, kept ids), `buckets` (uint16), `mass` (2048 float64), `bestValues` / `bestIds` (`topCapacity` entries).
 * They start at `base`: the bytes before it hold a caller's logits rows (see {@link reserveRows}, used by
 * `createLogitsArena`), which the scratch regions never overlap. Offsets are in bytes; the views are rebuilt
 * whenever the memory grows.
 */
export class WasmKernels {
  readonly k: KernelExports;
  f32!: Float32Array;
  i32!: Int32Array;
  u16!: Uint16Array;
  f64!: Float64Array;
  capacity = 0;
  topCapacity = 0;
  row = 0;
  raw = 0;
  exps = 0;
  ids = 0;
  mass = 0;
  bestValues = 0;
  bestIds = 0;
  buckets = 0;
  /** Bytes at the start of the memory reserved for logits rows (0 for the shared instance). */
  base = 0;

  constructor(api: WebAssemblyApi, module: object) {
    this.k = new api.Instance(module, {}).exports as KernelExports;
    this.refreshViews();
  }

  /** Makes room for rows of `vocabSize` logits and `topN` top tokens (grows the memory when needed). */
  ensure(vocabSize: number, topN: number): void {
    if (vocabSize + 16 <= this.capacity && topN <= this.topCapacity) return;
    this.layout(
      Math.max(this.capacity, (Math.ceil(vocabSize / 16) + 1) * 16),
      Math.max(this.topCapacity, Math.ceil(Math.max(topN, 64) / 4) * 4),
    );
  }

  /**
   * Reserves the first `bytes` bytes of the memory (rounded up to 64) for rows that callers write and samplers read
   * in place; the scratch regions move after them (their contents live within one `sample` call only, so nothing
   * is lost). Grows the memory when needed; never shrinks the reservation.
   */
  reserveRows(bytes: number): void {
    if (bytes <= this.base) return;
    const previous = this.base;
    this.base = Math.ceil(bytes / 64) * 64;
    try {
      this.layout(this.capacity, this.topCapacity);
    } catch (error) {
      this.base = previous; // the memory could not grow: the layout is unchanged
      throw error;
    }
  }

  private layout(capacity: number, topCapacity: number): void {
    const row = this.base;
    const raw = row + 4 * capacity;
    const exps = raw + 4 * capacity;
    const ids = exps + 4 * capacity;
    const mass = ids + 4 * capacity;
    const bestValues = mass + 8 * MASS_BUCKETS;
    const bestIds = bestValues + 4 * topCapacity;
    const buckets = bestIds + 4 * topCapacity;
    const bytes = buckets + 2 * capacity;
    const memory = this.k.memory;
    const pages = Math.ceil(bytes / PAGE) - memory.buffer.byteLength / PAGE;
    if (pages > 0) memory.grow(pages);
    Object.assign(this, { capacity, topCapacity, row, raw, exps, ids, mass, bestValues, bestIds, buckets });
    this.refreshViews();
  }

  private refreshViews(): void {
    const buffer = this.k.memory.buffer;
    this.f32 = new Float32Array(buffer);
    this.i32 = new Int32Array(buffer);
    this.u16 = new Uint16Array(buffer);
    this.f64 = new Float64Array(buffer);
  }

  /**
   * Copies `logits` into the float32 region at byte offset `region` and pads it with -Infinity up to the next
   * multiple of 16; returns the padded length (the `n` the kernels take).
   */
  load(logits: Float32Array, region: number): number {
    const start = region >> 2;
    const length = logits.length;
    const padded = (length + 15) & ~15;
    this.f32.set(logits, start);
    this.f32.fill(-Infinity, start + length, start + padded);
    return padded;
  }
}

function environmentDisabled(): boolean {
  const value = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env
    ?.GEN_SAMPLING_WASM;
  return value !== undefined && ['0', 'false', 'off', 'no'].includes(value.trim().toLowerCase());
}

function decodeBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

let instance: WasmKernels | null | undefined; // undefined: not tried yet; null: unavailable
let compiled: { api: WebAssemblyApi; module: object } | null | undefined; // likewise
let enabled = !environmentDisabled();

function instantiate(): WasmKernels | null {
  try {
    if (compiled === undefined) {
      compiled = null;
      const api = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
      if (api === undefined) return null;
      const bytes = decodeBase64(KERNELS_WASM_BASE64);
      if (!api.validate(bytes)) return null; // no SIMD in this runtime
      compiled = { api, module: new api.Module(bytes) };
    }
    return compiled === null ? null : new WasmKernels(compiled.api, compiled.module);
  } catch {
    return null;
  }
}

/**
 * A new instance of the kernels with a memory of its own (the module is compiled once per process), or undefined
 * when this runtime cannot run them. Whether samplers use it still follows {@link setWasmKernelsEnabled}.
 */
export function createWasmKernels(): WasmKernels | undefined {
  return instantiate() ?? undefined;
}

/** Whether the kernels are switched on (they may still be unavailable on this runtime). */
export function wasmKernelsSwitchedOn(): boolean {
  return enabled;
}

/** The kernels, or undefined when they are disabled or this runtime cannot run them (the JS paths are used). */
export function wasmKernels(): WasmKernels | undefined {
  if (!enabled) return undefined;
  if (instance === undefined) instance = instantiate();
  return instance ?? undefined;
}

/**
 * Turns the WebAssembly SIMD kernels on or off for every sampler in this process (they start on unless the
 * environment variable `GEN_SAMPLING_WASM` is `0`, `false`, `off` or `no`). Results agree to float32 tolerance
 * either way; this exists for tests and comparisons. Returns whether the kernels are now in use (false when
 * enabling them on a runtime without WebAssembly SIMD).
 */
export function setWasmKernelsEnabled(on: boolean): boolean {
  enabled = on;
  return wasmKernels() !== undefined;
}

/** Whether sampling currently runs the WebAssembly SIMD kernels. */
export function wasmKernelsEnabled(): boolean {
  return wasmKernels() !== undefined;
}

import * as ort from 'onnxruntime-node';
import type { OnnxSession, OnnxSessionOptions, SessionFetches } from '../onnx-session.js';
import { loadOrtCApi, OrtStatusError, type OrtCApi, type Pointer } from './ort-c-api.js';

/** `ONNXTensorElementDataType` values and the onnxruntime-common names they map to. */
const elementTypes: Readonly<Record<number, ort.Tensor.Type>> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
  21: 'uint4',
  22: 'int4',
};
const elementTypeIds = new Map(Object.entries(elementTypes).map(([id, type]) => [type, Number(id)]));

const typedArrays: Partial<
  Record<ort.Tensor.Type, { new (buffer: ArrayBuffer): ort.Tensor.DataType; readonly BYTES_PER_ELEMENT: number }>
> = {
  float32: Float32Array,
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  bool: Uint8Array,
  float16: Uint16Array,
  float64: Float64Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
};

const optimizationLevels = { disabled: 0, basic: 1, extended: 2, all: 99 } as const;

/**
 * An onnxruntime session driven through the C API (see {@link loadOrtCApi}), shaped like onnxruntime-node's
 * `InferenceSession` where the backend uses it. What differs:
 *
 * - an output given a tensor in `fetches` is written into that tensor's memory and returned as the same tensor
 *   object: no copy (onnxruntime-node copies every output into a new buffer after each run, bound ones included);
 * - outputs fetched as `null` are allocated by onnxruntime and copied once into a new typed array;
 * - with `runThread: 'worker'`, runs execute on a koffi worker thread, so the event loop keeps serving while the
 *   model computes, and {@link abort} stops a run in progress at its next operator (`RunOptionsSetTerminate`).
 *
 * Runs are serialized: a second `run` waits for the first. Typed arrays given as inputs or outputs must not be
 * written by JavaScript until the run's promise settles.
 */
export class DirectSession implements OnnxSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  /** Outputs bound to caller tensors are written in place and returned as they are. */
  readonly bindsOutputsInPlace = true;
  private session: Pointer;
  private runOptions: Pointer;
  private queue: Promise<unknown> = Promise.resolve();
  private running = false;
  private profiling = false;

  private constructor(
    private readonly api: OrtCApi,
    session: Pointer,
    runOptions: Pointer,
    private readonly worker: boolean,
  ) {
    this.session = session;
    this.runOptions = runOptions;
    const inputs = this.describe('input');
    const outputs = this.describe('output');
    this.inputNames = inputs.map((m) => m.name);
    this.outputNames = outputs.map((m) => m.name);
    this.inputMetadata = inputs;
    this.outputMetadata = outputs;
  }

  /** The onnxruntime version this session runs on. */
  get version(): string {
    return this.api.version;
  }

  /** Where runs execute: the calling thread, or a koffi worker thread (the event loop stays free). */
  get runThread(): 'main' | 'worker' {
    return this.worker ? 'worker' : 'main';
  }

  /**
   * Creates the session on the CPU execution provider. Runs go to a worker thread when `options.runThread` is
   * `worker` and koffi allows it (see {@link runThread}).
   *
   * @throws {Error} the C API is not available here (the message says why): callers fall back to onnxruntime-node.
   * @throws {OrtStatusError} onnxruntime refused the file or an option.
   */
  static create(
    file: string,
    options: OnnxSessionOptions & {
      runThread?: 'main' | 'worker';
      /** Turns onnxruntime's profiler on: it writes `<prefix>_<date>.json`; see {@link endProfiling}. */
      profileFilePrefix?: string;
    },
  ): DirectSession {
    const loaded = loadOrtCApi();
    if ('error' in loaded) throw new Error(loaded.error);
    const { api } = loaded;
    const { fn } = api;
    const sessionOptions = api.out('CreateSessionOptions', fn.CreateSessionOptions);
    let session: Pointer = null;
    try {
      api.check(fn.SetIntraOpNumThreads(sessionOptions, options.intraOpThreads ?? 0), 'SetIntraOpNumThreads');
      api.check(fn.SetInterOpNumThreads(sessionOptions, 1), 'SetInterOpNumThreads');
      api.check(fn.SetSessionExecutionMode(sessionOptions, 0), 'SetSessionExecutionMode');
      api.check(fn.SetSessionLogSeverityLevel(sessionOptions, 3), 'SetSessionLogSeverityLevel');
      api.check(
        fn.SetSessionGraphOptimizationLevel(
          sessionOptions,
          optimizationLevels[options.graphOptimizationLevel ?? 'all'],
        ),
        'SetSessionGraphOptimizationLevel',
      );
      api.check(
        fn.AddSessionConfigEntry(
          sessionOptions,
          'session.intra_op.allow_spinning',
          options.intraOpSpinning ? '1' : '0',
        ),
        'AddSessionConfigEntry',
      );
      if (options.profileFilePrefix !== undefined) {
        api.check(fn.EnableProfiling(sessionOptions, options.profileFilePrefix), 'EnableProfiling');
      }
      session = api.out('CreateSession', fn.CreateSession, api.env, file, sessionOptions);
    } finally {
      fn.ReleaseSessionOptions(sessionOptions);
    }
    let runOptions: Pointer = null;
    try {
      runOptions = api.out('CreateRunOptions', fn.CreateRunOptions);
      const created = new DirectSession(api, session, runOptions, options.runThread === 'worker' && api.asyncRuns);
      created.profiling = options.profileFilePrefix !== undefined;
      return created;
    } catch (error) {
      if (runOptions !== null) fn.ReleaseRunOptions(runOptions);
      fn.ReleaseSession(session);
      throw error;
    }
  }

  /**
   * Runs the graph. `fetches` lists the outputs to compute (all when omitted): by name, or as a map whose values
   * are `null` (onnxruntime allocates, the result is a copy) or a tensor to write into (returned as is).
   *
   * @throws {OrtStatusError} onnxruntime rejected the inputs or a kernel failed (the session stays usable).
   * @throws {Error} the session was released, or the run was aborted.
   */
  run(feeds: Readonly<Record<string, ort.Tensor>>, fetches?: SessionFetches): Promise<Record<string, ort.Tensor>> {
    const result = this.queue.then(() => this.runNow(feeds, fetches));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Stops the run in progress, if any, at its next operator: its promise rejects with an error saying it was
   * terminated. Runs started later are not affected.
   */
  abort(): void {
    if (this.running && this.runOptions !== null) {
      this.api.check(this.api.fn.RunOptionsSetTerminate(this.runOptions), 'RunOptionsSetTerminate');
    }
  }

  /**
   * Stops onnxruntime's profiler (turned on by `profileFilePrefix`) and returns the path of the JSON file it wrote.
   *
   * @throws {Error} profiling was not on (no `profileFilePrefix`), or the session was released.
   * @throws {OrtStatusError} the file could not be written.
   */
  endProfiling(): string {
    if (this.session === null) throw new Error('the onnxruntime session was released');
    if (!this.profiling) throw new Error('profiling is off: create the session with profileFilePrefix');
    this.profiling = false;
    const pointer = this.api.out(
      'SessionEndProfiling',
      this.api.fn.SessionEndProfiling,
      this.session,
      this.api.allocator,
    );
    const file = this.api.string(pointer);
    this.api.check(this.api.fn.AllocatorFree(this.api.allocator, pointer), 'AllocatorFree');
    return file;
  }

  /** Frees the session once the runs already asked for are done. Later runs throw. */
  async release(): Promise<void> {
    await this.queue;
    if (this.session === null) return;
    this.api.fn.ReleaseSession(this.session);
    this.api.fn.ReleaseRunOptions(this.runOptions);
    this.session = null;
    this.runOptions = null;
  }

  private async runNow(
    feeds: Readonly<Record<string, ort.Tensor>>,
    fetches: SessionFetches | undefined,
  ): Promise<Record<string, ort.Tensor>> {
    const { api } = this;
    const { fn } = api;
    if (this.session === null) throw new Error('the onnxruntime session was released');
    const outputNames: string[] = [];
    const bound: (ort.Tensor | null)[] = [];
    if (fetches === undefined || Array.isArray(fetches)) {
      for (const name of (fetches as readonly string[] | undefined) ?? this.outputNames) {
        outputNames.push(this.checkOutput(name));
        bound.push(null);
      }
    } else {
      for (const [name, tensor] of Object.entries(fetches as Readonly<Record<string, ort.Tensor | null>>)) {
        outputNames.push(this.checkOutput(name));
        bound.push(tensor);
      }
    }
    const inputNames: string[] = [];
    const created: Pointer[] = [];
    const inputs: Pointer[] = [];
    const outputs: Pointer[] = [];
    // Every typed array handed to onnxruntime stays reachable here until the run is over: its memory must outlive
    // the run.
    const pinned: ArrayBufferLike[] = [];
    const describe = (tensor: ort.Tensor, what: string): Pointer => {
      const type = elementTypeIds.get(tensor.type);
      if (type === undefined || tensor.location !== 'cpu') {
        throw new TypeError(`${what}: tensors of type ${tensor.type} on ${tensor.location} are not supported`);
      }
      const data = tensor.data as ArrayBufferView;
      // V8 keeps typed arrays of up to 64 bytes inside its heap, where the garbage collector moves them; asking for
      // the buffer moves the data to a backing store of its own, which never moves while the array is reachable.
      pinned.push(data.buffer);
      const shape = BigInt64Array.from(tensor.dims, (d) => BigInt(d));
      const value = api.out(
        what,
        fn.CreateTensorWithDataAsOrtValue,
        api.cpuMemory,
        data,
        data.byteLength,
        shape,
        shape.length,
        type,
      );
      created.push(value);
      return value;
    };
    try {
      for (const [name, tensor] of Object.entries(feeds)) {
        if (!this.inputNames.includes(name)) throw new RangeError(`'feeds' names an unknown input: ${name}`);
        inputNames.push(name);
        inputs.push(describe(tensor, `input '${name}'`));
      }
      for (const name of this.inputNames) {
        if (feeds[name] === undefined) throw new RangeError(`input '${name}' is missing in 'feeds'`);
      }
      bound.forEach((tensor, i) =>
        outputs.push(tensor === null ? null : describe(tensor, `output '${outputNames[i]}'`)),
      );
      const args = [
        this.session,
        this.runOptions,
        inputNames,
        inputs,
        inputs.length,
        outputNames,
        outputs.length,
        outputs,
      ];
      this.running = true;
      let status: unknown;
      try {
        status = this.worker
          ? await new Promise((resolve, reject) =>
              fn.Run.async(...args, (error: unknown, value: unknown) => (error ? reject(error) : resolve(value))),
            )
          : fn.Run(...args);
      } finally {
        this.running = false;
        api.check(fn.RunOptionsUnsetTerminate(this.runOptions), 'RunOptionsUnsetTerminate');
      }
      api.check(status, 'Run');
      const result: Record<string, ort.Tensor> = {};
      outputNames.forEach((name, i) => {
        const given = bound[i];
        if (given !== null && given !== undefined) {
          result[name] = given;
          return;
        }
        const value = outputs[i]!;
        created.push(value);
        result[name] = this.copyOut(value, name);
      });
      pinned.length = 0;
      return result;
    } finally {
      for (const value of created) if (value !== null) fn.ReleaseValue(value);
    }
  }

  /** A copy of an output onnxruntime allocated, as an onnxruntime-common tensor. */
  private copyOut(value: Pointer, name: string): ort.Tensor {
    const { api } = this;
    const { fn, koffi } = api;
    const info = api.out(`output '${name}'`, fn.GetTensorTypeAndShape, value);
    let described: { typeId: number; dims: number[] };
    try {
      described = this.tensorInfo(info);
    } finally {
      fn.ReleaseTensorTypeAndShapeInfo(info);
    }
    const { typeId, dims } = described;
    const type = elementTypes[typeId];
    const Typed = type === undefined ? undefined : typedArrays[type];
    if (type === undefined || Typed === undefined) {
      throw new TypeError(`output '${name}' has element type ${typeId}, which this binding does not read`);
    }
    const bytes = dims.reduce((a, b) => a * b, 1) * Typed.BYTES_PER_ELEMENT;
    const copy = new ArrayBuffer(bytes);
    if (bytes > 0) {
      const data = api.out(`output '${name}'`, fn.GetTensorMutableData, value);
      new Uint8Array(copy).set(new Uint8Array(koffi.view(data, bytes)));
    }
    return new ort.Tensor(type, new Typed(copy), dims);
  }

  private checkOutput(name: string): string {
    if (!this.outputNames.includes(name)) throw new RangeError(`'fetches' names an unknown output: ${name}`);
    return name;
  }

  /** Element type and dimensions (-1 where symbolic) of an `OrtTensorTypeAndShapeInfo`. */
  private tensorInfo(info: Pointer): { typeId: number; dims: number[] } {
    const { api } = this;
    const { fn } = api;
    const typeId = new Int32Array(1);
    api.check(fn.GetTensorElementType(info, typeId), 'GetTensorElementType');
    const rank = [0];
    api.check(fn.GetDimensionsCount(info, rank), 'GetDimensionsCount');
    const n = Number(rank[0]);
    const dims = new BigInt64Array(Math.max(1, n));
    api.check(fn.GetDimensions(info, dims, n), 'GetDimensions');
    return { typeId: typeId[0]!, dims: Array.from(dims.subarray(0, n), Number) };
  }

  /** Names and types of the graph's inputs or outputs, as onnxruntime-node reports them. */
  private describe(kind: 'input' | 'output'): ort.InferenceSession.ValueMetadata[] {
    const { api } = this;
    const { fn } = api;
    const count = [0];
    api.check((kind === 'input' ? fn.SessionGetInputCount : fn.SessionGetOutputCount)(this.session, count), 'count');
    const metadata: ort.InferenceSession.ValueMetadata[] = [];
    for (let i = 0; i < Number(count[0]); i++) {
      const namePointer = api.out(
        'name',
        kind === 'input' ? fn.SessionGetInputName : fn.SessionGetOutputName,
        this.session,
        i,
        api.allocator,
      );
      const name = api.string(namePointer);
      api.check(fn.AllocatorFree(api.allocator, namePointer), 'AllocatorFree');
      const typeInfo = api.out(
        'type info',
        kind === 'input' ? fn.SessionGetInputTypeInfo : fn.SessionGetOutputTypeInfo,
        this.session,
        i,
      );
      try {
        const onnxType = new Int32Array(1);
        api.check(fn.GetOnnxTypeFromTypeInfo(typeInfo, onnxType), 'GetOnnxTypeFromTypeInfo');
        if (onnxType[0] !== 1) {
          metadata.push({ name, isTensor: false });
          continue;
        }
        // Owned by the type info: not released on its own.
        const info = api.out('tensor info', fn.CastTypeInfoToTensorInfo, typeInfo);
        const { typeId, dims } = this.tensorInfo(info);
        const symbols = new BigUint64Array(Math.max(1, dims.length));
        api.check(fn.GetSymbolicDimensions(info, symbols, dims.length), 'GetSymbolicDimensions');
        const shape = dims.map((dim, d) => (dim >= 0 ? dim : symbols[d] === 0n ? '' : api.string(symbols[d]!)));
        const type = elementTypes[typeId];
        if (type === undefined) throw new OrtStatusError(`${kind} '${name}' has element type ${typeId}`, 9);
        metadata.push({ name, isTensor: true, type, shape } as ort.InferenceSession.ValueMetadata);
      } finally {
        fn.ReleaseTypeInfo(typeInfo);
      }
    }
    return metadata;
  }
}

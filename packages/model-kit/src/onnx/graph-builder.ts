import type { AttributeValue, InitializerSpec, NodeSpec } from './onnx-proto.js';
import { DataType } from './onnx-proto.js';
import type { LazyBytes } from './protobuf.js';

/** Attribute shorthands. */
export const attr = {
  int: (value: number): AttributeValue => ({ type: 'int', value }),
  float: (value: number): AttributeValue => ({ type: 'float', value }),
  ints: (value: readonly number[]): AttributeValue => ({ type: 'ints', value }),
};

/**
 * Collects nodes and initializers. Nodes are named like PyTorch's exporter names them (`/model/layers.0/mlp/Mul`)
 * and their outputs `<node name>_output_<i>`; names are made unique with a numeric suffix.
 */
export class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: InitializerSpec[] = [];
  private readonly used = new Set<string>();
  private readonly constants = new Map<string, string>();

  /** Adds a node `opType` under `scope` and returns its output names. */
  op(
    scope: string,
    opType: string,
    inputs: readonly string[],
    attributes?: Record<string, AttributeValue>,
    outputCount = 1,
  ): string[] {
    const name = this.unique(`${scope}/${opType}`);
    const outputs = Array.from({ length: outputCount }, (_, i) => `${name}_output_${i}`);
    this.nodes.push({ name, opType, inputs, outputs, ...(attributes === undefined ? {} : { attributes }) });
    return outputs;
  }

  /** Like {@link op} with one output. */
  op1(scope: string, opType: string, inputs: readonly string[], attributes?: Record<string, AttributeValue>): string {
    return this.op(scope, opType, inputs, attributes)[0]!;
  }

  /**
   * Adds a node whose outputs have the given names (graph outputs such as `present.0.key`; an empty name leaves an
   * optional output out), in `domain` when given (for example `com.microsoft`).
   */
  opNamed(
    scope: string,
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attributes?: Record<string, AttributeValue>,
    domain?: string,
  ): void {
    const name = this.unique(`${scope}/${opType}`);
    this.nodes.push({
      name,
      opType,
      inputs,
      outputs,
      ...(attributes === undefined ? {} : { attributes }),
      ...(domain === undefined ? {} : { domain }),
    });
  }

  /** A weight initializer whose bytes are produced when the file is written. */
  weight(name: string, dims: readonly number[], data: LazyBytes): string {
    this.initializers.push({ name, dataType: DataType.FLOAT, dims, data });
    return name;
  }

  /** An initializer of any element type (quantized weights, scales) whose bytes may be produced lazily. */
  tensor(name: string, dataType: number, dims: readonly number[], data: Uint8Array | LazyBytes): string {
    this.initializers.push({ name, dataType, dims, data });
    return name;
  }

  /** A node of a contrib operator domain (for example `com.microsoft`); returns its output names. */
  opDomain(
    scope: string,
    domain: string,
    opType: string,
    inputs: readonly string[],
    attributes: Record<string, AttributeValue>,
    outputCount = 1,
  ): string[] {
    const name = this.unique(`${scope}/${opType}`);
    const outputs = Array.from({ length: outputCount }, (_, i) => `${name}_output_${i}`);
    this.nodes.push({ name, opType, inputs, outputs, attributes, domain });
    return outputs;
  }

  /** A small int64 constant, shared between all uses of the same value. */
  int64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.constant(DataType.INT64, values, dims, () => {
      const data = new BigInt64Array(values.map((v) => BigInt(v)));
      return new Uint8Array(data.buffer);
    });
  }

  /** A small float32 constant, shared between all uses of the same value. */
  float32(values: readonly number[] | Float32Array, dims: readonly number[] = [values.length]): string {
    const array = Float32Array.from(values);
    return this.constant(DataType.FLOAT, [...array], dims, () => new Uint8Array(array.buffer));
  }

  private constant(dataType: number, values: readonly number[], dims: readonly number[], bytes: () => Uint8Array) {
    const key = `${dataType}:${dims.join('x')}:${values.join(',')}`;
    const existing = this.constants.get(key);
    if (existing !== undefined) return existing;
    const name = this.unique(`/Constant_${dataType === DataType.INT64 ? 'int64' : 'float'}`);
    this.initializers.push({ name, dataType, dims, data: bytes() });
    this.constants.set(key, name);
    return name;
  }

  private unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}

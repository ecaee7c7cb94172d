import { ProtoWriter, type LazyBytes } from './protobuf.js';

/** `TensorProto.DataType` codes used here. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10 } as const;

/** An initializer: raw little-endian data inline, or a reference into the external data file. */
export interface InitializerSpec {
  name: string;
  dataType: number;
  dims: readonly number[];
  data: Uint8Array | LazyBytes;
}

/** Where an initializer's bytes lie in the external data file (`location` is relative to the model file). */
export interface ExternalLocation {
  location: string;
  offset: number;
  length: number;
}

/** An attribute of a node (the ONNX `AttributeProto` kinds used here). */
export type AttributeValue =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'ints'; value: readonly number[] }
  | { type: 'string'; value: string };

/** A node of the graph. */
export interface NodeSpec {
  name: string;
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes?: Readonly<Record<string, AttributeValue>>;
  domain?: string;
}

/** A graph input or output: a tensor type with fixed (number) or symbolic (string) dimensions. */
export interface ValueInfoSpec {
  name: string;
  elemType: number;
  dims: ReadonlyArray<number | string>;
}

/** A whole graph. */
export interface GraphSpec {
  name: string;
  nodes: readonly NodeSpec[];
  initializers: readonly InitializerSpec[];
  inputs: readonly ValueInfoSpec[];
  outputs: readonly ValueInfoSpec[];
}

const attributeType = { float: 1, int: 2, string: 3, ints: 7 } as const;

/** `TensorProto`; with `external`, the data is referenced (`data_location = EXTERNAL`) instead of embedded. */
export function encodeTensor(tensor: InitializerSpec, external?: ExternalLocation): ProtoWriter {
  const w = new ProtoWriter();
  for (const dim of tensor.dims) w.int(1, dim);
  w.int(2, tensor.dataType);
  w.string(8, tensor.name);
  if (external === undefined) {
    if (tensor.data instanceof Uint8Array) w.bytes(9, tensor.data);
    else w.lazyBytes(9, tensor.data);
  } else {
    const entry = (key: string, value: string) => new ProtoWriter().string(1, key).string(2, value);
    w.message(13, entry('location', external.location));
    w.message(13, entry('offset', String(external.offset)));
    w.message(13, entry('length', String(external.length)));
    w.int(14, 1);
  }
  return w;
}

function encodeAttribute(name: string, attribute: AttributeValue): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  switch (attribute.type) {
    case 'float':
      w.float(2, attribute.value);
      break;
    case 'int':
      w.int(3, attribute.value);
      break;
    case 'string':
      w.string(4, attribute.value);
      break;
    case 'ints':
      for (const value of attribute.value) w.int(8, value);
      break;
  }
  return w.int(20, attributeType[attribute.type]);
}

function encodeNode(node: NodeSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const input of node.inputs) w.string(1, input);
  for (const output of node.outputs) w.string(2, output);
  w.string(3, node.name);
  w.string(4, node.opType);
  for (const [name, value] of Object.entries(node.attributes ?? {})) w.message(5, encodeAttribute(name, value));
  if (node.domain !== undefined) w.string(7, node.domain);
  return w;
}

function encodeValueInfo(info: ValueInfoSpec): ProtoWriter {
  const shape = new ProtoWriter();
  for (const dim of info.dims) {
    const d = new ProtoWriter();
    if (typeof dim === 'number') d.int(1, dim);
    else d.string(2, dim);
    shape.message(1, d);
  }
  const tensorType = new ProtoWriter().int(1, info.elemType).message(2, shape);
  return new ProtoWriter().string(1, info.name).message(2, new ProtoWriter().message(1, tensorType));
}

/** `GraphProto`; `external` maps initializer names to their place in the external data file. */
export function encodeGraph(graph: GraphSpec, external: ReadonlyMap<string, ExternalLocation>): ProtoWriter {
  const w = new ProtoWriter();
  for (const node of graph.nodes) w.message(1, encodeNode(node));
  w.string(2, graph.name);
  for (const tensor of graph.initializers) w.message(5, encodeTensor(tensor, external.get(tensor.name)));
  for (const input of graph.inputs) w.message(11, encodeValueInfo(input));
  for (const output of graph.outputs) w.message(12, encodeValueInfo(output));
  return w;
}

/** An operator set a model imports besides the default ONNX domain (for example `com.microsoft` version 1). */
export interface OpsetImport {
  domain: string;
  version: number;
}

/** `ModelProto` for the default ONNX domain at `opsetVersion`, plus `extraOpsets` (contrib operator domains). */
export function encodeModel(options: {
  graph: ProtoWriter;
  irVersion: number;
  opsetVersion: number;
  producerName: string;
  producerVersion: string;
  extraOpsets?: readonly OpsetImport[];
}): ProtoWriter {
  const w = new ProtoWriter()
    .int(1, options.irVersion)
    .string(2, options.producerName)
    .string(3, options.producerVersion)
    .message(7, options.graph)
    .message(8, new ProtoWriter().string(1, '').int(2, options.opsetVersion));
  for (const opset of options.extraOpsets ?? []) {
    w.message(8, new ProtoWriter().string(1, opset.domain).int(2, opset.version));
  }
  return w;
}

/**
 * Test-only: encodes a tiny ONNX model (one `Identity` node per output) with chosen graph inputs and outputs, to
 * feed the loader graphs that are valid ONNX but not decoders with a KV cache.
 */

/** ONNX `TensorProto.DataType` codes used by the tests. */
export const elementTypes = { float32: 1, int64: 7, float16: 10 } as const;

/** A graph input or output. */
export interface ValueSpec {
  name: string;
  type: keyof typeof elementTypes;
  dims: readonly (number | string)[];
}

class Writer {
  private readonly bytes: number[] = [];

  varintField(field: number, value: number): this {
    this.varint(field * 8);
    this.varint(value);
    return this;
  }

  bytesField(field: number, value: Uint8Array): this {
    this.varint(field * 8 + 2);
    this.varint(value.length);
    for (const b of value) this.bytes.push(b);
    return this;
  }

  stringField(field: number, value: string): this {
    return this.bytesField(field, new TextEncoder().encode(value));
  }

  messageField(field: number, child: Writer): this {
    return this.bytesField(field, child.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }

  private varint(value: number): void {
    let v = value;
    while (v >= 0x80) {
      this.bytes.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    this.bytes.push(v);
  }
}

function valueInfo(spec: ValueSpec): Writer {
  const shape = new Writer();
  for (const dim of spec.dims) {
    const d = new Writer();
    if (typeof dim === 'number') d.varintField(1, dim);
    else d.stringField(2, dim);
    shape.messageField(1, d);
  }
  const tensorType = new Writer().varintField(1, elementTypes[spec.type]).messageField(2, shape);
  return new Writer().stringField(1, spec.name).messageField(2, new Writer().messageField(1, tensorType));
}

/**
 * A model whose output `i` is `Identity(inputs[pairs[i]])`: valid for onnxruntime as long as each output has the
 * element type of the input it copies.
 */
export function encodeIdentityModel(inputs: ValueSpec[], outputs: (ValueSpec & { from: string })[]): Uint8Array {
  const graph = new Writer();
  outputs.forEach((output, i) => {
    graph.messageField(
      1,
      new Writer()
        .stringField(1, output.from)
        .stringField(2, output.name)
        .stringField(3, `identity_${i}`)
        .stringField(4, 'Identity'),
    );
  });
  graph.stringField(2, 'test');
  for (const input of inputs) graph.messageField(11, valueInfo(input));
  for (const output of outputs) graph.messageField(12, valueInfo(output));
  return new Writer()
    .varintField(1, 8)
    .stringField(2, 'backend-onnx-test')
    .messageField(7, graph)
    .messageField(8, new Writer().stringField(1, '').varintField(2, 17))
    .finish();
}

/**
 * A minimal protocol-buffers encoder (the subset ONNX needs: varints, fixed32 floats, length-delimited strings,
 * bytes and sub-messages), written for streaming: large byte fields can be lazy, so a multi-gigabyte model is
 * sized exactly before any weight is produced, then written piece by piece.
 */

/** Bytes produced on demand; their length must be known up front. */
export interface LazyBytes {
  byteLength: number;
  produce: () => Uint8Array | Promise<Uint8Array>;
}

/** A part of an encoded message: ready bytes or lazy bytes. */
export type Piece = Uint8Array | LazyBytes;

const utf8 = new TextEncoder();
const inlineChildLimit = 1 << 16;

/** Builds one message. Write fields in field-number order, as protoc-generated encoders do. */
export class ProtoWriter {
  private readonly pieces: Piece[] = [];
  private pending: number[] = [];
  private size = 0;

  /** Encoded size in bytes, lazy fields included. */
  get byteLength(): number {
    return this.size;
  }

  /** A varint field (wire type 0): int32, int64, enum, bool. Negative values take ten bytes (two's complement). */
  int(field: number, value: number | bigint): this {
    this.tag(field, 0);
    this.varint(value);
    return this;
  }

  /** A fixed32 float field (wire type 5). */
  float(field: number, value: number): this {
    this.tag(field, 5);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    for (const b of bytes) this.push(b);
    return this;
  }

  /** A string field (UTF-8, wire type 2). */
  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }

  /** A bytes field (wire type 2). */
  bytes(field: number, value: Uint8Array): this {
    this.tag(field, 2);
    this.varint(value.byteLength);
    if (value.byteLength <= inlineChildLimit) {
      for (const b of value) this.push(b);
    } else {
      this.flush();
      this.pieces.push(value);
      this.size += value.byteLength;
    }
    return this;
  }

  /** A bytes field whose contents are produced only when the message is written out. */
  lazyBytes(field: number, value: LazyBytes): this {
    this.tag(field, 2);
    this.varint(value.byteLength);
    this.flush();
    this.pieces.push(value);
    this.size += value.byteLength;
    return this;
  }

  /** An embedded message field. */
  message(field: number, child: ProtoWriter): this {
    this.tag(field, 2);
    this.varint(child.byteLength);
    const pieces = child.finish();
    if (child.byteLength <= inlineChildLimit && pieces.every((p) => p instanceof Uint8Array)) {
      for (const piece of pieces as Uint8Array[]) for (const b of piece) this.push(b);
    } else {
      this.flush();
      this.pieces.push(...pieces);
      this.size += child.byteLength;
    }
    return this;
  }

  /** The encoded message as pieces, in order. */
  finish(): Piece[] {
    this.flush();
    return this.pieces;
  }

  private tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  private varint(value: number | bigint): void {
    if (typeof value === 'bigint' || value < 0) {
      let v = BigInt.asUintN(64, BigInt(value));
      while (v >= 0x80n) {
        this.push(Number(v & 0x7fn) | 0x80);
        v >>= 7n;
      }
      this.push(Number(v));
      return;
    }
    if (!Number.isSafeInteger(value)) throw new RangeError(`varint ${value} is not a safe integer`);
    let v = value;
    while (v >= 0x80) {
      this.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.push(v);
  }

  private push(byte: number): void {
    this.pending.push(byte);
    this.size++;
  }

  private flush(): void {
    if (this.pending.length > 0) {
      this.pieces.push(Uint8Array.from(this.pending));
      this.pending = [];
    }
  }
}

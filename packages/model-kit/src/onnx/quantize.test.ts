/**
 * The quantized layouts are checked against onnxruntime itself: a single `MatMulNBits` (or `MatMulInteger`) node
 * run by onnxruntime-node must compute `A x dequantize(B)^T` as the TypeScript dequantizer reads the bytes.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { createRandomStream, fillUniform } from '../prng.js';
import { attr, GraphBuilder } from './graph-builder.js';
import { DataType, encodeGraph, encodeModel } from './onnx-proto.js';
import { dequantizeBlockwise, quantizeBlockwise, quantizePerChannelInt8 } from './quantize.js';

function random(count: number, salt: string): Float32Array {
  const values = new Float32Array(count);
  fillUniform(values, createRandomStream(7, salt), 1);
  return values;
}

/** `a [m, k] x w[n, k]^T` in float64. */
function matmulTransposed(a: Float32Array, w: Float32Array, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let t = 0; t < k; t++) sum += a[i * k + t]! * w[j * k + t]!;
      out[i * n + j] = sum;
    }
  }
  return out;
}

function bytes(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

async function runGraph(g: GraphBuilder, k: number, n: number, a: Float32Array, m: number): Promise<Float32Array> {
  const graph = encodeGraph(
    {
      name: 'g',
      nodes: g.nodes,
      initializers: g.initializers,
      inputs: [{ name: 'A', elemType: DataType.FLOAT, dims: ['m', k] }],
      outputs: [{ name: 'Y', elemType: DataType.FLOAT, dims: ['m', n] }],
    },
    new Map(),
  );
  const pieces = encodeModel({
    graph,
    irVersion: 8,
    opsetVersion: 17,
    producerName: 'test',
    producerVersion: '0',
    extraOpsets: [{ domain: 'com.microsoft', version: 1 }],
  }).finish() as Uint8Array[];
  const model = new Uint8Array(pieces.reduce((s, p) => s + p.byteLength, 0));
  let offset = 0;
  for (const p of pieces) {
    model.set(p, offset);
    offset += p.byteLength;
  }
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'disabled' });
  try {
    const out = await session.run({ A: new ort.Tensor('float32', a, [m, k]) });
    return out['Y']!.data as Float32Array;
  } finally {
    await session.release();
  }
}

function maxRelativeError(actual: Float32Array, expected: Float64Array): number {
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  return worst / scale;
}

describe('MatMulNBits layout', () => {
  const cases = [
    { bits: 4, symmetric: true, k: 64, n: 24 },
    { bits: 4, symmetric: false, k: 96, n: 16 },
    { bits: 4, symmetric: true, k: 176, n: 8 }, // K not a multiple of the block size: a padded last block
    { bits: 4, symmetric: false, k: 80, n: 5 }, // odd number of blocks: zero points share a byte unevenly
    { bits: 8, symmetric: true, k: 64, n: 12 },
    { bits: 8, symmetric: false, k: 100, n: 7 },
  ] as const;

  it.each(cases)('bits $bits symmetric $symmetric K $k N $n: onnxruntime computes A x dequant(B)^T', async (c) => {
    const m = 3;
    const weight = random(c.n * c.k, `w${c.bits}${c.k}`);
    const a = random(m * c.k, `a${c.k}`);
    const q = quantizeBlockwise(weight, c.n, c.k, { bits: c.bits, blockSize: 32, symmetric: c.symmetric });
    const dequantized = dequantizeBlockwise(q);
    // Rounding error is at most half a step; symmetric blocks clamp the side opposite their extreme one code
    // early (codes run from -2^(bits-1) to 2^(bits-1) - 1), which can cost a whole step there.
    for (let i = 0; i < weight.length; i++) {
      const scale = Math.abs(q.scales[Math.floor(i / c.k) * q.blocksPerColumn + Math.floor((i % c.k) / 32)]!);
      expect(Math.abs(dequantized[i]! - weight[i]!)).toBeLessThanOrEqual(scale * (c.symmetric ? 1 : 0.5) + 1e-7);
    }
    const g = new GraphBuilder();
    const inputs = [
      'A',
      g.tensor('B', DataType.UINT8, [c.n, q.blocksPerColumn, (32 * c.bits) / 8], q.packed),
      g.tensor('scales', DataType.FLOAT, [c.n * q.blocksPerColumn], bytes(q.scales)),
    ];
    if (q.zeroPoints !== undefined) inputs.push(g.tensor('zp', DataType.UINT8, [q.zeroPoints.length], q.zeroPoints));
    g.nodes.push({
      name: 'mm',
      opType: 'MatMulNBits',
      domain: 'com.microsoft',
      inputs,
      outputs: ['Y'],
      attributes: { K: attr.int(c.k), N: attr.int(c.n), bits: attr.int(c.bits), block_size: attr.int(32) },
    });
    const actual = await runGraph(g, c.k, c.n, a, m);
    expect(maxRelativeError(actual, matmulTransposed(a, dequantized, m, c.k, c.n))).toBeLessThan(1e-5);
  });

  it('accuracy_level 4 (int8 activations) stays within 2% of the float product', async () => {
    const [m, k, n] = [2, 256, 32];
    const weight = random(n * k, 'acc-w');
    const a = random(m * k, 'acc-a');
    const q = quantizeBlockwise(weight, n, k, { bits: 4, blockSize: 32 });
    const g = new GraphBuilder();
    g.nodes.push({
      name: 'mm',
      opType: 'MatMulNBits',
      domain: 'com.microsoft',
      inputs: [
        'A',
        g.tensor('B', DataType.UINT8, [n, q.blocksPerColumn, 16], q.packed),
        g.tensor('scales', DataType.FLOAT, [n * q.blocksPerColumn], bytes(q.scales)),
      ],
      outputs: ['Y'],
      attributes: {
        K: attr.int(k),
        N: attr.int(n),
        bits: attr.int(4),
        block_size: attr.int(32),
        accuracy_level: attr.int(4),
      },
    });
    const actual = await runGraph(g, k, n, a, m);
    expect(maxRelativeError(actual, matmulTransposed(a, dequantizeBlockwise(q), m, k, n))).toBeLessThan(0.02);
  });
});

describe('per-channel int8', () => {
  it('rounds each row to its own scale, within half a step', () => {
    const weight = random(6 * 40, 'int8');
    const q = quantizePerChannelInt8(weight, 6, 40);
    for (let r = 0; r < 6; r++) {
      for (let c = 0; c < 40; c++) {
        expect(Math.abs(q.values[r * 40 + c]! * q.scales[r]! - weight[r * 40 + c]!)).toBeLessThanOrEqual(
          q.scales[r]! * 0.5 + 1e-7,
        );
      }
    }
    expect(Math.max(...Array.from(q.values, Math.abs))).toBe(127);
  });
});

import type { LinearWeights } from '@gen/backend';

/**
 * `out[t, :] = input[t, :] Wᵀ + b` for `rows` rows; `W` row-major `[outFeatures, inFeatures]`.
 *
 * Each weight row is streamed once per block of four input rows, and the four dot products are accumulated in
 * float64 registers in the same order as the single-row path, so a row's result does not depend on how many rows
 * are computed together (prefill, chunked prefill and decode agree bit for bit).
 */
export function linear(input: Float32Array, rows: number, weights: LinearWeights, out: Float32Array): void {
  const { weight, bias, outFeatures, inFeatures } = weights;
  let t = 0;
  for (; t + 4 <= rows; t += 4) {
    const x0 = t * inFeatures;
    const x1 = x0 + inFeatures;
    const x2 = x1 + inFeatures;
    const x3 = x2 + inFeatures;
    const y0 = t * outFeatures;
    for (let o = 0; o < outFeatures; o++) {
      const w = o * inFeatures;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      for (let k = 0; k < inFeatures; k++) {
        const wk = weight[w + k]!;
        a0 += wk * input[x0 + k]!;
        a1 += wk * input[x1 + k]!;
        a2 += wk * input[x2 + k]!;
        a3 += wk * input[x3 + k]!;
      }
      const b = bias === undefined ? 0 : bias[o]!;
      out[y0 + o] = a0 + b;
      out[y0 + outFeatures + o] = a1 + b;
      out[y0 + 2 * outFeatures + o] = a2 + b;
      out[y0 + 3 * outFeatures + o] = a3 + b;
    }
  }
  for (; t < rows; t++) {
    const x = t * inFeatures;
    const y = t * outFeatures;
    for (let o = 0; o < outFeatures; o++) {
      const w = o * inFeatures;
      let a = 0;
      for (let k = 0; k < inFeatures; k++) a += weight[w + k]! * input[x + k]!;
      out[y + o] = a + (bias === undefined ? 0 : bias[o]!);
    }
  }
}

/** `out[t, :] = x[t, :] / sqrt(mean(x[t, :]²) + eps) * weight` (RMSNorm), statistics in float64. */
export function rmsNorm(
  input: Float32Array,
  rows: number,
  size: number,
  weight: Float32Array,
  eps: number,
  out: Float32Array,
): void {
  for (let t = 0; t < rows; t++) {
    const offset = t * size;
    let sumSquares = 0;
    for (let i = 0; i < size; i++) {
      const v = input[offset + i]!;
      sumSquares += v * v;
    }
    const scale = 1 / Math.sqrt(sumSquares / size + eps);
    for (let i = 0; i < size; i++) out[offset + i] = Math.fround(input[offset + i]! * scale) * weight[i]!;
  }
}

/** `gate[i] = silu(gate[i]) * up[i]` over the first `length` entries (SwiGLU), in place. */
export function siluMultiply(gate: Float32Array, up: Float32Array, length: number): void {
  for (let i = 0; i < length; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

const geluTanhConstant = Math.sqrt(2 / Math.PI);

/**
 * `gate[i] = gelu_tanh(gate[i]) * up[i]` over the first `length` entries (GeGLU, Gemma), in place, with
 * `gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2 / π) (x + 0.044715 x³)))` (PyTorch's `approximate="tanh"`).
 */
export function geluTanhMultiply(gate: Float32Array, up: Float32Array, length: number): void {
  for (let i = 0; i < length; i++) {
    const g = gate[i]!;
    gate[i] = 0.5 * g * (1 + Math.tanh(geluTanhConstant * (g + 0.044715 * g * g * g))) * up[i]!;
  }
}

/** `values[i] = tanh(values[i] / cap) * cap` over the first `length` entries (logit soft-capping), in place. */
export function softcap(values: Float32Array, length: number, cap: number): void {
  for (let i = 0; i < length; i++) values[i] = Math.tanh(values[i]! / cap) * cap;
}

/** `target[i] += source[i]` over the first `length` entries (residual connection). */
export function addInPlace(target: Float32Array, source: Float32Array, length: number): void {
  for (let i = 0; i < length; i++) target[i] = target[i]! + source[i]!;
}

/**
 * Logit processors over one dense row of logits (`Float32Array` of length vocab), modifying it in place.
 * Removed tokens get `-Infinity`. These functions follow transformers' float32 semantics exactly (the golden
 * vectors in `fixtures/` come from the real transformers code) and are the reference the fused
 * {@link createSampler} pipeline is tested against. Each is a no-op at its neutral value.
 */
import { expNonPositive, maxOf, sumExpShifted } from './fast-math.js';

/** Reusable buffers for the processors that need them; pass one in to make a call allocation-free. */
export interface ProcessorScratch {
  /** At least vocab entries. */
  values: Float32Array;
  /** At least vocab entries. */
  indices: Int32Array;
  /** At least vocab entries. */
  doubles: Float64Array;
}

/** Buffers for rows of up to `vocabSize` entries. */
export function createProcessorScratch(vocabSize: number): ProcessorScratch {
  return {
    values: new Float32Array(vocabSize),
    indices: new Int32Array(vocabSize),
    doubles: new Float64Array(vocabSize),
  };
}

function scratchFor(length: number, scratch: ProcessorScratch | undefined): ProcessorScratch {
  return scratch !== undefined && scratch.values.length >= length ? scratch : createProcessorScratch(length);
}

/** Temperature: `s_i = s_i / temperature` (temperature > 0; 1 is a no-op). */
export function applyTemperature(logits: Float32Array, temperature: number): void {
  if (temperature === 1) return;
  for (let i = 0; i < logits.length; i++) logits[i] = logits[i]! / temperature;
}

/**
 * Top-k: removes every token whose logit is below the k-th largest logit. Tokens tied with the k-th value are
 * kept, so more than k tokens can survive (transformers / TGI). `k <= 0` or `k >= vocab` is a no-op.
 */
export function applyTopK(logits: Float32Array, k: number, scratch?: ProcessorScratch): void {
  const length = logits.length;
  if (k <= 0 || k >= length) return;
  const sorted = scratchFor(length, scratch).values.subarray(0, length);
  sorted.set(logits);
  sorted.sort();
  const kth = sorted[length - k]!;
  for (let i = 0; i < length; i++) if (logits[i]! < kth) logits[i] = -Infinity;
}

/** Softmax of `logits` as float64 probabilities into `out` (float32 max-shift as torch does). */
function softmaxInto(logits: Float32Array, out: Float64Array): void {
  const length = logits.length;
  const max = maxOf(logits);
  let sum = 0;
  for (let i = 0; i < length; i++) {
    const e = Math.exp(Math.fround(logits[i]! - max));
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < length; i++) out[i] = out[i]! / sum;
}

/** Indices of `keys` sorted ascending by key, ties by index (a stable sort). */
function stableAscendingOrder(keys: ArrayLike<number>, indices: Int32Array, length: number): Int32Array {
  const order = indices.subarray(0, length);
  for (let i = 0; i < length; i++) order[i] = i;
  order.sort((a, b) => {
    const ka = keys[a]!;
    const kb = keys[b]!;
    return ka < kb ? -1 : ka > kb ? 1 : a - b;
  });
  return order;
}

/**
 * Top-p (nucleus): sort ascending (stable), `c = cumsum(softmax(sorted))`, remove where `c <= 1 - topP`; the most
 * likely token always stays. Equivalently a token is kept iff the probability mass ranked strictly above it is
 * below `topP`; among equal logits the lowest ids are removed first. `topP >= 1` is a no-op.
 */
export function applyTopP(logits: Float32Array, topP: number, scratch?: ProcessorScratch): void {
  if (topP >= 1) return;
  const length = logits.length;
  const buffers = scratchFor(length, scratch);
  const order = stableAscendingOrder(logits, buffers.indices, length);
  const probabilities = buffers.doubles;
  softmaxInto(logits, probabilities);
  const limit = Math.fround(1 - topP);
  let cumulative = 0;
  for (let rank = 0; rank < length - 1; rank++) {
    const index = order[rank]!;
    cumulative += Math.fround(probabilities[index]!);
    if (Math.fround(cumulative) <= limit) logits[index] = -Infinity;
    else break;
  }
}

/**
 * Min-p: removes tokens with `p_i < minP * max(p)` (a token exactly at the boundary stays; the most likely token
 * always stays). `minP <= 0` is a no-op.
 */
export function applyMinP(logits: Float32Array, minP: number, scratch?: ProcessorScratch): void {
  if (minP <= 0) return;
  const length = logits.length;
  const probabilities = scratchFor(length, scratch).doubles;
  softmaxInto(logits, probabilities);
  let maxIndex = 0;
  for (let i = 1; i < length; i++) if (probabilities[i]! > probabilities[maxIndex]!) maxIndex = i;
  const threshold = Math.fround(Math.fround(minP) * Math.fround(probabilities[maxIndex]!));
  for (let i = 0; i < length; i++) {
    if (i !== maxIndex && Math.fround(probabilities[i]!) < threshold) logits[i] = -Infinity;
  }
}

/**
 * Typical-p (locally typical sampling, Meister et al. 2022): with `logp = log_softmax(s)` and entropy
 * `H = -sum p * logp`, rank tokens by `d_i = |-logp_i - H|` ascending (stable), take the cumulative probability
 * `c` in that order and `last = min(#(c < mass), vocab - 1)`; remove tokens with `d_i > d[order[last]]` (ties at
 * the boundary stay; the most typical token always stays). `mass >= 1` is a no-op.
 */
export function applyTypicalP(logits: Float32Array, mass: number, scratch?: ProcessorScratch): void {
  if (mass >= 1) return;
  const length = logits.length;
  const buffers = scratchFor(length, scratch);
  const probabilities = buffers.doubles;
  softmaxInto(logits, probabilities);
  let entropy = 0;
  for (let i = 0; i < length; i++) {
    const p = probabilities[i]!;
    if (p > 0) entropy -= p * Math.log(p);
  }
  const distance = buffers.values.subarray(0, length);
  for (let i = 0; i < length; i++) {
    const p = probabilities[i]!;
    distance[i] = p > 0 ? Math.abs(-Math.log(p) - entropy) : Infinity;
  }
  const order = stableAscendingOrder(distance, buffers.indices, length);
  let cumulative = 0;
  let count = 0;
  for (let rank = 0; rank < length; rank++) {
    cumulative += Math.fround(probabilities[order[rank]!]!);
    if (Math.fround(cumulative) < mass) count++;
    else break;
  }
  const last = Math.min(count, length - 1);
  const limit = distance[order[last]!]!;
  const first = order[0]!;
  for (let i = 0; i < length; i++) if (i !== first && distance[i]! > limit) logits[i] = -Infinity;
}

/**
 * Repetition penalty (CTRL, Keskar et al. 2019): for each distinct token in `tokens` (prompt and generated so far),
 * `s = s < 0 ? s * penalty : s / penalty`. `penalty === 1` is a no-op. Tokens outside the row are ignored.
 */
export function applyRepetitionPenalty(logits: Float32Array, tokens: ArrayLike<number>, penalty: number): void {
  if (penalty === 1) return;
  const length = logits.length;
  const seen = new Set<number>();
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token < 0 || token >= length || seen.has(token)) continue;
    seen.add(token);
    const s = logits[token]!;
    logits[token] = s < 0 ? s * penalty : s / penalty;
  }
}

/**
 * Frequency and presence penalties (OpenAI, llama.cpp): `s_i -= count_i * frequency + (count_i > 0) * presence`,
 * where `count_i` is how often token i occurs in `tokens` (usually the generated tokens only).
 */
export function applyFrequencyPresencePenalty(
  logits: Float32Array,
  tokens: ArrayLike<number>,
  frequency: number,
  presence: number,
): void {
  if (frequency === 0 && presence === 0) return;
  const counts = new Map<number, number>();
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token >= 0 && token < logits.length) counts.set(token, (counts.get(token) ?? 0) + 1);
  }
  for (const [token, count] of counts) logits[token] = logits[token]! - (count * frequency + presence);
}

/** Logit bias (OpenAI): `s_id += bias` for each entry. Ids outside the row are ignored. */
export function applyLogitBias(logits: Float32Array, bias: ReadonlyMap<number, number>): void {
  for (const [token, value] of bias) if (token >= 0 && token < logits.length) logits[token] = logits[token]! + value;
}

/**
 * No-repeat n-gram: bans every token x such that (last n-1 tokens, x) already occurs in `tokens`. A no-op while
 * `tokens.length + 1 < n` or for `n <= 0`.
 */
export function applyNoRepeatNgram(logits: Float32Array, tokens: ArrayLike<number>, n: number): void {
  const length = tokens.length;
  if (n <= 0 || length + 1 < n) return;
  const prefixStart = length - (n - 1);
  for (let start = 0; start + n <= length; start++) {
    let match = true;
    for (let j = 0; j < n - 1; j++) {
      if (tokens[start + j] !== tokens[prefixStart + j]) {
        match = false;
        break;
      }
    }
    if (!match) continue;
    const banned = tokens[start + n - 1]!;
    if (banned >= 0 && banned < logits.length) logits[banned] = -Infinity;
  }
}

/** Sets the listed tokens to -Infinity (suppress lists, and EOS while `min_new_tokens` is not reached). */
export function suppressTokens(logits: Float32Array, tokens: ArrayLike<number>): void {
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token >= 0 && token < logits.length) logits[token] = -Infinity;
  }
}

/** Sets every token NOT in `allowed` to -Infinity. */
export function allowOnlyTokens(logits: Float32Array, allowed: ReadonlySet<number>): void {
  for (let i = 0; i < logits.length; i++) if (!allowed.has(i)) logits[i] = -Infinity;
}

/** log_softmax of the row into `out` (float32), -Infinity stays -Infinity. */
export function logSoftmax(logits: Float32Array, out: Float32Array = new Float32Array(logits.length)): Float32Array {
  const max = maxOf(logits);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += expNonPositive(logits[i]! - max);
  const shift = max + Math.log(sum);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - shift;
  return out;
}

/** `log(sum(exp(s)))` of a row, computed stably (-Infinity when every entry is -Infinity). */
export function logSumExp(logits: Float32Array): number {
  const max = maxOf(logits);
  if (max === -Infinity) return -Infinity;
  return max + Math.log(sumExpShifted(logits, max, 1));
}

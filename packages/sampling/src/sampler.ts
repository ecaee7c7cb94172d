/**
 * The fused sampler: one object per request, built once from its parameters, that turns a row of logits into the
 * next token (plus its logprobs and the top tokens) with the semantics of the dense processors in
 * `processors.ts`, but without materializing intermediate rows: top-k by a bounded heap on the raw logits,
 * temperature folded into the exponent, top-p and typical-p by bucketing probability mass (only one bucket is
 * ever sorted), min-p as a threshold in logit space.
 */
import { SamplingError } from './errors.js';
import { EXP_UNDERFLOW, expNonPositive, maxOf, sumExpShifted } from './fast-math.js';
import {
  normalizeSamplingParameters,
  type NormalizedSamplingParameters,
  type SamplingParameters,
  type ValidationLimits,
} from './parameters.js';
import { highestFloat32, lowestFloat32 } from './float32.js';
import { randomSeed, uniform } from './rng.js';
import { SequenceState } from './sequence-state.js';
import {
  EXP_PASS_BUCKETS,
  EXP_PASS_SKIP_BELOW,
  EXP_PASS_WEIGHTED,
  MASS_BUCKETS,
  wasmKernels,
  type WasmKernels,
} from './wasm/kernels.js';
import type { LogitsProcessor } from './logits-processor.js';
import { GreenlistCache, applyWatermark } from './watermark.js';

/** One of the most likely tokens at a step, with its log-probability. */
export interface TopToken {
  id: number;
  logprob: number;
}

/** What {@link Sampler.sample} chose. The object passed in as `out` is reused and overwritten. */
export interface SampleResult {
  /** The chosen token id. */
  tokenId: number;
  /** log p(token) under the processed distribution (after penalties, temperature and truncation), as TGI reports. */
  logprob: number;
  /** log p(token) under the model's raw distribution; NaN unless the sampler was created with `rawLogprobs`. */
  rawLogprob: number;
  /**
   * The `topNTokens` most likely tokens, sorted by descending logprob; tokens tied with the n-th are included
   * (TGI), tokens with logprob -Infinity are not. From the processed distribution unless `topTokensFrom` is `raw`.
   */
  topTokens: TopToken[];
}

/** Options that come from the model and the serving setup rather than from the request. */
export interface SamplerOptions extends ValidationLimits {
  /** Number of logits per row. */
  vocabSize: number;
  /** End-of-sequence ids, suppressed while fewer than `minNewTokens` tokens were generated. */
  eosTokenIds?: readonly number[];
  /** Also compute the chosen token's logprob under the raw model distribution (costs one more pass). */
  rawLogprobs?: boolean;
  /** Distribution the top tokens are taken from: processed (default, as TGI) or raw (the model's). */
  topTokensFrom?: 'processed' | 'raw';
  /**
   * More logits processors, applied in order after the built-in ones (so a constraint's mask has the last word),
   * before temperature and truncation. Each sequence gets its own state from {@link LogitsProcessor.createState}.
   */
  processors?: readonly LogitsProcessor[];
}

/** A compiled, validated sampling configuration for one request. */
export interface Sampler {
  /** The validated parameters, defaults filled in. */
  readonly parameters: NormalizedSamplingParameters;
  /** The seed the draws use: the request's, or a random one to report back (TGI returns it in details). */
  readonly seed: number;
  /** Whether tokens are drawn at random (false: greedy argmax, lowest id on ties). */
  readonly doSample: boolean;
  /**
   * Per-choice state (token history, counts for penalties). Choice `i` of a request (n / best_of) draws its own
   * random stream, keyed by (seed, choice, step).
   */
  createSequence(promptTokens?: ArrayLike<number>, choice?: number): SequenceState;
  /**
   * Chooses the next token for `sequence` from one row of logits. The row is modified in place (processors write
   * into it). Does not append the token: call `sequence.accept(result.tokenId)` once it is kept.
   */
  sample(logits: Float32Array, sequence: SequenceState, out?: SampleResult): SampleResult;
}

/** A new, empty result object to pass as `out`. */
export function createSampleResult(): SampleResult {
  return { tokenId: -1, logprob: Number.NaN, rawLogprob: Number.NaN, topTokens: [] };
}

const BUCKETS = 2048;
const BUCKETS_PER_NAT = 32;
const REMOVED = 0xffff;

/** Scratch memory shared by every sampler of a vocabulary size (sampling is synchronous, so one set suffices). */
class Workspace {
  readonly raw: Float32Array;
  readonly exps: Float64Array;
  readonly buckets: Uint16Array;
  readonly candidateIds: Int32Array;
  readonly candidateValues: Float32Array;
  readonly spareIds: Int32Array;
  readonly spareValues: Float32Array;
  readonly candidateExps: Float64Array;
  readonly order: Int32Array;
  readonly ties: Int32Array;
  readonly bucketMass = new Float64Array(BUCKETS);
  heapValues = new Float32Array(64);
  heapIds = new Int32Array(64);
  allowedMask: Uint8Array | undefined;
  greenlists = new Map<number, GreenlistCache>();

  constructor(readonly vocabSize: number) {
    this.raw = new Float32Array(vocabSize);
    this.exps = new Float64Array(vocabSize);
    this.buckets = new Uint16Array(vocabSize);
    this.candidateIds = new Int32Array(vocabSize);
    this.candidateValues = new Float32Array(vocabSize);
    this.spareIds = new Int32Array(vocabSize);
    this.spareValues = new Float32Array(vocabSize);
    this.candidateExps = new Float64Array(vocabSize);
    this.order = new Int32Array(vocabSize);
    this.ties = new Int32Array(vocabSize);
  }

  greenlistCache(gamma: number): GreenlistCache {
    let cache = this.greenlists.get(gamma);
    if (cache === undefined) {
      cache = new GreenlistCache({ vocabSize: this.vocabSize, gamma });
      this.greenlists.set(gamma, cache);
    }
    return cache;
  }
}

const workspaces = new Map<number, Workspace>();
function workspaceFor(vocabSize: number): Workspace {
  let workspace = workspaces.get(vocabSize);
  if (workspace === undefined) {
    workspace = new Workspace(vocabSize);
    workspaces.set(vocabSize, workspace);
  }
  return workspace;
}

/**
 * Builds the sampler for one request. Validates `parameters` (throws `InvalidParameterError` naming the field)
 * and allocates no buffers per step afterwards (vocabulary-sized scratch is shared per vocabulary size); a step
 * leaves only a few KB of short-lived garbage.
 */
export function createSampler(parameters: SamplingParameters, options: SamplerOptions): Sampler {
  const { vocabSize } = options;
  if (!Number.isInteger(vocabSize) || vocabSize < 1) {
    throw new SamplingError(`vocabSize must be a positive integer, got ${String(vocabSize)}`);
  }
  const normalized = normalizeSamplingParameters(parameters, options);
  return new FusedSampler(normalized, options);
}

class FusedSampler implements Sampler {
  readonly seed: number;
  readonly doSample: boolean;
  private readonly workspace: Workspace;
  private readonly eosTokenIds: readonly number[];
  private readonly rawLogprobs: boolean;
  private readonly topFromRaw: boolean;
  private readonly allowed: Uint8Array | undefined;
  private readonly greenlists: GreenlistCache | undefined;
  private readonly logMinP: number;
  /** top_p runs after top_k, so the order of top_k's candidates never shows (see {@link wasmTopK}). */
  private readonly wasmTopK: boolean;
  private readonly extraProcessors: readonly LogitsProcessor[];

  constructor(
    readonly parameters: NormalizedSamplingParameters,
    options: SamplerOptions,
  ) {
    this.seed = parameters.seed ?? randomSeed();
    this.doSample = parameters.doSample;
    this.workspace = workspaceFor(options.vocabSize);
    this.eosTokenIds = options.eosTokenIds ?? [];
    this.topFromRaw = options.topTokensFrom === 'raw' && parameters.topNTokens > 0;
    this.rawLogprobs = options.rawLogprobs === true || this.topFromRaw;
    this.extraProcessors = options.processors ?? [];
    if (parameters.allowedTokens !== undefined) {
      this.allowed = new Uint8Array(options.vocabSize);
      for (const id of parameters.allowedTokens) this.allowed[id] = 1;
    }
    if (parameters.watermark !== undefined) this.greenlists = this.workspace.greenlistCache(parameters.watermark.gamma);
    this.logMinP = Math.log(parameters.minP);
    const order = parameters.order;
    this.wasmTopK =
      parameters.topK <= WASM_TOP_K_LIMIT && order.includes('top_p') && order.indexOf('top_p') > order.indexOf('top_k');
  }

  createSequence(promptTokens: ArrayLike<number> = [], choice = 0): SequenceState {
    const sequence = new SequenceState(promptTokens, choice);
    if (this.extraProcessors.length > 0) {
      sequence.attachProcessors(this.extraProcessors.map((processor) => processor.createState(sequence)));
    }
    return sequence;
  }

  sample(logits: Float32Array, sequence: SequenceState, out: SampleResult = createSampleResult()): SampleResult {
    const vocabSize = this.workspace.vocabSize;
    if (logits.length !== vocabSize) {
      throw new SamplingError(`expected a row of ${vocabSize} logits, got ${logits.length}`);
    }
    const workspace = this.workspace;
    const kernels = wasmKernels();
    if (kernels !== undefined) {
      kernels.ensure(vocabSize, Math.max(this.parameters.topNTokens, this.wasmTopK ? this.parameters.topK : 0));
    }
    let rawShift = Number.NaN;
    let rawPadded = 0;
    if (this.rawLogprobs) {
      if (kernels !== undefined) {
        rawPadded = kernels.load(logits, kernels.raw);
        const rawMax = kernels.k.max(kernels.raw, rawPadded);
        rawShift = rawMax + Math.log(kernels.k.sumExp(kernels.raw, rawPadded, rawMax, 1));
      } else {
        workspace.raw.set(logits);
        const rawMax = maxOf(logits);
        rawShift = rawMax + Math.log(sumExpShifted(logits, rawMax, 1));
      }
    }
    this.applyProcessors(logits, sequence);
    out.topTokens.length = 0;
    if (kernels !== undefined) {
      if (this.doSample) this.warpAndDraw(logits, sequence, out, kernels);
      else this.greedyWasm(logits, out, kernels);
    } else if (this.doSample) this.warpAndDraw(logits, sequence, out, undefined);
    else this.greedy(logits, out);
    if (this.rawLogprobs) {
      if (kernels !== undefined) {
        out.rawLogprob = kernels.f32[(kernels.raw >> 2) + out.tokenId]! - rawShift;
        if (this.topFromRaw) {
          out.topTokens.length = 0;
          const n = this.parameters.topNTokens;
          topTokensWasm(kernels, kernels.raw, rawPadded, n, -Infinity, Infinity, 0, 1, rawShift, out.topTokens);
        }
      } else {
        out.rawLogprob = workspace.raw[out.tokenId]! - rawShift;
        if (this.topFromRaw) {
          out.topTokens.length = 0;
          const n = this.parameters.topNTokens;
          topTokensDense(workspace.raw, n, 1, rawShift, 0, undefined, workspace, out.topTokens);
        }
      }
    } else out.rawLogprob = Number.NaN;
    return out;
  }

  /** Watermark, penalties, bias and masks: the processors that touch a few known ids, in TGI's order. */
  private applyProcessors(logits: Float32Array, sequence: SequenceState): void {
    const p = this.parameters;
    if (this.greenlists !== undefined && sequence.length > 0) {
      applyWatermark(logits, sequence.lastToken, this.greenlists, p.watermark!.delta);
    }
    if (p.repetitionPenalty !== 1) {
      const penalty = p.repetitionPenalty;
      for (const token of sequence.distinctTokens()) {
        if (token >= logits.length) continue;
        const s = logits[token]!;
        logits[token] = s < 0 ? s * penalty : s / penalty;
      }
    }
    if (p.frequencyPenalty !== 0 || p.presencePenalty !== 0) {
      for (const [token, count] of sequence.generatedCounts()) {
        if (token < logits.length) logits[token] = logits[token]! - (count * p.frequencyPenalty + p.presencePenalty);
      }
    }
    for (const [token, bias] of p.logitBias) logits[token] = logits[token]! + bias;
    if (p.noRepeatNgramSize > 0) sequence.banRepeatedNgrams(logits, p.noRepeatNgramSize);
    if (p.minNewTokens > 0 && sequence.generatedCount < p.minNewTokens) {
      for (const id of this.eosTokenIds) if (id >= 0 && id < logits.length) logits[id] = -Infinity;
    }
    for (const id of p.suppressTokens) logits[id] = -Infinity;
    if (this.allowed !== undefined) {
      const allowed = this.allowed;
      for (let i = 0; i < logits.length; i++) if (allowed[i] === 0) logits[i] = -Infinity;
    }
    for (const processor of sequence.processors) processor.apply(logits, sequence);
  }

  private greedy(logits: Float32Array, out: SampleResult): void {
    let max = -Infinity;
    let best = -1;
    for (let i = 0; i < logits.length; i++) {
      const v = logits[i]!;
      if (v > max) {
        max = v;
        best = i;
      }
    }
    if (best < 0) throw noTokenError();
    const shift = max + Math.log(sumExpShifted(logits, max, 1));
    out.tokenId = best;
    out.logprob = max - shift;
    if (this.parameters.topNTokens > 0 && !this.topFromRaw) {
      topTokensDense(logits, this.parameters.topNTokens, 1, shift, 0, undefined, this.workspace, out.topTokens);
    }
  }

  /**
   * Greedy on the SIMD kernels: one top-n scan (or an argmax when no top tokens are asked for) and one exp-sum
   * pass over the row copied into the module's memory.
   */
  private greedyWasm(logits: Float32Array, out: SampleResult, kernels: WasmKernels): void {
    const padded = kernels.load(logits, kernels.row);
    const n = this.parameters.topNTokens > 0 && !this.topFromRaw ? this.parameters.topNTokens : 0;
    let best: number;
    let size = 0;
    if (n > 0) {
      size = kernels.k.topN(
        kernels.row,
        padded,
        n,
        -Infinity,
        Infinity,
        0,
        kernels.bestValues,
        kernels.bestIds,
        kernels.ids,
      );
      best = size > 0 ? kernels.i32[kernels.bestIds >> 2]! : -1;
    } else best = kernels.k.argmax(kernels.row, padded);
    if (best < 0 || best >= logits.length) throw noTokenError();
    const max = logits[best]!;
    const shift = max + Math.log(kernels.k.sumExp(kernels.row, padded, max, 1));
    out.tokenId = best;
    out.logprob = max - shift;
    if (n > 0) emitTopTokens(kernels, n, size, 1, shift, out.topTokens);
  }

  private warpAndDraw(
    logits: Float32Array,
    sequence: SequenceState,
    out: SampleResult,
    kernels: WasmKernels | undefined,
  ): void {
    const p = this.parameters;
    const w = this.workspace;
    const u = uniform(this.seed, sequence.choice, sequence.generatedCount);
    const stages = p.order;
    let scale = 1;
    let count = -1; // -1: dense (every token a candidate); otherwise the number of sparse candidates
    let sorted = false;
    let padded = -1; // the row's padded length once it is copied into the kernels' memory
    for (let index = 0; index < stages.length; index++) {
      const stage = stages[index]!;
      const last = index === stages.length - 1;
      if (stage === 'temperature') {
        scale /= p.temperature;
        continue;
      }
      if (count < 0) {
        if (stage === 'top_k') {
          if (p.topK >= logits.length) continue;
          if (kernels !== undefined && this.wasmTopK) {
            if (padded < 0) padded = kernels.load(logits, kernels.row);
            count = wasmTopK(logits.length, p.topK, w, kernels, padded);
          } else count = denseTopK(logits, p.topK, w);
          sorted = false;
          continue;
        }
        if (kernels !== undefined) {
          if (padded < 0) padded = kernels.load(logits, kernels.row);
          let cut: WasmCut;
          if (stage === 'top_p') cut = wasmTopP(logits, p.topP, scale, kernels, padded);
          else if (stage === 'typical_p') cut = wasmTypical(logits, p.typicalP, scale, kernels, padded, w);
          else cut = wasmMinP(this.logMinP, scale, kernels, padded);
          if (last) {
            this.drawWasm(logits, cut, scale, u, out, kernels, padded);
            return;
          }
          count = wasmMaterialize(logits, cut, w, kernels, padded);
          sorted = false;
          continue;
        }
        let cut: DenseCut;
        if (stage === 'top_p') cut = denseTopP(logits, p.topP, scale, w);
        else if (stage === 'typical_p') cut = denseTypical(logits, p.typicalP, scale, w);
        else cut = denseMinP(logits, this.logMinP, scale, w);
        if (last) {
          this.drawDense(logits, cut, scale, u, out);
          return;
        }
        count = materialize(logits, cut, w);
        sorted = false;
        continue;
      }
      if (stage === 'top_k') {
        if (count > p.topK) {
          if (!sorted) sortCandidates(count, w);
          sorted = true;
          count = sparseTopK(count, p.topK, w);
        }
      } else if (stage === 'top_p') {
        if (!sorted) sortCandidates(count, w);
        sorted = true;
        count = sparseTopP(count, p.topP, scale, w);
      } else if (stage === 'min_p') {
        count = sparseMinP(count, this.logMinP, scale, w);
      } else {
        count = sparseTypical(count, p.typicalP, scale, w);
      }
    }
    if (count < 0 && kernels !== undefined) {
      // No truncation ran: draw from the whole (temperature-scaled) distribution.
      if (padded < 0) padded = kernels.load(logits, kernels.row);
      const max = kernels.k.max(kernels.row, padded);
      if (max === -Infinity) throw noTokenError();
      const mass = kernels.k.expPass(kernels.row, kernels.exps, kernels.buckets, padded, max, scale, -Infinity, 0);
      const cut: WasmCut = { max, lo: -Infinity, hi: Infinity, loId: 0, topLo: -Infinity, mass };
      this.drawWasm(logits, cut, scale, u, out, kernels, padded);
      return;
    }
    if (count < 0) {
      // No truncation ran: draw from the whole (temperature-scaled) distribution.
      const max = maxOf(logits);
      if (max === -Infinity) throw noTokenError();
      let total = 0;
      const exps = w.exps;
      for (let i = 0; i < logits.length; i++) {
        const e = expNonPositive((logits[i]! - max) * scale);
        exps[i] = e;
        total += e;
      }
      this.drawDense(logits, { max, bucket: -1, mass: total }, scale, u, out);
      return;
    }
    this.drawSparse(count, scale, u, out);
  }

  /** Draws among the dense tokens kept by `cut` (all tokens when `cut.bucket < 0`), using `w.exps`. */
  private drawDense(logits: Float32Array, cut: DenseCut, scale: number, u: number, out: SampleResult): void {
    const w = this.workspace;
    const exps = w.exps;
    const buckets = w.buckets;
    const target = u * cut.mass;
    let cumulative = 0;
    let chosen = -1;
    const length = logits.length;
    if (cut.bucket < 0) {
      for (let i = 0; i < length; i++) {
        const e = exps[i]!;
        if (e === 0) continue;
        chosen = i;
        cumulative += e;
        if (cumulative > target) break;
      }
    } else {
      const limit = cut.bucket;
      for (let i = 0; i < length; i++) {
        if (buckets[i]! > limit) continue;
        const e = exps[i]!;
        if (e === 0) continue;
        chosen = i;
        cumulative += e;
        if (cumulative > target) break;
      }
    }
    if (chosen < 0) throw noTokenError();
    const shift = Math.log(cut.mass);
    out.tokenId = chosen;
    out.logprob = (logits[chosen]! - cut.max) * scale - shift;
    if (this.parameters.topNTokens > 0 && !this.topFromRaw) {
      topTokensDense(
        logits,
        this.parameters.topNTokens,
        scale,
        cut.max + shift / scale,
        cut.bucket,
        buckets,
        w,
        out.topTokens,
      );
    }
  }

  /** Draws among the tokens kept by a cut on the SIMD path (exps in the kernels' memory), in id order. */
  private drawWasm(
    logits: Float32Array,
    cut: WasmCut,
    scale: number,
    u: number,
    out: SampleResult,
    kernels: WasmKernels,
    padded: number,
  ): void {
    const chosen = kernels.k.draw(kernels.row, kernels.exps, padded, cut.lo, cut.hi, cut.loId, u * cut.mass);
    if (chosen < 0 || chosen >= logits.length) throw noTokenError();
    const shift = Math.log(cut.mass);
    out.tokenId = chosen;
    // float32 exps: a lone kept token could otherwise come out at +1e-7
    out.logprob = Math.min(0, (logits[chosen]! - cut.max) * scale - shift);
    const n = this.parameters.topNTokens;
    if (n > 0 && !this.topFromRaw) {
      const center = cut.max + shift / scale;
      topTokensWasm(kernels, kernels.row, padded, n, cut.topLo, cut.hi, cut.loId, scale, center, out.topTokens);
    }
  }

  /** Draws among the sparse candidates `w.candidate*[0, count)`. */
  private drawSparse(count: number, scale: number, u: number, out: SampleResult): void {
    const w = this.workspace;
    const ids = w.candidateIds;
    const values = w.candidateValues;
    const exps = w.candidateExps;
    let max = -Infinity;
    for (let j = 0; j < count; j++) if (values[j]! > max) max = values[j]!;
    if (max === -Infinity) throw noTokenError();
    let total = 0;
    for (let j = 0; j < count; j++) {
      const e = expNonPositive((values[j]! - max) * scale);
      exps[j] = e;
      total += e;
    }
    const target = u * total;
    let cumulative = 0;
    let chosen = -1;
    for (let j = 0; j < count; j++) {
      const e = exps[j]!;
      if (e === 0) continue;
      chosen = j;
      cumulative += e;
      if (cumulative > target) break;
    }
    const shift = Math.log(total);
    out.tokenId = ids[chosen]!;
    out.logprob = (values[chosen]! - max) * scale - shift;
    const n = this.parameters.topNTokens;
    if (n > 0 && !this.topFromRaw) {
      sortCandidates(count, w);
      let taken = 0;
      for (let j = 0; j < count; j++) {
        const value = values[j]!;
        if (value === -Infinity) break;
        if (taken >= n && value !== values[j - 1]) break;
        out.topTokens.push({ id: ids[j]!, logprob: (value - max) * scale - shift });
        taken++;
      }
    }
  }
}

function noTokenError(): SamplingError {
  return new SamplingError('no token can be chosen: every logit is -Infinity or NaN after processing');
}

/** Result of a dense truncation: tokens with `w.buckets[i] <= bucket` are kept; `mass` is their sum of exps. */
interface DenseCut {
  /** Row maximum the exps in `w.exps` are relative to. */
  max: number;
  /** Largest kept bucket index; -1 means every token with a non-zero exp is kept. */
  bucket: number;
  /** Sum of `w.exps` over the kept tokens. */
  mass: number;
}

/**
 * Fills `w.exps` with exp((s - max) * scale) and `w.buckets` with floor((max - s) * scale * 32) (capped),
 * accumulating the mass per bucket. Returns the row maximum and the total mass.
 */
function expsAndBuckets(logits: Float32Array, scale: number, w: Workspace): { max: number; total: number } {
  const max = maxOf(logits);
  if (max === -Infinity) throw noTokenError();
  const exps = w.exps;
  const buckets = w.buckets;
  const bucketMass = w.bucketMass;
  bucketMass.fill(0);
  let total = 0;
  const top = BUCKETS - 1;
  for (let i = 0; i < logits.length; i++) {
    const d = (max - logits[i]!) * scale;
    if (!(d <= -EXP_UNDERFLOW)) {
      exps[i] = 0;
      buckets[i] = top;
      continue;
    }
    const e = expNonPositive(-d);
    let bucket = (d * BUCKETS_PER_NAT) | 0;
    if (bucket > top) bucket = top;
    exps[i] = e;
    buckets[i] = bucket;
    bucketMass[bucket] = bucketMass[bucket]! + e;
    total += e;
  }
  return { max, total };
}

/**
 * First bucket at which the cumulative mass reaches `target`, and the mass of the buckets before it. The masses are
 * `bucketMass[start, start + BUCKETS)`.
 */
function boundaryBucket(target: number, bucketMass: Float64Array, start = 0): { bucket: number; before: number } {
  let cumulative = 0;
  for (let bucket = 0; bucket < BUCKETS; bucket++) {
    const mass = bucketMass[start + bucket]!;
    if (cumulative + mass >= target) return { bucket, before: cumulative };
    cumulative += mass;
  }
  return { bucket: BUCKETS - 1, before: cumulative - bucketMass[start + BUCKETS - 1]! };
}

/** Ids in `bucket` into `w.order[0, n)`; returns n. */
function collectBucket(length: number, bucket: number, w: Workspace): number {
  const buckets = w.buckets;
  const order = w.order;
  let n = 0;
  for (let i = 0; i < length; i++) if (buckets[i] === bucket) order[n++] = i;
  return n;
}

/** Top-p on a dense row: keep a token iff the mass ranked strictly above it is < topP (ties: lower ids go first). */
function denseTopP(logits: Float32Array, topP: number, scale: number, w: Workspace): DenseCut {
  const { max, total } = expsAndBuckets(logits, scale, w);
  const target = topP * total;
  const { bucket, before } = boundaryBucket(target, w.bucketMass);
  const n = collectBucket(logits.length, bucket, w);
  const order = w.order.subarray(0, n);
  order.sort((a, b) => logits[b]! - logits[a]! || b - a);
  let above = before;
  for (let j = 0; j < n; j++) {
    const id = order[j]!;
    if (above < target) above += w.exps[id]!;
    else {
      w.buckets[id] = REMOVED;
    }
  }
  return { max, bucket, mass: above };
}

/**
 * Typical-p on a dense row. With x = (s - max) * scale and probabilities p = exp(x) / Z, the distance of a token to
 * the entropy is |-log p - H| = |x - E_p[x]|: bucket the mass by that distance, sort only the boundary bucket.
 */
function denseTypical(logits: Float32Array, mass: number, scale: number, w: Workspace): DenseCut {
  const max = maxOf(logits);
  if (max === -Infinity) throw noTokenError();
  const exps = w.exps;
  let total = 0;
  let weighted = 0;
  for (let i = 0; i < logits.length; i++) {
    const x = (logits[i]! - max) * scale;
    const e = expNonPositive(x);
    exps[i] = e;
    total += e;
    if (e > 0) weighted += e * x;
  }
  const mean = weighted / total;
  const buckets = w.buckets;
  const bucketMass = w.bucketMass;
  const distance = w.candidateExps; // a vocab-sized float64 buffer that is free in dense mode
  bucketMass.fill(0);
  const top = BUCKETS - 1;
  for (let i = 0; i < logits.length; i++) {
    const e = exps[i]!;
    if (e === 0) {
      buckets[i] = top;
      distance[i] = Infinity;
      continue;
    }
    const d = Math.abs((logits[i]! - max) * scale - mean);
    distance[i] = d;
    let bucket = (d * BUCKETS_PER_NAT) | 0;
    if (bucket > top) bucket = top;
    buckets[i] = bucket;
    bucketMass[bucket] = bucketMass[bucket]! + e;
  }
  const target = mass * total;
  const { bucket, before } = boundaryBucket(target, w.bucketMass);
  const n = collectBucket(logits.length, bucket, w);
  const order = w.order.subarray(0, n);
  order.sort((a, b) => distance[a]! - distance[b]! || a - b);
  let cumulative = before;
  let limit = Infinity;
  for (let j = 0; j < n; j++) {
    cumulative += exps[order[j]!]!;
    if (cumulative >= target) {
      limit = distance[order[j]!]!;
      break;
    }
  }
  let kept = before;
  for (let j = 0; j < n; j++) {
    const id = order[j]!;
    if (distance[id]! <= limit) kept += exps[id]!;
    else buckets[id] = REMOVED;
  }
  return { max, bucket, mass: kept };
}

/** Min-p on a dense row: keep tokens with (s - max) * scale >= ln(minP). */
function denseMinP(logits: Float32Array, logMinP: number, scale: number, w: Workspace): DenseCut {
  const max = maxOf(logits);
  if (max === -Infinity) throw noTokenError();
  const exps = w.exps;
  const buckets = w.buckets;
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    const x = (logits[i]! - max) * scale;
    if (x >= logMinP) {
      const e = expNonPositive(x);
      exps[i] = e;
      buckets[i] = 0;
      total += e;
    } else {
      exps[i] = 0;
      buckets[i] = REMOVED;
    }
  }
  return { max, bucket: 0, mass: total };
}

/** Copies the tokens kept by a dense cut into the sparse candidate arrays; returns their count. */
function materialize(logits: Float32Array, cut: DenseCut, w: Workspace): number {
  const ids = w.candidateIds;
  const values = w.candidateValues;
  const buckets = w.buckets;
  let count = 0;
  for (let i = 0; i < logits.length; i++) {
    if (buckets[i]! <= cut.bucket && w.exps[i]! > 0) {
      ids[count] = i;
      values[count] = logits[i]!;
      count++;
    }
  }
  return count;
}

/**
 * Top-k on a dense row into the sparse candidates, in one pass: a min-heap of the k largest, plus the ids that were
 * rejected or evicted while equal to the heap's minimum (they survive if that value ends up being the k-th).
 */
function denseTopK(logits: Float32Array, k: number, w: Workspace): number {
  if (w.heapValues.length < k) {
    w.heapValues = new Float32Array(k);
    w.heapIds = new Int32Array(k);
  }
  const heapValues = w.heapValues;
  const heapIds = w.heapIds;
  const ties = w.ties;
  let size = 0;
  let tieCount = 0;
  const length = logits.length;
  let i = 0;
  for (; i < length && size < k; i++) {
    const v = logits[i]!;
    if (v !== v) continue; // NaN never survives
    // sift up
    let child = size++;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (heapValues[parent]! <= v) break;
      heapValues[child] = heapValues[parent]!;
      heapIds[child] = heapIds[parent]!;
      child = parent;
    }
    heapValues[child] = v;
    heapIds[child] = i;
  }
  let minimum = size > 0 ? heapValues[0]! : -Infinity;
  for (; i < length; i++) {
    const v = logits[i]!;
    if (v < minimum) continue;
    if (v === minimum) {
      ties[tieCount++] = i;
      continue;
    }
    if (v !== v) continue;
    const evictedId = heapIds[0]!;
    // replace the root and sift down
    let parent = 0;
    for (;;) {
      let child = 2 * parent + 1;
      if (child >= size) break;
      if (child + 1 < size && heapValues[child + 1]! < heapValues[child]!) child++;
      if (heapValues[child]! >= v) break;
      heapValues[parent] = heapValues[child]!;
      heapIds[parent] = heapIds[child]!;
      parent = child;
    }
    heapValues[parent] = v;
    heapIds[parent] = i;
    const next = heapValues[0]!;
    if (next > minimum) tieCount = 0;
    else ties[tieCount++] = evictedId;
    minimum = next;
  }
  const ids = w.candidateIds;
  const values = w.candidateValues;
  let count = 0;
  for (let j = 0; j < size; j++) {
    ids[count] = heapIds[j]!;
    values[count] = heapValues[j]!;
    count++;
  }
  for (let j = 0; j < tieCount; j++) {
    const id = ties[j]!;
    if (logits[id] === minimum) {
      ids[count] = id;
      values[count] = minimum;
      count++;
    }
  }
  return count;
}

/** Sorts the candidates by value descending, equal values by id descending (the top-p rank order). */
function sortCandidates(count: number, w: Workspace): void {
  const ids = w.candidateIds;
  const values = w.candidateValues;
  const order = w.order.subarray(0, count);
  for (let j = 0; j < count; j++) order[j] = j;
  order.sort((a, b) => values[b]! - values[a]! || ids[b]! - ids[a]!);
  const spareIds = w.spareIds;
  const spareValues = w.spareValues;
  for (let j = 0; j < count; j++) {
    spareIds[j] = ids[order[j]!]!;
    spareValues[j] = values[order[j]!]!;
  }
  ids.set(spareIds.subarray(0, count));
  values.set(spareValues.subarray(0, count));
}

/** Top-k on sorted candidates (ties with the k-th kept). */
function sparseTopK(count: number, k: number, w: Workspace): number {
  const values = w.candidateValues;
  const kth = values[k - 1]!;
  let kept = k;
  while (kept < count && values[kept] === kth) kept++;
  return kept;
}

/** Top-p on sorted candidates. */
function sparseTopP(count: number, topP: number, scale: number, w: Workspace): number {
  const values = w.candidateValues;
  const exps = w.candidateExps;
  const max = values[0]!;
  let total = 0;
  for (let j = 0; j < count; j++) {
    const e = expNonPositive((values[j]! - max) * scale);
    exps[j] = e;
    total += e;
  }
  const target = topP * total;
  let above = 0;
  let kept = 0;
  while (kept < count && above < target) {
    above += exps[kept]!;
    kept++;
  }
  return Math.max(kept, 1);
}

/** Min-p on candidates (order preserved). */
function sparseMinP(count: number, logMinP: number, scale: number, w: Workspace): number {
  const ids = w.candidateIds;
  const values = w.candidateValues;
  let max = -Infinity;
  for (let j = 0; j < count; j++) if (values[j]! > max) max = values[j]!;
  let kept = 0;
  for (let j = 0; j < count; j++) {
    if ((values[j]! - max) * scale >= logMinP) {
      ids[kept] = ids[j]!;
      values[kept] = values[j]!;
      kept++;
    }
  }
  return kept;
}

/** Typical-p on candidates (order preserved). */
function sparseTypical(count: number, mass: number, scale: number, w: Workspace): number {
  const ids = w.candidateIds;
  const values = w.candidateValues;
  const exps = w.candidateExps;
  let max = -Infinity;
  for (let j = 0; j < count; j++) if (values[j]! > max) max = values[j]!;
  let total = 0;
  let weighted = 0;
  for (let j = 0; j < count; j++) {
    const x = (values[j]! - max) * scale;
    const e = expNonPositive(x);
    exps[j] = e;
    total += e;
    if (e > 0) weighted += e * x;
  }
  const mean = weighted / total;
  const distance = w.exps; // vocab-sized float64 scratch, free in sparse mode
  for (let j = 0; j < count; j++) {
    distance[j] = exps[j]! > 0 ? Math.abs((values[j]! - max) * scale - mean) : Infinity;
  }
  const order = w.order.subarray(0, count);
  for (let j = 0; j < count; j++) order[j] = j;
  order.sort((a, b) => distance[a]! - distance[b]! || ids[a]! - ids[b]!);
  const target = mass * total;
  let cumulative = 0;
  let limit = distance[order[count - 1]!]!;
  for (let j = 0; j < count; j++) {
    cumulative += exps[order[j]!]!;
    if (cumulative >= target) {
      limit = distance[order[j]!]!;
      break;
    }
  }
  let kept = 0;
  for (let j = 0; j < count; j++) {
    if (distance[j]! <= limit) {
      ids[kept] = ids[j]!;
      values[kept] = values[j]!;
      kept++;
    }
  }
  return kept;
}

/**
 * The n most likely tokens of a dense row (ties with the n-th included, -Infinity and NaN excluded), with
 * logprob = (s - center) * scale. When `buckets` is given and `limit >= 0`, only tokens with
 * `buckets[i] <= limit` count. One pass: a small sorted list plus the ids tied with its last entry.
 */
function topTokensDense(
  logits: Float32Array,
  n: number,
  scale: number,
  center: number,
  limit: number,
  buckets: Uint16Array | undefined,
  w: Workspace,
  out: TopToken[],
): void {
  if (w.heapValues.length < n) {
    w.heapValues = new Float32Array(n);
    w.heapIds = new Int32Array(n);
  }
  const bestValues = w.heapValues;
  const bestIds = w.heapIds;
  const ties = w.ties;
  let tieCount = 0;
  let size = 0;
  let threshold = -Infinity;
  const useBuckets = buckets !== undefined && limit >= 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (!(v >= threshold) || v === -Infinity) continue;
    if (useBuckets && buckets[i]! > limit) continue;
    if (v === threshold && size === n) {
      ties[tieCount++] = i;
      continue;
    }
    let position: number;
    if (size < n) position = size++;
    else {
      position = n - 1;
      const evicted = bestIds[n - 1]!;
      const second = n >= 2 ? bestValues[n - 2]! : v;
      const next = v < second ? v : second;
      if (next > threshold) tieCount = 0;
      else ties[tieCount++] = evicted;
    }
    while (position > 0 && bestValues[position - 1]! < v) {
      bestValues[position] = bestValues[position - 1]!;
      bestIds[position] = bestIds[position - 1]!;
      position--;
    }
    bestValues[position] = v;
    bestIds[position] = i;
    if (size === n) threshold = bestValues[n - 1]!;
  }
  for (let j = 0; j < size; j++) out.push({ id: bestIds[j]!, logprob: (bestValues[j]! - center) * scale });
  for (let j = 0; j < tieCount; j++) out.push({ id: ties[j]!, logprob: (threshold - center) * scale });
}

/**
 * A dense cut on the SIMD path. The kept tokens are those with lo <= s <= hi (at s = lo, only ids >= loId: top_p's
 * order among equal logits) and a non-zero exp; `topLo` is the lower bound for the top tokens (above `lo` only
 * where typical_p's interval reaches tokens whose exp underflows). The bounds are float32 values, so the kernels
 * compare exactly what the JS path compares in float64.
 */
interface WasmCut {
  /** Row maximum the exps are relative to. */
  max: number;
  lo: number;
  hi: number;
  loId: number;
  topLo: number;
  /** Sum of the kept tokens' exps. */
  mass: number;
}

/**
 * Largest top_k done by the SIMD top-n scan (its insertion is O(k) per entry; the JS heap is O(log k)). Only when
 * top_p follows top_k: the candidates come out in a different order than from the JS heap, and top_p sorts them.
 */
const WASM_TOP_K_LIMIT = 256;

/**
 * Top-k on the SIMD path into the sparse candidates: the k largest values (NaN and -Infinity left out: they could
 * never be drawn nor listed) and every id tied with the k-th, as {@link denseTopK} keeps them.
 */
function wasmTopK(length: number, k: number, w: Workspace, kernels: WasmKernels, padded: number): number {
  const size = kernels.k.topN(
    kernels.row,
    padded,
    k,
    -Infinity,
    Infinity,
    0,
    kernels.bestValues,
    kernels.bestIds,
    kernels.ids,
  );
  const ids = w.candidateIds;
  const values = w.candidateValues;
  const valuesStart = kernels.bestValues >> 2;
  const idsStart = kernels.bestIds >> 2;
  for (let j = 0; j < size; j++) {
    ids[j] = kernels.i32[idsStart + j]!;
    values[j] = kernels.f32[valuesStart + j]!;
  }
  const ties = kernels.k.tieCount.value;
  const tiesStart = kernels.ids >> 2;
  let count = size;
  if (ties > 0) {
    const threshold = kernels.f32[valuesStart + k - 1]!;
    for (let j = 0; j < ties; j++) {
      const id = kernels.i32[tiesStart + j]!;
      if (id >= length) continue;
      ids[count] = id;
      values[count] = threshold;
      count++;
    }
  }
  return count;
}

/** Buckets (of 1/32 nat) that a first, partial scatter of top_p covers: tokens within 4 nats of the maximum. */
const PARTIAL_SCATTER_BUCKETS = 128;

/** Pads of the row (ids >= the vocabulary size) come last among collected ids: drop them. */
function withoutPadding(kernels: WasmKernels, count: number, length: number): number {
  const start = kernels.ids >> 2;
  while (count > 0 && kernels.i32[start + count - 1]! >= length) count--;
  return count;
}

/** Row maximum on the SIMD path; throws when no token is left. */
function wasmMax(kernels: WasmKernels, padded: number): number {
  const max = kernels.k.max(kernels.row, padded);
  if (max === -Infinity) throw noTokenError();
  return max;
}

/**
 * Top-p on the SIMD path, the same steps as {@link denseTopP}: one pass stores the exps and uint16 buckets, a
 * scalar pass adds the mass per bucket (first only near the maximum), only the boundary bucket is sorted. Its last kept token (s_b, id_b) makes
 * the cut: the kept tokens are those with s > s_b, or s = s_b and id >= id_b.
 */
function wasmTopP(logits: Float32Array, topP: number, scale: number, kernels: WasmKernels, padded: number): WasmCut {
  const max = wasmMax(kernels, padded);
  const massStart = kernels.mass >> 3;
  kernels.f64.fill(0, massStart, massStart + MASS_BUCKETS);
  const k = kernels.k;
  const total = k.expPass(kernels.row, kernels.exps, kernels.buckets, padded, max, scale, -Infinity, EXP_PASS_BUCKETS);
  const target = topP * total;
  // Most rows are confident: first add up only the blocks that hold a token within 4 nats of the maximum; when the
  // boundary is not among those buckets, add up everything.
  k.scatter(kernels.buckets, kernels.exps, kernels.mass, padded, PARTIAL_SCATTER_BUCKETS);
  let { bucket, before } = boundaryBucket(target, kernels.f64, massStart);
  if (bucket >= PARTIAL_SCATTER_BUCKETS) {
    kernels.f64.fill(0, massStart, massStart + MASS_BUCKETS);
    k.scatter(kernels.buckets, kernels.exps, kernels.mass, padded, MASS_BUCKETS);
    ({ bucket, before } = boundaryBucket(target, kernels.f64, massStart));
  }
  const n = withoutPadding(kernels, k.collect(kernels.buckets, padded, bucket, kernels.ids), logits.length);
  if (n === 0) return { max, lo: -Infinity, hi: Infinity, loId: 0, topLo: -Infinity, mass: total }; // rounding only
  const idsStart = kernels.ids >> 2;
  const order = kernels.i32.subarray(idsStart, idsStart + n);
  order.sort((a, b) => logits[b]! - logits[a]! || b - a);
  const exps = kernels.f32;
  const expsStart = kernels.exps >> 2;
  let above = before;
  let last = order[0]!;
  for (let j = 0; j < n && above < target; j++) {
    last = order[j]!;
    above += exps[expsStart + last]!;
  }
  const lo = logits[last]!;
  return { max, lo, hi: Infinity, loId: last, topLo: lo, mass: above };
}

/**
 * Typical-p on the SIMD path, the same steps as {@link denseTypical}: an exp pass that also sums exp(x) * x (the
 * entropy), a pass that buckets the float64 distance |x - E[x]| exactly as the JS path computes it, the mass per
 * bucket, a sort of the boundary bucket only. The kept tokens are those within the largest kept distance, which is
 * an interval of logits: its float32 bounds make the cut.
 */
function wasmTypical(
  logits: Float32Array,
  mass: number,
  scale: number,
  kernels: WasmKernels,
  padded: number,
  w: Workspace,
): WasmCut {
  const max = wasmMax(kernels, padded);
  const k = kernels.k;
  const total = k.expPass(kernels.row, kernels.exps, kernels.buckets, padded, max, scale, -Infinity, EXP_PASS_WEIGHTED);
  const mean = k.weighted.value / total;
  const massStart = kernels.mass >> 3;
  kernels.f64.fill(0, massStart, massStart + MASS_BUCKETS);
  k.distBuckets(kernels.row, kernels.exps, kernels.buckets, padded, max, scale, mean);
  k.scatter(kernels.buckets, kernels.exps, kernels.mass, padded, MASS_BUCKETS);
  const target = mass * total;
  const { bucket, before } = boundaryBucket(target, kernels.f64, massStart);
  const n = withoutPadding(kernels, k.collect(kernels.buckets, padded, bucket, kernels.ids), logits.length);
  if (n === 0) return { max, lo: -Infinity, hi: Infinity, loId: 0, topLo: -Infinity, mass: total }; // rounding only
  const idsStart = kernels.ids >> 2;
  const order = kernels.i32.subarray(idsStart, idsStart + n);
  const distance = w.candidateExps; // a vocab-sized float64 buffer that is free in dense mode
  for (let j = 0; j < n; j++) {
    const id = order[j]!;
    distance[id] = Math.abs((logits[id]! - max) * scale - mean);
  }
  order.sort((a, b) => distance[a]! - distance[b]! || a - b);
  const exps = kernels.f32;
  const expsStart = kernels.exps >> 2;
  let cumulative = before;
  let limit = Infinity;
  for (let j = 0; j < n; j++) {
    cumulative += exps[expsStart + order[j]!]!;
    if (cumulative >= target) {
      limit = distance[order[j]!]!;
      break;
    }
  }
  let kept = before;
  let bound = -Infinity; // the largest kept distance (every earlier bucket is closer, every later one farther)
  for (let j = 0; j < n; j++) {
    const d = distance[order[j]!]!;
    if (d <= limit) {
      kept += exps[expsStart + order[j]!]!;
      if (d > bound) bound = d;
    }
  }
  const within = (s: number): boolean => Math.abs((s - max) * scale - mean) <= bound;
  const witness = logits[order[0]!]!;
  const lo = lowestFloat32(within, witness);
  const hi = highestFloat32(within, witness);
  // Top tokens leave out the tokens whose exp underflows (as the JS path, which buckets them last).
  const scale32 = Math.fround(scale);
  const positive = (s: number): boolean => Math.fround(Math.fround(s - max) * scale32) >= EXP_UNDERFLOW;
  const topLo = Math.max(lo, lowestFloat32(positive, max));
  return { max, lo, hi, loId: 0, topLo, mass: kept };
}

/** Min-p on the SIMD path: the float32 threshold of (s - max) * scale >= ln(minP), exps only where it holds. */
function wasmMinP(logMinP: number, scale: number, kernels: WasmKernels, padded: number): WasmCut {
  const max = wasmMax(kernels, padded);
  const keep = (s: number): boolean => (s - max) * scale >= logMinP;
  if (!keep(max)) throw noTokenError(); // max = +Infinity
  const lo = lowestFloat32(keep, max);
  const mode = EXP_PASS_SKIP_BELOW;
  const mass = kernels.k.expPass(kernels.row, kernels.exps, kernels.buckets, padded, max, scale, lo, mode);
  return { max, lo, hi: Infinity, loId: 0, topLo: lo, mass };
}

/** Copies the tokens kept by a SIMD cut into the sparse candidate arrays (id order); returns their count. */
function wasmMaterialize(
  logits: Float32Array,
  cut: WasmCut,
  w: Workspace,
  kernels: WasmKernels,
  padded: number,
): number {
  const found = kernels.k.keep(kernels.row, kernels.exps, padded, cut.lo, cut.hi, cut.loId, kernels.ids);
  const count = withoutPadding(kernels, found, logits.length);
  const start = kernels.ids >> 2;
  const ids = w.candidateIds;
  const values = w.candidateValues;
  for (let j = 0; j < count; j++) {
    const id = kernels.i32[start + j]!;
    ids[j] = id;
    values[j] = logits[id]!;
  }
  return count;
}

/**
 * The n most likely tokens of the row at byte offset `region` among lo <= s <= hi (at s = lo, ids >= loId), with
 * logprob = (s - center) * scale: {@link topTokensDense} on the SIMD kernel.
 */
function topTokensWasm(
  kernels: WasmKernels,
  region: number,
  padded: number,
  n: number,
  lo: number,
  hi: number,
  loId: number,
  scale: number,
  center: number,
  out: TopToken[],
): void {
  const size = kernels.k.topN(region, padded, n, lo, hi, loId, kernels.bestValues, kernels.bestIds, kernels.ids);
  emitTopTokens(kernels, n, size, scale, center, out);
}

/** Pushes the result of the last `topN` kernel call (its `size` entries, then the ties) onto `out`. */
function emitTopTokens(
  kernels: WasmKernels,
  n: number,
  size: number,
  scale: number,
  center: number,
  out: TopToken[],
): void {
  const values = kernels.f32;
  const ids = kernels.i32;
  const valuesStart = kernels.bestValues >> 2;
  const idsStart = kernels.bestIds >> 2;
  for (let j = 0; j < size; j++) {
    out.push({ id: ids[idsStart + j]!, logprob: Math.min(0, (values[valuesStart + j]! - center) * scale) });
  }
  const ties = kernels.k.tieCount.value;
  if (ties > 0) {
    const logprob = Math.min(0, (values[valuesStart + n - 1]! - center) * scale);
    const tiesStart = kernels.ids >> 2;
    for (let j = 0; j < ties; j++) out.push({ id: ids[tiesStart + j]!, logprob });
  }
}

/** One row of a batch: the request's sampler and the choice's state. */
export interface BatchRow {
  sampler: Sampler;
  sequence: SequenceState;
}

/**
 * Samples every row of a batch of logits laid out as `[rows.length, vocabSize]` in one array (row r is
 * `logits.subarray(r * vocabSize, (r + 1) * vocabSize)`), writing into `results` (reused when given).
 * Each row draws from its own (seed, choice, step) stream, so the order and company of rows do not matter.
 */
export function sampleBatch(
  logits: Float32Array,
  vocabSize: number,
  rows: readonly BatchRow[],
  results: SampleResult[] = [],
): SampleResult[] {
  if (logits.length < rows.length * vocabSize) {
    throw new SamplingError(`expected ${rows.length} x ${vocabSize} logits, got ${logits.length}`);
  }
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    results[r] ??= createSampleResult();
    row.sampler.sample(logits.subarray(r * vocabSize, (r + 1) * vocabSize), row.sequence, results[r]);
  }
  results.length = rows.length;
  return results;
}

/**
 * The fused sampler: one object per request, built once from its parameters, that turns a row of logits into the
 * next token (plus its logprobs and the top tokens) with the semantics of the dense processors in
 * `processors.ts`, but without materializing intermediate rows: top-k by a bounded heap on the raw logits,
 * temperature folded into the exponent, top-p and typical-p by bucketing probability mass (only one bucket is
 * ever sorted), min-p as a threshold in logit space.
 *
 * This file is the orchestrator: the sequence's logits processors (built-ins from `processors/builtin.ts`, then
 * `SamplerOptions.processors`), then the warpers in order on the dense, sparse or SIMD variant of each stage
 * (`stages/`), then the draw and the top tokens (`top-tokens.ts`), over the scratch of `workspace.ts`.
 */
import type { LogitsProcessor, SequenceProcessor } from './logits-processor.js';
import { SamplingError } from './errors.js';
import { expNonPositive, maxOf, sumExpShifted } from './fast-math.js';
import {
  normalizeSamplingParameters,
  type NormalizedSamplingParameters,
  type SamplingParameters,
  type ValidationLimits,
} from './parameters.js';
import { builtinProcessors, isBuiltinState } from './processors/builtin.js';
import { randomSeed, uniform } from './rng.js';
import { SequenceState } from './sequence-state.js';
import {
  materialize,
  noTokenError,
  sortCandidates,
  wasmMaterialize,
  type DenseCut,
  type WasmCut,
} from './stages/cuts.js';
import { denseMinP, sparseMinP, wasmMinP } from './stages/min-p.js';
import { denseTopK, sparseTopK, WASM_TOP_K_LIMIT, wasmTopK } from './stages/top-k.js';
import { denseTopP, sparseTopP, wasmTopP } from './stages/top-p.js';
import { denseTypical, sparseTypical, wasmTypical } from './stages/typical-p.js';
import { emitTopTokens, topTokensDense, topTokensWasm, type TopToken } from './top-tokens.js';
import { wasmKernels, wasmKernelsSwitchedOn, type WasmKernels } from './wasm/kernels.js';
import { arenaKernels, type LogitsArena } from './arena.js';
import { workspaceFor, type Workspace } from './workspace.js';

export type { TopToken } from './top-tokens.js';

/** What {@link Sampler.sample} chose. The object passed in as `out` is reused and overwritten. */
export interface SampleResult {
  /** The chosen token id. */
  tokenId: number;
  /**
   * log p(token) under the processed distribution (after penalties, temperature and truncation), as TGI reports; NaN
   * on greedy steps of a sampler created with `logprobs: false` (and no top tokens).
   */
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
  /**
   * Compute the chosen token's logprob (default true). `false` lets a greedy step without top tokens skip the
   * log-sum-exp over the row (most of its cost: an argmax is a tenth of it) and leaves `SampleResult.logprob` NaN;
   * sampled steps compute it anyway, as part of the draw.
   */
  logprobs?: boolean;
  /** Distribution the top tokens are taken from: processed (default, as TGI) or raw (the model's). */
  topTokensFrom?: 'processed' | 'raw';
  /**
   * More logits processors, applied in order after the built-in ones (so a constraint's mask has the last word),
   * before temperature and truncation. Each sequence gets its own state from {@link LogitsProcessor.createState}.
   */
  processors?: readonly LogitsProcessor[];
  /**
   * Rows handed out by this arena ({@link createLogitsArena}, same `vocabSize`) are read in place by greedy steps,
   * and the kernels run in the arena's memory rather than the process-wide one. Rows from elsewhere work as usual.
   */
  arena?: LogitsArena;
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
  private readonly rawLogprobs: boolean;
  private readonly logprobs: boolean;
  private readonly topFromRaw: boolean;
  private readonly logMinP: number;
  /** top_p runs after top_k, so the order of top_k's candidates never shows (see {@link wasmTopK}). */
  private readonly wasmTopK: boolean;
  /** Watermark, penalties, bias and masks: only those the parameters turn on, in TGI's order. */
  private readonly builtins: readonly LogitsProcessor[];
  /** `SamplerOptions.processors`, applied after the built-ins. */
  private readonly extraProcessors: readonly LogitsProcessor[];
  /** The arena's kernels instance (undefined: the process-wide one). */
  private readonly arenaKernels: WasmKernels | undefined;

  constructor(
    readonly parameters: NormalizedSamplingParameters,
    options: SamplerOptions,
  ) {
    this.seed = parameters.seed ?? randomSeed();
    this.doSample = parameters.doSample;
    this.workspace = workspaceFor(options.vocabSize);
    this.arenaKernels = arenaKernels(options.arena, options.vocabSize);
    this.topFromRaw = options.topTokensFrom === 'raw' && parameters.topNTokens > 0;
    this.rawLogprobs = options.rawLogprobs === true || this.topFromRaw;
    this.logprobs = options.logprobs !== false;
    const watermark = parameters.watermark;
    this.builtins = builtinProcessors(parameters, {
      vocabSize: options.vocabSize,
      eosTokenIds: options.eosTokenIds ?? [],
      greenlists: watermark === undefined ? undefined : this.workspace.greenlistCache(watermark.gamma),
    });
    this.extraProcessors = options.processors ?? [];
    this.logMinP = Math.log(parameters.minP);
    const order = parameters.order;
    this.wasmTopK =
      parameters.topK <= WASM_TOP_K_LIMIT && order.includes('top_p') && order.indexOf('top_p') > order.indexOf('top_k');
  }

  createSequence(promptTokens: ArrayLike<number> = [], choice = 0): SequenceState {
    const sequence = new SequenceState(promptTokens, choice);
    this.adopt(sequence);
    return sequence;
  }

  sample(row: Float32Array, sequence: SequenceState, out: SampleResult = createSampleResult()): SampleResult {
    let logits = row;
    const vocabSize = this.workspace.vocabSize;
    if (logits.length !== vocabSize) {
      throw new SamplingError(`expected a row of ${vocabSize} logits, got ${logits.length}`);
    }
    if (sequence.attachedBy !== this) this.adopt(sequence);
    const workspace = this.workspace;
    const kernels = this.arenaKernels !== undefined && wasmKernelsSwitchedOn() ? this.arenaKernels : wasmKernels();
    if (kernels !== undefined) {
      const memory = kernels.k.memory.buffer;
      const offset = logits.byteOffset;
      kernels.ensure(vocabSize, Math.max(this.parameters.topNTokens, this.wasmTopK ? this.parameters.topK : 0));
      // A row in the kernels' memory (an arena's) is detached if that grew: view the same bytes in the new buffer.
      if (logits.buffer === memory && kernels.k.memory.buffer !== memory) {
        logits = new Float32Array(kernels.k.memory.buffer, offset, vocabSize);
      }
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

  /**
   * Makes `sequence` carry this sampler's processor states: its built-ins first, then the sequence's other
   * processors (those of the sampler that created it, or attached by hand), or for a bare sequence (made with
   * `new SequenceState`, never attached) fresh states of this sampler's `processors`. Runs in `createSequence`, and
   * in `sample` only for a sequence that does not carry this sampler's processors yet (forks carry their source's).
   */
  private adopt(sequence: SequenceState): void {
    const states: SequenceProcessor[] = [];
    for (const processor of this.builtins) states.push(processor.createState(sequence));
    let others = 0;
    for (const state of sequence.processors) {
      if (isBuiltinState(state)) continue;
      states.push(state);
      others++;
    }
    if (others === 0 && sequence.attachedBy === undefined) {
      for (const processor of this.extraProcessors) states.push(processor.createState(sequence));
    }
    sequence.attachProcessors(states, this);
  }

  /**
   * The processors that touch a few known ids (watermark, penalties, bias and masks, in TGI's order), then the extra
   * ones: the sequence's states, in order.
   */
  private applyProcessors(logits: Float32Array, sequence: SequenceState): void {
    const processors = sequence.processors;
    for (let i = 0; i < processors.length; i++) processors[i]!.apply(logits, sequence);
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
    out.tokenId = best;
    const top = this.parameters.topNTokens > 0 && !this.topFromRaw;
    if (!this.logprobs && !top) {
      out.logprob = Number.NaN;
      return;
    }
    const shift = max + Math.log(sumExpShifted(logits, max, 1));
    out.logprob = max - shift;
    if (top) {
      topTokensDense(logits, this.parameters.topNTokens, 1, shift, 0, undefined, this.workspace, out.topTokens);
    }
  }

  /**
   * Greedy on the SIMD kernels: one top-n scan (or an argmax when no top tokens are asked for) and one exp-sum
   * pass over the row, copied into the module's memory unless it is an arena row already there.
   */
  private greedyWasm(logits: Float32Array, out: SampleResult, kernels: WasmKernels): void {
    // A row in the arena's part of the kernels' memory with no padding to add is read where it is.
    const inPlace =
      logits.buffer === kernels.k.memory.buffer &&
      (logits.length & 15) === 0 &&
      logits.byteOffset + 4 * logits.length <= kernels.base;
    const region = inPlace ? logits.byteOffset : kernels.row;
    const padded = inPlace ? logits.length : kernels.load(logits, kernels.row);
    const n = this.parameters.topNTokens > 0 && !this.topFromRaw ? this.parameters.topNTokens : 0;
    let best: number;
    let size = 0;
    if (n > 0) {
      size = kernels.k.topN(
        region,
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
    } else best = kernels.k.argmax(region, padded);
    if (best < 0 || best >= logits.length) throw noTokenError();
    out.tokenId = best;
    if (!this.logprobs && n === 0) {
      out.logprob = Number.NaN;
      return;
    }
    const max = logits[best]!;
    const shift = max + Math.log(kernels.k.sumExp(region, padded, max, 1));
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

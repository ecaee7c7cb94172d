/** The vocabulary-sized scratch memory of the fused sampler, and the bucket layout of its mass histograms. */
import { GreenlistCache } from './watermark.js';

/** Buckets of the dense mass histograms (`Workspace.bucketMass`); the last one takes everything farther. */
export const BUCKETS = 2048;
/** Resolution of a bucket: 1/32 nat of (max - s) * scale, or of the distance to the entropy for typical_p. */
export const BUCKETS_PER_NAT = 32;
/** Bucket index that marks a token removed by a dense cut (above every real bucket). */
export const REMOVED = 0xffff;

/** Scratch memory shared by every sampler of a vocabulary size (sampling is synchronous, so one set suffices). */
export class Workspace {
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
export function workspaceFor(vocabSize: number): Workspace {
  let workspace = workspaces.get(vocabSize);
  if (workspace === undefined) {
    workspace = new Workspace(vocabSize);
    workspaces.set(vocabSize, workspace);
  }
  return workspace;
}

/**
 * Heap growth over many steps: the TGI-style scenario run `steps` times after warm-up, with
 * `process.memoryUsage()` read after forced garbage collections (needs `node --expose-gc`).
 */
import { makeLogitsPool } from './logits.js';
import { tgiSetup } from './ours.js';

export interface HeapCheck {
  vocabSize: number;
  steps: number;
  warmupSteps: number;
  /** heapUsed after - before, bytes, same sequence every step (the sampler's own per-step memory). */
  heapUsedDelta: number;
  /** heapUsed minus the starting value after each quarter of the steps, bytes (a leak shows as a steady climb). */
  checkpoints: number[];
  /** arrayBuffers after - before, bytes (typed-array backing stores live outside the JS heap). */
  arrayBuffersDelta: number;
  /** Largest heapUsed delta counted as "no growth". */
  thresholdBytes: number;
  pass: boolean;
  /** Informational: bytes allocated per step (heapUsed growth over 200 steps with no collection, median of 5). */
  allocatedPerStep: number;
  /** Informational: the same loop accepting each token, so the history grows by `steps` tokens. */
  acceptingHeapUsedDelta: number;
}

/** Growth up to this is noise (about 26 bytes per step over 10,000 steps); a per-step leak shows far above it. */
export const HEAP_THRESHOLD_BYTES = 256 * 1024;

function settle(gc: () => void): NodeJS.MemoryUsage {
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage();
}

export function runHeapCheck(gc: () => void, vocabSize: number, steps: number, warmupSteps = 1000): HeapCheck {
  const pool = makeLogitsPool(vocabSize, 16);
  const work = new Float32Array(vocabSize);

  const plain = tgiSetup(vocabSize);
  for (let i = 0; i < warmupSteps; i++) {
    work.set(pool[i % pool.length]!);
    plain.sample(work);
  }
  const before = settle(gc);
  const checkpoints: number[] = [];
  let after = before;
  for (let quarter = 1; quarter <= 4; quarter++) {
    const end = Math.round((steps * quarter) / 4);
    for (let i = Math.round((steps * (quarter - 1)) / 4); i < end; i++) {
      work.set(pool[i % pool.length]!);
      plain.sample(work);
    }
    after = settle(gc);
    checkpoints.push(after.heapUsed - before.heapUsed);
  }

  const perStep: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    const start = settle(gc).heapUsed;
    for (let i = 0; i < 200; i++) {
      work.set(pool[i % pool.length]!);
      plain.sample(work);
    }
    perStep.push((process.memoryUsage().heapUsed - start) / 200);
  }
  perStep.sort((a, b) => a - b);

  const accepting = tgiSetup(vocabSize);
  for (let i = 0; i < warmupSteps; i++) {
    work.set(pool[i % pool.length]!);
    accepting.sample(work);
  }
  const acceptingBefore = settle(gc);
  for (let i = 0; i < steps; i++) {
    work.set(pool[i % pool.length]!);
    accepting.sequence.accept(accepting.sample(work).tokenId);
  }
  const acceptingAfter = settle(gc);

  const heapUsedDelta = after.heapUsed - before.heapUsed;
  return {
    vocabSize,
    steps,
    warmupSteps,
    heapUsedDelta,
    checkpoints,
    arrayBuffersDelta: after.arrayBuffers - before.arrayBuffers,
    thresholdBytes: HEAP_THRESHOLD_BYTES,
    pass: heapUsedDelta < HEAP_THRESHOLD_BYTES,
    allocatedPerStep: perStep[2]!,
    acceptingHeapUsedDelta: acceptingAfter.heapUsed - acceptingBefore.heapUsed,
  };
}

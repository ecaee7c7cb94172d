/**
 * Entry point for the heap check in a child `node --expose-gc` (spawned by run.ts when it has no `gc`).
 * Usage: node --expose-gc --conditions=@gen/source --import tsx bench/heap-child.ts VOCAB STEPS
 * Prints one line of JSON (a HeapCheck).
 */
import { runHeapCheck } from './heap.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error('heap-child: run node with --expose-gc');
  process.exit(2);
}
const vocabSize = Number(process.argv[2] ?? 151936);
const steps = Number(process.argv[3] ?? 10000);
console.log(JSON.stringify(runHeapCheck(gc, vocabSize, steps)));

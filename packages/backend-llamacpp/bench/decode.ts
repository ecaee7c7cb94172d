/**
 * Decode throughput of backend-llamacpp at batch 1 on model-kit's `bench` preset (llama, 124.7M parameters), for
 * F32, Q8_0 and Q4_0 GGUF files, on the main thread and on a koffi worker thread.
 *
 *   node --conditions=@gen/source --import tsx bench/decode.ts [--threads 2] [--steps 64] [--types f32,q8_0,q4_0]
 *
 * The GGUF files are written once under `<repo>/.gen-cache/gguf/` (seed 0). Each configuration runs `--rounds`
 * times (main and worker alternating, so both see the same machine); prints tokens/s of each round, the median,
 * and the 1-minute load average before and after.
 */
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { defaultModelCacheDir, writeGgufModel, type GgufWeightType } from '@gen/model-kit';
import { createLlamaCppBackend } from '../src/index.js';

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    steps: { type: 'string', default: '64' },
    types: { type: 'string', default: 'f32,q8_0,q4_0' },
    prompt: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
  },
});
const threads = Number(values.threads);
const steps = Number(values.steps);
const promptLength = Number(values.prompt);
const rounds = Number(values.rounds);
const types = values.types.split(',') as GgufWeightType[];
const cacheDir = join(defaultModelCacheDir(), '..', 'gguf');

async function ensureBenchGguf(type: GgufWeightType): Promise<string> {
  const file = join(cacheDir, `bench-0-${type}.gguf`);
  if (!existsSync(file)) {
    const started = performance.now();
    const temporary = `${file}.tmp-${process.pid}`;
    await writeGgufModel({ preset: 'bench', seed: 0, type, outFile: temporary });
    await rename(temporary, file);
    console.log(`wrote ${file} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  return file;
}

const fmt = (n: number) => n.toFixed(2);
async function measure(modelPath: string, decodeThread: 'main' | 'worker'): Promise<number> {
  {
    const backend = await createLlamaCppBackend({
      modelPath,
      threads,
      maxBatchSize: 1,
      maxSequences: 1,
      contextSize: 1024,
      decodeThread,
    });
    const vocab = backend.model.vocabSize;
    const prompt = Array.from({ length: promptLength }, (_, i) => (i * 7919 + 1) % vocab);
    let result = await backend.doForward({ sequences: [{ id: 'w', tokens: prompt }] });
    // Warm-up: a few steps (graph allocation for the decode shape).
    for (let i = 0; i < 4; i++) result = await backend.doForward({ sequences: [{ id: 'w', tokens: [i + 1] }] });
    const before = loadavg()[0]!;
    const started = performance.now();
    let token = 1;
    for (let i = 0; i < steps; i++) {
      result = await backend.doForward({ sequences: [{ id: 'w', tokens: [token] }] });
      const logits = result.sequences[0]!.logits;
      let best = 0;
      for (let v = 1; v < vocab; v++) if (logits[v]! > logits[best]!) best = v;
      token = best;
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `  ${decodeThread.padEnd(6)} ${fmt(steps / seconds)} tokens/s (${fmt((seconds * 1000) / steps)} ms/token)` +
        `  load average ${fmt(before)} -> ${fmt(loadavg()[0]!)}  [${String(backend.capabilities.details?.['cpuVariants'])}]`,
    );
    await backend.doDispose();
    return steps / seconds;
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
console.log(`threads ${threads}, prompt ${promptLength}, ${steps} decode steps, batch 1, ${rounds} rounds`);
for (const type of types) {
  const modelPath = await ensureBenchGguf(type);
  console.log(type);
  const results = { main: [] as number[], worker: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    for (const decodeThread of ['main', 'worker'] as const)
      results[decodeThread].push(await measure(modelPath, decodeThread));
  }
  console.log(`  median: main ${fmt(median(results.main))}, worker ${fmt(median(results.worker))} tokens/s`);
}

/**
 * Constrained against unconstrained decoding, side by side in one run, on model-kit's `bench` preset (124.7M
 * parameters, vocab 32,000) with backend-onnx: the same prompts, greedy, the same number of tokens, with and without
 * a JSON Schema constraint whose language never ends early (an array of strings), at 1 and 16 concurrent requests.
 * Rounds alternate the two modes; medians are reported, with their ratio.
 *
 *   pnpm --filter @gen/server bench:structured [--threads 2] [--new-tokens 48] [--rounds 5] [--json out.json]
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createOnnxBackend } from '@gen/backend-onnx';
import { createEngine, type GenerationParameters } from '@gen/engine';
import { ensureModelDir } from '@gen/model-kit';
import { constraintFor, jsonSchemaGrammar, vocabularyFromTokenizer } from '@gen/structured';
import { loadTokenizer } from '@gen/tokenizer';

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    'new-tokens': { type: 'string', default: '48' },
    rounds: { type: 'string', default: '5' },
    json: { type: 'string' },
  },
});
const threads = Number(values.threads);
const newTokens = Number(values['new-tokens']);
const rounds = Number(values.rounds);

const modelDir = await ensureModelDir('bench');
const tokenizer = await loadTokenizer(modelDir);
const backend = await createOnnxBackend({ modelDir, intraOpThreads: threads, maxBatchSize: 16 });
const engine = createEngine({ backend, tokenizer });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const grammar = jsonSchemaGrammar({ type: 'array', items: { type: 'string' } });
let started = performance.now();
const vocabulary = vocabularyFromTokenizer(tokenizer, {
  size: backend.model.vocabSize,
  eosTokenIds: backend.model.eosTokenIds,
});
const vocabularyMs = performance.now() - started;
started = performance.now();
const processor = constraintFor(grammar, vocabulary);
const compileMs = performance.now() - started;

console.log(
  `structured decode bench: preset bench (vocab ${backend.model.vocabSize}), backend ${backend.backendId}, ${threads} threads, ${newTokens} tokens per request, load average ${loadavg()[0]!.toFixed(2)}`,
);
console.log(`vocabulary trie ${vocabularyMs.toFixed(1)} ms, grammar compile + index ${compileMs.toFixed(1)} ms`);

async function run(concurrency: number, constrained: boolean): Promise<number> {
  const parameters: GenerationParameters = {
    maxNewTokens: newTokens,
    ...(constrained ? { logitsProcessors: [processor] } : { ignoreEos: true }),
  };
  const start = performance.now();
  const results = await Promise.all(
    Array.from({ length: concurrency }, (_, i) =>
      engine.generate({ inputs: `Request ${i}: list some words as JSON.`, parameters }).result(),
    ),
  );
  const seconds = (performance.now() - start) / 1000;
  const tokens = results.reduce((sum, r) => sum + r.choices[0]!.generatedTokens, 0);
  return tokens / seconds;
}

// Warm-up: sessions, and the masks of the states the constrained runs visit.
await run(2, false);
await run(2, true);

const report: Record<string, { unconstrained: number; constrained: number; ratio: number }> = {};
for (const concurrency of [1, 16]) {
  const plain: number[] = [];
  const guided: number[] = [];
  for (let round = 0; round < rounds; round++) {
    plain.push(await run(concurrency, false));
    guided.push(await run(concurrency, true));
  }
  const unconstrained = median(plain);
  const constrained = median(guided);
  report[concurrency] = { unconstrained, constrained, ratio: constrained / unconstrained };
  console.log(
    `concurrency ${String(concurrency).padStart(2)}: unconstrained ${unconstrained.toFixed(1)} tok/s, constrained ${constrained.toFixed(1)} tok/s, ratio ${(constrained / unconstrained).toFixed(3)} (medians of ${rounds})`,
  );
}
if (values.json !== undefined) writeFileSync(values.json, JSON.stringify({ vocabularyMs, compileMs, report }, null, 2));
await engine.close();
await backend.doDispose();

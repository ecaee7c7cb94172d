/**
 * Constrained against unconstrained decoding, side by side in one run, on model-kit's `bench` preset (124.7M
 * parameters, vocab 32,000) with backend-onnx: the same prompts, greedy, the same number of tokens, with and without
 * a JSON Schema constraint (a 20-property object, all required, so no constrained request ends before the limit:
 * checked), at 1 and 16 concurrent requests.
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
import type { LogitsProcessor, SequenceProcessor } from '@gen/sampling';
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

// A 20-property tool-call-like object, every property required: its keys alone are longer than --new-tokens, so
// constrained requests run to the same length as the unconstrained ones (checked after every run).
const properties: Record<string, unknown> = {};
for (let i = 0; i < 20; i++) {
  const kinds = [
    { type: 'string' },
    { type: 'integer', minimum: 0, maximum: 1000 },
    { enum: ['low', 'medium', 'high'] },
    {
      type: 'object',
      properties: { city: { type: 'string' }, zip: { type: 'string', maxLength: 10 } },
      required: ['city'],
    },
    { type: 'array', items: { type: 'string' }, maxItems: 8 },
  ];
  properties[`field_${i}`] = kinds[i % kinds.length];
}
const grammar = jsonSchemaGrammar({
  type: 'object',
  properties,
  required: Object.keys(properties),
  additionalProperties: false,
});
let started = performance.now();
const vocabulary = vocabularyFromTokenizer(tokenizer, {
  size: backend.model.vocabSize,
  eosTokenIds: backend.model.eosTokenIds,
});
const vocabularyMs = performance.now() - started;
started = performance.now();
const constraint = constraintFor(grammar, vocabulary);
const compileMs = performance.now() - started;

// The constraint's own cost, timed around its apply (mask) and accept (automaton step) calls: what constrained
// decoding adds to a token, independent of the run-to-run noise of the forward pass.
let constraintNs = 0n;
let constraintTokens = 0;
const processor: LogitsProcessor = {
  name: constraint.name,
  changesArgmax: constraint.changesArgmax,
  createState(sequence) {
    const inner = constraint.createState(sequence);
    const timed = (state: SequenceProcessor): SequenceProcessor => ({
      apply(logits, seq) {
        const t = process.hrtime.bigint();
        state.apply(logits, seq);
        constraintNs += process.hrtime.bigint() - t;
        constraintTokens++;
      },
      accept(token) {
        const t = process.hrtime.bigint();
        state.accept?.(token);
        constraintNs += process.hrtime.bigint() - t;
      },
      fork: () => timed(state.fork?.() ?? state),
    });
    return timed(inner);
  },
};

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
  const early = results.filter((r) => r.choices[0]!.finishReason !== 'length').length;
  if (early > 0) {
    throw new Error(
      `${early} of ${concurrency} ${constrained ? 'constrained' : 'unconstrained'} requests ended before ${newTokens} tokens: the comparison needs equal lengths (raise the schema's size or lower --new-tokens)`,
    );
  }
  return tokens / seconds;
}

// Warm-up: sessions, and the masks of the states the constrained runs visit.
await run(2, false);
await run(2, true);

const report: Record<
  string,
  { unconstrained: number; constrained: number; ratio: number; constraintMicrosPerToken: number }
> = {};
for (const concurrency of [1, 16]) {
  constraintNs = 0n;
  constraintTokens = 0;
  const plain: number[] = [];
  const guided: number[] = [];
  for (let round = 0; round < rounds; round++) {
    plain.push(await run(concurrency, false));
    guided.push(await run(concurrency, true));
  }
  const unconstrained = median(plain);
  const constrained = median(guided);
  const constraintMicrosPerToken = Number(constraintNs) / 1000 / constraintTokens;
  report[concurrency] = { unconstrained, constrained, ratio: constrained / unconstrained, constraintMicrosPerToken };
  console.log(
    `concurrency ${String(concurrency).padStart(2)}: unconstrained ${unconstrained.toFixed(1)} tok/s, constrained ${constrained.toFixed(1)} tok/s, ratio ${(constrained / unconstrained).toFixed(3)} (medians of ${rounds}); the constraint itself: ${constraintMicrosPerToken.toFixed(1)} µs per token, ${((constraintMicrosPerToken * unconstrained) / 1e4).toFixed(2)}% of an unconstrained token's time`,
  );
}
if (values.json !== undefined) writeFileSync(values.json, JSON.stringify({ vocabularyMs, compileMs, report }, null, 2));
await engine.close();
await backend.doDispose();

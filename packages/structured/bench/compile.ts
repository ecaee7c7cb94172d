/**
 * Compile benchmark: a typical 20-property tool schema (strings, integers, enums, a nested object, an array of
 * strings) from JSON Schema to a usable automaton, including the transitions a first walk of a document needs.
 * Prints the median over runs. Run: `node --conditions=@gen/source --import tsx bench/compile.ts`.
 */
import { performance } from 'node:perf_hooks';
import { compileGrammar, jsonSchemaGrammar, matches } from '../src/grammar.js';
import { toolSchema } from './tool-schema.js';

const { schema, instance } = toolSchema('even');
const text = JSON.stringify(instance, null, 2);

const runs = Number(process.argv[2] ?? 30);
const times: number[] = [];
let states = 0;
for (let run = 0; run < runs; run++) {
  // A fresh schema object each run: the LRU cache is keyed by content, so vary a title to defeat it.
  const t0 = performance.now();
  const automaton = compileGrammar(jsonSchemaGrammar({ ...schema, title: String(run) }, {}), { maxStates: 1 << 20 });
  if (!matches(automaton, text)) throw new Error('the instance is not accepted');
  times.push(performance.now() - t0);
  states = automaton.stateCount;
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)] as number;
console.log(
  `compile 20-property schema + walk of a ${text.length}-byte document: median ${median.toFixed(1)} ms over ${runs} runs (min ${(times[0] as number).toFixed(1)} ms), ${states} DFA states`,
);

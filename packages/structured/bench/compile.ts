/**
 * Compile benchmark: a typical 20-property tool schema (strings, integers, enums, a nested object, an array of
 * strings) from JSON Schema to a usable automaton, including the transitions a first walk of a document needs.
 * Prints the median over runs. Run: `node --conditions=@gen/source --import tsx bench/compile.ts`.
 */
import { performance } from 'node:perf_hooks';
import { compileGrammar, jsonSchemaGrammar, matches } from '../src/grammar.js';

const properties: Record<string, unknown> = {};
const instance: Record<string, unknown> = {};
for (let i = 0; i < 20; i++) {
  const name = `field_${i}`;
  switch (i % 5) {
    case 0:
      properties[name] = { type: 'string', description: 'free text' };
      instance[name] = 'hello world';
      break;
    case 1:
      properties[name] = { type: 'integer', minimum: 0, maximum: 1000 };
      instance[name] = 42;
      break;
    case 2:
      properties[name] = { enum: ['low', 'medium', 'high'] };
      instance[name] = 'medium';
      break;
    case 3:
      properties[name] = {
        type: 'object',
        properties: { city: { type: 'string' }, zip: { type: 'string', maxLength: 10 } },
        required: ['city'],
        additionalProperties: false,
      };
      instance[name] = { city: 'Paris', zip: '75001' };
      break;
    default:
      properties[name] = { type: 'array', items: { type: 'string' }, maxItems: 8 };
      instance[name] = ['a', 'b'];
  }
}
const schema = {
  type: 'object',
  properties,
  required: Object.keys(properties).filter((_, i) => i % 2 === 0),
  additionalProperties: false,
};
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

/**
 * `@gen/structured` against a peer, in one run, on the same vocabulary, schema and token path: XGrammar's published
 * JavaScript build (`@mlc-ai/web-xgrammar`, the engine behind vLLM's, SGLang's and TensorRT-LLM's structured output,
 * compiled to WASM). Run: `pnpm --filter @gen/structured bench:peers [-- --runs 9]`.
 *
 * - Vocabulary: the synthetic byte-level vocabulary of `mask.ts` (V = 151,936), given to XGrammar as GPT-2
 *   byte-level strings, so both see exactly the same token bytes; EOS is a stop token for both.
 * - Schema: the 20-property tool schema of `compile.ts`, every property required; the document is one instance,
 *   tokenized greedily (longest match) over the vocabulary: both must allow every token of it.
 * - Measured per fresh schema: compile (ours: NFA + lazy DFA + mask index; XGrammar: its grammar compiler with the
 *   adaptive token mask cache), then a first walk over the document (ours computes each state's mask the first time;
 *   XGrammar's matcher runs its parser), then warm walks (masks known). A step is: the mask applied to a row of
 *   logits (XGrammar's bitmask applied by a word-skipping loop), then the token accepted.
 */
import type * as XGrammar from '@mlc-ai/web-xgrammar';
import type { GrammarMatcher as XGrammarMatcher } from '@mlc-ai/web-xgrammar';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { compileGrammar, jsonSchemaGrammar, TokenMaskIndex, TokenVocabulary } from '../src/index.js';
import { toolSchema } from './tool-schema.js';
import { syntheticVocabulary, VOCAB_SIZE } from './mask.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '9' } } });
const runs = Number(values.runs);

// web-xgrammar 0.1.27 is a UMD bundle inside a `"type": "module"` package: loaded as an ES module it exports
// nothing, puts itself on `globalThis.xgrammar`, and reads `require` and `__filename`, which ES modules lack.
const shim = globalThis as {
  require?: unknown;
  __filename?: string;
  __dirname?: string;
  xgrammar?: typeof XGrammar;
};
shim.require = createRequire(import.meta.url);
shim.__filename = fileURLToPath(import.meta.url);
shim.__dirname = dirname(shim.__filename);
await import('@mlc-ai/web-xgrammar');
const { GrammarCompiler, GrammarMatcher, TokenizerInfo } = shim.xgrammar!;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const { schema, instance } = toolSchema('all');

// The vocabulary, for us as bytes and for XGrammar as GPT-2 byte-level strings.
const { tokens, eos } = syntheticVocabulary();
const byteToChar: string[] = [];
for (let b = 0, extra = 0; b < 256; b++) {
  const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  byteToChar.push(String.fromCharCode(printable ? b : 256 + extra++));
}
const encodedVocab = tokens.map((bytes) => Array.from(bytes, (b) => byteToChar[b]!).join(''));
encodedVocab.push('</s>'); // id `eos`

// The document's tokens: greedy longest match over the vocabulary.
const ids = new Map<string, number>();
tokens.forEach((bytes, id) => ids.set(String.fromCharCode(...bytes), id));
const documentBytes = new TextEncoder().encode(JSON.stringify(instance, null, 1));
const path: number[] = [];
for (let at = 0; at < documentBytes.length;) {
  for (let length = Math.min(16, documentBytes.length - at); length > 0; length--) {
    const id = ids.get(String.fromCharCode(...documentBytes.subarray(at, at + length)));
    if (id !== undefined) {
      path.push(id);
      at += length;
      break;
    }
  }
}
path.push(eos);

let started = performance.now();
const vocabulary = new TokenVocabulary({ size: VOCAB_SIZE, tokenBytes: (id) => tokens[id], eosTokenIds: [eos] });
const oursVocabularyMs = performance.now() - started;
started = performance.now();
const info = await TokenizerInfo.createTokenizerInfo(encodedVocab, 'byte_level', false, VOCAB_SIZE, [eos]);
const compiler = await GrammarCompiler.createGrammarCompiler(info, false);
const theirsVocabularyMs = performance.now() - started;

const row = new Float32Array(VOCAB_SIZE);
const fill = (): void => {
  for (let i = 0; i < VOCAB_SIZE; i++) row[i] = (i % 97) / 10;
};

/** One walk over the document with our mask index: microseconds per token. */
function walkOurs(index: TokenMaskIndex, automaton: ReturnType<typeof compileGrammar>): number {
  let state = automaton.start;
  let total = 0;
  for (const token of path) {
    fill();
    const t = performance.now();
    index.apply(row, state);
    if (row[token] === -Infinity) throw new Error(`ours forbade token ${token} of the document`);
    if (token !== eos) {
      for (const byte of tokens[token]!) state = automaton.step(state, byte);
    }
    total += performance.now() - t;
  }
  if (!automaton.isAccepting(state)) throw new Error('ours did not accept the document');
  return (total * 1000) / path.length;
}

/** One walk with XGrammar's matcher: the bitmask for the step, applied to the row, then the token accepted. */
async function walkTheirs(matcher: XGrammarMatcher): Promise<number> {
  let total = 0;
  for (const token of path) {
    fill();
    const t = performance.now();
    const bitmask = await matcher.getNextTokenBitmask();
    for (let word = 0; word < bitmask.length; word++) {
      const bits = bitmask[word]!;
      if (bits === -1) continue;
      const base = word << 5;
      for (let bit = 0; bit < 32 && base + bit < VOCAB_SIZE; bit++) {
        if ((bits & (1 << bit)) === 0) row[base + bit] = -Infinity;
      }
    }
    if (row[token] === -Infinity) throw new Error(`XGrammar forbade token ${token} of the document`);
    if (!matcher.acceptToken(token)) throw new Error(`XGrammar refused token ${token}`);
    total += performance.now() - t;
  }
  return (total * 1000) / path.length;
}

const ours = { compileMs: [] as number[], firstUs: [] as number[], warmUs: [] as number[] };
const theirs = { compileMs: [] as number[], firstUs: [] as number[], warmUs: [] as number[] };
for (let run = 0; run < runs; run++) {
  // A fresh schema each run (a changed title), so neither side's cache answers.
  const fresh = { ...schema, title: `run ${run}` };
  let t = performance.now();
  const automaton = compileGrammar(jsonSchemaGrammar(fresh));
  const index = new TokenMaskIndex(automaton, vocabulary);
  ours.compileMs.push(performance.now() - t);
  ours.firstUs.push(walkOurs(index, automaton));
  ours.warmUs.push(walkOurs(index, automaton));

  t = performance.now();
  const compiled = await compiler.compileJSONSchema(JSON.stringify(fresh));
  theirs.compileMs.push(performance.now() - t);
  const first = await GrammarMatcher.createGrammarMatcher(compiled);
  theirs.firstUs.push(await walkTheirs(first));
  const second = await GrammarMatcher.createGrammarMatcher(compiled);
  theirs.warmUs.push(await walkTheirs(second));
  first.dispose();
  second.dispose();
  compiled.dispose();
}

console.log(
  `structured vs XGrammar (web-xgrammar 0.1.27, WASM): V = ${VOCAB_SIZE}, 20-property schema, document of ${path.length} tokens, ${runs} runs, load average ${loadavg()[0]!.toFixed(2)}`,
);
const rows: [string, number, number, string][] = [
  ['vocabulary (once per tokenizer), ms', oursVocabularyMs, theirsVocabularyMs, ''],
  ['compile per schema, ms (median)', median(ours.compileMs), median(theirs.compileMs), ''],
  ['first walk, µs per token (median)', median(ours.firstUs), median(theirs.firstUs), ''],
  ['warm walk, µs per token (median)', median(ours.warmUs), median(theirs.warmUs), ''],
];
console.log('| | @gen/structured | XGrammar | XGrammar / ours |');
console.log('|---|---:|---:|---:|');
for (const [label, a, b] of rows)
  console.log(`| ${label} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(b / a).toFixed(2)} |`);

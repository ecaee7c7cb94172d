/**
 * Token-mask benchmark at V = 151,936 (Qwen2's row length): a synthetic but realistic byte-level vocabulary (all 256
 * bytes, English words with and without a leading space, JSON punctuation combinations, numbers, CJK and emoji
 * pieces that split characters' UTF-8, seeded random merges), a JSON Schema compiled by `compileGrammar`, and:
 * vocabulary build time, cold mask computation per state, warm mask application per step, the allow/forbid
 * crossover of the two mask representations, and `sampler.sample()` per step with and without the constraint.
 */
import { createSampler, type SequenceState } from '@gen/sampling';
import {
  compileGrammar,
  constraintState,
  createConstraintProcessor,
  jsonSchemaGrammar,
  TokenMaskIndex,
  TokenVocabulary,
} from '../src/index.js';
import { applyAllowList, applyForbidList } from '../src/token-index.js';

/** Row length of Qwen2 / Qwen3. */
export const VOCAB_SIZE = 151_936;

/** A small seeded generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the of and to in is was for on that with as by at from his her it an are were be this which or have had not ' +
  'but one all they their has been would there can more when who will no if out so said what up its about into ' +
  'than them only some could new other time these two may first then do any like my now over such our man me even ' +
  'most made after also did many before must through back years where much your way well down should because each ' +
  'just those people how too little state good very make world still own see men work long get here between both ' +
  'life being under never day same another know while last might us great old year off come since against go came ' +
  'right used take three name age email id type value true false null items tags city street country phone user ' +
  'address description title status active count price total date created updated data result error message code'
).split(' ');

/** The synthetic vocabulary: `VOCAB_SIZE - 300` byte tokens, then 300 special ids (the first is EOS). */
export function syntheticVocabulary(seed = 1): { tokens: Uint8Array[]; eos: number } {
  const random = rng(seed);
  const encoder = new TextEncoder();
  const seen = new Set<string>();
  const tokens: Uint8Array[] = [];
  const target = VOCAB_SIZE - 300;
  const add = (bytes: Uint8Array): void => {
    if (tokens.length >= target || bytes.length === 0) return;
    const key = String.fromCharCode(...bytes);
    if (seen.has(key)) return;
    seen.add(key);
    tokens.push(bytes);
  };
  for (let b = 0; b < 256; b++) add(Uint8Array.of(b));
  for (const word of WORDS) {
    for (const form of [
      word,
      ` ${word}`,
      word[0]!.toUpperCase() + word.slice(1),
      ` ${word[0]!.toUpperCase()}${word.slice(1)}`,
    ]) {
      add(encoder.encode(form));
    }
  }
  const punctuation = ['{', '}', '[', ']', ':', ',', '"', ' ', '\n', '  ', '    '];
  for (const a of punctuation) for (const b of punctuation) add(encoder.encode(a + b));
  for (const a of punctuation) for (const b of punctuation) for (const c of punctuation) add(encoder.encode(a + b + c));
  for (const word of WORDS)
    for (const form of [`"${word}"`, `{"${word}`, `"${word}":`, ` "${word}`]) add(encoder.encode(form));
  for (let n = 0; n < 1000; n++) {
    add(encoder.encode(String(n)));
    add(encoder.encode(` ${n}`));
  }
  for (let k = 0; k < 6000; k++) {
    const char = String.fromCodePoint(0x4e00 + Math.floor(random() * 0x5000));
    const bytes = encoder.encode(char);
    add(bytes);
    add(bytes.subarray(0, 2));
  }
  for (let k = 0; k < 1500; k++) {
    const bytes = encoder.encode(String.fromCodePoint(0x1f300 + Math.floor(random() * 0x300)));
    add(bytes);
    add(bytes.subarray(0, 2));
    add(bytes.subarray(0, 3));
  }
  // Random merges, as BPE learns them on text: concatenations of word pieces (letters, a leading space, digits, some
  // punctuation and CJK), up to 16 bytes. Few contain quotes or control bytes, as in real vocabularies.
  const pieces = tokens.filter((bytes) => bytes.every((b) => (b >= 0x20 && b < 0x7f) || b >= 0x80));
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  const syllable = (): string => {
    let out = '';
    const n = 1 + Math.floor(random() * 4);
    for (let k = 0; k < n; k++) out += letters[Math.floor(random() ** 1.7 * letters.length)];
    return out;
  };
  while (tokens.length < target) {
    const r = random();
    if (r < 0.55) add(encoder.encode((random() < 0.5 ? ' ' : '') + syllable() + syllable()));
    else if (r < 0.7) add(encoder.encode(` ${WORDS[Math.floor(random() * WORDS.length)]!}${syllable()}`));
    else {
      const a = pieces[Math.floor(random() * pieces.length)]!;
      const b = pieces[Math.floor(random() * pieces.length)]!;
      if (a.length + b.length > 16) continue;
      const merged = new Uint8Array(a.length + b.length);
      merged.set(a);
      merged.set(b, a.length);
      add(merged);
    }
  }
  return { tokens, eos: target };
}

/** The schema the benchmark constrains to: a typical tool-call / extraction object. */
export const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    age: { type: 'integer' },
    email: { type: 'string' },
    active: { type: 'boolean' },
    tags: { type: 'array', items: { type: 'string' } },
    address: {
      type: 'object',
      properties: { street: { type: 'string' }, city: { type: 'string' } },
      required: ['city'],
    },
  },
  required: ['name', 'age', 'active'],
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? Number.NaN;
}

/** The two mask representations' cost by number of allowed ids (random ids): what the threshold rests on. */
function measureCrossover(pool: readonly Float32Array[]): MaskBenchResult['crossover'] {
  const random = rng(3);
  const logits = new Float32Array(VOCAB_SIZE);
  const kept = new Float32Array(VOCAB_SIZE);
  const rows: MaskBenchResult['crossover'] = [];
  for (const allowed of [1_000, 10_000, 20_000, 30_000, 40_000, 50_000, 75_000, 100_000, 140_000]) {
    const allowIds: number[] = [];
    const forbidIds: number[] = [];
    for (let id = 0; id < VOCAB_SIZE; id++) (random() < allowed / VOCAB_SIZE ? allowIds : forbidIds).push(id);
    const allowList = Int32Array.from(allowIds);
    const forbidList = Int32Array.from(forbidIds);
    const allowTimes: number[] = [];
    const forbidTimes: number[] = [];
    for (let r = 0; r < 200; r++) {
      logits.set(pool[r % pool.length]!);
      let t = performance.now();
      applyAllowList(logits, allowList, kept);
      if (r >= 50) allowTimes.push((performance.now() - t) * 1000);
      logits.set(pool[r % pool.length]!);
      t = performance.now();
      applyForbidList(logits, forbidList);
      if (r >= 50) forbidTimes.push((performance.now() - t) * 1000);
    }
    rows.push({ allowed, allowUs: median(allowTimes), forbidUs: median(forbidTimes) });
  }
  return rows;
}

/** Results of {@link runMaskBench}, in microseconds unless named otherwise. */
export interface MaskBenchResult {
  vocabularyBuildMs: number;
  trieNodes: number;
  automatonStates: number;
  coldStates: number;
  coldMedianUs: number;
  coldP90Us: number;
  warmApplyMedianUs: number;
  warmApplyP90Us: number;
  allowedMedian: number;
  crossover: { allowed: number; allowUs: number; forbidUs: number }[];
  sampleWithoutUs: number;
  sampleWithUs: number;
  steps: number;
  outputs: number;
}

/** Runs the benchmark; `steps` is the number of constrained sampling steps timed. */
export function runMaskBench(steps = 3000): MaskBenchResult {
  const { tokens, eos } = syntheticVocabulary();
  const buildStart = performance.now();
  const vocabulary = new TokenVocabulary({
    size: VOCAB_SIZE,
    tokenBytes: (id) => tokens[id],
    eosTokenIds: [eos],
  });
  const vocabularyBuildMs = performance.now() - buildStart;
  const automaton = compileGrammar(jsonSchemaGrammar(SCHEMA));
  const index = new TokenMaskIndex(automaton, vocabulary);
  const processor = createConstraintProcessor(index);
  const random = rng(7);
  const logits = new Float32Array(VOCAB_SIZE);
  const pool = Array.from({ length: 16 }, () => new Float32Array(VOCAB_SIZE).map(() => random() * 10 - 5));
  // Bias the pool towards short structural tokens a little, as a model would: the outputs end sooner.
  const parameters = { seed: 11, temperature: 0.8, topP: 0.95, topK: 50 };
  const constrained = createSampler(parameters, { vocabSize: VOCAB_SIZE, eosTokenIds: [eos], processors: [processor] });
  const plain = createSampler(parameters, { vocabSize: VOCAB_SIZE, eosTokenIds: [eos] });

  const cold: number[] = [];
  const warm: number[] = [];
  const allowedCounts: number[] = [];
  const withTimes: number[] = [];
  const withoutTimes: number[] = [];
  let outputs = 0;
  let sequence: SequenceState = constrained.createSequence([1, 2, 3]);
  const plainSequence = plain.createSequence([1, 2, 3]);
  for (let step = 0; step < steps; step++) {
    const row = pool[step % pool.length]!;
    const state = constraintState(sequence.processors.find((p) => constraintState(p) !== undefined)!)!;
    if (state.finished || sequence.generatedCount > 400) {
      sequence = constrained.createSequence([1, 2, 3]);
      outputs++;
      continue;
    }
    const cached = index.cachedMasks;
    const coldStart = performance.now();
    const mask = index.mask(state.state);
    const coldUs = (performance.now() - coldStart) * 1000;
    if (index.cachedMasks > cached) cold.push(coldUs);
    allowedCounts.push(mask.allowed);

    logits.set(row);
    const warmStart = performance.now();
    index.apply(logits, state.state);
    warm.push((performance.now() - warmStart) * 1000);

    logits.set(row);
    const withStart = performance.now();
    const { tokenId } = constrained.sample(logits, sequence);
    withTimes.push((performance.now() - withStart) * 1000);
    sequence.accept(tokenId);

    logits.set(row);
    const withoutStart = performance.now();
    const plainResult = plain.sample(logits, plainSequence);
    withoutTimes.push((performance.now() - withoutStart) * 1000);
    plainSequence.accept(plainResult.tokenId);
  }

  const crossover = measureCrossover(pool);

  return {
    vocabularyBuildMs,
    trieNodes: vocabulary.nodeCount,
    automatonStates: automaton.stateCount,
    coldStates: cold.length,
    coldMedianUs: median(cold),
    coldP90Us: quantile(cold, 0.9),
    warmApplyMedianUs: median(warm.slice(warm.length >> 2)),
    warmApplyP90Us: quantile(warm.slice(warm.length >> 2), 0.9),
    allowedMedian: median(allowedCounts),
    crossover,
    sampleWithoutUs: median(withoutTimes.slice(withoutTimes.length >> 2)),
    sampleWithUs: median(withTimes.slice(withTimes.length >> 2)),
    steps,
    outputs,
  };
}

/** Prints {@link runMaskBench}'s result as a small table. */
export function printMaskBench(result: MaskBenchResult): void {
  const f = (x: number) => x.toFixed(1);
  console.log(`token masks, V = ${VOCAB_SIZE.toLocaleString('en')} (synthetic byte-level vocabulary), JSON Schema`);
  console.table({
    'vocabulary + trie build': { value: `${f(result.vocabularyBuildMs)} ms`, note: `${result.trieNodes} trie nodes` },
    'cold mask per state': {
      value: `median ${f(result.coldMedianUs)} µs, p90 ${f(result.coldP90Us)} µs`,
      note: `${result.coldStates} states (automaton ${result.automatonStates})`,
    },
    'warm mask apply per step': {
      value: `median ${f(result.warmApplyMedianUs)} µs, p90 ${f(result.warmApplyP90Us)} µs`,
      note: `median ${result.allowedMedian} allowed; target <= 50 µs`,
    },
    'sampler.sample() without': { value: `median ${f(result.sampleWithoutUs)} µs`, note: `${result.steps} steps` },
    'sampler.sample() with constraint': {
      value: `median ${f(result.sampleWithUs)} µs`,
      note: `${result.outputs} complete outputs`,
    },
  });
  console.log('mask representation: µs per apply by number of allowed ids');
  console.table(
    Object.fromEntries(
      result.crossover.map((row) => [row.allowed, { allow: f(row.allowUs), forbid: f(row.forbidUs) }]),
    ),
  );
}

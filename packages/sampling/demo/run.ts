/**
 * A runnable tour of @gen/sampling on its own: a word-bigram "language model" learned from a short text drives
 * greedy decoding, TGI-style sampling, a watermark (and its detection) and stop sequences.
 *
 *   node --conditions=@gen/source --import tsx packages/sampling/demo/run.ts
 */
import { StopSequenceMatcher, createSampler, detectWatermark, type SamplingParameters } from '../src/index.js';

const corpus = `the cat sat on the mat . the dog sat on the log . the cat saw the dog . the dog saw the cat on the mat .
a bird sat on the dog . the bird saw a cat . a cat ran to the log . the dog ran to the bird . a dog saw the mat .`;

const words = corpus.split(/\s+/).filter(Boolean);
const vocabulary = [...new Set(words)];
const idOf = new Map(vocabulary.map((word, id) => [word, id]));
const vocabSize = vocabulary.length;
const counts = new Float64Array(vocabSize * vocabSize);
for (let i = 1; i < words.length; i++) counts[idOf.get(words[i - 1]!)! * vocabSize + idOf.get(words[i]!)!]! += 1;

/** Next-word logits: log of smoothed bigram counts. */
function logitsAfter(previous: number): Float32Array {
  const row = new Float32Array(vocabSize);
  for (let next = 0; next < vocabSize; next++) row[next] = Math.log(counts[previous * vocabSize + next]! + 0.05);
  return row;
}

function generate(parameters: SamplingParameters, prompt: string, maxWords = 24, stops: string[] = []) {
  const sampler = createSampler(parameters, { vocabSize });
  const promptIds = prompt.split(' ').map((word) => idOf.get(word)!);
  const sequence = sampler.createSequence(promptIds);
  const matcher = new StopSequenceMatcher(stops);
  let text = '';
  const generated: number[] = [];
  let finish = 'length';
  for (let step = 0; step < maxWords; step++) {
    const { tokenId } = sampler.sample(logitsAfter(sequence.lastToken), sequence);
    sequence.accept(tokenId);
    generated.push(tokenId);
    const pushed = matcher.push(` ${vocabulary[tokenId]}`);
    text += pushed.text;
    if (pushed.stop !== null) {
      finish = `stop_sequence ${JSON.stringify(pushed.stop.sequence)}`;
      break;
    }
  }
  if (finish === 'length') text += matcher.flush();
  return { text: prompt + text, generated, seed: sampler.seed, finish, promptIds };
}

const show = (label: string, result: ReturnType<typeof generate>) =>
  console.log(
    `${label.padEnd(38)} seed=${String(result.seed).padEnd(17)} ${result.finish.padEnd(18)} | ${result.text}`,
  );

console.log(`@gen/sampling demo: a bigram model over ${vocabSize} words\n`);
show('greedy', generate({}, 'the cat'));
show('greedy, repetition_penalty 1.5', generate({ repetitionPenalty: 1.5 }, 'the cat'));
show('TGI-style (T 0.8, top_k 5, top_p .9)', generate({ temperature: 0.8, topK: 5, topP: 0.9, seed: 42 }, 'the cat'));
show('same seed again', generate({ temperature: 0.8, topK: 5, topP: 0.9, seed: 42 }, 'the cat'));
show('typical_p 0.9, seed 7', generate({ typicalP: 0.9, seed: 7 }, 'the dog'));
show('min_p 0.2, seed 7', generate({ minP: 0.2, seed: 7 }, 'the dog'));
show('stop at "."', generate({ temperature: 1, doSample: true, seed: 3 }, 'a bird', 24, ['.']));

const marked = generate({ doSample: true, seed: 11, watermark: { gamma: 0.5, delta: 4 } }, 'the', 200);
const plain = generate({ doSample: true, seed: 11 }, 'the', 200);
for (const [label, result] of [
  ['watermarked', marked],
  ['not watermarked', plain],
] as const) {
  const detection = detectWatermark(result.generated, {
    vocabSize,
    prefixToken: result.promptIds.at(-1)!,
    ignoreRepeatedBigrams: false,
  });
  console.log(
    `\nwatermark detection on ${label} text (${detection.scoredCount} tokens): z = ${detection.zScore.toFixed(2)}, ` +
      `p = ${detection.pValue.toExponential(2)}, green ${(detection.greenFraction * 100).toFixed(1)}% -> ` +
      (detection.prediction ? 'WATERMARKED' : 'not watermarked'),
  );
}
console.log('\nNext: the HTTP server (apps/server) serves real models with these samplers.');

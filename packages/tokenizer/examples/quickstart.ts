/**
 * Tour of @gen/tokenizer. Run from the repository root:
 *   node --conditions=@gen/source --import tsx packages/tokenizer/examples/quickstart.ts [model-dir]
 * Without a model directory it uses the Llama-3-style test tokenizer in src/fixtures/llama3.
 */
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '@gen/tokenizer';

const modelDir = process.argv[2] ?? fileURLToPath(new URL('../src/fixtures/llama3', import.meta.url));
const tokenizer = await loadTokenizer(modelDir);
console.log(`vocab ${tokenizer.vocabSize}, bos ${tokenizer.bosToken}, eos ids ${tokenizer.eosTokenIds().join(', ')}`);

// 1. Chat template -> prompt ids (the template writes the bos token, so no special tokens are added on top).
const prompt = tokenizer.applyChatTemplate(
  [
    { role: 'system', content: 'You are a lighthouse keeper.' },
    { role: 'user', content: 'What did you see last night?' },
  ],
  { addGenerationPrompt: true },
);
const promptIds = tokenizer.encode(prompt, { addSpecialTokens: false });
console.log(`prompt: ${JSON.stringify(prompt)}\n  -> ${promptIds.length} tokens`);

// 2. TGI /tokenize: ids with code-point offsets into the input.
for (const { id, text, start, stop } of tokenizer.encodeWithOffsets('naïve café 👩‍👩‍👧')) {
  console.log(`  ${String(id).padStart(4)} [${start}, ${stop}) ${JSON.stringify(text)}`);
}

// 3. Streaming: deltas never split a character and always add up to the full decode.
const reply = tokenizer.encode('Three ships, 日本語 and a 🐋!', { addSpecialTokens: false });
const stream = tokenizer.createStreamDecoder({ skipSpecialTokens: true, promptTokens: promptIds });
const deltas = [...reply.map((id) => stream.push(id)), stream.flush()];
console.log('deltas:', JSON.stringify(deltas));
console.log('joined:', JSON.stringify(deltas.join('')), '=', JSON.stringify(tokenizer.decode(reply)));

/**
 * Prefix cache replays, cache on against cache off in one run, on model-kit's `bench` preset (124.7M parameters,
 * 2,048 positions) as a GGUF file on backend-llamacpp (F32), or with `--backend onnx` as the fused fp32 ONNX export on
 * backend-onnx (the server's default for Hugging Face directories; backend-js also forks prefixes but is slow at
 * this size):
 *
 * - multi-turn chat: a 1,500-token system prompt, then 10 turns, each request the whole conversation so far;
 * - shared-document RAG: one 1,500-token document, 8 different questions about it.
 *
 * Time to first token (median over the requests after the first, which has nothing to reuse) and total time, with
 * the ratio. `pnpm --filter @gen/server bench:prefix-cache [--backend llamacpp|onnx] [--turns 10] [--threads 2]
 * [--json out.json]`
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { BackendV1 } from '@gen/backend';
import { createLlamaCppBackend } from '@gen/backend-llamacpp';
import { createOnnxBackend } from '@gen/backend-onnx';
import { createEngine } from '@gen/engine';
import { ensureGgufModel, ensureModelDir } from '@gen/model-kit';
import { loadTokenizer } from '@gen/tokenizer';

const { values } = parseArgs({
  options: {
    turns: { type: 'string', default: '10' },
    threads: { type: 'string', default: '2' },
    backend: { type: 'string', default: 'llamacpp' },
    json: { type: 'string' },
  },
});
const turns = Number(values.turns);
const threads = Number(values.threads);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const backendName = values.backend;
if (backendName !== 'llamacpp' && backendName !== 'onnx') throw new RangeError('--backend must be llamacpp or onnx');
const file =
  backendName === 'onnx'
    ? await ensureModelDir('bench', { onnxGraphStyle: 'fused' })
    : (await ensureGgufModel('bench', { type: 'f32' })).file;
const tokenizer = await loadTokenizer(file);
const createBackend = (): Promise<BackendV1> =>
  backendName === 'onnx'
    ? createOnnxBackend({ modelDir: file, intraOpThreads: threads, maxBatchSize: 4 })
    : createLlamaCppBackend({ modelPath: file, threads, maxBatchSize: 4 });
const words = 'the of and to in is was for on that with as by at from his her it an are were be this which or'.split(
  ' ',
);
/** About `n` tokens of seeded filler text. */
function filler(n: number, seed: number): string {
  const out: string[] = [];
  let state = seed;
  while (tokenizer.encode(out.join(' '), { addSpecialTokens: false }).length < n) {
    for (let i = 0; i < 50; i++) {
      state = (state * 1103515245 + 12345) >>> 0;
      out.push(words[state % words.length]!);
    }
  }
  return out.join(' ');
}
const system = filler(1500, 1);

async function replay(cacheBytes: number, scenario: 'chat' | 'rag') {
  const backend = await createBackend();
  const engine = createEngine({ backend, tokenizer, prefixCache: { maxBytes: cacheBytes } });
  const ttft: number[] = [];
  const started = performance.now();
  const conversation: { role: string; content: string }[] = [{ role: 'system', content: system }];
  for (let turn = 0; turn < turns; turn++) {
    const question = `Question ${turn}: what comes ${words[turn % words.length]} next?`;
    const messages =
      scenario === 'chat'
        ? [...conversation, { role: 'user', content: question }]
        : [
            { role: 'system', content: system },
            { role: 'user', content: question },
          ];
    const inputs = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    const t0 = performance.now();
    const stream = engine.generate({ inputs, parameters: { maxNewTokens: 8, ignoreEos: true } });
    let first = 0;
    let text = '';
    for await (const event of stream) {
      if (event.type === 'token' && first === 0) first = performance.now() - t0;
      if (event.type === 'done') text = event.result.choices[0]!.text;
    }
    ttft.push(first);
    // A fixed short reply keeps 10 turns within 2,048 positions (the random model's text re-encodes long).
    void text;
    conversation.push({ role: 'user', content: question }, { role: 'assistant', content: 'Noted.' });
  }
  const totalMs = performance.now() - started;
  const hits = engine.stats().prefixCache?.hitTokens ?? 0;
  await engine.close();
  await backend.doDispose();
  return { ttftMs: median(ttft.slice(1)), firstMs: ttft[0]!, totalMs, hitTokens: hits };
}

console.log(
  `prefix cache bench: bench preset ${backendName === 'onnx' ? 'fused fp32 ONNX on backend-onnx' : 'F32 GGUF on backend-llamacpp'}, ${threads} threads, ${turns} requests, system prompt ${tokenizer.encode(system, { addSpecialTokens: false }).length} tokens, load average ${loadavg()[0]!.toFixed(2)}`,
);
const report: Record<string, unknown> = {};
for (const scenario of ['chat', 'rag'] as const) {
  const off = await replay(0, scenario);
  const on = await replay(1 << 30, scenario);
  report[scenario] = { off, on, ttftRatio: off.ttftMs / on.ttftMs, totalRatio: off.totalMs / on.totalMs };
  console.log(
    `${scenario}: TTFT median (requests 2..${turns}) off ${off.ttftMs.toFixed(0)} ms, on ${on.ttftMs.toFixed(0)} ms, ${(off.ttftMs / on.ttftMs).toFixed(1)}x lower; total off ${(off.totalMs / 1000).toFixed(1)} s, on ${(on.totalMs / 1000).toFixed(1)} s (${(off.totalMs / on.totalMs).toFixed(2)}x); ${on.hitTokens} prompt tokens reused`,
  );
}
if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(report, null, 2));

import { ensureModelDir } from '@gen/model-kit';
import { loadTokenizer, type Tokenizer } from '@gen/tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from './model-loader.js';
import { postJson, startServer, type RunningServer } from './testing/harness.js';

// The 2026 families end to end: a model-kit directory of each (real Hugging Face layout, the family's chat
// template and special tokens) served on the pure-TypeScript backend through the OpenAI chat route.
const families = [
  { preset: 'tiny-qwen3', turnEnd: '<|im_end|>', marker: '<|im_start|>assistant\n' },
  { preset: 'tiny-gemma2', turnEnd: '<end_of_turn>', marker: '<start_of_turn>model\n' },
  { preset: 'tiny-gemma3', turnEnd: '<end_of_turn>', marker: '<start_of_turn>model\n' },
  { preset: 'tiny-phi3', turnEnd: '<|end|>', marker: '<|assistant|>\n' },
] as const;

const messages = [
  { role: 'system', content: 'Answer briefly.' },
  { role: 'user', content: 'Name a colour.' },
];

interface Chat {
  choices: { message: { content: string | null }; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number };
}

describe.each(families)('$preset on the OpenAI chat route', ({ preset, turnEnd, marker }) => {
  let server: RunningServer;
  let tokenizer: Tokenizer;
  beforeAll(async () => {
    const modelDir = await ensureModelDir(preset, { formats: ['safetensors'] });
    tokenizer = await loadTokenizer(modelDir);
    server = await startServer({
      model: await loadModel({ modelDir, backend: 'js', modelId: preset, log: () => undefined }),
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("renders the family's chat template: the prompt is the template's tokens", async () => {
    const prompt = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    expect(prompt.endsWith(marker)).toBe(true);
    const response = await postJson(server.url, '/v1/chat/completions', { messages, max_tokens: 4, temperature: 0 });
    expect(response.status).toBe(200);
    const chat = response.json as Chat;
    expect(chat.usage.prompt_tokens).toBe(tokenizer.encode(prompt, { addSpecialTokens: false }).length);
    expect(chat.usage.completion_tokens).toBeGreaterThan(0);
  });

  it(`stops at the turn end ${turnEnd} (an end-of-generation token of generation_config.json)`, async () => {
    const id = tokenizer.tokenToId(turnEnd)!;
    expect(tokenizer.eosTokenIds()).toContain(id);
    const response = await postJson(server.url, '/v1/chat/completions', {
      messages,
      max_tokens: 8,
      logit_bias: { [String(id)]: 100 },
    });
    const chat = response.json as Chat;
    expect(chat.choices[0]!.finish_reason).toBe('stop');
    expect(chat.usage.completion_tokens).toBe(1);
    expect(chat.choices[0]!.message.content).toBe('');
  });
});

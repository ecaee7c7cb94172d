/**
 * `@huggingface/inference` (4.x), unchanged, against our endpoint URL on 127.0.0.1 (tiny model-kit model).
 *
 * With an `endpointUrl`, version 4 of the library speaks the OpenAI-compatible routes TGI also serves:
 * `textGeneration` / `textGenerationStream` post `{model, prompt, max_tokens, ...parameters}` to
 * `<endpoint>/v1/completions`, `chatCompletion` / `chatCompletionStream` post to `<endpoint>/v1/chat/completions`.
 */
import { InferenceClient, InferenceClientProviderApiError } from '@huggingface/inference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startServer, tinyModel, type RunningServer } from './testing/harness.js';

let server: RunningServer;
let hf: InferenceClient;

beforeAll(async () => {
  server = await startServer({ model: await tinyModel() });
  hf = new InferenceClient(undefined, { endpointUrl: server.url });
});
afterAll(() => server?.close());

describe('@huggingface/inference InferenceClient', () => {
  it('textGeneration returns {generated_text}, the greedy text of the TGI routes', async () => {
    const output = await hf.textGeneration({
      inputs: 'The answer to the universe is',
      parameters: { max_new_tokens: 6, temperature: 0 },
    });
    const tgi = await postJson(server.url, '/generate', {
      inputs: 'The answer to the universe is',
      parameters: { max_new_tokens: 6 },
    });
    expect(output.generated_text).toBe((tgi.json as { generated_text: string }).generated_text);
  });

  it('textGenerationStream yields the completion chunks, which spell the same text', async () => {
    let text = '';
    let chunks = 0;
    for await (const chunk of hf.textGenerationStream({
      inputs: 'The answer to the universe is',
      parameters: { max_new_tokens: 6, temperature: 0 },
    })) {
      chunks++;
      // The library yields the parsed events as they come (OpenAI completion chunks on /v1/completions).
      text += (chunk as unknown as { choices: { text: string }[] }).choices[0]?.text ?? '';
    }
    expect(chunks).toBeGreaterThan(1);
    const whole = await hf.textGeneration({
      inputs: 'The answer to the universe is',
      parameters: { max_new_tokens: 6, temperature: 0 },
    });
    expect(text).toBe(whole.generated_text);
  });

  it('chatCompletion and chatCompletionStream (seed 000 style request)', async () => {
    const request = {
      model: 'tiny',
      messages: [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: 'What is deep learning?' },
      ],
      temperature: 0,
      max_tokens: 8,
      top_p: 0.9,
    };
    const completion = await hf.chatCompletion(request);
    expect(completion.choices[0]!.message.role).toBe('assistant');
    expect(typeof completion.choices[0]!.message.content).toBe('string');
    expect(completion.usage.completion_tokens).toBeLessThanOrEqual(8);

    let text = '';
    let finish: string | undefined;
    for await (const chunk of hf.chatCompletionStream(request)) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(completion.choices[0]!.message.content);
    expect(finish).toBe(completion.choices[0]!.finish_reason);
  });

  it('endpoint(url) works the same way, and errors surface as ProviderApiError with our status and body', async () => {
    const endpoint = new InferenceClient().endpoint(server.url);
    const output = await endpoint.textGeneration({ inputs: 'Hi', parameters: { max_new_tokens: 2 } });
    expect(typeof output.generated_text).toBe('string');

    const error = await endpoint
      .chatCompletion({ messages: [{ role: 'user', content: 'Hi' }], temperature: -1 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InferenceClientProviderApiError);
    const apiError = error as InferenceClientProviderApiError;
    expect(apiError.httpResponse.status).toBe(400);
    expect(apiError.httpResponse.body).toMatchObject({
      error: { message: expect.stringContaining('`temperature` must be >= 0'), param: 'temperature' },
    });
  });
});

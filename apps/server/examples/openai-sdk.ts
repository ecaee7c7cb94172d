/**
 * The official `openai` SDK against `gen serve`, unchanged: point `baseURL` at the server's `/v1`.
 *
 *   npx -y pnpm@10.34.8 start                      # in one terminal (http://127.0.0.1:8080)
 *   node --conditions=@gen/source --import tsx apps/server/examples/openai-sdk.ts [http://127.0.0.1:8080]
 *
 * With `--api-key` on the server, set GEN_API_KEY to the same key here.
 */
import { pathToFileURL } from 'node:url';
import OpenAI, { BadRequestError } from 'openai';

/** Runs the tour against `baseUrl`, writing to `print`. */
export async function main(baseUrl: string, print: (line: string) => void = console.log): Promise<void> {
  const client = new OpenAI({
    baseURL: `${baseUrl}/v1`,
    apiKey: process.env['GEN_API_KEY'] ?? 'unused',
    maxRetries: 0,
  });
  const [model] = (await client.models.list()).data;
  print(`model: ${model?.id}`);

  const messages: OpenAI.ChatCompletionMessageParam[] = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'What is deep learning?' },
  ];
  const completion = await client.chat.completions.create({
    model: model?.id ?? 'gen',
    messages,
    max_tokens: 20,
    temperature: 0.7,
    seed: 42,
  });
  print(`chat: ${JSON.stringify(completion.choices[0]?.message.content)} (${completion.choices[0]?.finish_reason})`);

  // Streaming, with the usage in a last chunk.
  const stream = await client.chat.completions.create({
    model: model?.id ?? 'gen',
    messages,
    max_tokens: 20,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    if (chunk.usage) print(`stream usage: ${chunk.usage.completion_tokens} completion tokens`);
  }
  print(`stream: ${JSON.stringify(text)}`);

  // Legacy completions, with logprobs.
  const legacy = await client.completions.create({
    model: model?.id ?? 'gen',
    prompt: 'Once upon a time',
    max_tokens: 8,
    logprobs: 2,
  });
  print(
    `completion: ${JSON.stringify(legacy.choices[0]?.text)}, ${legacy.choices[0]?.logprobs?.tokens?.length} logprobs`,
  );

  // Invalid requests are refused before anything is generated, as the SDK's typed errors.
  try {
    await client.chat.completions.create({ model: 'gen', messages, temperature: -1 });
  } catch (error) {
    if (error instanceof BadRequestError) print(`400: ${error.message}`);
    else throw error;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv[2] ?? process.env['GEN_URL'] ?? 'http://127.0.0.1:8080');
}

/**
 * A tour of @gen/client. Against a running server:
 *
 *   node --conditions=@gen/source --import tsx packages/client/examples/quickstart.ts http://127.0.0.1:3000
 *
 * Without a URL it starts the package's fake TGI server (test/fake-tgi-server.ts) on 127.0.0.1 and uses that.
 */
import { pathToFileURL } from 'node:url';
import { Client, ClientError, OverloadedError, ValidationError } from '@gen/client';

/** Runs the tour against `baseUrl`, writing to `print`. */
export async function main(baseUrl: string, print: (line: string) => void = console.log): Promise<void> {
  const client = new Client(baseUrl, { timeout: 30_000 });

  const info = await client.info();
  print(`model: ${info.modelId} (max total tokens: ${info.maxTotalTokens ?? '?'})`);
  print(`healthy: ${await client.health()}`);

  // One request, with details (finish reason, tokens, seed).
  const response = await client.generate('Why is the sky blue?', { maxNewTokens: 20, temperature: 0.7, seed: 42 });
  print(`generate: ${JSON.stringify(response.generatedText)}`);
  print(`  finish reason: ${response.details?.finishReason}, tokens: ${response.details?.generatedTokens}`);

  // Token streaming: skip special tokens when building the text.
  let text = '';
  for await (const event of client.generateStream('Why is the sky blue?', { maxNewTokens: 20 })) {
    if (!event.token.special) text += event.token.text;
    if (event.details) print(`  stream finished: ${event.details.finishReason}`);
  }
  print(`stream: ${JSON.stringify(text)}`);

  print(`tokens: ${(await client.tokenize('Hello world')).map((token) => token.id).join(' ')}`);

  // Errors are classes: the client refuses invalid parameters before sending anything...
  try {
    await client.generate('Why is the sky blue?', { temperature: 0 });
  } catch (error) {
    if (ValidationError.isInstance(error)) print(`validation: ${error.message}`);
  }
  // ...and maps the server's errors (422 validation, 429 overloaded, 424 generation, ...).
  try {
    await client.generate('Why is the sky blue?', { stop: ['a', 'b', 'c', 'd', 'e'] });
  } catch (error) {
    if (OverloadedError.isInstance(error)) print('overloaded: retry later');
    else if (ClientError.isInstance(error)) print(`${error.name} (HTTP ${error.status}): ${error.message}`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const url = process.argv[2] ?? process.env['GEN_URL'];
  if (url !== undefined) {
    await main(url);
  } else {
    const { startFakeTgiServer } = await import('../test/fake-tgi-server.js');
    const fake = await startFakeTgiServer();
    console.log(`(no URL given: using the fake TGI server at ${fake.url})`);
    try {
      await main(fake.url);
    } finally {
      await fake.close();
    }
  }
}

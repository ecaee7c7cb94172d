import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeGgufModel } from '@gen/model-kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveAuto } from './backends.js';
import { loadModel } from './model-loader.js';
import { postJson, startServer, tinyModelDir } from './testing/harness.js';

// `gen serve --model file.gguf`: a GGUF file of the tiny preset (the same seeded weights as the demo model
// directory) is served with its tokenizer and chat template read from the file. On the js backend (which
// dequantizes) an F32 file must answer exactly what the model directory answers.

let scratch: string;
let file: string;
const log: string[] = [];

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'gen-server-gguf-'));
  file = (await writeGgufModel({ preset: 'tiny', outFile: join(scratch, 'tiny.gguf'), type: 'f32' })).file;
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** One request to a fresh server on the model at `modelDir` (closing a server disposes its backend). */
async function generate(modelDir: string, path: string, body: unknown) {
  const model = await loadModel({ modelDir, backend: 'js', log: (line) => log.push(line) });
  const server = await startServer({ model });
  try {
    const answer = await postJson(server.url, path, body);
    expect(answer.status).toBe(200);
    return answer.json as Record<string, unknown>;
  } finally {
    await server.close();
  }
}

describe('serving a GGUF file', () => {
  it('js on the F32 file answers exactly what the model directory answers, TGI and OpenAI chat', async () => {
    const fromFile = await loadModel({ modelDir: file, backend: 'js', log: () => undefined });
    expect(fromFile.modelId).toBe('tiny');
    await fromFile.backend.doDispose();
    const fromDir = await tinyModelDir();
    const tgi = { inputs: 'Once upon a time', parameters: { max_new_tokens: 12, details: true } };
    const chat = { messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 12, temperature: 0 };
    const [fileTgi, dirTgi] = [await generate(file, '/generate', tgi), await generate(fromDir, '/generate', tgi)];
    expect(fileTgi).toEqual(dirTgi);
    const fileChat = await generate(file, '/v1/chat/completions', chat);
    const dirChat = await generate(fromDir, '/v1/chat/completions', chat);
    const message = (answer: Record<string, unknown>) => (answer['choices'] as { message: unknown }[])[0]!.message;
    expect(message(fileChat)).toEqual(message(dirChat));
  });

  it('auto picks llamacpp for a GGUF file when its libraries load, else js (and says why)', async () => {
    const lines: string[] = [];
    const chosen = await resolveAuto(file, (line) => lines.push(line));
    expect(['llamacpp', 'js']).toContain(chosen);
    if (chosen === 'js') expect(lines.join('\n')).toMatch(/using js, llamacpp is unavailable \(.+\)/);
    else expect(lines).toEqual([]);
  });

  it('a directory holding one GGUF file and no config.json serves it', async () => {
    const dir = join(scratch, 'one');
    await mkdir(dir, { recursive: true });
    await copyFile(file, join(dir, 'model-f32.gguf'));
    const model = await loadModel({ modelDir: dir, backend: 'js', log: () => undefined });
    expect(model.modelDir).toBe(join(dir, 'model-f32.gguf'));
    expect(model.tokenizer.vocabSize).toBeGreaterThan(0);
    await model.backend.doDispose();
  });

  it('clear errors: a backend that cannot read GGUF, two GGUF files, a file that is not GGUF', async () => {
    await expect(loadModel({ modelDir: file, backend: 'tfjs', log: () => undefined })).rejects.toThrow(
      /backend tfjs cannot serve a GGUF file .*backends that can: js, llamacpp/,
    );
    const two = join(scratch, 'two');
    await mkdir(two, { recursive: true });
    await copyFile(file, join(two, 'a.gguf'));
    await copyFile(file, join(two, 'b.gguf'));
    await expect(loadModel({ modelDir: two, backend: 'js', log: () => undefined })).rejects.toThrow(
      /no config\.json and several GGUF files \(a\.gguf, b\.gguf\)/,
    );
    await writeFile(join(scratch, 'weights.bin'), 'x');
    await expect(loadModel({ modelDir: join(scratch, 'weights.bin'), log: () => undefined })).rejects.toThrow(
      /is a file but not a GGUF file/,
    );
  });
});

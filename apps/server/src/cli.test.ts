/**
 * The `gen` CLI as users run it (a child process: node --conditions=@gen/source --import tsx src/cli.ts): help,
 * flag errors (exit 2), `gen generate`, and `gen serve` draining on SIGTERM (the stream completes, new connections
 * are refused, exit 0).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEngine } from '@gen/engine';
import { describe, expect, it } from 'vitest';
import { send, sseJson, tinyModel } from './testing/harness.js';

const SERVER_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
const REPO_ROOT = join(SERVER_DIR, '..', '..');
const NODE_ARGS = ['--conditions=@gen/source', '--import', 'tsx'];

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `gen <args>` to completion (killed after `timeoutMs`). */
function gen(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, 'src/cli.ts', ...args], {
      cwd: SERVER_DIR,
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Every `gen serve` flag, with its environment variable (README and docs/server.md list the same). */
const SERVE_FLAGS: [string, string | undefined][] = [
  ['--model', 'GEN_MODEL'],
  ['--model-id', 'GEN_MODEL_ID'],
  ['--backend', 'GEN_BACKEND'],
  ['--dtype', 'GEN_DTYPE'],
  ['--threads', 'GEN_THREADS'],
  ['--max-batch-size', 'GEN_MAX_BATCH_SIZE'],
  ['--tool-call-format', 'GEN_TOOL_CALL_FORMAT'],
  ['--reasoning-parser', 'GEN_REASONING_PARSER'],
  ['--hostname', 'GEN_HOSTNAME'],
  ['--port', 'GEN_PORT'],
  ['--max-batch-tokens', 'GEN_MAX_BATCH_TOKENS'],
  ['--prefix-cache-bytes', 'GEN_PREFIX_CACHE_BYTES'],
  ['--max-input-tokens', 'GEN_MAX_INPUT_TOKENS'],
  ['--max-total-tokens', 'GEN_MAX_TOTAL_TOKENS'],
  ['--max-concurrent-requests', 'GEN_MAX_CONCURRENT_REQUESTS'],
  ['--max-best-of', 'GEN_MAX_BEST_OF'],
  ['--max-n', 'GEN_MAX_N'],
  ['--max-stop-sequences', 'GEN_MAX_STOP_SEQUENCES'],
  ['--max-top-n-tokens', 'GEN_MAX_TOP_N_TOKENS'],
  ['--max-client-batch-size', 'GEN_MAX_CLIENT_BATCH_SIZE'],
  ['--default-max-new-tokens', 'GEN_DEFAULT_MAX_NEW_TOKENS'],
  ['--request-timeout', 'GEN_REQUEST_TIMEOUT'],
  ['--payload-limit', 'GEN_PAYLOAD_LIMIT'],
  ['--api-key', 'GEN_API_KEY'],
  ['--cors-allow-origin', 'GEN_CORS_ALLOW_ORIGIN'],
  ['--shutdown-timeout', 'GEN_SHUTDOWN_TIMEOUT'],
  ['--log-level', 'GEN_LOG_LEVEL'],
  ['--help', undefined],
];

describe('gen CLI', () => {
  it('--help, serve --help (every flag and its env var), generate --help, --version; flag errors exit 2', async () => {
    const [root, serveHelp, generateHelp, version, unknownFlag, badPort, badBackend, unknownCommand, noPrompt] =
      await Promise.all([
        gen(['--help']),
        gen(['serve', '--help']),
        gen(['generate', '--help']),
        gen(['--version']),
        gen(['serve', '--bogus']),
        gen(['serve', '--port', 'eighty']),
        gen(['serve', '--backend', 'cuda']),
        gen(['frobnicate']),
        gen(['generate']),
      ]);
    expect(root.code).toBe(0);
    expect(root.stdout).toContain('gen serve [options]');
    expect(root.stdout).toContain('gen generate "prompt" [options]');

    expect(serveHelp.code).toBe(0);
    for (const [flag, env] of SERVE_FLAGS) {
      expect(serveHelp.stdout, flag).toContain(`${flag}`);
      if (env !== undefined) expect(serveHelp.stdout, env).toContain(`[env ${env}]`);
    }
    const listed = serveHelp.stdout.match(/--[a-z-]+/g)!.filter((f, i, all) => all.indexOf(f) === i);
    expect(listed.sort()).toEqual(SERVE_FLAGS.map(([flag]) => flag).sort());

    expect(generateHelp.code).toBe(0);
    for (const flag of [
      '--max-new-tokens',
      '--temperature',
      '--top-k',
      '--top-p',
      '--seed',
      '--stop',
      '--stream',
      '--chat',
    ])
      expect(generateHelp.stdout).toContain(flag);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);

    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toContain("Unknown option '--bogus'");
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toContain('--port must be an integer >= 0, got "eighty"');
    expect(badBackend.code).toBe(2);
    expect(badBackend.stderr).toContain('--backend must be auto, onnx, js, tfjs or llamacpp, got "cuda"');
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain('unknown command "frobnicate"');
    expect(noPrompt.code).toBe(2);
    expect(noPrompt.stderr).toContain('gen generate needs a prompt');
    for (const run of [unknownFlag, badPort, badBackend, unknownCommand, noPrompt]) expect(run.stdout).toBe('');
  });

  it('gen generate "prompt" --max-new-tokens 5 prints the greedy text of the embedded demo model', async () => {
    const [plain, js, streamed] = await Promise.all([
      gen(['generate', 'Once upon a time', '--max-new-tokens', '5']),
      gen(['generate', 'Once upon a time', '--max-new-tokens', '5', '--backend', 'js']),
      gen(['generate', 'Once upon a time', '--max-new-tokens', '5', '--backend', 'js', '--stream']),
    ]);
    // The command as users type it (backend auto: onnx when installed, the demo model has an ONNX export).
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout.endsWith('\n')).toBe(true);
    expect(plain.stdout.trim().length).toBeGreaterThan(0);
    // With the JS backend: exactly the text the engine gives in-process on model-kit's tiny preset.
    const model = await tinyModel();
    const engine = createEngine({ backend: model.backend, tokenizer: model.tokenizer });
    const expected = await engine.generate({ inputs: 'Once upon a time', parameters: { maxNewTokens: 5 } }).result();
    await model.backend.doDispose();
    const choice = expected.choices[0]!;
    expect(js.code, js.stderr).toBe(0);
    expect(js.stdout).toBe(`${choice.text}\n`);
    expect(streamed.code, streamed.stderr).toBe(0);
    expect(streamed.stdout).toBe(`${choice.text}\n[${choice.finishReason}, ${choice.generatedTokens} tokens]\n`);
  });

  it('the root start script (pnpm start) runs gen serve', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts['start']).toBe('node --conditions=@gen/source --import tsx apps/server/src/cli.ts serve');
  });
});

/** Starts `gen serve --port 0` (log level info, to read the address) and resolves with its URL once /health is 200. */
async function startCli(
  args: string[],
): Promise<{ child: ChildProcess; url: string; output: () => string; exit: Promise<Run> }> {
  const child = spawn(process.execPath, [...NODE_ARGS, 'src/cli.ts', 'serve', '--port', '0', ...args], {
    cwd: SERVER_DIR,
    env: { ...process.env, NO_COLOR: '1' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exit = new Promise<Run>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  const deadline = Date.now() + 60_000;
  let url: string | undefined;
  while (url === undefined) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`gen serve did not start: ${stdout}\n${stderr}`);
    }
    url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (;;) {
    const health = await send(url, { path: '/health' }).catch(() => undefined);
    if (health?.status === 200) break;
    if (Date.now() > deadline) throw new Error('gen serve never became healthy');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, url, output: () => stdout + stderr, exit };
}

describe('gen serve and SIGTERM', () => {
  it('drains on SIGTERM: the running stream completes, new connections are refused, exit code 0', async () => {
    // The JS backend: its pace (about 1 ms per step here) keeps the streams running for a while after SIGTERM.
    const { child, url, output, exit } = await startCli([
      '--backend',
      'js',
      '--log-level',
      'info',
      '--shutdown-timeout',
      '20',
    ]);
    try {
      // Four long streams keep the batch busy for a while.
      const TOKENS = 480;
      let firstEvents = 0;
      let ended = 0;
      const streams = Array.from(
        { length: 4 },
        (_, i) =>
          new Promise<string>((resolve, reject) => {
            const req = httpRequest(new URL('/generate_stream', url), {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
            });
            req.on('response', (res) => {
              let text = '';
              let counted = false;
              res.setEncoding('utf8');
              res.on('data', (chunk: string) => {
                text += chunk;
                if (!counted) {
                  counted = true;
                  firstEvents++;
                }
              });
              res.on('end', () => {
                ended++;
                resolve(text);
              });
              res.on('error', reject);
            });
            req.on('error', reject);
            req.end(
              JSON.stringify({
                inputs: `stream ${i}`,
                parameters: { max_new_tokens: TOKENS, ignore_eos: true, details: true },
              }),
            );
          }),
      );
      const waitStart = Date.now();
      while (firstEvents < 4 && Date.now() - waitStart < 20_000) await new Promise((resolve) => setTimeout(resolve, 2));
      expect(firstEvents).toBe(4);

      child.kill('SIGTERM');
      // The signal takes a moment to be handled (longer when the machine is loaded, as under turbo's parallel
      // tests): poll until a new connection is refused, for at most 3 s.
      let refused: unknown;
      const killedAt = Date.now();
      do {
        await new Promise((resolve) => setTimeout(resolve, 20));
        refused = await send(url, { path: '/health', timeoutMs: 2_000 }).catch((error: unknown) => error);
      } while ((refused as NodeJS.ErrnoException).code !== 'ECONNREFUSED' && Date.now() - killedAt < 3_000);
      const streamsRunning = ended < 4;
      expect((refused as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
      expect(streamsRunning).toBe(true);

      for (const text of await Promise.all(streams)) {
        const events = sseJson(text) as { index: number; generated_text: string | null; details: unknown }[];
        expect(events).toHaveLength(TOKENS);
        expect(events.at(-1)!.generated_text).not.toBeNull();
        expect(events.at(-1)!.details).toMatchObject({ finish_reason: 'length', generated_tokens: TOKENS });
      }
      const run = await exit;
      expect(run.code, output()).toBe(0);
      expect(output()).toContain('SIGTERM: refusing new requests, draining running ones');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('serves the seed 000 chat request and the TGI /info with flags applied', async () => {
    const { child, url, exit } = await startCli([
      '--log-level',
      'info',
      '--max-best-of',
      '3',
      '--max-concurrent-requests',
      '7',
      '--model-id',
      'demo',
    ]);
    try {
      const info = (await send(url, { path: '/info' })).json;
      expect(info).toMatchObject({ model_id: 'demo', max_best_of: 3, max_concurrent_requests: 7 });
      const chat = await send(url, {
        path: '/v1/chat/completions',
        body: {
          model: 'xzgan001/Qwen2-1.5B-Instruct-GGUF',
          messages: [
            { role: 'system', content: 'You are a helpful assistant.' },
            { role: 'user', content: 'What is deep learning?' },
          ],
          stream: true,
          temperature: 0.2,
          max_tokens: 200,
          top_k: 10,
          top_p: 0.9,
          repetition_penalty: 1,
        },
      });
      expect(chat.status).toBe(200);
      const events = sseJson(chat.text);
      expect(events.at(-1)).toBe('[DONE]');
    } finally {
      child.kill('SIGTERM');
      expect((await exit).code).toBe(0);
    }
  });
});

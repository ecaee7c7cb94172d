/**
 * The README stays runnable: its curl commands and the openai SDK example run against a real server on 127.0.0.1,
 * and it documents every `gen serve` flag and every route of the OpenAPI document.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as openAiExample } from '../examples/openai-sdk.js';
import { FIELD_TABLES_BEGIN, FIELD_TABLES_END, fieldTables } from './schemas/docs.js';
import { startServer, tinyModel, type RunningServer } from './testing/harness.js';

const run = promisify(execFile);
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const serverDoc = readFileSync(new URL('../../../docs/server.md', import.meta.url), 'utf8');

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ model: await tinyModel() });
});
afterAll(() => server?.close());

const hasCurl = await run('curl', ['--version']).then(
  () => true,
  () => false,
);

describe('README', () => {
  it.runIf(hasCurl)('every curl example answers 200 with the documented shape', async () => {
    const commands = [...readme.matchAll(/^curl [\s\S]*?'\n(?=\n|```)/gm)].map((m) => m[0]);
    expect(commands.length).toBeGreaterThanOrEqual(4);
    for (const command of commands) {
      const local = `${command.replaceAll('http://127.0.0.1:8080', server.url).replace(/^curl /, 'curl -sS --max-time 30 -w "\\n%{http_code}" ')}`;
      const { stdout } = await run('sh', ['-c', local], { timeout: 40_000 });
      const status = stdout.trim().split('\n').at(-1);
      expect(status, command).toBe('200');
      expect(stdout.length).toBeGreaterThan(10);
    }
  });

  it('the openai SDK example runs', async () => {
    const lines: string[] = [];
    await openAiExample(server.url, (line) => lines.push(line));
    expect(lines[0]).toBe('model: tiny');
    expect(lines.some((line) => line.startsWith('chat: '))).toBe(true);
    // Unseeded sampling may reach EOS before max_tokens (20): the usage chunk reports what was generated.
    const usage = lines.find((line) => line.startsWith('stream usage: '));
    const completionTokens = Number(/^stream usage: (\d+) completion tokens$/.exec(usage ?? '')?.[1]);
    expect(completionTokens).toBeGreaterThanOrEqual(1);
    expect(completionTokens).toBeLessThanOrEqual(20);
    const completion = lines.find((line) => line.startsWith('completion: '));
    const logprobCount = Number(/, (\d+) logprobs$/.exec(completion ?? '')?.[1]);
    expect(logprobCount).toBeGreaterThanOrEqual(1);
    expect(logprobCount).toBeLessThanOrEqual(8); // max_tokens 8; unseeded sampling may end at EOS sooner
    expect(lines.at(-1)).toContain('400: 400 `temperature` must be >= 0');
  });

  it('documents every gen serve flag with its environment variable', async () => {
    const { stdout } = await run(
      process.execPath,
      ['--conditions=@gen/source', '--import', 'tsx', 'src/cli.ts', 'serve', '--help'],
      { cwd: new URL('..', import.meta.url).pathname },
    );
    const flags = [...stdout.matchAll(/--([a-z-]+) <value>.*?\[env (GEN_[A-Z_]+)\]/g)];
    expect(flags.length).toBeGreaterThan(20);
    for (const [, flag, env] of flags) {
      expect(readme, flag).toContain(`\`--${flag}\``);
      expect(readme, env).toContain(`\`${env}\``);
    }
  });

  it('README and docs/server.md name every route of the OpenAPI document', async () => {
    const doc = (await (await fetch(`${server.url}/api-doc/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const method of Object.keys(methods)) {
        expect(readme, `${method} ${path}`).toContain(`\`${method.toUpperCase()} ${path}\``);
        expect(serverDoc, `${method} ${path}`).toContain(`${method.toUpperCase()} ${path}`);
      }
    }
  });

  it('docs/server.md holds the field tables generated from the route schemas (pnpm docs:fields rewrites them)', () => {
    // Compared cell by cell: prettier re-aligns the tables.
    const normalize = (text: string) =>
      text
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line.length > 0 && !/^\|[\s|:-]+\|$/.test(line))
        .map((line) =>
          line.startsWith('|')
            ? line
                .split(/(?<!\\)\|/)
                .map((cell) => cell.trim())
                .join('|')
            : line,
        );
    const begin = serverDoc.indexOf(FIELD_TABLES_BEGIN);
    const end = serverDoc.indexOf(FIELD_TABLES_END);
    expect(begin).toBeGreaterThan(0);
    expect(normalize(serverDoc.slice(begin + FIELD_TABLES_BEGIN.length, end))).toEqual(normalize(fieldTables()));
  });
});

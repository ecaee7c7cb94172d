/**
 * The backend registry: the CLI's help and `--backend` validation list the names of `BACKENDS` (and of registered
 * backends), `auto` picks onnx only for directories with an ONNX export, and a backend registered at run time loads
 * by name, from `loadModel` and from the CLI.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeModelDir } from '@gen/model-kit';
import { createMockBackend } from '@gen/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  BACKENDS,
  backendNames,
  parseBackendName,
  registerBackend,
  resolveAuto,
  UnknownBackendError,
  type BackendEntry,
} from './backends.js';
import { main } from './cli.js';
import { loadModel } from './model-loader.js';
import { TINY_EOS, tinyModelDir } from './testing/harness.js';

const BUILT_IN = Object.keys(BACKENDS);

/** Runs the CLI in-process; resolves with its exit code and what it printed. */
async function gen(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const log = vi.spyOn(console, 'log').mockImplementation((...parts: unknown[]) => {
    stdout += `${parts.join(' ')}\n`;
  });
  const stdoutWrite = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const stderrWrite = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    log.mockRestore();
    stdoutWrite.mockRestore();
    stderrWrite.mockRestore();
  }
}

/** A backend of the test: the mock backend (tiny model's vocabulary and EOS) under `backendId`. */
function mockEntry(backendId: string, overrides: Partial<BackendEntry> = {}): BackendEntry {
  return {
    description: `a mock backend for the registry test (${backendId})`,
    packageName: '@gen/testkit',
    canServe: () => true,
    load: async () =>
      createMockBackend({ vocabSize: 512, maxPositions: 512, eosTokenIds: TINY_EOS, bosTokenId: 507, backendId }),
    ...overrides,
  };
}

let root: string;
let withOnnx: string;
let withoutOnnx: string;
let emptyOnnxDir: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'gen-server-backends-'));
  withOnnx = await tinyModelDir();
  withoutOnnx = (
    await writeModelDir({ preset: 'tiny', seed: 0, outDir: join(root, 'safetensors'), formats: ['safetensors'] })
  ).dir;
  // onnx/ without a model*.onnx file is not an ONNX export.
  emptyOnnxDir = (
    await writeModelDir({ preset: 'tiny', seed: 0, outDir: join(root, 'empty-onnx'), formats: ['safetensors'] })
  ).dir;
  await mkdir(join(emptyOnnxDir, 'onnx'));
  await writeFile(join(emptyOnnxDir, 'onnx', 'README.txt'), 'no graph here\n');
}, 120_000);
afterAll(() => rm(root, { recursive: true, force: true }));

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe('names derived from BACKENDS', () => {
  it('backendNames() is auto followed by the map, in its order', () => {
    expect(backendNames()).toEqual(['auto', ...BUILT_IN]);
    expect(BUILT_IN).toEqual(expect.arrayContaining(['onnx', 'js', 'tfjs']));
  });

  it('gen --help, serve --help and generate --help list every backend with its description', async () => {
    for (const args of [['--help'], ['serve', '--help'], ['generate', '--help']]) {
      const { code, stdout } = await gen(args);
      expect(code).toBe(0);
      expect(stdout, args.join(' ')).toContain('Backends (--backend):');
      expect(stdout).toMatch(
        /^ {2}auto +llamacpp when the model is a GGUF file, else onnx when the directory has onnx\/model\*\.onnx, else js \(the default\)$/m,
      );
      for (const [name, entry] of Object.entries(BACKENDS)) {
        const line = new RegExp(`^ {2}${name} +(.*)$`, 'm').exec(stdout)?.[1];
        expect(line, `${args.join(' ')}: ${name}`).toBe(`${entry.description} [${entry.packageName}]`);
      }
    }
    const { stdout } = await gen(['serve', '--help']);
    const backendFlag = stdout.split('\n').find((line) => line.includes('--backend <value>'));
    expect(backendFlag).toContain(`Forward pass: auto, ${BUILT_IN.slice(0, -1).join(', ')} or ${BUILT_IN.at(-1)};`);
  });

  it('--backend refuses an unknown name, listing the names of the map (exit 2)', async () => {
    const expected = `--backend must be auto, ${BUILT_IN.slice(0, -1).join(', ')} or ${BUILT_IN.at(-1)}, got "cuda"`;
    expect(expected).toBe('--backend must be auto, onnx, js, tfjs or llamacpp, got "cuda"');
    const run = await gen(['serve', '--backend', 'cuda']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`gen: ${expected}\n`);
    expect(run.stdout).toBe('');
    expect(() => parseBackendName('cuda')).toThrow(UnknownBackendError);
    expect(() => parseBackendName('cuda')).toThrow(expected);
    for (const raw of ['toString', '__proto__', 'JS', '', 3])
      expect(() => parseBackendName(raw), String(raw)).toThrow();
    for (const name of backendNames()) expect(parseBackendName(name)).toBe(name);
    await expect(loadModel({ modelDir: withoutOnnx, backend: 'cuda' })).rejects.toThrow(
      'backend must be auto, onnx, js, tfjs or llamacpp, got "cuda"',
    );
  });
});

describe('auto', () => {
  it('picks onnx for a directory with onnx/model*.onnx, js without one', async () => {
    expect(await resolveAuto(withOnnx)).toBe('onnx');
    expect(await resolveAuto(withoutOnnx)).toBe('js');
    expect(await resolveAuto(emptyOnnxDir)).toBe('js');
  });

  it('loadModel with auto (the default) loads the backend auto picks', async () => {
    for (const [modelDir, backendId] of [
      [withoutOnnx, 'js'],
      [withOnnx, 'onnx'],
    ] as const) {
      const model = await loadModel({ modelDir, log: () => undefined });
      expect(model.backend.backendId, modelDir).toBe(backendId);
      await model.backend.doDispose();
    }
  });

  it('skips backends that cannot serve the directory, and logs those whose package does not load', async () => {
    cleanups.push(
      registerBackend('picky', mockEntry('picky', { autoPriority: 100, canServe: () => false })),
      registerBackend('absent', mockEntry('absent', { autoPriority: 50, packageName: 'gen-no-such-backend-package' })),
    );
    const log: string[] = [];
    expect(await resolveAuto(withOnnx, (line) => log.push(line))).toBe('onnx');
    expect(log).toEqual([
      'backend auto: using onnx, absent is unavailable (the gen-no-such-backend-package package is not installed or failed to load)',
    ]);
  });

  it('picks a registered backend whose priority is highest', async () => {
    cleanups.push(registerBackend('eager', mockEntry('eager', { autoPriority: 10 })));
    expect(await resolveAuto(withoutOnnx)).toBe('eager');
  });
});

describe('registerBackend', () => {
  it('a registered backend loads by name, is listed, and is gone once unregistered', async () => {
    const unregister = registerBackend('test-mock', mockEntry('test-mock'));
    cleanups.push(unregister);
    expect(backendNames()).toEqual(['auto', ...BUILT_IN, 'test-mock']);
    const model = await loadModel({ modelDir: withoutOnnx, backend: 'test-mock', log: () => undefined });
    expect(model.backend.backendId).toBe('test-mock');
    expect(model.modelId).toBe('safetensors');
    await model.backend.doDispose();
    // Never picked by auto: it has no autoPriority.
    expect(await resolveAuto(withoutOnnx)).toBe('js');

    unregister();
    expect(backendNames()).toEqual(['auto', ...BUILT_IN]);
    await expect(loadModel({ modelDir: withoutOnnx, backend: 'test-mock' })).rejects.toThrow(
      'backend must be auto, onnx, js, tfjs or llamacpp, got "test-mock"',
    );
  });

  it('the CLI lists a registered backend and runs it with --backend <name>', async () => {
    cleanups.push(registerBackend('test-cli', mockEntry('test-cli')));
    const help = await gen(['--help']);
    expect(help.stdout).toMatch(/^ {2}test-cli +a mock backend for the registry test \(test-cli\) \[@gen\/testkit\]$/m);
    const serveHelp = await gen(['serve', '--help']);
    expect(serveHelp.stdout).toContain('Forward pass: auto, onnx, js, tfjs, llamacpp or test-cli;');
    const run = await gen([
      'generate',
      'Hello',
      '--model',
      withoutOnnx,
      '--backend',
      'test-cli',
      '--max-new-tokens',
      '3',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.endsWith('\n')).toBe(true);
    const refused = await gen(['generate', 'Hello', '--backend', 'test-cl']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--backend must be auto, onnx, js, tfjs, llamacpp or test-cli, got "test-cl"');
  });

  it('refuses auto, taken names and names that are not lower-case words', () => {
    for (const name of ['auto', 'js', 'onnx', 'tfjs']) {
      expect(() => registerBackend(name, mockEntry(name)), name).toThrow(`the backend name "${name}" is taken`);
    }
    cleanups.push(registerBackend('twice', mockEntry('twice')));
    expect(() => registerBackend('twice', mockEntry('twice'))).toThrow('is taken');
    for (const name of ['', 'Upper', 'with space', '-dash', 'toString!']) {
      expect(() => registerBackend(name, mockEntry('x')), name).toThrow('lower-case letters, digits and dashes');
    }
  });
});

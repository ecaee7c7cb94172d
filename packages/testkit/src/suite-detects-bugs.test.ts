import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

interface AssertionResult {
  ancestorTitles: string[];
  title: string;
  status: 'passed' | 'failed' | 'skipped' | 'pending' | 'todo';
}

const packageRoot = path.resolve(import.meta.dirname, '..');
let results: AssertionResult[] = [];

beforeAll(async () => {
  const require = createRequire(import.meta.url);
  const vitestBin = path.join(path.dirname(require.resolve('vitest/package.json')), 'vitest.mjs');
  const dir = await mkdtemp(path.join(tmpdir(), 'gen-testkit-meta-'));
  const outputFile = path.join(dir, 'report.json');
  try {
    await promisify(execFile)(
      process.execPath,
      [
        vitestBin,
        'run',
        '--config',
        'src/testing/broken-backends.vitest.config.ts',
        '--reporter=json',
        `--outputFile=${outputFile}`,
      ],
      { cwd: packageRoot, env: { ...process.env, FORCE_COLOR: '0' }, maxBuffer: 64 * 1024 * 1024 },
    ).catch((error: unknown) => {
      // vitest exits non-zero because the broken backends fail: that is the point.
      if ((error as { code?: unknown }).code !== 1) throw error;
    });
    const report = JSON.parse(await readFile(outputFile, 'utf8')) as {
      testResults: { assertionResults: AssertionResult[] }[];
    };
    results = report.testResults.flatMap((file) => file.assertionResults);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 120_000);

function failuresOf(name: string): string[] {
  return results
    .filter((r) => r.status === 'failed' && r.ancestorTitles.some((t) => t.startsWith(`${name}: `)))
    .map((r) => `${r.ancestorTitles.join(' > ')} > ${r.title}`);
}

describe('the conformance suite catches real bugs', () => {
  it('ran the fixture', () => {
    expect(results.length).toBeGreaterThan(100);
  });

  it('the correct control backend passes every part, oracle included', () => {
    expect(failuresOf('control')).toEqual([]);
    expect(results.filter((r) => r.ancestorTitles.some((t) => t.startsWith('control: oracle')))).not.toEqual([]);
    const embeddings = results.filter((r) => r.ancestorTitles.some((t) => t.startsWith('control: embeddings')));
    expect(embeddings.length).toBeGreaterThan(0);
    expect(embeddings.every((r) => r.status === 'passed')).toBe(true);
  });

  for (const [name, part] of [
    ['batch-leak', 'batching'],
    ['chunk-bug', 'prefill consistency'],
    ['leaky-release', 'release'],
    ['ignores-abort', 'abort'],
    ['no-position-limit', 'errors'],
    ['fork-off-by-one', 'fork'],
    ['constant-logits', 'specification'],
    ['wrong-numbers', 'oracle'],
    ['embed-batch-leak', 'embeddings'],
    ['embed-mean-skips-first', 'embeddings'],
    ['embed-capability-lies', 'specification'],
    ['logits-buffer-lies', 'specification'],
    ['logits-buffer-overrun', 'specification'],
    ['wrong-embeddings', 'oracle'],
  ] as const) {
    it(`a backend with bug "${name}" fails the ${part} part`, () => {
      const failures = failuresOf(`broken:${name}`);
      expect(
        failures.some((f) => f.startsWith(`broken:${name}: ${part}`)),
        `failures were: ${failures.join('\n') || 'none'}`,
      ).toBe(true);
    });
  }
});

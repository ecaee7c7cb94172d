import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const packageDir = path.resolve(here, '..');

/** The sources that ship (tests excluded). */
function shippedSources(): string[] {
  return readdirSync(here, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
    .map((file) => path.join(here, file));
}

describe('browser compatibility', () => {
  it('ships no Node.js-only imports or globals', () => {
    const sources = shippedSources();
    expect(sources.length).toBeGreaterThan(5);
    const offending: string[] = [];
    for (const file of sources) {
      // Code only: JSDoc examples may show Node.js usage (`process.env.HF_TOKEN`).
      const text = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/(^|[^:])\/\/.*$/gm, '$1');
      for (const [name, pattern] of [
        ['node: import', /['"]node:/],
        [
          'bare Node.js builtin import',
          /from\s+['"](?:fs|path|http|https|net|stream|buffer|url|util|events|crypto)['"]/,
        ],
        ['require()', /\brequire\(/],
        ['process', /\bprocess\./],
        ['Buffer', /\bBuffer\b/],
        ['__dirname', /\b__dirname\b/],
      ] as const) {
        if (pattern.test(text)) offending.push(`${path.relative(packageDir, file)}: ${name}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it('has no runtime dependencies', () => {
    const manifest = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest['dependencies']).toBeUndefined();
    expect(manifest['peerDependencies']).toBeUndefined();
  });

  it('type-checks with the DOM library and without Node.js types (tsconfig.build.json)', async () => {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    const output = await new Promise<string>((resolve) => {
      execFile(
        process.execPath,
        [tsc, '-p', 'tsconfig.build.json', '--noEmit'],
        { cwd: packageDir },
        (error, stdout, stderr) => resolve(error ? `${stdout}${stderr}` || String(error) : ''),
      );
    });
    expect(output).toBe('');
  });
});

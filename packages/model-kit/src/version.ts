import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This package's version (from its package.json; `src/` and `dist/` both sit one level below it). */
export const modelKitVersion: string = (createRequire(import.meta.url)('../package.json') as { version: string })
  .version;

let fingerprint: string | undefined;

/**
 * A short hash of this package's own code (the `.ts` sources when run from `src/`, the `.js` files when run from
 * `dist/`; tests excluded). Any change to the generator changes it, so cached model directories keyed by it are
 * never stale.
 */
export function generatorFingerprint(): string {
  if (fingerprint !== undefined) return fingerprint;
  const root = dirname(fileURLToPath(import.meta.url));
  const hash = createHash('sha256');
  const files = readdirSync(root, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(ts|js)$/.test(f) && !/\.(test|d)\.ts$/.test(f) && !f.split(/[\\/]/).includes('testing'))
    .map((f) => relative(root, join(root, f)).split('\\').join('/'))
    .sort();
  for (const file of files)
    hash
      .update(file)
      .update('\0')
      .update(readFileSync(join(root, file)))
      .update('\0');
  fingerprint = hash.digest('hex').slice(0, 12);
  return fingerprint;
}

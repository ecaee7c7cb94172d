import { createRequire } from 'node:module';

/** This package's version (from its package.json; `src/` and `dist/` both sit one level below it). */
export const modelKitVersion: string = (createRequire(import.meta.url)('../package.json') as { version: string })
  .version;

/**
 * Bumped whenever the bytes written for a given (preset, seed) change, so cached directories are regenerated.
 */
export const generatorRevision = 1;

import { defineConfig } from 'vitest/config';

/** Runs only the broken-backends fixture (used by suite-detects-bugs.test.ts in a child process). */
export default defineConfig({
  resolve: { conditions: ['@gen/source'] },
  ssr: { resolve: { conditions: ['@gen/source'] } },
  test: { include: ['src/testing/broken-backends.fixture.ts'], testTimeout: 60_000 },
});

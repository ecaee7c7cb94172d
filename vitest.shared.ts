import { defineConfig } from 'vitest/config';

/**
 * Shared vitest settings: tests run on `src/` through the `@gen/source` export condition, so no build is needed
 * before testing and a package's tests always see the sources of the packages it depends on.
 */
export default defineConfig({
  resolve: { conditions: ['@gen/source'] },
  ssr: { resolve: { conditions: ['@gen/source'] } },
  test: {
    include: ['src/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});

import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.js';

/**
 * Every test runs twice: with `llama_decode` on the main thread (the default) and on a koffi worker thread, chosen
 * through `GEN_LLAMACPP_DECODE_THREAD` (the default of the `decodeThread` setting).
 */
export default mergeConfig(
  shared,
  defineConfig({
    test: {
      projects: [
        { extends: true, test: { name: 'main', env: { GEN_LLAMACPP_DECODE_THREAD: 'main' } } },
        { extends: true, test: { name: 'worker', env: { GEN_LLAMACPP_DECODE_THREAD: 'worker' } } },
      ],
    },
  }),
);

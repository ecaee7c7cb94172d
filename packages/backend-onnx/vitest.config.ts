import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.js';

/**
 * Every test runs twice: on the default binding (`auto`: `direct`, onnxruntime's C API through koffi, for CPU providers) and on
 * onnxruntime-node's `InferenceSession`, chosen through `GEN_ONNX_BINDING`.
 */
export default mergeConfig(
  shared,
  defineConfig({
    test: {
      projects: [
        { extends: true, test: { name: 'auto', env: { GEN_ONNX_BINDING: 'auto' } } },
        { extends: true, test: { name: 'onnxruntime-node', env: { GEN_ONNX_BINDING: 'onnxruntime-node' } } },
      ],
    },
  }),
);

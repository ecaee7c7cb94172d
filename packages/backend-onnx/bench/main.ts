/**
 * `pnpm --filter @gen/backend-onnx bench [options]` runs `run.ts` (the standard graphs against transformers.js and
 * the roofline); `pnpm --filter @gen/backend-onnx bench fused [options]` runs `fused.ts` (the fused export against
 * the standard one, transformers.js and llama.cpp's figures).
 */
if (process.argv[2] === 'fused') {
  process.argv.splice(2, 1);
  await import('./fused.js');
} else {
  await import('./run.js');
}

export {};

/**
 * Compiles src/wasm/kernels.wat (WebAssembly text with SIMD) into src/wasm/kernels-bytes.ts, the base64 of the
 * binary, so the package ships the module as plain TypeScript and needs no build tool at run time.
 *
 *   node --import tsx scripts/build-wasm.ts           # from packages/sampling: rewrite kernels-bytes.ts
 *   node --import tsx scripts/build-wasm.ts --check   # exit 1 if kernels-bytes.ts is not what the .wat compiles to
 *
 * A test (src/wasm/kernels.test.ts) recompiles the .wat the same way and checks the committed bytes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { compileKernelsWat, kernelsBytesModule } from './wasm-compile.js';

const watPath = fileURLToPath(new URL('../src/wasm/kernels.wat', import.meta.url));
const outPath = fileURLToPath(new URL('../src/wasm/kernels-bytes.ts', import.meta.url));

const bytes = await compileKernelsWat(readFileSync(watPath, 'utf8'));
const source = kernelsBytesModule(bytes);
if (process.argv.includes('--check')) {
  const current = readFileSync(outPath, 'utf8');
  if (current !== source) {
    console.error('src/wasm/kernels-bytes.ts is stale: run `node --import tsx scripts/build-wasm.ts`');
    process.exit(1);
  }
  console.log(`src/wasm/kernels-bytes.ts is up to date (${bytes.length} bytes)`);
} else {
  writeFileSync(outPath, source);
  console.log(`wrote src/wasm/kernels-bytes.ts (${bytes.length} bytes of WebAssembly)`);
}

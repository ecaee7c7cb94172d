import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BackendError } from '@gen/backend';
import { writeModelDir } from '@gen/model-kit';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTfjsBackend } from './index.js';

// Runs in its own process (vitest isolates test files), so the first wasm initialisation of the process happens
// here, with the broken path.
let root: string;
let modelDir: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'gen-backend-tfjs-select-'));
  modelDir = (
    await writeModelDir({ preset: 'tiny', seed: 4, outDir: path.join(root, 'tiny'), formats: ['safetensors'] })
  ).dir;
});
afterAll(() => rm(root, { recursive: true, force: true }));

const require = createRequire(import.meta.url);
function installed(name: string): boolean {
  try {
    require.resolve(`${name}/package.json`);
    return true;
  } catch {
    return false;
  }
}

describe('tfjs backend selection', () => {
  it('falls through node-gpu, node and a broken wasm to cpu, logging each reason', async () => {
    const log: string[] = [];
    const backend = await createTfjsBackend({
      modelDir,
      wasmPaths: path.join(root, 'no-wasm-here'),
      log: (m) => log.push(m),
    });
    try {
      expect(backend.capabilities.device).toBe('cpu');
      expect(backend.capabilities.details?.['tfjsBackend']).toBe('cpu');
      expect(backend.model.details?.['tfjsBackend']).toBe('cpu');
      expect(tf.getBackend()).toBe('cpu');
      expect(log).toHaveLength(3);
      for (const [i, kind] of (['node-gpu', 'node'] as const).entries()) {
        const name = kind === 'node' ? '@tensorflow/tfjs-node' : '@tensorflow/tfjs-node-gpu';
        // pnpm installs the optional peers in this workspace without running their install scripts (no
        // libtensorflow, no addon); elsewhere they are simply absent. Both must fall through with the reason.
        expect(log[i]).toContain(`tfjs backend ${kind}`);
        expect(log[i]).toMatch(installed(name) ? /native addon .*tfjs_binding\.node.* is missing/ : /is not installed/);
      }
      expect(log[2]).toMatch(/^tfjs backend wasm failed to initialise: .*wasm/);
      const warnings = backend.warnings.map((w) => (w.type === 'other' ? w.message : ''));
      expect(warnings.some((m) => m.startsWith('tfjs backend wasm failed to initialise'))).toBe(true);
      expect(backend.capabilities.details?.['fallbacks']).toHaveLength(3);
      const result = await backend.doForward({ sequences: [{ id: 'a', tokens: [1, 2, 3] }] });
      expect(result.logits.every(Number.isFinite)).toBe(true);
    } finally {
      await backend.doDispose();
    }
  });

  it('a forced backend that does not initialise fails clearly, naming the reason', async () => {
    const error = await createTfjsBackend({ modelDir, tfjsBackend: 'node-gpu' }).catch((e: unknown) => e);
    expect(BackendError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/no TensorFlow\.js backend could be initialised \(tried node-gpu\)/);
    expect((error as Error).message).toMatch(/tfjs-node-gpu/);
    expect(tf.engine().state.numTensors).toBe(0);
  });

  it('a failed wasm start is final in the process, and says so', async () => {
    const error = await createTfjsBackend({ modelDir, tfjsBackend: 'wasm' }).catch((e: unknown) => e);
    expect(BackendError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(
      /wasm: an earlier initialisation of the wasm backend in this process failed/,
    );
  });
});

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defaultModelCacheDir, ensureModelDir } from './ensure-model-dir.js';
import { generatorFingerprint } from './version.js';

const run = promisify(execFile);
const temp = () => mkdtemp(join(tmpdir(), 'mk-cache-'));
const complete = [
  'config.json',
  'generation_config.json',
  'model.safetensors',
  'onnx',
  'special_tokens_map.json',
  'tokenizer.json',
  'tokenizer_config.json',
];

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('ensureModelDir', () => {
  it('generates once, then reuses the directory', async () => {
    const cacheDir = await temp();
    const dir = await ensureModelDir('tiny', { seed: 7, cacheDir });
    expect(dir).toBe(join(cacheDir, `tiny-7-0.0.0-${generatorFingerprint()}`));
    expect((await readdir(dir)).sort()).toEqual(complete);
    const before = (await stat(join(dir, 'model.safetensors'))).mtimeMs;
    expect(await ensureModelDir('tiny', { seed: 7, cacheDir })).toBe(dir);
    expect((await stat(join(dir, 'model.safetensors'))).mtimeMs).toBe(before);
    expect(await readdir(cacheDir)).toEqual([`tiny-7-0.0.0-${generatorFingerprint()}`]);
  });

  it('shares one generation between concurrent calls in a process', async () => {
    const cacheDir = await temp();
    const dirs = await Promise.all([1, 2, 3].map(() => ensureModelDir('tiny-qwen2', { seed: 1, cacheDir })));
    expect(new Set(dirs).size).toBe(1);
    expect(await readdir(cacheDir)).toHaveLength(1);
  });

  it('is safe when two processes generate the same model at once', async () => {
    const cacheDir = await temp();
    const script = join(cacheDir, '..', `mk-cache-race-${process.pid}.mts`);
    const module = fileURLToPath(new URL('./ensure-model-dir.ts', import.meta.url));
    await writeFile(
      script,
      `import { ensureModelDir } from ${JSON.stringify(module)};\n` +
        `console.log(await ensureModelDir('tiny', { seed: 9, cacheDir: ${JSON.stringify(cacheDir)} }));\n`,
    );
    const outputs = await Promise.all(
      [0, 1].map(() =>
        run(process.execPath, ['--import', 'tsx', script], { cwd: fileURLToPath(new URL('..', import.meta.url)) }),
      ),
    );
    const dirs = outputs.map((o) => o.stdout.trim());
    expect(dirs[0]).toBe(dirs[1]);
    expect((await readdir(dirs[0]!)).sort()).toEqual(complete);
    expect(await readdir(cacheDir)).toEqual([dirs[0]!.slice(cacheDir.length + 1)]); // no temporary left behind
  });

  it('removes copies made by other generator versions, and only those', async () => {
    const cacheDir = await temp();
    const keep = [
      'tiny-qwen2-4-0.0.0-aaaaaaaaaaaa',
      'tiny-4-0.0.0-aaaaaaaaaaaa-bfloat16',
      'tiny-40-0.0.0-aaaaaaaaaaaa',
    ];
    for (const name of [...keep, 'tiny-4-0.0.0-aaaaaaaaaaaa', 'tiny-4-0.0.1-bbbbbbbbbbbb']) {
      await mkdir(join(cacheDir, name));
    }
    const dir = await ensureModelDir('tiny', { seed: 4, cacheDir });
    expect((await readdir(cacheDir)).sort()).toEqual([...keep, dir.slice(cacheDir.length + 1)].sort());
  });

  it('caches each set of ONNX variants under its own name, replacing only older copies of that set', async () => {
    const cacheDir = await temp();
    const keep = ['tiny-4-0.0.0-aaaaaaaaaaaa-onnxfp32', 'tiny-4-0.0.0-aaaaaaaaaaaa-bfloat16-onnxfp32q4'];
    for (const name of [...keep, 'tiny-4-0.0.0-aaaaaaaaaaaa-onnxfp32q4']) await mkdir(join(cacheDir, name));
    const plain = await ensureModelDir('tiny', { seed: 4, cacheDir });
    const dir = await ensureModelDir('tiny', { seed: 4, cacheDir, onnxVariants: ['q4', 'fp32', 'q4'] });
    expect(dir).toBe(join(cacheDir, `tiny-4-0.0.0-${generatorFingerprint()}-onnxfp32q4`));
    expect((await readdir(join(dir, 'onnx'))).sort()).toEqual(['model.onnx', 'model_q4.onnx']);
    expect((await readdir(join(plain, 'onnx'))).sort()).toEqual(['model.onnx']);
    const names = [plain, dir].map((d) => d.slice(cacheDir.length + 1));
    expect((await readdir(cacheDir)).sort()).toEqual([...keep, ...names].sort());
  });

  it('caches each graph style under its own name', async () => {
    const cacheDir = await temp();
    const standard = await ensureModelDir('tiny', { seed: 2, cacheDir, onnxGraphStyle: 'standard' });
    const fused = await ensureModelDir('tiny', { seed: 2, cacheDir, onnxGraphStyle: 'fused' });
    expect(new Set([standard, fused, await ensureModelDir('tiny', { seed: 2, cacheDir })]).size).toBe(2);
    const inputs = async (dir: string) =>
      (await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'))).inputNames;
    expect(await inputs(fused)).toContain('seqlens_k');
    expect(await inputs(standard)).toContain('attention_mask');
  });
});

describe('ensureModelDir formats', () => {
  it("skips the ONNX graphs with formats: ['safetensors'] (cached apart), for every family preset", async () => {
    const cacheDir = await temp();
    for (const preset of ['tiny-qwen3', 'tiny-gemma2', 'tiny-gemma3', 'tiny-phi3'] as const) {
      const dir = await ensureModelDir(preset, { seed: 3, cacheDir, formats: ['safetensors'] });
      expect(dir.endsWith('-safetensors'), dir).toBe(true);
      const files = await readdir(dir);
      expect(files).not.toContain('onnx');
      expect(files).toEqual(expect.arrayContaining(complete.filter((name) => name !== 'onnx')));
      expect(await ensureModelDir(preset, { seed: 3, cacheDir, formats: ['safetensors'] })).toBe(dir);
    }
    const onlySafetensors = await ensureModelDir('tiny', { seed: 3, cacheDir, formats: ['safetensors'] });
    const both = await ensureModelDir('tiny', { seed: 3, cacheDir });
    expect(onlySafetensors).not.toBe(both);
    expect(await readdir(both)).toContain('onnx');
  });
});

describe('defaultModelCacheDir', () => {
  it('is .gen-cache/models at the workspace root, or $GEN_MODEL_CACHE_DIR', () => {
    const root = fileURLToPath(new URL('../../..', import.meta.url));
    expect(defaultModelCacheDir()).toBe(join(root, '.gen-cache', 'models'));
    vi.stubEnv('GEN_MODEL_CACHE_DIR', '/somewhere/else');
    expect(defaultModelCacheDir()).toBe('/somewhere/else');
  });
});

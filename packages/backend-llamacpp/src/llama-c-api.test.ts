import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadLlamaCApi, physicalCores } from './llama-c-api.js';
import { llamaCppUnavailable } from './testing/availability.js';

const unavailable = llamaCppUnavailable();
const needsLibrary = unavailable === undefined ? it : it.skip;
const reason = unavailable === undefined ? '' : ` (skipped: ${unavailable})`;

/**
 * Sizes and offsets that gcc gives for the structs of the llama.cpp headers the prebuilt package was built from
 * (`offsetof` on x86-64 Linux; the program is in `docs/backends/llamacpp.md`).
 */
const cLayout = {
  llama_model_params: {
    size: 80,
    offsets: { n_gpu_layers: 16, main_gpu: 32, tensor_split: 40, kv_overrides: 64, vocab_only: 72, load_mtp: 77 },
  },
  llama_context_params: {
    size: 160,
    offsets: {
      n_threads: 28,
      ctx_type: 36,
      flash_attn_type: 52,
      rope_freq_base: 56,
      defrag_thold: 84,
      cb_eval: 88,
      type_k: 104,
      abort_callback: 112,
      embeddings: 128,
      kv_unified: 133,
      samplers: 136,
      n_samplers: 144,
      ctx_other: 152,
    },
  },
  llama_batch: { size: 56, offsets: { token: 8, seq_id: 40, logits: 48 } },
  // ggml.h: bool cpumask[GGML_MAX_N_THREADS = 512], then n_threads, prio, poll, strict_cpu, paused.
  ggml_threadpool_params: {
    size: 528,
    offsets: { n_threads: 512, prio: 516, poll: 520, strict_cpu: 524, paused: 525 },
  },
} as const;

describe('llama.cpp C API binding', () => {
  needsLibrary(`struct layouts match the C header${reason}`, () => {
    const { koffi } = loadLlamaCApi();
    for (const [name, { size, offsets }] of Object.entries(cLayout)) {
      expect(koffi.sizeof(name), `sizeof(${name})`).toBe(size);
      for (const [field, offset] of Object.entries(offsets)) {
        expect(koffi.offsetof(name, field), `offsetof(${name}, ${field})`).toBe(offset);
      }
    }
  });

  needsLibrary(`loads the libraries, a CPU variant and the libc helpers${reason}`, () => {
    const api = loadLlamaCApi();
    expect(api.library).toMatch(/libllama/);
    expect(api.cpuVariants.length).toBeGreaterThan(0);
    expect(api.cpuVariants[0]).toMatch(/^libggml-cpu-/);
    expect(api.flagCallback).toBeDefined();
    expect(api.quietLog).toBeDefined();
    expect(api.systemInfo).toMatch(/CPU/);
  });

  needsLibrary(`finds ggml's thread pools in the CPU backend; a pool is created and freed${reason}`, () => {
    const { threadPools } = loadLlamaCApi();
    expect(threadPools).toBeDefined();
    const pool = threadPools!.create(2, 0);
    expect(pool).not.toBeNull();
    threadPools!.free(pool);
  });

  it('counts physical cores from /proc/cpuinfo', () => {
    const cpuinfo = [
      'physical id\t: 0',
      'core id\t\t: 0',
      '',
      'physical id\t: 0',
      'core id\t\t: 0',
      '',
      'physical id\t: 0',
      'core id\t\t: 1',
    ].join('\n');
    expect(physicalCores(3, cpuinfo)).toBe(2);
    expect(physicalCores(4, undefined)).toBe(4);
    expect(physicalCores(4, 'processor : 0')).toBe(4);
  });

  function loadIn(env: Record<string, string>): { name: string; reason: string; message: string } {
    const script =
      "import('./src/llamacpp-backend.ts').then((m) => m.createLlamaCppBackend({ modelPath: 'x.gguf' })).then(" +
      "() => console.log('{}'), (e) => console.log(JSON.stringify({ name: e.name, reason: e.reason, message: e.message })))";
    const out = execFileSync(process.execPath, ['--conditions=@gen/source', '--import', 'tsx', '-e', script], {
      cwd: join(import.meta.dirname, '..'),
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });
    return JSON.parse(out.trim().split('\n').at(-1)!) as { name: string; reason: string; message: string };
  }

  it('createLlamaCppBackend throws LlamaCppUnavailableError when the libraries are missing', () => {
    const error = loadIn({ GEN_LLAMACPP_LIB_DIR: join(tmpdir(), 'no-such-llamacpp-dir') });
    expect(error.name).toBe('LlamaCppUnavailableError');
    expect(error.reason).toBe('package-not-found');
    expect(error.message).toMatch(/does not exist/);
  });

  it('createLlamaCppBackend throws LlamaCppUnavailableError with the OS error when a library fails to load', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gen-llamacpp-broken-'));
    writeFileSync(join(dir, 'libllama.so'), 'not an ELF file');
    writeFileSync(join(dir, 'libggml.so'), 'not an ELF file');
    const error = loadIn({ GEN_LLAMACPP_LIB_DIR: dir });
    expect(error.name).toBe('LlamaCppUnavailableError');
    expect(error.reason).toBe('library-load-failed');
    expect(error.message).toMatch(/failed to load: .*(ELF|invalid|too short)/i);
  });
});

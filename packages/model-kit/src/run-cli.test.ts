import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { helpText, runCli } from './run-cli.js';

const temp = () => mkdtemp(join(tmpdir(), 'mk-cli-'));

function captureIo(isTTY = false) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    io: {
      stdout: { write: (text: string) => stdout.push(text) },
      stderr: { write: (text: string) => stderr.push(text), isTTY },
    },
    stdout: () => stdout.join(''),
    stderr: () => stderr.join(''),
  };
}

describe('gen-model CLI', () => {
  it('make writes a model directory and reports progress as plain lines when not on a terminal', async () => {
    const out = await temp();
    const { io, stdout, stderr } = captureIo();
    const code = await runCli(['make', '--preset', 'tiny', '--out', out, '--seed', '3', '--dtype', 'bf16'], io);
    expect(code).toBe(0);
    expect(stdout()).toMatch(/^Wrote .* in [\d.]+ s: llama, 158,016 parameters, vocab 512 \(tokenizer 512\)\n/);
    expect(stdout()).toContain('  onnx/model.onnx\n');
    expect(stderr()).toMatch(/^model\.safetensors: \d+% \(/m);
    expect(stderr()).toMatch(/^onnx\/model\.onnx: 100% \(/m);
    expect(stderr()).not.toContain('\r');
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as { torch_dtype: string };
    expect(config.torch_dtype).toBe('bfloat16');
  });

  it('draws a progress bar on a terminal', async () => {
    const out = await temp();
    const { io, stderr } = captureIo(true);
    expect(await runCli(['make', '--preset', 'tiny', '--out', out, '--formats', 'safetensors'], io)).toBe(0);
    expect(stderr()).toMatch(/\rmodel\.safetensors +\[#{30}\] 100% [\d.]+\/[\d.]+ MB\n$/);
    expect(existsSync(join(out, 'onnx'))).toBe(false);
  });

  it('export-onnx converts a safetensors directory, into --out', async () => {
    const source = await temp();
    const out = await temp();
    await runCli(
      ['make', '--preset', 'tiny-qwen2', '--out', source, '--formats', 'safetensors', '--layers', '1'],
      captureIo().io,
    );
    const { io, stdout } = captureIo();
    expect(await runCli(['export-onnx', source, '--out', out, '--external-data', 'always'], io)).toBe(0);
    expect(stdout()).toMatch(
      /^Exported qwen2 \(float32\) to .* in [\d.]+ s\n {2}onnx\/model\.onnx\n {2}onnx\/model\.onnx_data\n$/,
    );
    expect(existsSync(join(out, 'tokenizer.json'))).toBe(true);
  });

  it('export-onnx --onnx-variants quantizes the checkpoint into the onnx-community file names', async () => {
    const source = await temp();
    await runCli(
      ['make', '--preset', 'tiny', '--out', source, '--formats', 'safetensors', '--layers', '1'],
      captureIo().io,
    );
    const { io, stdout } = captureIo();
    expect(await runCli(['export-onnx', source, '--onnx-variants', 'fp32,int8,q4'], io)).toBe(0);
    expect(stdout()).toMatch(/\n {2}onnx\/model\.onnx\n {2}onnx\/model_quantized\.onnx\n {2}onnx\/model_q4\.onnx\n$/);
    for (const file of ['model.onnx', 'model_quantized.onnx', 'model_q4.onnx']) {
      expect(existsSync(join(source, 'onnx', file))).toBe(true);
    }
  });

  it('--graph-style fused writes the fused graph (GroupQueryAttention, shared KV buffer inputs)', async () => {
    const source = await temp();
    await runCli(
      ['make', '--preset', 'tiny', '--out', source, '--formats', 'safetensors', '--layers', '1'],
      captureIo().io,
    );
    expect(
      await runCli(['export-onnx', source, '--graph-style', 'fused', '--onnx-variants', 'q4'], captureIo().io),
    ).toBe(0);
    const fused = await ort.InferenceSession.create(join(source, 'onnx', 'model_q4.onnx'));
    expect(fused.inputNames).toEqual([
      'input_ids',
      'seqlens_k',
      'total_sequence_length',
      'num_logits_to_keep',
      'past_key_values.0.key',
      'past_key_values.0.value',
    ]);
    const made = await temp();
    const { io } = captureIo();
    expect(await runCli(['make', '--preset', 'tiny', '--out', made, '--graph-style', 'standard'], io)).toBe(0);
    const standard = await ort.InferenceSession.create(join(made, 'onnx', 'model.onnx'));
    expect(standard.inputNames).toContain('attention_mask');
  });

  it('--quant-block-size writes fewer scales per weight, for both graph styles', async () => {
    const source = await temp();
    await runCli(
      ['make', '--preset', 'tiny', '--out', source, '--formats', 'safetensors', '--layers', '1'],
      captureIo().io,
    );
    const sizes: Record<string, number> = {};
    for (const style of ['fused', 'standard'])
      for (const block of ['16', '64']) {
        const out = await temp();
        const argv = ['export-onnx', source, '--out', out, '--graph-style', style, '--onnx-variants', 'q4'];
        expect(await runCli([...argv, '--quant-block-size', block], captureIo().io)).toBe(0);
        sizes[`${style} ${block}`] = (await stat(join(out, 'onnx', 'model_q4.onnx'))).size;
        // onnxruntime loads it: the block size is one its MatMulNBits kernels take.
        await (await ort.InferenceSession.create(join(out, 'onnx', 'model_q4.onnx'))).release();
      }
    // Per 64 weights of a projection row: 4 float32 scales at block 16, one at block 64 (tiny's rows are 64 and
    // 176 weights long, so larger blocks would be mostly padding).
    expect(sizes['fused 64']).toBeLessThan(sizes['fused 16']!);
    expect(sizes['standard 64']).toBeLessThan(sizes['standard 16']!);
  });

  it('answers --help and rejects bad usage with exit code 2 and a pointer to --help', async () => {
    const help = captureIo();
    expect(await runCli(['--help'], help.io)).toBe(0);
    expect(help.stdout()).toBe(helpText);
    const bad: string[][] = [
      [],
      ['frobnicate'],
      ['make', '--out', '/tmp/x'],
      ['make', '--preset', 'huge', '--out', '/tmp/x'],
      ['make', '--preset', 'tiny'],
      ['make', '--preset', 'tiny', '--out', '/tmp/x', '--dtype', 'f8'],
      ['make', '--preset', 'tiny', '--out', '/tmp/x', '--seed', '-1'],
      ['make', '--preset', 'tiny', '--out', '/tmp/x', '--formats', 'gguf'],
      ['make', '--preset', 'tiny', '--out', '/tmp/x', '--layers', '0'],
      ['make', '--preset', 'tiny', '--out', '/tmp/x', '--onnx-variants', 'fp32,q3'],
      ['make', '--preset', 'tiny', '--out', '/tmp/x', '--bogus'],
      ['export-onnx'],
      ['export-onnx', 'a', 'b'],
      ['export-onnx', 'a', '--external-data', 'sometimes'],
      ['export-onnx', 'a', '--graph-style', 'genai'],
      ['make', '--preset', 'tiny', '--out', '/tmp/x', '--graph-style', 'optimum'],
      ['make', '--preset', 'tiny', '--out', '/tmp/x', '--quant-block-size', '48'],
      ['export-onnx', 'a', '--quant-block-size', 'big'],
    ];
    for (const argv of bad) {
      const { io, stderr } = captureIo();
      expect(await runCli(argv, io), argv.join(' ')).toBe(2);
      if (argv.length > 0)
        expect(stderr(), argv.join(' ')).toMatch(/^gen-model: [^]+\nRun gen-model --help for usage\.\n$/);
    }
  });

  it('reports model errors with exit code 1', async () => {
    const { io, stderr } = captureIo();
    expect(await runCli(['export-onnx', join(await temp(), 'nothing-here')], io)).toBe(1);
    expect(stderr()).toMatch(/^gen-model: Cannot read config\.json/);
    const blocked = captureIo();
    const file = join(await temp(), 'a-file');
    await writeFile(file, '');
    expect(await runCli(['make', '--preset', 'tiny', '--out', join(file, 'sub')], blocked.io)).toBe(1);
    expect(blocked.stderr()).toMatch(/^gen-model: ENOTDIR: not a directory/);
  });

  it('runs as a program (the bin entry point)', async () => {
    const cli = fileURLToPath(new URL('./cli.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', cli, '--help']);
    expect(stdout).toBe(helpText);
    const failed = await promisify(execFile)(process.execPath, ['--import', 'tsx', cli, 'nope']).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown command "nope"') as string });
  });
});

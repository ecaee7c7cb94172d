import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { graphMentions, resolveModelFile } from './model-file.js';

const root = await mkdtemp(path.join(tmpdir(), 'gen-backend-onnx-files-'));
afterAll(() => rm(root, { recursive: true, force: true }));

async function directory(name: string, files: Record<string, string>): Promise<string> {
  const dir = path.join(root, name);
  for (const [file, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await writeFile(path.join(dir, file), content);
  }
  return dir;
}

describe('resolveModelFile', () => {
  it('maps dtypes to the onnx-community file names, onnx/ first, then the directory root', async () => {
    const dir = await directory('names', {
      'onnx/model.onnx': 'a',
      'onnx/model.onnx_data': 'bbbb',
      'onnx/model_int8.onnx': 'c',
      'model_q4.onnx': 'd',
    });
    expect(await resolveModelFile(dir, 'fp32', undefined)).toMatchObject({
      relativePath: path.join('onnx', 'model.onnx'),
      dtype: 'fp32',
      bytes: 5, // the graph and its external data
    });
    expect((await resolveModelFile(dir, 'int8', undefined)).relativePath).toBe(path.join('onnx', 'model_int8.onnx'));
    expect((await resolveModelFile(dir, 'q4', undefined)).relativePath).toBe('model_q4.onnx');
    await writeFile(path.join(dir, 'onnx', 'model_quantized.onnx'), 'e');
    expect((await resolveModelFile(dir, 'int8', undefined)).relativePath).toBe(
      path.join('onnx', 'model_quantized.onnx'),
    );
    await expect(resolveModelFile(dir, 'q4f16', undefined)).rejects.toThrow(
      /available: onnx\/model.onnx \(dtype fp32\), onnx\/model_int8.onnx \(dtype int8\), onnx\/model_quantized.onnx \(dtype int8\), model_q4.onnx \(dtype q4\)\)$/,
    );
    expect(await resolveModelFile(dir, 'fp32', 'model_q4.onnx')).toMatchObject({ dtype: undefined, bytes: 1 });
  });
});

describe('graphMentions', () => {
  it('finds an operator name anywhere in the file, also across read chunks', async () => {
    const file = path.join(root, 'big.onnx');
    const chunk = 16 * 1024 * 1024;
    const bytes = Buffer.alloc(chunk + 64, 0x20);
    bytes.write('GroupQueryAttention', chunk - 7, 'utf8');
    await writeFile(file, bytes);
    expect(await graphMentions(file, 'GroupQueryAttention')).toBe(true);
    expect(await graphMentions(file, 'RotaryEmbedding')).toBe(false);
  });
});

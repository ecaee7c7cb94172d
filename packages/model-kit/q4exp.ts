import { join } from 'node:path';
import { readFile, mkdir } from 'node:fs/promises';
import { parseHfConfig } from './src/hf-config.js';
import { openSafetensorsCheckpoint } from './src/safetensors.js';
import { buildFusedDecoderGraph } from './src/onnx/fused-decoder-graph.js';
import { writeOnnxModel } from './src/onnx/write-onnx.js';
import { contribOpsets, decoderOpsetVersion } from './src/onnx/decoder-graph.js';
const dir = '/work/main/.gen-cache/models/bench-0-0.0.0-a9334633b0d4-onnxfp32int8q4';
const spec = parseHfConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')));
const checkpoint = await openSafetensorsCheckpoint(dir);
const weights = { read: (name: string) => checkpoint.readFloat32(name) };
await mkdir('/tmp/q4exp', { recursive: true });
for (const [name, options] of Object.entries({
  'q4-b64': { variant: 'q4', quantBlockSize: 64 },
  'q4-b128': { variant: 'q4', quantBlockSize: 128 },
  'q4-b32-acc1': { variant: 'q4', accuracyLevel: 1 },
  'q4-b128-acc1': { variant: 'q4', quantBlockSize: 128, accuracyLevel: 1 },
} as const)) {
  await writeOnnxModel({ modelPath: `/tmp/q4exp/${name}.onnx`, graph: buildFusedDecoderGraph(spec, weights, options as never), opsetVersion: decoderOpsetVersion, extraOpsets: contribOpsets, producerVersion: 'exp' });
  console.log(name);
}

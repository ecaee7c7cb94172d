import * as ort from 'onnxruntime-node';
const dir = '/tmp/bench-q/onnx/';
const files = process.argv.slice(2);
const i64 = (a: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(a.map(BigInt)), dims);
for (const file of files) {
  const s = await ort.InferenceSession.create(dir + file, { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const kvType = (s.inputMetadata.find((m) => m.name === 'past_key_values.0.key') as { type: string }).type;
  const empty = () => kvType === 'float16' ? new ort.Tensor('float16', new Uint16Array(0), [1, 4, 0, 64]) : new ort.Tensor('float32', new Float32Array(0), [1, 4, 0, 64]);
  const res: string[] = [];
  for (let rep = 0; rep < 4; rep++) {
    const prompt = Array.from({ length: 128 }, (_, i) => (i * 37) % 700);
    const feeds: Record<string, ort.Tensor> = { input_ids: i64(prompt, [1, 128]), attention_mask: i64(prompt.map(() => 1), [1, 128]), position_ids: i64(prompt.map((_, i) => i), [1, 128]) };
    for (let l = 0; l < 12; l++) for (const k of ['key', 'value']) feeds[`past_key_values.${l}.${k}`] = empty();
    let t = performance.now();
    let out = await s.run(feeds);
    const pre = performance.now() - t;
    t = performance.now();
    let len = 128;
    for (let step = 0; step < 64; step++) {
      const f: Record<string, ort.Tensor> = { input_ids: i64([5], [1, 1]), attention_mask: i64(Array(len + 1).fill(1), [1, len + 1]), position_ids: i64([len], [1, 1]) };
      for (let l = 0; l < 12; l++) for (const k of ['key', 'value']) f[`past_key_values.${l}.${k}`] = out[`present.${l}.${k}`] as ort.Tensor;
      out = await s.run(f); len++;
    }
    res.push(`${pre.toFixed(0)}/${((performance.now() - t) / 64).toFixed(2)}`);
  }
  console.log(file, 'prefill ms / decode ms/token:', res.join('  '));
  await s.release();
}

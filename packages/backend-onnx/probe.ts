import { createOnnxBackend } from './src/index.js';
const dir = '/tmp/bench-q';
const prompt = Array.from({ length: 128 }, (_, i) => (i * 37) % 700);
for (const dtype of ['fp32', 'int8', 'q4', 'fp16'] as const) {
  let t = performance.now();
  const backend = await createOnnxBackend({ modelDir: dir, intraOpThreads: 2, dtype });
  const load = performance.now() - t;
  const res: string[] = [];
  let gen: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    t = performance.now();
    let r = await backend.doForward({ sequences: [{ id: 'a', tokens: prompt }] });
    const prefill = performance.now() - t;
    t = performance.now();
    gen = [];
    for (let s = 0; s < 64; s++) {
      const l = r.sequences[0]!.logits; let best = 0; for (let v = 1; v < l.length; v++) if (l[v]! > l[best]!) best = v;
      gen.push(best);
      r = await backend.doForward({ sequences: [{ id: 'a', tokens: [best] }] });
    }
    res.push(`prefill ${prefill.toFixed(0)}ms decode ${((performance.now() - t) / 64).toFixed(2)}ms/tok`);
    await backend.doRelease(['a']);
  }
  console.log(dtype, 'load', load.toFixed(0), res.join(' | '), gen.slice(0, 12).join(','));
  await backend.doDispose();
}

/**
 * Memory read bandwidth of this machine, measured in the same process as the benchmark: a WebAssembly SIMD loop
 * (four independent 16-byte loads per iteration, summed as integers) over a 256 MiB buffer per thread, far
 * larger than any cache. Run in 1 and in N worker threads at once; the best of several passes is reported.
 */
import { Worker } from 'node:worker_threads';

/** `sum(p, end)`: adds the i32x4 lanes of every 16 bytes in [p, end) (end - p a multiple of 64). */
function wasmModule(): Uint8Array {
  const load = (local: number, offset: number) => [
    ...[0x20, local, 0x20, 0x00], // local.get acc, local.get p
    ...[0xfd, 0x00, 0x04, offset], // v128.load align=16 offset
    ...[0xfd, 0xae, 0x01, 0x21, local], // i32x4.add, local.set acc
  ];
  const body = [
    ...[0x01, 0x04, 0x7b], // four v128 locals (2..5)
    ...[0x03, 0x40], // loop
    ...load(2, 0),
    ...load(3, 16),
    ...load(4, 32),
    ...load(5, 48),
    ...[0x20, 0x00, 0x41, 0xc0, 0x00, 0x6a, 0x22, 0x00], // p += 64 (local.tee)
    ...[0x20, 0x01, 0x49, 0x0d, 0x00], // br_if p < end
    0x0b, // end loop
    ...[0x20, 0x02, 0x20, 0x03, 0xfd, 0xae, 0x01, 0x20, 0x04, 0xfd, 0xae, 0x01, 0x20, 0x05, 0xfd, 0xae, 0x01],
    ...[0xfd, 0x1b, 0x00], // i32x4.extract_lane 0
    0x0b, // end function
  ];
  const section = (id: number, content: number[]) => [id, content.length, ...content];
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // magic, version
    ...section(1, [0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f]), // type: (i32, i32) -> i32
    ...section(2, [0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x00, 0x01]), // import "e" "m": memory, min 1 page
    ...section(3, [0x01, 0x00]), // function 0 has type 0
    ...section(7, [0x01, 0x03, 0x73, 0x75, 0x6d, 0x00, 0x00]), // export "sum"
    ...section(10, [0x01, body.length, ...body]), // code
  ]);
}

const bufferBytes = 256 * 1024 * 1024;

const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const memory = new WebAssembly.Memory({ initial: workerData.bytes / 65536 });
new Uint8Array(memory.buffer).fill(1);
const { sum } = new WebAssembly.Instance(new WebAssembly.Module(workerData.wasm), { e: { m: memory } }).exports;
parentPort.on('message', (passes) => {
  let check = 0;
  const start = performance.now();
  for (let i = 0; i < passes; i++) check += sum(0, workerData.bytes);
  parentPort.postMessage({ ms: performance.now() - start, check });
});
parentPort.postMessage('ready');
`;

interface BandwidthWorker {
  run(passes: number): Promise<number>;
  close(): Promise<number>;
}

async function startWorker(): Promise<BandwidthWorker> {
  const worker = new Worker(workerSource, { eval: true, workerData: { wasm: wasmModule(), bytes: bufferBytes } });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  return {
    run: (passes) =>
      new Promise((resolve) => {
        worker.once('message', (m: { ms: number }) => resolve(m.ms));
        worker.postMessage(passes);
      }),
    close: () => worker.terminate(),
  };
}

/** Read bandwidth in bytes per second with `threads` threads reading at once (best of `rounds`). */
export async function measureReadBandwidth(threads: number, rounds = 5, passes = 4): Promise<number> {
  const workers = await Promise.all(Array.from({ length: threads }, () => startWorker()));
  try {
    let best = 0;
    for (let round = 0; round < rounds; round++) {
      const start = performance.now();
      await Promise.all(workers.map((w) => w.run(passes)));
      const seconds = (performance.now() - start) / 1000;
      best = Math.max(best, (threads * passes * bufferBytes) / seconds);
    }
    return best;
  } finally {
    await Promise.all(workers.map((w) => w.close()));
  }
}

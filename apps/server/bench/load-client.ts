/**
 * The HTTP load client of the server benchmark, run as its own process (so its parsing does not share the
 * server's event loop): `concurrency` clients, each sending `POST /generate_stream` again as soon as its previous
 * stream ends, over keep-alive connections (node:http). Prints a {@link LoadResult} as JSON on stdout.
 *
 *   node --conditions=@gen/source --import tsx bench/load-client.ts '<json settings>'
 *
 * Bounded: requests stop at the end of the window, and the process exits at the latest `durationMs + warmupMs + 30 s`.
 */
import { Agent, request as httpRequest } from 'node:http';
import { Recorder } from './stats.js';

/** Settings passed as the first argument (JSON). */
export interface LoadClientSettings {
  url: string;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** One body per client (index modulo length). */
  bodies: unknown[];
}

const settings = JSON.parse(process.argv[2] ?? '{}') as LoadClientSettings;
const agent = new Agent({ keepAlive: true, maxSockets: settings.concurrency });
const t0 = performance.now();
const start = t0 + settings.warmupMs;
const end = start + settings.durationMs;
const recorder = new Recorder(start, end);
const live = new Set<() => void>();
let stopping = false;

const hardStop = setTimeout(
  () => {
    process.stderr.write('load client: hard timeout\n');
    process.exit(3);
  },
  settings.warmupMs + settings.durationMs + 30_000,
);

/** One streaming request; resolves when it ends (any way). */
function stream(body: string): Promise<void> {
  return new Promise((resolve) => {
    const sentAt = performance.now();
    const tracked = recorder.request(sentAt);
    let finished = false;
    const finish = (failure?: string) => {
      if (finished) return;
      finished = true;
      live.delete(abort);
      const at = performance.now();
      if (failure === undefined) tracked.done(at);
      else if (!stopping) tracked.failed(at, failure);
      resolve();
    };
    const req = httpRequest(settings.url + '/generate_stream', {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    const abort = () => {
      req.destroy();
      finish('aborted');
    };
    live.add(abort);
    req.on('error', (error) => finish(`request error: ${error.message}`));
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => finish(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
        return;
      }
      let buffer = '';
      let complete = false;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let boundary: number;
        while ((boundary = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, boundary);
          buffer = buffer.slice(boundary + 2);
          if (!block.startsWith('data:')) continue; // keep-alive comments
          const at = performance.now();
          const event = JSON.parse(block.slice(5)) as {
            error?: string;
            token?: unknown;
            generated_text?: string | null;
          };
          if (event.error !== undefined) {
            finish(`error event: ${event.error}`);
            return;
          }
          tracked.token(at);
          if (event.generated_text !== null && event.generated_text !== undefined) complete = true;
        }
      });
      res.on('end', () => finish(complete ? undefined : 'stream ended without its final event'));
      res.on('error', (error) => finish(`response error: ${error.message}`));
    });
    req.end(body);
  });
}

async function client(index: number): Promise<void> {
  const body = JSON.stringify(settings.bodies[index % settings.bodies.length]);
  while (!stopping && performance.now() < end) await stream(body);
}

// Tell the parent (which measures the server's CPU time) when the window opens and closes.
setTimeout(() => process.send?.('window-start'), Math.max(0, start - performance.now()));
const clients = Array.from({ length: settings.concurrency }, (_, i) => client(i));
await new Promise((resolve) => setTimeout(resolve, Math.max(0, end - performance.now())));
process.send?.('window-end');
stopping = true;
for (const abort of [...live]) abort();
await Promise.all(clients);
agent.destroy();
clearTimeout(hardStop);
process.stdout.write(JSON.stringify(recorder.result));
process.disconnect?.();

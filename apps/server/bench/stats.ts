/** Latency and throughput bookkeeping shared by the in-process run and the HTTP load client. */

/** What one load run measured, inside its measurement window. */
export interface LoadResult {
  /** Seconds in the window. */
  seconds: number;
  /** Tokens received inside the window. */
  tokens: number;
  /** Requests that finished inside the window. */
  completed: number;
  /** Requests that failed (non-200, error event, stream cut short); requests cut by the end of the window are not errors. */
  errors: number;
  /** First error messages, for the report. */
  errorSamples: string[];
  /** Time to first token, ms, of requests sent inside the window. */
  ttftMs: number[];
  /** Gaps between consecutive tokens of a request, ms, inside the window. */
  itlMs: number[];
  /** CPU time (user + system) of the process running the engine, ms, inside the window. */
  cpuMs?: number;
}

/** Measures this process's CPU time between `begin()` and `finish()`, in ms. */
export function cpuMeter(): { begin(): void; finish(): void; readonly ms: number } {
  let started: NodeJS.CpuUsage | undefined;
  let ms = Number.NaN;
  return {
    begin() {
      started = process.cpuUsage();
    },
    finish() {
      if (started === undefined) return;
      const used = process.cpuUsage(started);
      ms = (used.user + used.system) / 1000;
    },
    get ms() {
      return ms;
    },
  };
}

/** The q-quantile (0..1) of `values` (nearest rank). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/**
 * Per-request recorder: call `sent()` when the request leaves, `token()` for each token as it arrives. Only what
 * happens inside [start, end] counts.
 */
export class Recorder {
  readonly result: LoadResult;
  constructor(
    private readonly start: number,
    private readonly end: number,
  ) {
    this.result = {
      seconds: (end - start) / 1000,
      tokens: 0,
      completed: 0,
      errors: 0,
      errorSamples: [],
      ttftMs: [],
      itlMs: [],
    };
  }

  /** Whether `time` is inside the window. */
  inside(time: number): boolean {
    return time >= this.start && time <= this.end;
  }

  /** Starts tracking one request sent at `sentAt`. */
  request(sentAt: number): {
    token(at: number): void;
    done(at: number): void;
    failed(at: number, message: string): void;
  } {
    let last: number | undefined;
    return {
      token: (at) => {
        if (this.inside(at)) {
          this.result.tokens++;
          if (last === undefined) {
            if (this.inside(sentAt)) this.result.ttftMs.push(at - sentAt);
          } else {
            this.result.itlMs.push(at - last);
          }
        }
        last = at;
      },
      done: (at) => {
        if (this.inside(at)) this.result.completed++;
      },
      failed: (at, message) => {
        if (!this.inside(at)) return;
        this.result.errors++;
        if (this.result.errorSamples.length < 5) this.result.errorSamples.push(message);
      },
    };
  }
}

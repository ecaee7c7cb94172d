import type { Engine, GenerationResult, StepStats } from '@gen/engine';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const TOKEN_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/**
 * Prometheus metrics under the names TGI's dashboards use (`tgi_request_count`, `tgi_queue_size`, ...), one
 * registry per server so several servers in a process (tests) do not mix.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  private readonly requestCount = new Counter({
    name: 'tgi_request_count',
    help: 'Generation requests received',
    registers: [this.registry],
  });
  private readonly requestSuccess = new Counter({
    name: 'tgi_request_success',
    help: 'Generation requests that succeeded',
    registers: [this.registry],
  });
  private readonly requestFailure = new Counter({
    name: 'tgi_request_failure',
    help: 'Generation requests that failed, by error type',
    labelNames: ['err'],
    registers: [this.registry],
  });
  private readonly requestDuration = new Histogram({
    name: 'tgi_request_duration',
    help: 'Request duration in seconds',
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly queueDuration = new Histogram({
    name: 'tgi_request_queue_duration',
    help: 'Time in queue in seconds',
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly inferenceDuration = new Histogram({
    name: 'tgi_request_inference_duration',
    help: 'Inference time in seconds',
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly timePerToken = new Histogram({
    name: 'tgi_request_mean_time_per_token_duration',
    help: 'Mean time per generated token in seconds',
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly inputLength = new Histogram({
    name: 'tgi_request_input_length',
    help: 'Prompt length in tokens',
    buckets: TOKEN_BUCKETS,
    registers: [this.registry],
  });
  private readonly generatedTokens = new Histogram({
    name: 'tgi_request_generated_tokens',
    help: 'Generated tokens per request',
    buckets: TOKEN_BUCKETS,
    registers: [this.registry],
  });
  private readonly forwardDuration = new Histogram({
    name: 'tgi_batch_forward_duration',
    help: 'Backend forward pass duration in seconds, by method (prefill or decode)',
    labelNames: ['method'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly batchTokens = new Histogram({
    name: 'tgi_batch_tokens',
    help: 'Tokens per engine step',
    buckets: TOKEN_BUCKETS,
    registers: [this.registry],
  });

  private readonly embeddingRequestCount = new Counter({
    name: 'gen_embedding_request_count',
    help: 'Embedding requests received (/v1/embeddings)',
    registers: [this.registry],
  });
  private readonly embeddingRequestSuccess = new Counter({
    name: 'gen_embedding_request_success',
    help: 'Embedding requests that succeeded',
    registers: [this.registry],
  });
  private readonly embeddingRequestFailure = new Counter({
    name: 'gen_embedding_request_failure',
    help: 'Embedding requests that failed, by error type',
    labelNames: ['err'],
    registers: [this.registry],
  });
  private readonly embeddingRequestDuration = new Histogram({
    name: 'gen_embedding_request_duration',
    help: 'Embedding request duration in seconds (tokenization and forward passes)',
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly embeddingInputTokens = new Histogram({
    name: 'gen_embedding_input_tokens',
    help: 'Tokens embedded per request (all inputs together)',
    buckets: TOKEN_BUCKETS,
    registers: [this.registry],
  });

  /** Gauges read the engine when scraped. */
  attach(engine: () => Engine | undefined): void {
    new Gauge({
      name: 'tgi_queue_size',
      help: 'Requests waiting for admission',
      registers: [this.registry],
      collect() {
        this.set(engine()?.stats().queueSize ?? 0);
      },
    });
    new Gauge({
      name: 'tgi_batch_current_size',
      help: 'Sequences in the running batch',
      registers: [this.registry],
      collect() {
        this.set(engine()?.stats().batchSize ?? 0);
      },
    });
    new Gauge({
      name: 'gen_running_requests',
      help: 'Requests admitted and not finished',
      registers: [this.registry],
      collect() {
        this.set(engine()?.stats().runningRequests ?? 0);
      },
    });
    const cache = (key: 'entries' | 'tokens' | 'bytes' | 'lookups' | 'hits' | 'hitTokens' | 'evictions') =>
      engine()?.stats().prefixCache?.[key] ?? 0;
    const cacheGauges: [string, string, Parameters<typeof cache>[0]][] = [
      ['gen_prefix_cache_entries', 'Prompts held by the prefix cache', 'entries'],
      ['gen_prefix_cache_bytes', 'Estimated KV bytes held by the prefix cache', 'bytes'],
      ['gen_prefix_cache_lookups', 'Prompts looked up in the prefix cache (since start)', 'lookups'],
      ['gen_prefix_cache_hits', 'Lookups that reused a cached prefix (since start)', 'hits'],
      ['gen_prefix_cache_hit_tokens', 'Prompt tokens reused instead of prefilled (since start)', 'hitTokens'],
      ['gen_prefix_cache_evictions', 'Prefix cache entries evicted for the budget (since start)', 'evictions'],
    ];
    for (const [name, help, key] of cacheGauges) {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(cache(key));
        },
      });
    }
  }

  /** A generation request arrived (counted before validation, as TGI does). */
  received(): void {
    this.requestCount.inc();
  }

  /** A request failed with this error type (validation, overloaded, generation...). */
  failed(errorType: string): void {
    this.requestFailure.inc({ err: errorType });
  }

  /** A request finished successfully. */
  succeeded(result: GenerationResult): void {
    this.requestSuccess.inc();
    const generated = result.choices.reduce((sum, choice) => sum + choice.generatedTokens, 0);
    this.requestDuration.observe(result.timings.totalMs / 1000);
    this.queueDuration.observe(result.timings.queueMs / 1000);
    this.inferenceDuration.observe(result.timings.inferenceMs / 1000);
    if (generated > 0) this.timePerToken.observe(result.timings.inferenceMs / 1000 / generated);
    this.inputLength.observe(result.inputTokens);
    this.generatedTokens.observe(generated);
  }

  /** An embedding request arrived (counted before validation). Kept apart from the generation metrics. */
  embeddingReceived(): void {
    this.embeddingRequestCount.inc();
  }

  /** An embedding request failed with this error type (validation, cancelled, internal...). */
  embeddingFailed(errorType: string): void {
    this.embeddingRequestFailure.inc({ err: errorType });
  }

  /** An embedding request succeeded: `tokens` embedded in all, in `durationMs`. */
  embeddingSucceeded(tokens: number, durationMs: number): void {
    this.embeddingRequestSuccess.inc();
    this.embeddingRequestDuration.observe(durationMs / 1000);
    this.embeddingInputTokens.observe(tokens);
  }

  /** One engine step. */
  step(stats: StepStats): void {
    this.forwardDuration.observe({ method: stats.prefillTokens > 0 ? 'prefill' : 'decode' }, stats.forwardMs / 1000);
    this.batchTokens.observe(stats.tokens);
  }
}

#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createEngine, type GenerationParameters } from '@gen/engine';
import {
  backendEntry,
  backendNameList,
  backendNames,
  describeAuto,
  parseBackendName,
  UnknownBackendError,
  type BackendChoice,
} from './backends.js';
import { loadModel } from './model-loader.js';
import { REASONING_PARSERS, type ReasoningParserName } from './reasoning.js';
import { createServer } from './server.js';
import { TOOL_CALL_FORMATS, type ToolCallFormatName } from './tools/formats.js';
import { SERVER_VERSION } from './version.js';

interface FlagSpec {
  type: 'string' | 'boolean';
  env?: string;
  /** A function when the text is derived from state that may change after this module loads (the backends). */
  help: string | (() => string);
  short?: string;
  multiple?: boolean;
}

const MODEL_FLAGS: Record<string, FlagSpec> = {
  model: {
    type: 'string',
    env: 'GEN_MODEL',
    help: 'Hugging Face model directory or GGUF file to serve. Default: the embedded demo model (generated on first start).',
  },
  'model-id': {
    type: 'string',
    env: 'GEN_MODEL_ID',
    help: 'Name of the model in /info, /v1/models and responses. Default: the directory or file name.',
  },
  backend: {
    type: 'string',
    env: 'GEN_BACKEND',
    help: () => `Forward pass: ${backendNameList()}; auto picks ${describeAuto()}. Default auto.`,
  },
  dtype: { type: 'string', env: 'GEN_DTYPE', help: 'ONNX file variant: fp32, fp16, int8, q4 or q4f16 (onnx backend).' },
  threads: {
    type: 'string',
    env: 'GEN_THREADS',
    help: "Intra-op threads of the backend (onnx). Default: the runtime's choice.",
  },
  'max-batch-size': {
    type: 'string',
    env: 'GEN_MAX_BATCH_SIZE',
    help: "Most sequences in one forward pass. Default: the backend's limit.",
  },
};

const SERVE_FLAGS: Record<string, FlagSpec> = {
  ...MODEL_FLAGS,
  'tool-call-format': {
    type: 'string',
    env: 'GEN_TOOL_CALL_FORMAT',
    help: `How the model writes tool calls: ${TOOL_CALL_FORMATS.join(', ')}. Default: detected from the chat template (hermes when it shows none).`,
  },
  'reasoning-parser': {
    type: 'string',
    env: 'GEN_REASONING_PARSER',
    help: `${REASONING_PARSERS.join(' or ')}: auto moves <think> blocks to reasoning_content on /v1/chat/completions when the chat template writes them (Qwen3); none leaves them in content. Default auto.`,
  },
  hostname: {
    type: 'string',
    env: 'GEN_HOSTNAME',
    help: 'Address to listen on. Default 127.0.0.1 (use 0.0.0.0 to listen on every interface).',
  },
  port: { type: 'string', short: 'p', env: 'GEN_PORT', help: 'Port to listen on. Default 8080.' },
  'max-batch-tokens': {
    type: 'string',
    env: 'GEN_MAX_BATCH_TOKENS',
    help: 'Token budget of one engine step; long prompts are prefilled in chunks within it. Default 512.',
  },
  'prefix-cache-bytes': {
    type: 'string',
    env: 'GEN_PREFIX_CACHE_BYTES',
    help: 'KV bytes of prompts kept for reuse across requests (prefix cache; backends with forkPrefix: js, llamacpp). 0 turns it off. Default: a tenth of the memory, at most 2 GiB.',
  },
  'max-input-tokens': {
    type: 'string',
    env: 'GEN_MAX_INPUT_TOKENS',
    help: 'Largest prompt in tokens (TGI max_input_tokens). Default: max total tokens - 1.',
  },
  'max-total-tokens': {
    type: 'string',
    env: 'GEN_MAX_TOTAL_TOKENS',
    help: "Largest prompt + max_new_tokens (TGI max_total_tokens). Default: the model's max positions.",
  },
  'max-concurrent-requests': {
    type: 'string',
    env: 'GEN_MAX_CONCURRENT_REQUESTS',
    help: 'Requests in flight before new ones get 429 overloaded. Default 128.',
  },
  'max-best-of': { type: 'string', env: 'GEN_MAX_BEST_OF', help: 'Largest best_of. Default 2.' },
  'max-n': { type: 'string', env: 'GEN_MAX_N', help: 'Largest n (choices returned). Default 16.' },
  'max-stop-sequences': {
    type: 'string',
    env: 'GEN_MAX_STOP_SEQUENCES',
    help: 'Most stop sequences per request. Default 4.',
  },
  'max-top-n-tokens': {
    type: 'string',
    env: 'GEN_MAX_TOP_N_TOKENS',
    help: 'Largest top_n_tokens on the TGI routes. Default 5.',
  },
  'max-client-batch-size': {
    type: 'string',
    env: 'GEN_MAX_CLIENT_BATCH_SIZE',
    help: 'Most prompts in one /v1/completions request. Default 4.',
  },
  'default-max-new-tokens': {
    type: 'string',
    env: 'GEN_DEFAULT_MAX_NEW_TOKENS',
    help: 'max_new_tokens when a request sets none. Default: fill up to max total tokens (TGI).',
  },
  'request-timeout': {
    type: 'string',
    env: 'GEN_REQUEST_TIMEOUT',
    help: 'Cancel generations running longer than this many seconds (504). Default: none.',
  },
  'payload-limit': {
    type: 'string',
    env: 'GEN_PAYLOAD_LIMIT',
    help: 'Largest request body in bytes (413 above). Default 2000000.',
  },
  'api-key': {
    type: 'string',
    env: 'GEN_API_KEY',
    help: 'Require "Authorization: Bearer <key>" (except /health and /metrics). Default: off.',
  },
  'cors-allow-origin': {
    type: 'string',
    env: 'GEN_CORS_ALLOW_ORIGIN',
    help: 'Comma-separated allowed CORS origins, or * for any. Default: CORS off.',
  },
  'shutdown-timeout': {
    type: 'string',
    env: 'GEN_SHUTDOWN_TIMEOUT',
    help: 'On SIGTERM, seconds to let running requests finish before cancelling them. Default 30.',
  },
  'log-level': {
    type: 'string',
    env: 'GEN_LOG_LEVEL',
    help: 'fatal, error, warn, info, debug, trace or silent. Default info.',
  },
  help: { type: 'boolean', short: 'h', help: 'Show this help.' },
};

const GENERATE_FLAGS: Record<string, FlagSpec> = {
  ...MODEL_FLAGS,
  stream: { type: 'boolean', help: 'Print tokens as they are generated.' },
  chat: { type: 'boolean', help: "Treat the prompt as a user message and apply the model's chat template." },
  'max-new-tokens': { type: 'string', help: 'Most tokens to generate. Default 64.' },
  temperature: { type: 'string', help: 'Sampling temperature (> 0; leave out for greedy).' },
  'top-k': { type: 'string', help: 'Keep the k most likely tokens.' },
  'top-p': { type: 'string', help: 'Nucleus sampling mass in (0, 1].' },
  'min-p': { type: 'string', help: 'Remove tokens below min_p x the top probability.' },
  'typical-p': { type: 'string', help: 'Locally typical sampling mass in (0, 1].' },
  'repetition-penalty': { type: 'string', help: 'CTRL repetition penalty (> 0; 1 = off).' },
  seed: { type: 'string', help: 'Seed for sampling.' },
  stop: { type: 'string', multiple: true, help: 'A stop sequence (repeatable).' },
  'do-sample': { type: 'boolean', help: 'Sample even without other sampling flags.' },
  help: { type: 'boolean', short: 'h', help: 'Show this help.' },
};

/** The `Backends:` section of the help: every backend name with its description and package. */
function backendsHelp(): string {
  const names = backendNames();
  const width = Math.max(...names.map((name) => name.length));
  const lines = ['Backends (--backend):'];
  for (const name of names) {
    const entry = backendEntry(name);
    const text =
      entry === undefined ? `${describeAuto()} (the default)` : `${entry.description} [${entry.packageName}]`;
    lines.push(`  ${name.padEnd(width)}  ${text}`);
  }
  return lines.join('\n');
}

function usage(command: string, flags: Record<string, FlagSpec>, summary: string): string {
  const lines = [`Usage: gen ${command}`, '', summary, '', 'Options:'];
  const flag = (name: string, spec: FlagSpec) =>
    `${spec.short === undefined ? '    ' : `-${spec.short}, `}--${name}${spec.type === 'string' ? ' <value>' : ''}`;
  const width = Math.max(...Object.entries(flags).map(([name, spec]) => flag(name, spec).length));
  for (const [name, spec] of Object.entries(flags)) {
    const help = typeof spec.help === 'string' ? spec.help : spec.help();
    lines.push(`  ${flag(name, spec).padEnd(width)}  ${help}${spec.env === undefined ? '' : ` [env ${spec.env}]`}`);
  }
  if (flags['backend'] !== undefined) lines.push('', backendsHelp());
  return lines.join('\n');
}

/** `gen --help`, also printed after usage errors. */
const rootHelp = () => `gen ${SERVER_VERSION}: serve LLM text generation with the APIs of TGI, OpenAI and Together.

Usage:
  gen serve [options]             Start the HTTP server (gen serve --help for every option)
  gen generate "prompt" [options] Generate once, in-process (gen generate --help)
  gen --version

Without --model, the server serves an embedded demo model (random weights, generated on first start).

${backendsHelp()}`;

class UsageError extends Error {}

function parse(flags: Record<string, FlagSpec>, args: string[]) {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, spec] of Object.entries(flags)) {
    options[name] = {
      type: spec.type,
      ...(spec.short === undefined ? {} : { short: spec.short }),
      ...(spec.multiple ? { multiple: true } : {}),
    };
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  for (const [name, spec] of Object.entries(flags)) {
    if (
      values[name] === undefined &&
      spec.env !== undefined &&
      process.env[spec.env] !== undefined &&
      process.env[spec.env] !== ''
    ) {
      values[name] = spec.type === 'boolean' ? process.env[spec.env] === 'true' : process.env[spec.env];
    }
  }
  if (values['port'] === undefined && process.env['PORT'] !== undefined && flags['port'] !== undefined)
    values['port'] = process.env['PORT'];
  return { values, positionals: parsed.positionals };
}

function integerFlag(values: Record<string, unknown>, name: string, min = 1): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min)
    throw new UsageError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return value;
}

function numberFlag(values: Record<string, unknown>, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new UsageError(`--${name} must be a number, got ${JSON.stringify(raw)}`);
  return value;
}

function backendFlag(values: Record<string, unknown>): BackendChoice | undefined {
  const raw = values['backend'];
  if (raw === undefined) return undefined;
  try {
    return parseBackendName(raw);
  } catch (error) {
    if (error instanceof UnknownBackendError) throw new UsageError(error.message);
    throw error;
  }
}

function modelOptions(values: Record<string, unknown>) {
  const backend = backendFlag(values);
  const maxBatchSize = integerFlag(values, 'max-batch-size');
  const threads = integerFlag(values, 'threads');
  return {
    ...(typeof values['model'] === 'string' ? { modelDir: values['model'] } : {}),
    ...(typeof values['model-id'] === 'string' ? { modelId: values['model-id'] } : {}),
    ...(backend === undefined ? {} : { backend }),
    ...(maxBatchSize === undefined ? {} : { maxBatchSize }),
    ...(threads === undefined ? {} : { threads }),
    ...(typeof values['dtype'] === 'string' ? { dtype: values['dtype'] } : {}),
  };
}

async function serve(args: string[]): Promise<void> {
  const { values } = parse(SERVE_FLAGS, args);
  if (values['help'] === true) {
    console.log(
      usage(
        'serve [options]',
        SERVE_FLAGS,
        'Start the HTTP server: TGI routes, OpenAI /v1 routes, Together /inference, /metrics, /docs.',
      ),
    );
    return;
  }
  const port = integerFlag(values, 'port', 0) ?? 8080;
  const hostname = typeof values['hostname'] === 'string' ? values['hostname'] : '127.0.0.1';
  const timeout = numberFlag(values, 'request-timeout');
  const shutdownTimeout = numberFlag(values, 'shutdown-timeout') ?? 30;
  const limit = (name: string) => integerFlag(values, name);
  const limits = Object.fromEntries(
    Object.entries({
      maxInputTokens: limit('max-input-tokens'),
      maxTotalTokens: limit('max-total-tokens'),
      maxConcurrentRequests: limit('max-concurrent-requests'),
      maxBestOf: limit('max-best-of'),
      maxN: limit('max-n'),
      maxStopSequences: integerFlag(values, 'max-stop-sequences', 0),
      maxTopNTokensTgi: integerFlag(values, 'max-top-n-tokens', 0),
      maxClientBatchSize: limit('max-client-batch-size'),
      defaultMaxNewTokens: limit('default-max-new-tokens'),
    }).filter(([, value]) => value !== undefined),
  );
  const maxBatchTokens = limit('max-batch-tokens');
  const maxBatchSize = limit('max-batch-size');
  const logLevel = typeof values['log-level'] === 'string' ? values['log-level'] : 'info';
  const options = modelOptions(values);
  const toolCallFormat = values['tool-call-format'];
  if (toolCallFormat !== undefined && !TOOL_CALL_FORMATS.includes(toolCallFormat as ToolCallFormatName)) {
    throw new UsageError(
      `--tool-call-format must be one of ${TOOL_CALL_FORMATS.join(', ')}, got ${JSON.stringify(toolCallFormat)}`,
    );
  }
  const reasoningParser = values['reasoning-parser'];
  if (reasoningParser !== undefined && !REASONING_PARSERS.includes(reasoningParser as ReasoningParserName)) {
    throw new UsageError(
      `--reasoning-parser must be one of ${REASONING_PARSERS.join(', ')}, got ${JSON.stringify(reasoningParser)}`,
    );
  }
  const cors =
    typeof values['cors-allow-origin'] === 'string'
      ? values['cors-allow-origin']
          .split(',')
          .map((o) => o.trim())
          .filter(Boolean)
      : undefined;

  const server = createServer({
    model: async () => {
      const model = await loadModel(options);
      if (toolCallFormat !== undefined) model.toolCallFormat = toolCallFormat as ToolCallFormatName;
      if (reasoningParser !== undefined) model.reasoningParser = reasoningParser as ReasoningParserName;
      if (model.embedded) {
        process.stderr.write(
          `\nNo --model given: serving the embedded demo model "${model.modelId}" (random weights from @gen/model-kit, in ${model.modelDir}).\n` +
            'Its text is gibberish by design. Serve a real model with: gen serve --model /path/to/a/hugging-face/model\n\n',
        );
      }
      return model;
    },
    limits,
    scheduler: {
      ...(maxBatchTokens === undefined ? {} : { maxBatchTokens }),
      ...(maxBatchSize === undefined ? {} : { maxBatchSize }),
    },
    ...(typeof values['api-key'] === 'string' ? { apiKey: values['api-key'] } : {}),
    ...(cors === undefined ? {} : { corsOrigins: cors }),
    ...(timeout === undefined ? {} : { requestTimeoutMs: timeout * 1000 }),
    bodyLimit: integerFlag(values, 'payload-limit') ?? 2_000_000,
    ...(integerFlag(values, 'prefix-cache-bytes', 0) === undefined
      ? {}
      : { prefixCacheBytes: integerFlag(values, 'prefix-cache-bytes', 0)! }),
    logger: { level: logLevel },
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.app.log.info(`${signal}: refusing new requests, draining running ones (up to ${shutdownTimeout} s)`);
    server
      .close({ timeoutMs: shutdownTimeout * 1000 })
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        server.app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  const address = await server.app.listen({ port, host: hostname });
  server.app.log.info(`gen ${SERVER_VERSION} listening on ${address} (model loading; /health answers 503 until ready)`);
  try {
    await server.ready;
  } catch (error) {
    server.app.log.error({ err: error }, 'model failed to load');
    await server.close({ timeoutMs: 0 });
    process.exit(1);
  }
  const engine = server.engine()!;
  server.app.log.info(
    `ready: ${engine.limits.maxInputTokens} max input tokens, ${engine.limits.maxTotalTokens} max total tokens. ` +
      `Try: curl ${address}/generate -H 'content-type: application/json' -d '{"inputs":"Hello","parameters":{"max_new_tokens":20}}'`,
  );
}

async function generate(args: string[]): Promise<void> {
  const { values, positionals } = parse(GENERATE_FLAGS, args);
  if (values['help'] === true) {
    console.log(usage('generate "prompt" [options]', GENERATE_FLAGS, 'Generate once, in-process, and print the text.'));
    return;
  }
  const prompt = positionals.join(' ');
  if (prompt.length === 0) throw new UsageError('gen generate needs a prompt: gen generate "Once upon a time"');
  const model = await loadModel({ ...modelOptions(values), log: () => undefined });
  const engine = createEngine({ backend: model.backend, tokenizer: model.tokenizer });
  const parameters: GenerationParameters = { maxNewTokens: integerFlag(values, 'max-new-tokens') ?? 64 };
  const numeric: [string, keyof GenerationParameters][] = [
    ['temperature', 'temperature'],
    ['top-k', 'topK'],
    ['top-p', 'topP'],
    ['min-p', 'minP'],
    ['typical-p', 'typicalP'],
    ['repetition-penalty', 'repetitionPenalty'],
    ['seed', 'seed'],
  ];
  for (const [flag, field] of numeric) {
    const value = numberFlag(values, flag);
    if (value !== undefined) (parameters as Record<string, unknown>)[field] = value;
  }
  if (values['do-sample'] === true) parameters.doSample = true;
  if (Array.isArray(values['stop'])) parameters.stop = values['stop'];
  let inputs = prompt;
  if (values['chat'] === true) {
    inputs = model.tokenizer.applyChatTemplate([{ role: 'user', content: prompt }], { addGenerationPrompt: true });
    parameters.addSpecialTokens = false;
  }
  const stream = engine.generate({ inputs, parameters });
  if (values['stream'] === true) {
    for await (const event of stream) {
      if (event.type === 'token') process.stdout.write(event.delta);
      if (event.type === 'error') throw event.error;
      if (event.type === 'done')
        process.stdout.write(
          `\n[${event.result.choices[0]!.finishReason}, ${event.result.choices[0]!.generatedTokens} tokens]\n`,
        );
    }
  } else {
    const result = await stream.result();
    process.stdout.write(`${result.choices[0]!.text}\n`);
  }
  await model.backend.doDispose();
}

/** Runs the CLI with `argv` (without node and script); resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === 'serve') await serve(rest);
    else if (command === 'generate') await generate(rest);
    else if (command === '--version' || command === '-v') console.log(SERVER_VERSION);
    else if (command === undefined || command === '--help' || command === '-h' || command === 'help')
      console.log(rootHelp());
    else throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`gen: ${error.message}\n\n${rootHelp()}\n`);
      return 2;
    }
    process.stderr.write(`gen: ${(error as Error).message}\n`);
    return 1;
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
if (invokedDirectly) {
  const code = await main(process.argv.slice(2));
  if (code !== 0) process.exit(code);
}

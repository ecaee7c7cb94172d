import type {
  BestOfSequence,
  DeployedModel,
  Details,
  FinishReason,
  Info,
  InputToken,
  Parameters,
  Response,
  SimpleToken,
  StreamDetails,
  StreamResponse,
  Token,
} from './types.js';

/** camelCase parameter -> TGI's snake_case wire name. */
const WIRE_NAMES = {
  doSample: 'do_sample',
  maxNewTokens: 'max_new_tokens',
  repetitionPenalty: 'repetition_penalty',
  frequencyPenalty: 'frequency_penalty',
  returnFullText: 'return_full_text',
  stop: 'stop',
  seed: 'seed',
  temperature: 'temperature',
  topK: 'top_k',
  topP: 'top_p',
  truncate: 'truncate',
  typicalP: 'typical_p',
  bestOf: 'best_of',
  watermark: 'watermark',
  details: 'details',
  decoderInputDetails: 'decoder_input_details',
  topNTokens: 'top_n_tokens',
  grammar: 'grammar',
  adapterId: 'adapter_id',
} as const satisfies Record<keyof Parameters, string>;

/** Thrown by the readers below when a successful response does not have the expected shape. */
export class WireFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireFormatError';
  }
}

/**
 * TGI's `parameters` object: snake_case names, fields that are `undefined` left out, `details` defaulting to `true`.
 */
export function toWireParameters(parameters: Parameters = {}): Record<string, unknown> {
  const wire: Record<string, unknown> = { details: true };
  for (const [name, wireName] of Object.entries(WIRE_NAMES)) {
    const value = parameters[name as keyof Parameters];
    if (value !== undefined) wire[wireName] = value;
  }
  return wire;
}

type Json = Record<string, unknown>;

function object(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new WireFormatError(`${what} is not an object`);
  return value as Json;
}

function array(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new WireFormatError(`${what} is not an array`);
  return value;
}

function string(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new WireFormatError(`${what} is not a string`);
  return value;
}

function number(value: unknown, what: string): number {
  if (typeof value !== 'number') throw new WireFormatError(`${what} is not a number`);
  return value;
}

function optionalNumber(value: unknown, what: string): number | undefined {
  return value === undefined || value === null ? undefined : number(value, what);
}

function finishReason(value: unknown): FinishReason {
  // A reason unknown to this version (from a newer server) is passed through rather than rejected.
  return string(value, 'finish_reason') as FinishReason;
}

/** A generated token from the wire. */
export function readToken(value: unknown, what = 'token'): Token {
  const token = object(value, what);
  return {
    id: number(token['id'], `${what}.id`),
    text: string(token['text'], `${what}.text`),
    // TGI sends NaN-free floats, but a logprob of -inf is serialized as null by serde_json.
    logprob: token['logprob'] === null ? -Infinity : number(token['logprob'], `${what}.logprob`),
    special: token['special'] === true,
  };
}

function readInputToken(value: unknown): InputToken {
  const token = object(value, 'prefill token');
  const logprob = optionalNumber(token['logprob'], 'prefill token logprob');
  return {
    id: number(token['id'], 'prefill token id'),
    text: string(token['text'], 'prefill token text'),
    ...(logprob === undefined ? {} : { logprob }),
  };
}

function readTopTokens(value: unknown): Token[][] | undefined {
  if (value === undefined || value === null) return undefined;
  return array(value, 'top_tokens').map((step) => array(step, 'top_tokens step').map((token) => readToken(token)));
}

function readSequence(value: unknown, what: string): Omit<BestOfSequence, 'generatedText'> {
  const details = object(value, what);
  const seed = optionalNumber(details['seed'], `${what}.seed`);
  const topTokens = readTopTokens(details['top_tokens']);
  return {
    finishReason: finishReason(details['finish_reason']),
    generatedTokens: number(details['generated_tokens'], `${what}.generated_tokens`),
    ...(seed === undefined ? {} : { seed }),
    prefill:
      details['prefill'] === undefined || details['prefill'] === null
        ? []
        : array(details['prefill'], 'prefill').map(readInputToken),
    tokens:
      details['tokens'] === undefined || details['tokens'] === null
        ? []
        : array(details['tokens'], 'tokens').map((token) => readToken(token)),
    ...(topTokens === undefined ? {} : { topTokens }),
  };
}

function readDetails(value: unknown): Details {
  const details = object(value, 'details');
  const sequence = readSequence(details, 'details');
  const others = details['best_of_sequences'];
  if (others === undefined || others === null) return sequence;
  return {
    ...sequence,
    bestOfSequences: array(others, 'best_of_sequences').map((other) => {
      const raw = object(other, 'best_of_sequences item');
      return {
        generatedText: string(raw['generated_text'], 'best_of_sequences item generated_text'),
        ...readSequence(raw, 'best_of_sequences item'),
      };
    }),
  };
}

/**
 * A `generate` response: TGI's `/generate` object `{generated_text, details?}`, or the one-element array that
 * `POST /` (the hosted API, the Python client's route) answers.
 */
export function readResponse(value: unknown): Response {
  const body = Array.isArray(value) ? value[0] : value;
  if (Array.isArray(value) && value.length === 0) throw new WireFormatError('the response is an empty array');
  const response = object(body, 'the response');
  const generatedText = string(response['generated_text'], 'generated_text');
  if (response['details'] === undefined || response['details'] === null) return { generatedText };
  return { generatedText, details: readDetails(response['details']) };
}

function readStreamDetails(value: unknown): StreamDetails {
  const details = object(value, 'details');
  const seed = optionalNumber(details['seed'], 'details.seed');
  const inputLength = optionalNumber(details['input_length'], 'details.input_length');
  return {
    finishReason: finishReason(details['finish_reason']),
    generatedTokens: number(details['generated_tokens'], 'details.generated_tokens'),
    ...(seed === undefined ? {} : { seed }),
    ...(inputLength === undefined ? {} : { inputLength }),
  };
}

/** One `generate_stream` event. */
export function readStreamResponse(value: unknown): StreamResponse {
  const event = object(value, 'the event');
  const index = optionalNumber(event['index'], 'index');
  const topTokens = event['top_tokens'];
  const generatedText = event['generated_text'];
  const details = event['details'];
  return {
    ...(index === undefined ? {} : { index }),
    token: readToken(event['token']),
    ...(topTokens === undefined || topTokens === null
      ? {}
      : { topTokens: array(topTokens, 'top_tokens').map((token) => readToken(token, 'top token')) }),
    ...(generatedText === undefined || generatedText === null
      ? {}
      : { generatedText: string(generatedText, 'generated_text') }),
    ...(details === undefined || details === null ? {} : { details: readStreamDetails(details) }),
  };
}

/** `/tokenize`'s array of `{id, text, start, stop}`. */
export function readTokens(value: unknown): SimpleToken[] {
  return array(value, 'the response').map((item) => {
    const token = object(item, 'token');
    return {
      id: number(token['id'], 'token id'),
      text: string(token['text'], 'token text'),
      start: number(token['start'], 'token start'),
      stop: number(token['stop'], 'token stop'),
    };
  });
}

/** snake_case -> camelCase (`max_input_tokens` -> `maxInputTokens`). */
export function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase());
}

/** `/info`, keys camelCased (one level: TGI's info is flat). */
export function readInfo(value: unknown): Info {
  const info = object(value, 'the response');
  const result: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(info)) {
    if (field !== null) result[camelCase(key)] = field;
  }
  string(result['modelId'], 'model_id');
  return result as Info;
}

/** The hosted API's `[{model_id, sha}]`. */
export function readDeployedModels(value: unknown): DeployedModel[] {
  return array(value, 'the response').map((item) => {
    const model = object(item, 'deployed model');
    return { modelId: string(model['model_id'], 'model_id'), sha: string(model['sha'], 'sha') };
  });
}

import { validationError } from '../errors.js';
import { checkEmbeddingBody } from '../schemas/embeddings.js';

/** How the vectors are written in the response: JSON numbers, or base64 of little-endian float32 bytes. */
export type EmbeddingEncoding = 'float' | 'base64';

/** `/v1/embeddings` after the wire-level checks (the model-dependent ones are {@link checkEmbeddingLimits}'). */
export interface EmbeddingRequest {
  /** One entry per vector to return, in order: a non-empty text, or non-empty token ids (non-negative integers). */
  inputs: (string | number[])[];
  /** `model` as sent (any name is served by the one loaded model, as on the other OpenAI routes). */
  model: string | undefined;
  /** `encoding_format`, default `float` (OpenAI's default; its SDKs ask for `base64`). */
  encodingFormat: EmbeddingEncoding;
  /** `dimensions` when sent: must equal the model's hidden size. */
  dimensions: number | undefined;
  /** gen's `pooling`: `mean` (default) over every position, or the `last` position's state. */
  pooling: 'mean' | 'last';
}

const INPUT_SHAPES =
  '`input` must be a string, an array of strings, an array of token ids, or an array of arrays of token ids';

/** Null and absent are the same on the wire. */
function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

function isTokenId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/** The inputs of `input`, each checked non-empty (OpenAI refuses empty strings and empty arrays too). */
function parseInputs(input: unknown): (string | number[])[] {
  if (typeof input === 'string') {
    if (input.length === 0) throw validationError('`input` must not be an empty string', 'input');
    return [input];
  }
  if (!Array.isArray(input)) throw validationError(INPUT_SHAPES, 'input');
  if (input.length === 0) throw validationError('`input` must not be an empty array', 'input');
  if (input.every((item) => typeof item === 'number')) {
    const bad = input.findIndex((item) => !isTokenId(item));
    if (bad >= 0) {
      throw validationError(`\`input[${bad}]\` must be a token id (an integer >= 0). Given: ${input[bad]}`, 'input');
    }
    return [input as number[]];
  }
  if (input.every((item) => typeof item === 'string')) {
    const empty = input.findIndex((item) => item.length === 0);
    if (empty >= 0) throw validationError(`\`input[${empty}]\` must not be an empty string`, 'input');
    return input as string[];
  }
  if (input.every((item) => Array.isArray(item))) {
    for (const [index, ids] of (input as unknown[][]).entries()) {
      if (ids.length === 0) throw validationError(`\`input[${index}]\` must not be an empty array`, 'input');
      const bad = ids.findIndex((item) => !isTokenId(item));
      if (bad >= 0) {
        throw validationError(
          `\`input[${index}][${bad}]\` must be a token id (an integer >= 0). Given: ${JSON.stringify(ids[bad])}`,
          'input',
        );
      }
    }
    return input as number[][];
  }
  throw validationError(`${INPUT_SHAPES} (not a mix of them)`, 'input');
}

/**
 * Parses a `/v1/embeddings` body: checked against `EmbeddingBody` (unknown fields refused with OpenAI's wording,
 * types), then `input` must have one of OpenAI's four shapes with nothing empty.
 *
 * @throws {HttpError} a 400 `invalid_request_error` (422 `validation` internally) naming the field.
 */
export function parseEmbeddingRequest(body: unknown): EmbeddingRequest {
  const checked = checkEmbeddingBody(body);
  const inputs = parseInputs(checked.input);
  const model = checked.model;
  const format = checked.encoding_format;
  const dimensions = checked.dimensions;
  const pooling = checked.pooling;
  return {
    inputs,
    model: present(model) ? (model as string) : undefined,
    encodingFormat: present(format) ? (format as EmbeddingEncoding) : 'float',
    dimensions: present(dimensions) ? (dimensions as number) : undefined,
    pooling: present(pooling) ? (pooling as 'mean' | 'last') : 'mean',
  };
}

/** What {@link checkEmbeddingLimits} checks a request against. */
export interface EmbeddingLimits {
  /** The server's `maxClientBatchSize`: the most inputs per request. */
  readonly maxInputs: number;
  /** The model's hidden size: the only `dimensions` served. */
  readonly hiddenSize: number;
}

/**
 * The checks that need the model but no tokenizer, made before any input is tokenized: the number of inputs and
 * `dimensions`.
 *
 * @throws {HttpError} a 400 naming `input` or `dimensions`.
 */
export function checkEmbeddingLimits(request: EmbeddingRequest, limits: EmbeddingLimits): void {
  if (request.inputs.length > limits.maxInputs) {
    throw validationError(
      `\`input\` supports up to ${limits.maxInputs} inputs per request. Given: ${request.inputs.length}`,
      'input',
    );
  }
  if (request.dimensions !== undefined && request.dimensions !== limits.hiddenSize) {
    throw validationError(
      `\`dimensions\` ${request.dimensions} is not supported: this model's embeddings have ${limits.hiddenSize} ` +
        `dimensions and are not shortened. Leave \`dimensions\` out or set it to ${limits.hiddenSize}`,
      'dimensions',
    );
  }
}

/**
 * Refuses token lists the model cannot embed whole (no silent truncation): an id outside `[0, vocabSize)`, or more
 * tokens than `maxPositions`, with OpenAI's "maximum context length" wording.
 *
 * @throws {HttpError} a 400 naming `input`.
 */
export function checkEmbeddingTokens(
  tokens: readonly (readonly number[])[],
  limits: { readonly vocabSize: number; readonly maxPositions: number },
): void {
  const where = (index: number) => (tokens.length === 1 ? '`input`' : `\`input[${index}]\``);
  for (const [index, ids] of tokens.entries()) {
    const bad = ids.findIndex((id) => id >= limits.vocabSize);
    if (bad >= 0) {
      throw validationError(
        `${where(index)}: token id ${ids[bad]} is out of range (the vocabulary has ${limits.vocabSize} tokens)`,
        'input',
      );
    }
    if (ids.length > limits.maxPositions) {
      throw validationError(
        `This model's maximum context length is ${limits.maxPositions} tokens, however ${where(index)} has ` +
          `${ids.length} tokens. Please reduce the length of the input`,
        'input',
      );
    }
  }
}

/** One vector as `/v1/embeddings` returns it: JSON numbers, or base64 of its little-endian float32 bytes. */
export function encodeEmbedding(vector: Float32Array, format: EmbeddingEncoding): number[] | string {
  if (format === 'float') return Array.from(vector);
  const bytes = Buffer.alloc(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i]!, i * 4);
  return bytes.toString('base64');
}

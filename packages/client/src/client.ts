import { UnknownError, ValidationError, isErrorPayload, parseError } from './errors.js';
import { Transport, incompleteStream } from './transport.js';
import type {
  ClientOptions,
  Info,
  Parameters,
  RequestOptions,
  Response,
  SimpleToken,
  StreamResponse,
} from './types.js';
import { validateRequest } from './validation.js';
import { WireFormatError, readInfo, readResponse, readStreamResponse, readTokens, toWireParameters } from './wire.js';

/** Parses one event's data; an error event becomes its mapped error. */
function streamResponse(url: string, data: string): StreamResponse {
  let payload: unknown;
  try {
    payload = JSON.parse(data);
  } catch {
    throw new UnknownError(`${url}: an event is not JSON: ${data.slice(0, 200)}`, { status: 200, payload: data });
  }
  // TGI reports failures that happen after the 200 headers as an event `{"error": ..., "error_type": ...}`.
  if (isErrorPayload(payload)) throw parseError(200, payload);
  return readStreamResponse(payload);
}

/**
 * Streams `url`'s events as {@link StreamResponse}s. Shared by {@link Client} and the hosted API client.
 * @internal
 */
export async function* streamGenerate(
  transport: Transport,
  url: string,
  body: Record<string, unknown>,
  signal: AbortSignal | undefined,
): AsyncGenerator<StreamResponse, void, undefined> {
  let count = 0;
  let finished = false;
  for await (const data of transport.events(url, body, signal)) {
    if (data === '[DONE]') break; // OpenAI's terminator; TGI sends none.
    if (data.trim() === '') continue;
    let response: StreamResponse;
    try {
      response = streamResponse(url, data);
    } catch (error) {
      if (error instanceof WireFormatError) {
        throw new UnknownError(`${url}: unexpected event: ${error.message}`, { status: 200, payload: data });
      }
      throw error;
    }
    count += 1;
    finished = response.generatedText !== undefined;
    yield response;
  }
  if (!finished) throw incompleteStream(url, count);
}

/**
 * A client for a text-generation-inference server (TGI, a Hugging Face Inference Endpoint, or gen), the TypeScript
 * counterpart of the Python `text_generation.Client` / `AsyncClient`.
 *
 * ```ts
 * const client = new Client('http://127.0.0.1:3000');
 * const { generatedText } = await client.generate('Why is the sky blue?', { maxNewTokens: 20 });
 * for await (const event of client.generateStream('Why is the sky blue?')) {
 *   if (!event.token.special) process.stdout.write(event.token.text);
 * }
 * ```
 *
 * Every method validates its arguments before sending anything and rejects with a {@link ClientError} subclass.
 */
export class Client {
  /** The server's base URL, without a trailing slash. */
  readonly baseUrl: string;
  private readonly transport: Transport;

  /**
   * @param baseUrl The server's URL, for example `http://127.0.0.1:3000` or an Inference Endpoint's URL.
   * @param options Headers sent with every request, the timeout in milliseconds and an optional `fetch`.
   */
  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.transport = new Transport(options);
  }

  /**
   * Generates text for a prompt: `POST {baseUrl}/generate` with `{inputs, parameters}`. `details` is requested
   * unless `parameters.details` is `false`.
   */
  async generate(prompt: string, parameters?: Parameters, options: RequestOptions = {}): Promise<Response> {
    validateRequest(prompt, parameters, false);
    const url = `${this.baseUrl}/generate`;
    const { payload } = await this.transport.json(
      'POST',
      url,
      { inputs: prompt, parameters: toWireParameters(parameters) },
      options.signal,
    );
    return read(url, () => readResponse(payload));
  }

  /**
   * Generates text token by token: `POST {baseUrl}/generate_stream`, read as Server-Sent Events. Yields one
   * {@link StreamResponse} per token; the last one carries `generatedText` and `details`. An error event in the
   * stream rejects with its mapped error, and so does a stream that ends before its last event
   * ({@link IncompleteGenerationError}). Breaking out of the loop cancels the request. Validation happens when the
   * iteration starts.
   */
  async *generateStream(
    prompt: string,
    parameters?: Parameters,
    options: RequestOptions = {},
  ): AsyncGenerator<StreamResponse, void, undefined> {
    validateRequest(prompt, parameters, true);
    yield* streamGenerate(
      this.transport,
      `${this.baseUrl}/generate_stream`,
      { inputs: prompt, parameters: toWireParameters(parameters) },
      options.signal,
    );
  }

  /** Tokenizes a text with the model's tokenizer: `POST {baseUrl}/tokenize`. */
  async tokenize(inputs: string, options: RequestOptions = {}): Promise<SimpleToken[]> {
    if (typeof inputs !== 'string') throw new ValidationError('`inputs` must be a string');
    const url = `${this.baseUrl}/tokenize`;
    const { payload } = await this.transport.json('POST', url, { inputs }, options.signal);
    return read(url, () => readTokens(payload));
  }

  /** The server's model and limits: `GET {baseUrl}/info`, camelCased. */
  async info(options: RequestOptions = {}): Promise<Info> {
    const url = `${this.baseUrl}/info`;
    const { payload } = await this.transport.json('GET', url, undefined, options.signal);
    return read(url, () => readInfo(payload));
  }

  /**
   * Whether the server is ready: `GET {baseUrl}/health` answered 2xx (`true`) or 503 (`false`: loading, or unhealthy).
   * Other statuses and network failures reject with their error.
   */
  async health(options: RequestOptions = {}): Promise<boolean> {
    const url = `${this.baseUrl}/health`;
    // TGI answers 200 with an empty body.
    const { status } = await this.transport.json('GET', url, undefined, options.signal, {
      acceptStatus: [503],
      requireJson: false,
    });
    return status >= 200 && status < 300;
  }
}

/** Runs a wire reader, turning a shape mismatch into an {@link UnknownError}. */
export function read<T>(url: string, reader: () => T): T {
  try {
    return reader();
  } catch (error) {
    if (error instanceof WireFormatError)
      throw new UnknownError(`${url}: unexpected response: ${error.message}`, { status: 200 });
    throw error;
  }
}

import { read, streamGenerate } from './client.js';
import { Transport } from './transport.js';
import type {
  DeployedModel,
  DeployedModelsOptions,
  InferenceAPIClientOptions,
  Parameters,
  RequestOptions,
  Response,
  StreamResponse,
} from './types.js';
import { validateRequest } from './validation.js';
import { readDeployedModels, readResponse, toWireParameters } from './wire.js';

/** Where model URLs of Hugging Face's hosted Inference API start. */
export const INFERENCE_API_MODELS_URL = 'https://api-inference.huggingface.co/models/';
/** Root of Hugging Face's hosted Inference API. */
export const INFERENCE_API_URL = 'https://api-inference.huggingface.co';

function authorization(token: string | undefined): Record<string, string> {
  return token === undefined || token === '' ? {} : { authorization: `Bearer ${token}` };
}

/**
 * A client for a model on Hugging Face's hosted Inference API (or any server that serves a model at one URL the way
 * the hosted API and TGI's `POST /` route do), the counterpart of the Python `InferenceAPIClient`.
 *
 * Both methods post `{inputs, parameters, stream}` to `{baseUrl}{modelId}`: `generate` with `stream: false` (the
 * answer is TGI's one-element array `[{generated_text, details}]`; a plain object is accepted too) and
 * `generateStream` with `stream: true` (Server-Sent Events). Unlike the Python client, the constructor does not ask
 * the API whether the model runs on text-generation-inference; a model that does not cannot stream, and
 * `generateStream` rejects with {@link NotSupportedError}.
 *
 * ```ts
 * const client = new InferenceAPIClient('bigscience/bloomz', { token: process.env.HF_TOKEN });
 * const { generatedText } = await client.generate('Why is the sky blue?');
 * ```
 */
export class InferenceAPIClient {
  /** The model's URL: `{baseUrl}{modelId}`. */
  readonly url: string;
  private readonly transport: Transport;

  /**
   * @param modelId The model's repository id, for example `bigscience/bloomz`.
   * @param options `baseUrl` (default `https://api-inference.huggingface.co/models/`), `token` (sent as a bearer
   *   token), extra headers, the timeout in milliseconds and an optional `fetch`.
   */
  constructor(modelId: string, options: InferenceAPIClientOptions = {}) {
    const baseUrl = options.baseUrl ?? INFERENCE_API_MODELS_URL;
    this.url = `${baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`}${modelId.replace(/^\/+/, '')}`;
    this.transport = new Transport(options, authorization(options.token));
  }

  /** Generates text for a prompt: `POST {url}` with `{inputs, parameters, stream: false}`. */
  async generate(prompt: string, parameters?: Parameters, options: RequestOptions = {}): Promise<Response> {
    validateRequest(prompt, parameters, false);
    const { payload } = await this.transport.json(
      'POST',
      this.url,
      { inputs: prompt, parameters: toWireParameters(parameters), stream: false },
      options.signal,
    );
    return read(this.url, () => readResponse(payload));
  }

  /**
   * Generates text token by token: `POST {url}` with `{inputs, parameters, stream: true}`, read as Server-Sent
   * Events. Same behaviour as {@link Client.generateStream}.
   */
  async *generateStream(
    prompt: string,
    parameters?: Parameters,
    options: RequestOptions = {},
  ): AsyncGenerator<StreamResponse, void, undefined> {
    validateRequest(prompt, parameters, true);
    yield* streamGenerate(
      this.transport,
      this.url,
      { inputs: prompt, parameters: toWireParameters(parameters), stream: true },
      options.signal,
    );
  }
}

/**
 * The models Hugging Face's hosted Inference API serves with text-generation-inference:
 * `GET {baseUrl}/framework/text-generation-inference`, `[{model_id, sha}]` -> `[{modelId, sha}]`.
 */
export async function deployedModels(options: DeployedModelsOptions = {}): Promise<DeployedModel[]> {
  const root = (options.baseUrl ?? INFERENCE_API_URL).replace(/\/+$/, '');
  const url = `${root}/framework/text-generation-inference`;
  const transport = new Transport(options, authorization(options.token));
  const { payload } = await transport.json('GET', url, undefined, options.signal);
  return read(url, () => readDeployedModels(payload));
}

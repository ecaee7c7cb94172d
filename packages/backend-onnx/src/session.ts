import { BackendError, ModelLoadError, type BackendWarningV1 } from '@gen/backend';
import * as ort from 'onnxruntime-node';
import { DirectSession } from './direct/direct-session.js';
import { loadOrtCApi, OrtStatusError } from './direct/ort-c-api.js';
import type { OnnxBackendSettings, OnnxBinding, OnnxExecutionProvider } from './onnx-backend-settings.js';
import type { OnnxSession } from './onnx-session.js';

/** A created session and what it runs on. */
export interface OpenedSession {
  readonly session: OnnxSession;
  /** How onnxruntime is called. */
  readonly binding: 'direct' | 'onnxruntime-node';
  /** Why this binding (what `auto` found, or that it was asked for). */
  readonly bindingReason: string;
  /** onnxruntime's version. */
  readonly onnxruntimeVersion: string;
  /** direct binding: whether runs execute on a worker thread. */
  readonly runThread?: 'main' | 'worker';
  /** The execution provider that loaded (the first of the list that could). */
  readonly executionProvider: string;
  /** `cpu`, `cuda:0`, `webgpu`. */
  readonly device: string;
}

function providerName(provider: OnnxExecutionProvider): string {
  return typeof provider === 'string' ? provider : provider.name;
}

function providerConfig(provider: OnnxExecutionProvider): ort.InferenceSession.ExecutionProviderConfig {
  if (typeof provider === 'string') return provider;
  return provider.deviceId === undefined
    ? provider.name
    : ({ name: provider.name, deviceId: provider.deviceId } as never);
}

function deviceOf(provider: OnnxExecutionProvider): string {
  const name = providerName(provider);
  if (name === 'cpu') return 'cpu';
  const deviceId = typeof provider === 'string' ? 0 : (provider.deviceId ?? 0);
  return `${name}:${deviceId}`;
}

/** True for errors that say a provider's library is not installed, rather than that the model is bad. */
function isProviderUnavailable(message: string): boolean {
  return /shared library|backend not found|no available backend|Failed to get a WebGPU adapter|providers_shared|provider.*not (?:available|supported)/i.test(
    message,
  );
}

/**
 * Creates the onnxruntime session for `file`, trying the execution providers in order: a provider whose library is
 * missing (for example `cuda` without the CUDA binaries) is skipped with a warning while later ones remain.
 *
 * @throws {ModelLoadError} the file cannot be loaded (corrupt protobuf, missing external data, unknown operator);
 *   `invalid-header` or `missing-file`, with onnxruntime's message.
 * @throws {BackendError} no listed provider can be loaded.
 */
export async function openSession(
  file: string,
  settings: OnnxBackendSettings,
  warnings: BackendWarningV1[],
): Promise<OpenedSession> {
  const providers = [...(settings.executionProviders ?? ['cpu'])];
  if (providers.length === 0) throw new RangeError('executionProviders must name at least one provider');
  if (settings.runThread !== undefined && settings.runThread !== 'main' && settings.runThread !== 'worker') {
    throw new RangeError(`runThread must be main or worker, got ${String(settings.runThread)}`);
  }
  const choice = chooseBinding(settings, providers);
  if (choice.binding === 'direct') return openDirect(file, settings, warnings, choice.reason);
  if (settings.runThread === 'worker') {
    warnings.push({
      type: 'unsupported-setting',
      setting: 'runThread',
      details: 'runs go to a worker thread on the direct binding only; onnxruntime-node runs them on the main thread',
    });
  }
  const unavailable: string[] = [];
  for (let i = 0; i < providers.length; i++) {
    const provider = providers[i]!;
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: [providerConfig(provider)],
      graphOptimizationLevel: settings.graphOptimizationLevel ?? 'all',
      interOpNumThreads: 1,
      executionMode: 'sequential',
      logSeverityLevel: 3,
      extra: { session: { intra_op: { allow_spinning: settings.intraOpSpinning === true ? '1' : '0' } } },
      ...(settings.intraOpThreads === undefined ? {} : { intraOpNumThreads: settings.intraOpThreads }),
      ...(settings.preferredOutputLocation === undefined || settings.preferredOutputLocation === 'cpu'
        ? {}
        : { preferredOutputLocation: settings.preferredOutputLocation }),
    };
    try {
      const session = await ort.InferenceSession.create(file, options);
      if (unavailable.length > 0) {
        warnings.push({
          type: 'unsupported-setting',
          setting: 'executionProviders',
          details: `${unavailable.join('; ')}; running on ${providerName(provider)}`,
        });
      }
      return {
        session,
        binding: 'onnxruntime-node',
        bindingReason: choice.reason,
        onnxruntimeVersion: ort.env.versions.node ?? ort.env.versions.common,
        executionProvider: providerName(provider),
        device: deviceOf(provider),
      };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (isProviderUnavailable(message)) {
        unavailable.push(`${providerName(provider)} is not available (${firstLine(message)})`);
        continue;
      }
      throw loadError(file, message, error);
    }
  }
  throw new BackendError(
    `no execution provider could be loaded for ${file}: ${unavailable.join('; ')}. ` +
      'See docs/backends/onnx.md for installing the CUDA provider, or include "cpu" in executionProviders.',
  );
}

const bindings: readonly OnnxBinding[] = ['auto', 'direct', 'onnxruntime-node'];

/**
 * The binding to use: the one asked for, else `GEN_ONNX_BINDING`, else `direct` when the C API loads and only the
 * CPU provider is listed.
 *
 * @throws {RangeError} an unknown binding name.
 * @throws {BackendError} `direct` was asked for where it cannot run.
 */
function chooseBinding(
  settings: OnnxBackendSettings,
  providers: readonly OnnxExecutionProvider[],
): { binding: 'direct' | 'onnxruntime-node'; reason: string } {
  const fromEnvironment = process.env['GEN_ONNX_BINDING'];
  if (settings.binding !== undefined && !bindings.includes(settings.binding)) {
    throw new RangeError(`binding must be one of ${bindings.join(', ')}, got ${String(settings.binding)}`);
  }
  if (fromEnvironment !== undefined && fromEnvironment !== '' && !bindings.includes(fromEnvironment as OnnxBinding)) {
    throw new RangeError(`GEN_ONNX_BINDING must be one of ${bindings.join(', ')}, got ${fromEnvironment}`);
  }
  const asked: OnnxBinding =
    settings.binding !== undefined && settings.binding !== 'auto'
      ? settings.binding
      : ((fromEnvironment || 'auto') as OnnxBinding);
  const source = settings.binding !== undefined && settings.binding !== 'auto' ? 'binding' : 'GEN_ONNX_BINDING';
  if (asked === 'onnxruntime-node') return { binding: 'onnxruntime-node', reason: `${source} is onnxruntime-node` };
  const gpu = providers.map(providerName).filter((name) => name !== 'cpu');
  const loaded = gpu.length > 0 ? undefined : loadOrtCApi();
  const unavailable =
    gpu.length > 0
      ? `the direct binding runs the CPU provider only, and executionProviders lists ${gpu.join(', ')}`
      : loaded !== undefined && 'error' in loaded
        ? `onnxruntime's C API could not be loaded: ${loaded.error}`
        : undefined;
  if (asked === 'direct') {
    if (unavailable !== undefined) throw new BackendError(`${source} is direct, but ${unavailable}`);
    return { binding: 'direct', reason: `${source} is direct` };
  }
  return unavailable === undefined
    ? { binding: 'direct', reason: "auto: onnxruntime's C API loaded through koffi" }
    : { binding: 'onnxruntime-node', reason: `auto: ${unavailable}` };
}

function openDirect(
  file: string,
  settings: OnnxBackendSettings,
  warnings: BackendWarningV1[],
  reason: string,
): OpenedSession {
  const runThread = settings.runThread ?? 'main';
  let session: DirectSession;
  try {
    session = DirectSession.create(file, {
      intraOpThreads: settings.intraOpThreads,
      intraOpSpinning: settings.intraOpSpinning,
      graphOptimizationLevel: settings.graphOptimizationLevel,
      runThread,
    });
  } catch (error) {
    if (error instanceof OrtStatusError) throw loadError(file, error.message.replace(/^CreateSession: /, ''), error);
    throw error;
  }
  if (runThread === 'worker' && session.runThread === 'main') {
    warnings.push({
      type: 'unsupported-setting',
      setting: 'runThread',
      details: 'koffi was configured by another module before this one, so runs stay on the main thread',
    });
  }
  return {
    session,
    binding: 'direct',
    bindingReason: reason,
    onnxruntimeVersion: session.version,
    runThread: session.runThread,
    executionProvider: 'cpu',
    device: 'cpu',
  };
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.slice(0, 300);
}

/** Wraps an onnxruntime load failure in a {@link ModelLoadError} that names the file and what was expected. */
function loadError(file: string, message: string, cause: unknown): ModelLoadError {
  const missingData = /external data|onnx_data|No such file|doesn't exist|does not exist/i.test(message);
  return new ModelLoadError({
    file,
    reason: missingData ? 'missing-file' : 'invalid-header',
    expected: missingData
      ? 'the ONNX graph and every external data file it references (for example model.onnx_data) beside it'
      : 'a valid ONNX model (protobuf) that onnxruntime can load',
    message: `onnxruntime could not load it: ${firstLine(message)}`,
    cause,
  });
}

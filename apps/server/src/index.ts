export { createServer, type GenServer, type ServerOptions } from './server.js';
export { loadModel, type BackendName, type LoadModelOptions, type LoadedModelInfo } from './model-loader.js';
export {
  backendNames,
  importBackendPackage,
  registerBackend,
  UnknownBackendError,
  type BackendChoice,
  type BackendEntry,
  type BackendLoadOptions,
} from './backends.js';
export type { LoadedModel, ServerLimits } from './context.js';
export { main } from './cli.js';

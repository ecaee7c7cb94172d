export { createServer, type GenServer, type ServerOptions } from './server.js';
export { loadModel, type BackendName, type LoadModelOptions, type LoadedModelInfo } from './model-loader.js';
export type { LoadedModel, ServerLimits } from './context.js';
export { main } from './cli.js';

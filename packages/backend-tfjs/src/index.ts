export { createTfjsBackend, type TfjsBackendSettings } from './tfjs-backend.js';
export type { TfjsBackendKind } from './select-backend.js';

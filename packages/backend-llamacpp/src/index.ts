export { createLlamaCppBackend, TESTED_ARCHITECTURES } from './llamacpp-backend.js';
export type { LlamaCppBackendSettings } from './llamacpp-backend-settings.js';
export { LlamaCppUnavailableError, type LlamaCppUnavailableReason } from './errors.js';
export { loadLlamaCApi, prebuiltPackage } from './llama-c-api.js';

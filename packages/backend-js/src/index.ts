export { createJsBackend, type JsBackendSettings } from './js-backend.js';

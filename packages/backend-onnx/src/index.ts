export { createOnnxBackend } from './onnx-backend.js';
export type {
  OnnxBackendSettings,
  OnnxExecutionProvider,
  OnnxExecutionProviderName,
  OnnxModelDtype,
} from './onnx-backend-settings.js';

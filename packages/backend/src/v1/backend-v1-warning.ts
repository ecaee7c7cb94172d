/**
 * Something the backend could not honour and did not silently ignore.
 *
 * - `unsupported-setting`: a creation setting (for example a device or dtype) that the backend ignored or clamped.
 * - `unsupported-option`: a per-call option (for example `wantPromptLogits` on a backend without prompt logits)
 *   that was not honoured for `sequenceId`.
 * - `other`: anything else worth telling the operator.
 */
export type BackendWarningV1 =
  | { type: 'unsupported-setting'; setting: string; details?: string }
  | { type: 'unsupported-option'; option: string; sequenceId?: string; details?: string }
  | { type: 'other'; message: string };

import { loadLlamaCApi } from '../llama-c-api.js';

/**
 * Why llama.cpp cannot run in this process (for `it.skip` titles), or undefined when it can. Tests that need the
 * libraries skip with this reason, so the repository's tests pass where `@node-llama-cpp/<platform>-<arch>` is
 * not installed.
 */
export function llamaCppUnavailable(): string | undefined {
  try {
    loadLlamaCApi();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

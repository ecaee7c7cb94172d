/**
 * Runs tasks one at a time in call order; a failed task does not stop the ones after it. Backends use one to make
 * overlapping `doForward` / `doRelease` / `doFork` / `doDispose` calls behave as if run one after another, as
 * `BackendV1` requires.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  /**
   * Runs `task` after every task queued before it has settled, and settles with its result (a task that throws
   * rejects only its own promise).
   */
  run<T>(task: () => Promise<T> | T): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

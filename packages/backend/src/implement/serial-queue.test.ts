import { describe, expect, it } from 'vitest';
import { SerialQueue } from './serial-queue.js';

describe('SerialQueue', () => {
  it('runs tasks one at a time in call order, each settling with its own result', async () => {
    const queue = new SerialQueue();
    const events: string[] = [];
    const task = (name: string, ms: number) => async (): Promise<string> => {
      events.push(`start ${name}`);
      await new Promise((resolve) => setTimeout(resolve, ms));
      events.push(`end ${name}`);
      return name;
    };
    const results = await Promise.all([queue.run(task('a', 20)), queue.run(task('b', 1)), queue.run(() => 'c')]);
    expect(results).toEqual(['a', 'b', 'c']);
    expect(events).toEqual(['start a', 'end a', 'start b', 'end b']);
  });

  it('keeps going after a task fails; only that task rejects', async () => {
    const queue = new SerialQueue();
    const failed = queue.run(() => {
      throw new Error('boom');
    });
    const rejected = queue.run(() => Promise.reject(new Error('async boom')));
    const next = queue.run(() => 42);
    await expect(failed).rejects.toThrow('boom');
    await expect(rejected).rejects.toThrow('async boom');
    await expect(next).resolves.toBe(42);
  });

  it('does not start a task before the previous one has settled', async () => {
    const queue = new SerialQueue();
    let release!: () => void;
    const first = queue.run(() => new Promise<void>((resolve) => (release = resolve)));
    let started = false;
    const second = queue.run(() => {
      started = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(started).toBe(false);
    release();
    await first;
    await second;
    expect(started).toBe(true);
  });
});

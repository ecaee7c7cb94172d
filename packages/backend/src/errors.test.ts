import { describe, expect, it } from 'vitest';
import {
  AbortError,
  BackendDisposedError,
  BackendError,
  BatchLimitError,
  InvalidInputError,
  ModelLoadError,
  PositionLimitError,
  SequenceError,
  UnsupportedModelError,
} from './errors.js';

describe('error classes', () => {
  it('recognise their own instances and the hierarchy through isInstance', () => {
    const unsupported = new UnsupportedModelError({
      file: 'c.json',
      feature: 'model_type',
      value: 'gpt2',
      supported: ['llama'],
    });
    expect(UnsupportedModelError.isInstance(unsupported)).toBe(true);
    expect(ModelLoadError.isInstance(unsupported)).toBe(true);
    expect(BackendError.isInstance(unsupported)).toBe(true);
    expect(SequenceError.isInstance(unsupported)).toBe(false);
    expect(unsupported.reason).toBe('unsupported-model');

    const sequence = new SequenceError({ sequenceId: 'a', reason: 'unknown', message: 'no a' });
    expect(SequenceError.isInstance(sequence)).toBe(true);
    expect(ModelLoadError.isInstance(sequence)).toBe(false);
    expect(BackendError.isInstance(new Error('x'))).toBe(false);
    expect(BackendError.isInstance(null)).toBe(false);
    expect(BackendError.isInstance('AbortError')).toBe(false);
  });

  it('recognise errors from another copy of the package through the global symbol marker', () => {
    const foreign = Object.assign(new Error('from another copy'), {
      [Symbol.for('gen.backend.error')]: true,
      [Symbol.for('gen.backend.error.position-limit')]: true,
    });
    expect(BackendError.isInstance(foreign)).toBe(true);
    expect(PositionLimitError.isInstance(foreign)).toBe(true);
    expect(BatchLimitError.isInstance(foreign)).toBe(false);
  });

  it('carry the facts in fields and readable messages', () => {
    const position = new PositionLimitError({ sequenceId: 's', requestedPositions: 130, maxPositions: 128 });
    expect(position.message).toBe('sequence "s" would reach 130 positions, past the maximum of 128');
    expect(position.name).toBe('PositionLimitError');
    const batch = new BatchLimitError({ batchSize: 9, maxBatchSize: 8 });
    expect(batch.message).toContain('9');
    const load = new ModelLoadError({ file: '/m/x', reason: 'truncated', expected: '100 bytes', message: 'short' });
    expect(load.message).toBe('/m/x: short (expected 100 bytes)');
    expect(new InvalidInputError({ message: 'bad', sequenceId: 'q' }).sequenceId).toBe('q');
    expect(BackendDisposedError.isInstance(new BackendDisposedError('js'))).toBe(true);
  });

  it('AbortError looks like a DOM AbortError and keeps the reason', () => {
    const controller = new AbortController();
    expect(() => AbortError.throwIfAborted(controller.signal)).not.toThrow();
    expect(() => AbortError.throwIfAborted(undefined)).not.toThrow();
    controller.abort(new Error('client went away'));
    let caught: unknown;
    try {
      AbortError.throwIfAborted(controller.signal);
    } catch (error) {
      caught = error;
    }
    expect(AbortError.isInstance(caught)).toBe(true);
    expect((caught as AbortError).name).toBe('AbortError');
    expect(((caught as AbortError).cause as Error).message).toBe('client went away');
  });
});

import { describe, it, expect } from 'vitest';
import { test, fc } from '@fast-check/vitest';
import { InvalidParameterError, SamplingError } from './errors.js';
import { StopSequenceMatcher, type StopSequenceMatch } from './stop-sequences.js';

/** Naive reference: the stop with the smallest end offset in `text`, ties to the longest. */
function referenceStop(text: string, stops: readonly string[]): StopSequenceMatch | null {
  let best: StopSequenceMatch | null = null;
  for (const sequence of stops) {
    const index = text.indexOf(sequence);
    if (index < 0) continue;
    const end = index + sequence.length;
    const bestEnd = best === null ? Infinity : best.index + best.sequence.length;
    if (end < bestEnd || (end === bestEnd && sequence.length > best!.sequence.length)) best = { sequence, index };
  }
  return best;
}

/** Naive reference for the held-back tail: longest suffix of `text` that is a proper prefix of some stop. */
function referenceHeldBack(text: string, stops: readonly string[]): number {
  let longest = 0;
  for (const stop of stops) {
    for (let length = Math.min(stop.length - 1, text.length); length > longest; length--) {
      if (text.endsWith(stop.slice(0, length))) {
        longest = length;
        break;
      }
    }
  }
  return longest;
}

interface RunResult {
  emitted: string;
  stop: StopSequenceMatch | null;
  flushed: string;
}

/** Pushes `chunks` in order, checking the held-back invariant after each push; flushes when no stop occurred. */
function run(stops: readonly string[], chunks: readonly string[]): RunResult {
  const matcher = new StopSequenceMatcher(stops);
  let emitted = '';
  let pushed = '';
  for (const chunk of chunks) {
    pushed += chunk;
    const result = matcher.push(chunk);
    emitted += result.text;
    if (result.stop !== null) {
      expect(matcher.finished).toBe(true);
      expect(matcher.stop).toEqual(result.stop);
      return { emitted, stop: result.stop, flushed: matcher.flush() };
    }
    expect(emitted + matcher.pending).toBe(pushed);
    expect(matcher.heldBack).toBe(referenceHeldBack(pushed, stops));
  }
  return { emitted, stop: null, flushed: matcher.flush() };
}

describe('StopSequenceMatcher', () => {
  const cases: {
    name: string;
    stops: string[];
    chunks: string[];
    emitted: string;
    stop: StopSequenceMatch | null;
    flushed?: string;
  }[] = [
    {
      name: 'stop spanning tokens',
      stops: ['</s>'],
      chunks: ['Hello', ' wor', 'ld<', '/', 's>', 'ignored'],
      emitted: 'Hello world',
      stop: { sequence: '</s>', index: 11 },
    },
    {
      name: 'multiple stops: first to complete wins',
      stops: ['world', 'lo w'],
      chunks: ['Hel', 'lo world'],
      emitted: 'Hel',
      stop: { sequence: 'lo w', index: 3 },
    },
    {
      name: 'overlapping stops ending together: the longest wins',
      stops: ['b', 'ab'],
      chunks: ['xa', 'b'],
      emitted: 'x',
      stop: { sequence: 'ab', index: 1 },
    },
    {
      name: 'overlapping stops: the shorter ends first',
      stops: ['abc', 'b'],
      chunks: ['a', 'bc'],
      emitted: 'a',
      stop: { sequence: 'b', index: 1 },
    },
    {
      name: 'stop at the very start',
      stops: ['\n\n'],
      chunks: ['\n', '\nrest'],
      emitted: '',
      stop: { sequence: '\n\n', index: 0 },
    },
    {
      name: 'stop equal to a whole delta',
      stops: ['User:'],
      chunks: ['Hi', 'User:', 'x'],
      emitted: 'Hi',
      stop: { sequence: 'User:', index: 2 },
    },
    {
      name: 'repeated partial prefixes (stop "aab" in "aaab")',
      stops: ['aab'],
      chunks: ['a', 'a', 'a', 'b'],
      emitted: 'a',
      stop: { sequence: 'aab', index: 1 },
    },
    {
      name: 'no stop: flush returns the held-back rest',
      stops: ['STOP'],
      chunks: ['abc S', 'T', 'O'],
      emitted: 'abc ',
      stop: null,
      flushed: 'STO',
    },
    {
      name: 'no stops at all',
      stops: [],
      chunks: ['a', '', 'bc'],
      emitted: 'abc',
      stop: null,
      flushed: '',
    },
    {
      name: 'emoji split inside its surrogate pair',
      stops: ['😀!'],
      chunks: ['ok \ud83d', '\ude00', '!'],
      emitted: 'ok ',
      stop: { sequence: '😀!', index: 3 },
    },
    {
      name: 'CJK',
      stops: ['。\n', '结束'],
      chunks: ['你好', '世界。', '结', '束了'],
      emitted: '你好世界。',
      stop: { sequence: '结束', index: 5 },
    },
    {
      name: 'duplicate stops',
      stops: ['x', 'x'],
      chunks: ['abx'],
      emitted: 'ab',
      stop: { sequence: 'x', index: 2 },
    },
  ];

  for (const testCase of cases) {
    it(testCase.name, () => {
      const result = run(testCase.stops, testCase.chunks);
      expect(result.emitted).toBe(testCase.emitted);
      expect(result.stop).toEqual(testCase.stop);
      expect(result.flushed).toBe(testCase.flushed ?? '');
    });
  }

  it('holds back only what can still become a stop', () => {
    const matcher = new StopSequenceMatcher(['abcd', 'bx']);
    expect(matcher.push('zzab')).toEqual({ text: 'zz', stop: null });
    expect(matcher.pending).toBe('ab');
    expect(matcher.push('c')).toEqual({ text: '', stop: null });
    expect(matcher.heldBack).toBe(3);
    expect(matcher.push('e')).toEqual({ text: 'abce', stop: null });
    expect(matcher.heldBack).toBe(0);
  });

  it('throws a SamplingError when pushing after a stop or after flush', () => {
    const stopped = new StopSequenceMatcher(['x']);
    stopped.push('ax');
    expect(() => stopped.push('more')).toThrow(SamplingError);
    expect(stopped.flush()).toBe('');
    const flushed = new StopSequenceMatcher(['x']);
    flushed.push('a');
    flushed.flush();
    expect(flushed.flush()).toBe('');
    expect(() => flushed.push('a')).toThrow(/after flush/);
  });

  it('rejects empty stop sequences with InvalidParameterError `stop`', () => {
    try {
      new StopSequenceMatcher(['ok', '']);
      expect.unreachable();
    } catch (error) {
      expect(InvalidParameterError.isInstance(error)).toBe(true);
      expect((error as InvalidParameterError).parameter).toBe('stop');
    }
  });

  it('handles long streams with many pushes', () => {
    const matcher = new StopSequenceMatcher(['<|end|>', '<|im_end|>']);
    let emitted = '';
    for (let i = 0; i < 100_000; i++) emitted += matcher.push('<|e').text + matcher.push('x ').text;
    const result = matcher.push('<|im_end|>');
    expect(result.stop).toEqual({ sequence: '<|im_end|>', index: 500_000 });
    expect(emitted + result.text).toBe('<|ex '.repeat(100_000));
  });

  const unit = fc.constantFrom('a', 'b', 'c', '\ud83d', '\ude00', '世');
  const textArbitrary = fc.string({ unit, maxLength: 40 });
  const stopsArbitrary = fc.array(fc.string({ unit, minLength: 1, maxLength: 5 }), { maxLength: 4 });
  const cutsArbitrary = fc.array(fc.nat({ max: 40 }), { maxLength: 12 });

  test.prop([textArbitrary, stopsArbitrary, cutsArbitrary], { seed: 4242, numRuns: 3000 })(
    'any chunking gives the same stop and text as one push and as the naive reference',
    (text, stops, cuts) => {
      const positions = cuts.map((cut) => Math.min(cut, text.length)).sort((a, b) => a - b);
      const chunks: string[] = [];
      let start = 0;
      for (const position of positions) {
        chunks.push(text.slice(start, position));
        start = position;
      }
      chunks.push(text.slice(start));

      const whole = run(stops, [text]);
      const chunked = run(stops, chunks);
      const expectedStop = referenceStop(text, stops);
      expect(chunked.stop).toEqual(expectedStop);
      expect(whole.stop).toEqual(expectedStop);
      const expectedText = expectedStop === null ? text : text.slice(0, expectedStop.index);
      expect(chunked.emitted + chunked.flushed).toBe(expectedText);
      expect(whole.emitted + whole.flushed).toBe(expectedText);
      if (expectedStop !== null) expect(chunked.emitted).toBe(expectedText);
    },
  );
});

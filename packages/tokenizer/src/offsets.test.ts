import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { alignOffsets, createSurfaceFunction } from './offsets.js';

const utf8 = (text: string) => new TextEncoder().encode(text);

describe('createSurfaceFunction', () => {
  test('byte-level tokens map back to their bytes', () => {
    const surface = createSurfaceFunction({ type: 'ByteLevel' });
    expect([...surface('Ġhello')]).toEqual([...utf8(' hello')]);
    // æĹ¥ is 日 (E6 97 A5) in GPT-2's alphabet; a token may hold part of it.
    expect([...surface('æĹ¥')]).toEqual([0xe6, 0x97, 0xa5]);
    expect([...surface('æĹ')]).toEqual([0xe6, 0x97]);
  });

  test('SentencePiece: ▁ is a space, <0xNN> a byte, through Sequence / Replace / ByteFallback / Metaspace', () => {
    const sequence = createSurfaceFunction({
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    });
    expect(new TextDecoder().decode(sequence('▁the'))).toBe(' the');
    expect([...sequence('<0xE6>')]).toEqual([0xe6]);
    const metaspace = createSurfaceFunction({ type: 'Metaspace', replacement: '▁' });
    expect(new TextDecoder().decode(metaspace('▁▁x'))).toBe('  x');
  });

  test('WordPiece drops ##, BPEDecoder drops its suffix, no decoder keeps the token', () => {
    expect(new TextDecoder().decode(createSurfaceFunction({ type: 'WordPiece', prefix: '##' })('##ing'))).toBe('ing');
    expect(new TextDecoder().decode(createSurfaceFunction({ type: 'BPEDecoder', suffix: '</w>' })('cat</w>'))).toBe(
      'cat',
    );
    expect(new TextDecoder().decode(createSurfaceFunction(null)('plain'))).toBe('plain');
  });
});

describe('alignOffsets', () => {
  test('exact bytes: spans follow token boundaries in code points', () => {
    expect(alignOffsets('ab😀c', [utf8('a'), utf8('b😀'), utf8('c')])).toEqual([
      [0, 1],
      [1, 3],
      [3, 4],
    ]);
  });

  test('tokens splitting a character each cover the whole character', () => {
    const bytes = utf8('x日');
    expect(alignOffsets('x日', [bytes.slice(0, 2), bytes.slice(2)])).toEqual([
      [0, 2],
      [1, 2],
    ]);
  });

  test('a prepended space (SentencePiece) joins the first word; alone it is an empty span', () => {
    expect(alignOffsets('hi there', [utf8(' hi'), utf8(' there')])).toEqual([
      [0, 2],
      [2, 8],
    ]);
    expect(alignOffsets('Hi', [utf8(' '), utf8('H'), utf8('i')])).toEqual([
      [0, 0],
      [0, 1],
      [1, 2],
    ]);
  });

  test('normalization that changes bytes (NFC, lowercase) maps the changed stretch as a block', () => {
    // "cafe\u0301 ok" normalized to "café ok".
    expect(alignOffsets('cafe\u0301 ok', [utf8('caf'), utf8('é'), utf8(' ok')])).toEqual([
      [0, 3],
      [3, 5],
      [5, 8],
    ]);
    expect(alignOffsets('Hello World', [utf8('hello'), utf8(' world')])).toEqual([
      [0, 5],
      [5, 11],
    ]);
  });

  test('whitespace an added token strips (lstrip/rstrip) is covered by no token', () => {
    expect(alignOffsets('a  <x> b', [utf8('a'), utf8('<x>'), utf8('b')])).toEqual([
      [0, 1],
      [3, 6],
      [7, 8],
    ]);
  });

  test.prop([fc.array(fc.string({ unit: 'binary', maxLength: 6 }), { maxLength: 12 })])(
    'when the surfaces are the input split at character boundaries, spans are those pieces',
    (pieces) => {
      const input = pieces.join('');
      let at = 0;
      const expected = pieces.map((piece) => {
        const length = Array.from(piece).length;
        const span: [number, number] = [at, at + length];
        at += length;
        return span;
      });
      expect(alignOffsets(input, pieces.map(utf8))).toEqual(expected);
    },
  );
});

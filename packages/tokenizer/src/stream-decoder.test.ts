import { fc, test } from '@fast-check/vitest';
import { beforeAll, describe, expect, vi } from 'vitest';
import { createWindowStreamDecoder } from './stream-decoder.js';
import { loadFixture, loadLegacySentencePiece, loadMetaspaceDecoderSentencePiece } from './testing/fixtures.js';
import type { Tokenizer } from './types.js';

const tokenizers: Record<string, Tokenizer> = {};

beforeAll(async () => {
  tokenizers['byte-level (llama3)'] = await loadFixture('llama3');
  tokenizers['byte-level + NFC (qwen2)'] = await loadFixture('qwen2');
  tokenizers['sentencepiece (mistral, Metaspace)'] = await loadFixture('mistral');
  tokenizers['sentencepiece (legacy normalizer)'] = await loadLegacySentencePiece();
  tokenizers['sentencepiece (Metaspace decoder)'] = await loadMetaspaceDecoderSentencePiece();
});

const names = [
  'byte-level (llama3)',
  'byte-level + NFC (qwen2)',
  'sentencepiece (mistral, Metaspace)',
  'sentencepiece (legacy normalizer)',
  'sentencepiece (Metaspace decoder)',
] as const;

function get(name: string): Tokenizer {
  const tokenizer = tokenizers[name];
  if (tokenizer === undefined) throw new Error(`fixture ${name} not loaded`);
  return tokenizer;
}

/**
 * Streams `ids` and checks the decoder's contract at every step: the text emitted so far is a prefix of the full
 * decode of the tokens pushed so far, every U+FFFD emitted is one of the final text's (so no broken character is ever
 * emitted and later repaired), and after flush() the emitted text is the full decode.
 */
function checkStream(tokenizer: Tokenizer, ids: readonly number[], skipSpecialTokens: boolean): string {
  const decoder = tokenizer.createStreamDecoder({ skipSpecialTokens });
  const final = tokenizer.decode(ids, { skipSpecialTokens });
  let emitted = '';
  for (let k = 0; k < ids.length; k++) {
    const delta = decoder.push(ids[k]!);
    for (let c = 0; c < delta.length; c++) {
      if (delta[c] === '\uFFFD') expect(final[emitted.length + c]).toBe('\uFFFD');
    }
    emitted += delta;
    const sofar = tokenizer.decode(ids.slice(0, k + 1), { skipSpecialTokens });
    expect(sofar.startsWith(emitted)).toBe(true);
  }
  emitted += decoder.flush();
  expect(emitted).toBe(final);
  return emitted;
}

/** Ids of the single-byte tokens for bytes >= 0x80, so partial UTF-8 sequences come up often. */
function highByteIds(tokenizer: Tokenizer): number[] {
  const ids: number[] = [];
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    const token = tokenizer.idToToken(id) ?? '';
    const isByteFallback = /^<0x[89A-F][0-9A-F]>$/.test(token);
    const isByteLevelHigh = token.length === 1 && tokenizer.decode([id]) === '\uFFFD';
    if (isByteFallback || isByteLevelHigh) ids.push(id);
  }
  return ids;
}

describe.each(names)('stream decoder, %s', (name) => {
  test.prop([fc.array(fc.nat(), { maxLength: 48 }), fc.boolean()], { numRuns: 150 })(
    'random token sequences: deltas concatenate to the full decode, no broken character',
    (raw, skipSpecialTokens) => {
      const tokenizer = get(name);
      checkStream(
        tokenizer,
        raw.map((n) => n % tokenizer.vocabSize),
        skipSpecialTokens,
      );
    },
  );

  test.prop([fc.array(fc.tuple(fc.boolean(), fc.nat()), { maxLength: 48 }), fc.boolean()], { numRuns: 150 })(
    'sequences rich in lone high bytes (partial UTF-8) keep the contract',
    (raw, skipSpecialTokens) => {
      const tokenizer = get(name);
      const high = highByteIds(tokenizer);
      expect(high.length).toBeGreaterThanOrEqual(100);
      const ids = raw.map(([byte, n]) => (byte ? high[n % high.length]! : n % tokenizer.vocabSize));
      checkStream(tokenizer, ids, skipSpecialTokens);
    },
  );

  test.prop(
    [fc.array(fc.tuple(fc.nat(3), fc.nat()), { maxLength: 48 }), fc.array(fc.nat(), { maxLength: 8 }), fc.boolean()],
    { numRuns: 200 },
  )(
    "the fast path (no decode for a whole token) gives the window decoder's deltas, push by push",
    (raw, rawPrompt, skipSpecialTokens) => {
      const tokenizer = get(name);
      const high = highByteIds(tokenizer);
      const words = tokenizer.encode(' the sea, 日本語 👍 café\n', { addSpecialTokens: false });
      // Plain ids, lone high bytes, common words and added / special tokens (ids past the base vocabulary).
      const pick = ([kind, n]: [number, number]) =>
        kind === 0
          ? n % tokenizer.vocabSize
          : kind === 1
            ? high[n % high.length]!
            : kind === 2
              ? words[n % words.length]!
              : tokenizer.vocabSize - 1 - (n % 8);
      const ids = raw.map(pick);
      const prompt = rawPrompt.map((n) => n % tokenizer.vocabSize);
      const fast = tokenizer.createStreamDecoder({ skipSpecialTokens, promptTokens: prompt });
      const window = createWindowStreamDecoder(
        (window) => tokenizer.decode(window),
        (id) => tokenizer.idToToken(id) === undefined || (skipSpecialTokens && tokenizer.isSpecial(id)),
        prompt,
      );
      for (const id of ids) expect(fast.push(id)).toBe(window.push(id));
      expect(fast.flush()).toBe(window.flush());
    },
  );

  test('a whole token after a whole window is emitted without a window decode', () => {
    const tokenizer = get(name);
    const ids = tokenizer.encode(' The lighthouse keeper woke before the sun; the sea was calm.'.repeat(4), {
      addSpecialTokens: false,
    });
    const decode = vi.spyOn(tokenizer, 'decode');
    try {
      const decoder = tokenizer.createStreamDecoder({ promptTokens: tokenizer.encode('Tell me a story.') });
      ids.forEach((id) => decoder.push(id));
      decoder.flush();
      const windows = decode.mock.calls.filter(([window]) => window.length > 1).length;
      // The prompt's window, and the one after a token that decodes alone to nothing (the legacy SentencePiece
      // normalizer's lone '▁' in front of ' The'). Text outside a fixture's small vocabulary would need byte tokens.
      expect(windows).toBeLessThanOrEqual(2);
      expect(ids.length).toBeGreaterThan(60);
    } finally {
      decode.mockRestore();
    }
  });

  const samples = [
    'Hello world',
    'e\u0301',
    'naïve café',
    '👩‍👩‍👧',
    '日本語',
    'The keeper said: "日本語 is 👍!" — e\u0301 naïve café 🇫🇷',
    'a\n\nb\tc  d',
    'x<|eot_id|>y',
  ];
  test.each(samples)('encode then stream reproduces %j', (text) => {
    const tokenizer = get(name);
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    const expected = name.startsWith('byte-level + NFC') ? text.normalize('NFC') : text;
    expect(checkStream(tokenizer, ids, false)).toBe(expected);
  });

  test.prop([fc.string({ unit: 'grapheme', maxLength: 40 })], { numRuns: 150 })(
    'text round trip through encode and the stream decoder (unicode graphemes)',
    (text) => {
      const tokenizer = get(name);
      // SentencePiece decoders drop the space the pre-tokenizer adds, so a leading space does not round-trip.
      fc.pre(!(name.startsWith('sentencepiece') && /^[ \u2581]/u.test(text)));
      fc.pre(!text.includes('\u2581'));
      const ids = tokenizer.encode(text, { addSpecialTokens: false });
      const expected = name.startsWith('byte-level + NFC') ? text.normalize('NFC') : text;
      expect(checkStream(tokenizer, ids, false)).toBe(expected);
    },
  );
});

describe('stream decoder specifics', () => {
  test('holds back the bytes of a character until it is complete', () => {
    const tokenizer = get('byte-level (llama3)');
    // The single-byte tokens for the UTF-8 bytes of 日 (E6 97 A5).
    const ids = [0xe6, 0x97, 0xa5].map((byte) => tokenizer.tokenToId(byteLevelChar(byte))!);
    expect(ids.every((id) => id !== undefined)).toBe(true);
    const decoder = tokenizer.createStreamDecoder();
    expect(ids.map((id) => decoder.push(id))).toEqual(['', '', '日']);
    expect(decoder.flush()).toBe('');
  });

  test('SentencePiece byte fallback: <0xF0><0x9F><0x91><0x8D> streams as one 👍', () => {
    const tokenizer = get('sentencepiece (mistral, Metaspace)');
    const ids = ['<0xF0>', '<0x9F>', '<0x91>', '<0x8D>'].map((token) => tokenizer.tokenToId(token)!);
    const decoder = tokenizer.createStreamDecoder();
    expect(ids.map((id) => decoder.push(id))).toEqual(['', '', '', '👍']);
  });

  test('flush emits an unfinished character as U+FFFD, as the full decode does', () => {
    const tokenizer = get('sentencepiece (mistral, Metaspace)');
    const ids = [tokenizer.tokenToId('▁a')!, tokenizer.tokenToId('<0xE6>')!];
    const decoder = tokenizer.createStreamDecoder();
    expect(decoder.push(ids[0]!)).toBe('a');
    expect(decoder.push(ids[1]!)).toBe('');
    expect(decoder.flush()).toBe('\uFFFD');
    expect(tokenizer.decode(ids)).toBe('a\uFFFD');
  });

  test('a byte order mark inside a run of byte tokens survives (Rust keeps it; a default TextDecoder drops it)', () => {
    const tokenizer = get('sentencepiece (mistral, Metaspace)');
    const ids = ['<0x61>', '<0xEF>', '<0xBB>', '<0xBF>', '<0x62>'].map((token) => tokenizer.tokenToId(token)!);
    expect(tokenizer.decode(ids.slice(1, 4))).toBe('\uFEFF');
    expect(checkStream(tokenizer, ids, false)).toBe('a\uFEFFb');
  });

  test('SentencePiece leading space: without context the first word loses it, after a prompt it keeps it', () => {
    const tokenizer = get('sentencepiece (mistral, Metaspace)');
    const word = tokenizer.encode('the', { addSpecialTokens: false });
    expect(tokenizer.idToToken(word[0]!)).toBe('▁the');
    const prompt = tokenizer.encode('[INST] Tell me about the sea [/INST]');

    const fresh = tokenizer.createStreamDecoder({ skipSpecialTokens: true });
    expect(word.map((id) => fresh.push(id)).join('') + fresh.flush()).toBe('the');

    const afterPrompt = tokenizer.createStreamDecoder({ skipSpecialTokens: true, promptTokens: prompt });
    expect(word.map((id) => afterPrompt.push(id)).join('') + afterPrompt.flush()).toBe(' the');
    // ...which is what the prompt + reply decodes to, minus the prompt.
    const whole = tokenizer.decode([...prompt, ...word], { skipSpecialTokens: true });
    const promptText = tokenizer.decode(prompt, { skipSpecialTokens: true });
    expect(whole.slice(promptText.length)).toBe(' the');
  });

  test.prop(
    [fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }), fc.string({ unit: 'grapheme', maxLength: 30 })],
    {
      numRuns: 100,
    },
  )('with prompt context, the deltas are decode(prompt + reply) minus decode(prompt)', (promptText, reply) => {
    for (const name of names) {
      const tokenizer = get(name);
      const prompt = tokenizer.encode(promptText);
      const replyIds = tokenizer.encode(reply, { addSpecialTokens: false });
      const decoder = tokenizer.createStreamDecoder({ promptTokens: prompt, skipSpecialTokens: true });
      const streamed = replyIds.map((id) => decoder.push(id)).join('') + decoder.flush();
      const before = tokenizer.decode(prompt, { skipSpecialTokens: true });
      const after = tokenizer.decode([...prompt, ...replyIds], { skipSpecialTokens: true });
      fc.pre(!before.endsWith('\uFFFD'));
      expect(before + streamed).toBe(after);
    }
  });

  test('a prompt that ends inside a character: the completed character is emitted whole', () => {
    const tokenizer = get('sentencepiece (mistral, Metaspace)');
    const [e6, x97, xa5] = ['<0xE6>', '<0x97>', '<0xA5>'].map((token) => tokenizer.tokenToId(token)!);
    const prompt = [tokenizer.tokenToId('▁a')!, e6!];
    const decoder = tokenizer.createStreamDecoder({ promptTokens: prompt });
    expect(decoder.push(x97!)).toBe('');
    expect(decoder.push(xa5!)).toBe('日');
    expect(decoder.push(tokenizer.tokenToId('▁the')!)).toBe(' the');
  });

  test('skipSpecialTokens leaves out special tokens and keeps non-special added ones', () => {
    const tokenizer = get('byte-level + NFC (qwen2)');
    const ids = tokenizer.encode('<|im_start|>assistant\n<tool_call>{}</tool_call><|im_end|>', {
      addSpecialTokens: false,
    });
    const decoder = tokenizer.createStreamDecoder({ skipSpecialTokens: true });
    const text = ids.map((id) => decoder.push(id)).join('') + decoder.flush();
    expect(text).toBe('assistant\n<tool_call>{}</tool_call>');
  });

  test('ids outside the vocabulary (padded embedding rows) decode to nothing', () => {
    const tokenizer = get('byte-level (llama3)');
    const decoder = tokenizer.createStreamDecoder();
    const hi = tokenizer.encode('Hi', { addSpecialTokens: false });
    const out = [decoder.push(hi[0]!), decoder.push(tokenizer.vocabSize + 7), decoder.push(-1), decoder.push(hi[1]!)];
    expect(out.join('') + decoder.flush()).toBe('Hi');
    expect(tokenizer.decode([hi[0]!, tokenizer.vocabSize + 7, hi[1]!])).toBe('Hi');
  });

  test('work per token is bounded by a short window, not by the length of the text', () => {
    const tokenizer = get('byte-level (llama3)');
    const ids = tokenizer.encode('The lighthouse keeper woke before the sun. 日本語 👩‍👩‍👧 '.repeat(400), {
      addSpecialTokens: false,
    });
    expect(ids.length).toBeGreaterThan(6000);
    const windows: number[] = [];
    const decoder = createWindowStreamDecoder(
      (window) => {
        windows.push(window.length);
        return tokenizer.decode(window);
      },
      () => false,
      [],
    );
    const text = ids.map((id) => decoder.push(id)).join('') + decoder.flush();
    expect(text).toBe(tokenizer.decode(ids));
    expect(Math.max(...windows)).toBeLessThanOrEqual(8);
    expect(windows.length).toBeLessThanOrEqual(2 * ids.length + 2);
  });
});

/** GPT-2's byte-level character for a byte: printable bytes stand for themselves, the rest map to 256, 257... */
function byteLevelChar(byte: number): string {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  if (printable(byte)) return String.fromCharCode(byte);
  let next = 256;
  for (let b = 0; b < byte; b++) if (!printable(b)) next++;
  return String.fromCharCode(next);
}

/** Fresh instances of each fixture (no tokenizer.json cache), for tests that compare two of them. */
const loaders = {
  'byte-level (llama3)': () => loadFixture('llama3', { tokenizerJson: () => undefined }),
  'byte-level + NFC (qwen2)': () => loadFixture('qwen2', { tokenizerJson: () => undefined }),
  'sentencepiece (mistral, Metaspace)': () => loadFixture('mistral', { tokenizerJson: () => undefined }),
  'sentencepiece (legacy normalizer)': loadLegacySentencePiece,
  'sentencepiece (Metaspace decoder)': loadMetaspaceDecoderSentencePiece,
} as const;

describe('prepareStreamDecoding', () => {
  test.each(names)(
    '%s: a prepared tokenizer streams the same deltas, with no decode call for a one-token window',
    async (name) => {
      const fresh = await loaders[name]();
      const prepared = await loaders[name]();
      prepared.prepareStreamDecoding!();
      prepared.prepareStreamDecoding!(); // idempotent
      // Pseudo-random ids over the whole vocabulary (the first sight of most of them), high bytes among them.
      const high = highByteIds(fresh);
      const ids = Array.from({ length: 400 }, (_, i) =>
        i % 5 === 4 ? high[(i * 31) % high.length]! : (i * 7919 + 13) % fresh.vocabSize,
      );
      const spy = vi.spyOn(prepared, 'decode');
      for (const skipSpecialTokens of [false, true]) {
        const a = fresh.createStreamDecoder({ skipSpecialTokens, promptTokens: ids.slice(0, 3) });
        const b = prepared.createStreamDecoder({ skipSpecialTokens, promptTokens: ids.slice(0, 3) });
        for (const id of ids) expect(b.push(id)).toBe(a.push(id));
        expect(b.flush()).toBe(a.flush());
      }
      expect(spy.mock.calls.filter(([window]) => window.length === 1)).toEqual([]);
      spy.mockRestore();
    },
  );
});

describe('decode of a prepared tokenizer', () => {
  const pairs: Record<string, { fresh: Tokenizer; prepared: Tokenizer; pool: number[] }> = {};

  beforeAll(async () => {
    for (const name of names) {
      const fresh = await loaders[name]();
      const prepared = await loaders[name]();
      prepared.prepareStreamDecoding!();
      // Ids that make the joined texts fall back or matter: specials, added tokens, partial-byte tokens, lone
      // spaces and word-initial tokens, plus ids outside the vocabulary (decode drops them).
      const pool: number[] = [...highByteIds(fresh), -1, fresh.vocabSize, fresh.vocabSize + 7];
      for (let id = 0; id < fresh.vocabSize; id++) {
        const token = fresh.idToToken(id) ?? '';
        if (fresh.isSpecial(id) || token === '▁' || token === 'Ġ' || token === ' ' || /^<.*>$/.test(token))
          pool.push(id);
      }
      pairs[name] = { fresh, prepared, pool };
    }
  });

  test.each(names)('%s: joins the per-id texts exactly as the decoder chain decodes', (name) => {
    const { fresh, prepared, pool } = pairs[name]!;
    const id = fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: 0, max: fresh.vocabSize - 1 }) },
      { weight: 1, arbitrary: fc.constantFrom(...pool) },
    );
    fc.assert(
      fc.property(fc.array(id, { maxLength: 40 }), fc.boolean(), fc.boolean(), (ids, skipSpecialTokens, clean) => {
        const options = { skipSpecialTokens, cleanUpTokenizationSpaces: clean };
        expect(prepared.decode(ids, options)).toBe(fresh.decode(ids, options));
      }),
      { numRuns: 400 },
    );
  });
});

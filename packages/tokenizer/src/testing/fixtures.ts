/**
 * Test helpers: the fixture tokenizers of `src/fixtures/` (written by `scripts/build-fixtures.ts`), loadable as
 * directories or, with edits, as in-memory files.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../load-tokenizer.js';
import type { Tokenizer } from '../types.js';

/** `llama3` and `qwen2` are byte-level BPE; `mistral` is SentencePiece-style (Metaspace, `<0xNN>` byte fallback). */
export type FixtureName = 'llama3' | 'qwen2' | 'mistral';

/** Absolute path of a fixture model directory. */
export function fixtureDir(name: FixtureName): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', name);
}

/** A fixture file, parsed. */
export function readFixtureJson(name: FixtureName, file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(fixtureDir(name), file), 'utf8')) as Record<string, unknown>;
}

/** Loads a fixture, optionally after editing copies of its tokenizer.json / tokenizer_config.json. */
export async function loadFixture(
  name: FixtureName,
  edit?: {
    tokenizerJson?: (json: Record<string, unknown>) => void;
    tokenizerConfig?: (json: Record<string, unknown>) => void;
  },
): Promise<Tokenizer> {
  if (edit === undefined) return loadTokenizer(fixtureDir(name));
  const tokenizerJson = readFixtureJson(name, 'tokenizer.json');
  const tokenizerConfig = readFixtureJson(name, 'tokenizer_config.json');
  edit.tokenizerJson?.(tokenizerJson);
  edit.tokenizerConfig?.(tokenizerConfig);
  return loadTokenizer({
    tokenizerJson,
    tokenizerConfig,
    generationConfig: readFixtureJson(name, 'generation_config.json'),
    source: `fixture ${name} (edited)`,
  });
}

/**
 * The SentencePiece fixture in the older layout that Llama 2 and Mistral v0.1/v0.2 repositories still ship: no
 * pre-tokenizer, a `Prepend("▁")` + `Replace(" " -> "▁")` normalizer instead.
 */
export function loadLegacySentencePiece(): Promise<Tokenizer> {
  return loadFixture('mistral', {
    tokenizerJson: (json) => {
      json['pre_tokenizer'] = null;
      json['normalizer'] = {
        type: 'Sequence',
        normalizers: [
          { type: 'Prepend', prepend: '\u2581' },
          { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
        ],
      };
    },
  });
}

/** The SentencePiece fixture with a `Metaspace` decoder (plus byte fallback) instead of Replace/Fuse/Strip. */
export function loadMetaspaceDecoderSentencePiece(): Promise<Tokenizer> {
  return loadFixture('mistral', {
    tokenizerJson: (json) => {
      json['decoder'] = {
        type: 'Sequence',
        decoders: [
          { type: 'ByteFallback' },
          { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false },
        ],
      };
    },
  });
}

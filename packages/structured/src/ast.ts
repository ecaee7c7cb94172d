import type { CodePointRange } from './utf8.js';

/**
 * The language tree that JSON Schema and regex compile to before the NFA: a regular language over code points and
 * bytes, with two JSON-specific shapes (`object`, `key-except`) whose NFAs share sub-automata instead of copying them.
 */
export type LanguageNode =
  | { readonly kind: 'never' }
  | { readonly kind: 'empty' }
  | { readonly kind: 'bytes'; readonly bytes: readonly number[] }
  | { readonly kind: 'class'; readonly ranges: readonly CodePointRange[] }
  | { readonly kind: 'seq'; readonly items: readonly LanguageNode[] }
  | { readonly kind: 'alt'; readonly items: readonly LanguageNode[] }
  | { readonly kind: 'repeat'; readonly item: LanguageNode; readonly min: number; readonly max: number }
  | {
      readonly kind: 'list';
      readonly item: LanguageNode;
      readonly separator: LanguageNode;
      readonly min: number;
      readonly max: number;
    }
  | ObjectNode
  | { readonly kind: 'key-except'; readonly names: readonly string[] };

/** An object with properties in a fixed order: required ones always, optional ones maybe, then extra pairs. */
export interface ObjectNode {
  readonly kind: 'object';
  readonly open: LanguageNode;
  readonly close: LanguageNode;
  readonly comma: LanguageNode;
  readonly colon: LanguageNode;
  readonly properties: ReadonlyArray<{ key: LanguageNode; value: LanguageNode; required: boolean }>;
  readonly extra: { key: LanguageNode; value: LanguageNode } | null;
}

/** The empty language (no string at all). */
export const NEVER: LanguageNode = { kind: 'never' };
/** The language of the empty string. */
export const EMPTY: LanguageNode = { kind: 'empty' };

const encoder = new TextEncoder();

/** The literal UTF-8 bytes of `text`. */
export function literal(text: string): LanguageNode {
  return { kind: 'bytes', bytes: [...encoder.encode(text)] };
}

/** Any one code point of `ranges`, as UTF-8. */
export function charClass(ranges: readonly CodePointRange[]): LanguageNode {
  return ranges.length === 0 ? NEVER : { kind: 'class', ranges };
}

/** Concatenation (flattened; `never` absorbs, `empty` vanishes). */
export function seq(...items: LanguageNode[]): LanguageNode {
  const flat: LanguageNode[] = [];
  for (const item of items) {
    if (item.kind === 'never') return NEVER;
    if (item.kind === 'empty') continue;
    if (item.kind === 'seq') flat.push(...item.items);
    else flat.push(item);
  }
  if (flat.length === 0) return EMPTY;
  return flat.length === 1 ? (flat[0] as LanguageNode) : { kind: 'seq', items: flat };
}

/** Union (`never` branches dropped). */
export function alt(...items: LanguageNode[]): LanguageNode {
  const kept = items.filter((item) => item.kind !== 'never');
  if (kept.length === 0) return NEVER;
  return kept.length === 1 ? (kept[0] as LanguageNode) : { kind: 'alt', items: kept };
}

/** `item` repeated `min` to `max` times (`max` may be `Infinity`). */
export function repeat(item: LanguageNode, min: number, max: number): LanguageNode {
  if (max < min) return NEVER;
  if (max === 0) return EMPTY;
  if (item.kind === 'never') return min === 0 ? EMPTY : NEVER;
  if (item.kind === 'empty') return EMPTY;
  if (min === 1 && max === 1) return item;
  return { kind: 'repeat', item, min, max };
}

/** `item` or nothing. */
export function optional(item: LanguageNode): LanguageNode {
  return repeat(item, 0, 1);
}

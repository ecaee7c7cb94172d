/** An inclusive range of Unicode code points `[lo, hi]`. */
export type CodePointRange = readonly [number, number];

/** One UTF-8 encoding shape: a byte range per byte position, all of the same length (1 to 4). */
export type ByteRangeSequence = Array<[number, number]>;

/** The largest Unicode code point. */
export const MAX_CODE_POINT = 0x10ffff;

/** UTF-8 bytes of one code point (surrogates are never passed here). */
export function encodeCodePoint(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}

/**
 * Splits a code point range into UTF-8 byte-range sequences whose union encodes exactly the range's scalar values
 * (surrogates D800–DFFF are left out: UTF-8 cannot encode them). The algorithm of Rust's `regex-syntax` utf8 module.
 */
export function utf8Sequences(lo: number, hi: number, out: ByteRangeSequence[] = []): ByteRangeSequence[] {
  if (lo > hi) return out;
  if (lo <= 0xdfff && hi >= 0xd800) {
    if (lo < 0xd800) utf8Sequences(lo, 0xd7ff, out);
    if (hi > 0xdfff) utf8Sequences(0xe000, hi, out);
    return out;
  }
  for (const max of [0x7f, 0x7ff, 0xffff]) {
    if (lo <= max && hi > max) {
      utf8Sequences(lo, max, out);
      utf8Sequences(max + 1, hi, out);
      return out;
    }
  }
  if (hi <= 0x7f) {
    out.push([[lo, hi]]);
    return out;
  }
  for (let i = 1; i < 4; i++) {
    const mask = (1 << (6 * i)) - 1;
    if ((lo & ~mask) !== (hi & ~mask)) {
      if ((lo & mask) !== 0) {
        utf8Sequences(lo, lo | mask, out);
        utf8Sequences((lo | mask) + 1, hi, out);
        return out;
      }
      if ((hi & mask) !== mask) {
        utf8Sequences(lo, (hi & ~mask) - 1, out);
        utf8Sequences(hi & ~mask, hi, out);
        return out;
      }
    }
  }
  const a = encodeCodePoint(lo);
  const b = encodeCodePoint(hi);
  out.push(a.map((byte, index) => [byte, b[index] ?? byte] as [number, number]));
  return out;
}

/** Sorts and merges code point ranges (overlapping or adjacent ranges become one). */
export function normalizeRanges(ranges: readonly CodePointRange[]): CodePointRange[] {
  const sorted = [...ranges].sort((x, y) => x[0] - y[0]);
  const merged: Array<[number, number]> = [];
  for (const [lo, hi] of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else merged.push([lo, hi]);
  }
  return merged;
}

/** The complement of a set of code point ranges within `[0, 0x10FFFF]`. */
export function complementRanges(ranges: readonly CodePointRange[]): CodePointRange[] {
  const out: CodePointRange[] = [];
  let next = 0;
  for (const [lo, hi] of normalizeRanges(ranges)) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
  return out;
}

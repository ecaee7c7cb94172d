/**
 * A seeded row of logits in [0, 6) (xorshift32), with `bonus` on the EOS ids so that complete outputs end soon.
 */
export function randomRow(size: number, seed: number, eos: readonly number[], bonus: number): Float32Array {
  let state = seed >>> 0 || 1;
  const row = new Float32Array(size);
  for (let id = 0; id < size; id++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    row[id] = ((state >>> 0) / 2 ** 32) * 6;
  }
  for (const id of eos) row[id] = bonus;
  return row;
}

import { float16BitsToNumber } from '@gen/backend';

let table: Float32Array | undefined;

/** Every half-precision value as float32 (256 KiB, built on first use); each one is exact in float32. */
function float16Table(): Float32Array {
  if (table === undefined) {
    table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) table[bits] = float16BitsToNumber(bits);
  }
  return table;
}

/** Converts `source` (float16 bits) into `target` at `offset`. */
export function float16ToFloat32(source: Uint16Array, target: Float32Array, offset: number): void {
  const values = float16Table();
  for (let i = 0; i < source.length; i++) target[offset + i] = values[source[i]!]!;
}

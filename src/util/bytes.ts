/**
 * Joining byte chunks: the body readers, the KV event encoder and tests that build raw answers
 * all gather parts and then need them as one buffer.
 *
 * Cost: one allocation of the total length and one copy of each part.
 *
 * @module
 */

/** `parts` copied, in order, into one new buffer (a fresh one even for a single part). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

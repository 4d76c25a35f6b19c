/**
 * Strict UTF-8 decoding at the speed of the lenient decoder. Deno's `TextDecoder` with
 * `fatal: true` measured 6–10× slower than the default one on 6 KB chat bodies (3.1 µs against
 * 0.48 µs ASCII, 9.0 µs against 0.89 µs with accents; Deno 2.9.6). The lenient decoder turns every
 * invalid sequence into U+FFFD, so a result without U+FFFD proves the input valid; only a body
 * that has U+FFFD in its text (rare, and then possibly a real one) is decoded again strictly.
 *
 * @module
 */

const lenient = new TextDecoder();
const strict = new TextDecoder("utf-8", { fatal: true });

/**
 * `bytes` as a string; throws a `TypeError` where they are not valid UTF-8, as a decoder with
 * `fatal: true` does. A leading byte-order mark is dropped, as both decoders drop it.
 */
export function decodeUtf8Strict(bytes: Uint8Array): string {
  const text = lenient.decode(bytes);
  return text.includes("\uFFFD") ? strict.decode(bytes) : text;
}

/**
 * Reading a whole HTTP body of bounded size from a `fetch` answer or a request: a declared `Content-Length`
 * over the cap fails before anything is read, and a body that grows past it is cancelled and
 * fails at once, so a peer can never make the router hold more than `max` bytes of it.
 *
 * @module
 */

import { concatBytes } from "./bytes.ts";

/**
 * The body of `res` (an answer or a request), at most `max` bytes; past that the body is cancelled and `tooLarge(declared)`
 * is thrown (`declared`: the Content-Length when it was what gave it away, else null).
 */
export async function readCapped(
  res: Pick<Response, "headers" | "body">,
  max: number,
  tooLarge: (declared: number | null) => Error,
): Promise<Uint8Array<ArrayBuffer>> {
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (declared > max) {
    await res.body?.cancel().catch(() => {});
    throw tooLarge(declared);
  }
  if (res.body === null) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge(null);
    }
    chunks.push(value);
  }
  return concatBytes(chunks);
}

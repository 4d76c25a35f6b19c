/**
 * Undoes the content codings of a worker's answer that the router did not ask for. The router asks
 * every worker for `accept-encoding: identity` (see `upstreamHeaders`): it taps the body for the
 * first token and the `usage` object, which a compressed body hides. A worker that compresses
 * anyway (a proxy in front of the engine with gzip on, say) still gets its answer to the client
 * intact, decoded here as it streams.
 *
 * Rules:
 * - `gzip` (and its alias `x-gzip`), `deflate` (the zlib format, RFC 9110 §8.4.1.2) and `br` are
 *   decoded with `DecompressionStream`, the last coding listed first; `identity` is skipped. The
 *   answer then loses `Content-Encoding` and `Content-Length` (which counted the coded bytes).
 * - An answer with any other coding is handed on untouched, `Content-Encoding` included, so the
 *   client gets the bytes the header describes.
 * - Nothing is collected: the coded bytes go into the decoder in pieces of at most
 *   {@link SLICE_BYTES}, pulled only as the decoded side is read. A decoder turns one piece into
 *   one output chunk, so a piece bounds what one step may inflate to (about 1000× for a
 *   deflate bomb: 1 MiB), and the answer's memory stays bounded whatever the worker sends.
 * - Corrupt coded data errors the body (a mid-stream failure for the caller); an empty body is
 *   taken as empty, not as a corrupt stream.
 *
 * Cost: none for an answer without `Content-Encoding` (one scan of its header list). A coded answer
 * goes through one JS stream per coding.
 *
 * @module
 */

import { DONE } from "./h1_body.ts";
import type { BodySource, H1Answer } from "./h1_client.ts";

type Pair = ReadableWritablePair<Uint8Array, Uint8Array>;

/** Coded bytes fed to the decoder at once, at most. */
export const SLICE_BYTES = 1024;

/** `Content-Encoding` names this module decodes, and the `DecompressionStream` format of each. */
const FORMATS = new Map<string, string>([
  ["gzip", "gzip"],
  ["x-gzip", "gzip"],
  ["deflate", "deflate"],
  ["br", "brotli"],
]);

/**
 * The `DecompressionStream` formats that undo `answer`'s content codings, in the order to apply
 * them; null when it has none or one this module does not know.
 */
function formatsOf(headers: readonly [string, string][]): string[] | null {
  let formats: string[] | null = null;
  for (let i = 0; i < headers.length; i++) {
    if (headers[i][0] !== "content-encoding") continue;
    for (const part of headers[i][1].split(",")) {
      const coding = part.trim().toLowerCase();
      if (coding === "" || coding === "identity") continue;
      const format = FORMATS.get(coding);
      if (format === undefined) return null;
      (formats ??= []).unshift(format); // applied last, undone first
    }
  }
  return formats;
}

/**
 * `answer` with its body decoded from the content codings it names (see the module comment), or
 * `answer` itself when there is nothing to decode: no body, no coding, or an unknown one.
 */
export function decodeContent(answer: H1Answer): H1Answer {
  if (answer.whole === null && answer.body === null) return answer;
  const formats = formatsOf(answer.headers);
  if (formats === null) return answer;
  const headers = answer.headers.filter(([name]) =>
    name !== "content-encoding" && name !== "content-length"
  );
  const { status, statusText } = answer;
  if (answer.whole !== null && answer.whole.length === 0) {
    return { status, statusText, headers, whole: answer.whole, body: null };
  }
  const input = slices(answer.whole, answer.body);
  let stream: ReadableStream<Uint8Array> = input.stream;
  for (const format of formats) {
    // Typed as taking any BufferSource; it is given Uint8Arrays.
    const decoder = new DecompressionStream(format as CompressionFormat) as unknown as Pair;
    stream = stream.pipeThrough(decoder);
  }
  const reader = stream.getReader();
  const body: BodySource = {
    read: async () => {
      try {
        return await reader.read();
      } catch (err) {
        // No coded byte at all: an empty body (a decoder calls that a truncated stream).
        if (input.bytes() === 0 && !input.failed()) return DONE;
        throw err;
      }
    },
    // The source too, at once: through the pipes its cancel would come a few turns later, and the
    // connection should not outlive the body.
    cancel: (reason) =>
      Promise.all([reader.cancel(reason), answer.body?.cancel(reason)]).then(() => {}),
  };
  return { status, statusText, headers, whole: null, body };
}

/** The coded body (`whole`, or what `src` reads) as a stream of pieces of at most SLICE_BYTES. */
function slices(whole: Uint8Array | null, src: BodySource | null) {
  let rest: Uint8Array = whole ?? new Uint8Array(0);
  let bytes = 0;
  let failed = false;
  const stream = new ReadableStream<Uint8Array>({
    pull: async (ctl) => {
      while (rest.length === 0) {
        if (src === null) return ctl.close();
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await src.read();
        } catch (err) {
          failed = true;
          throw err;
        }
        if (r.done) return ctl.close();
        rest = r.value;
      }
      const n = Math.min(rest.length, SLICE_BYTES);
      ctl.enqueue(rest.subarray(0, n));
      rest = rest.subarray(n);
      bytes += n;
    },
    cancel: (reason) => src?.cancel(reason),
  }, { highWaterMark: 0 });
  return { stream, bytes: () => bytes, failed: () => failed };
}

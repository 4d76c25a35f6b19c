/**
 * Reading one text field of a `multipart/form-data` body (RFC 7578) without parsing the rest: the
 * router needs only `model` from an audio upload, which it passes on as bytes.
 *
 * Rule: the boundary comes from the content type's `boundary` parameter (quoted or not); each part
 * starts after a `--boundary` line, its headers end at the first blank line, and its value ends at
 * the next CRLF `--boundary`. The first part whose `Content-Disposition` is `form-data` with the
 * wanted `name` gives the value, decoded as UTF-8, if it is at most `maxBytes` long.
 *
 * Cost: a byte search for each boundary up to the wanted part; parts before it (a file field sent
 * first) are skipped by searching for the next boundary, never copied.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The `boundary` parameter of a multipart content type, or null. */
export function multipartBoundary(contentType: string | null): string | null {
  if (contentType === null) return null;
  const m = /^\s*multipart\/form-data\s*;(.*)$/i.exec(contentType);
  if (m === null) return null;
  const b = /(?:^|;)\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(m[1]);
  return b === null ? null : (b[1] ?? b[2]);
}

/** Index of `needle` in `hay` at or after `from`, or -1. */
function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0];
  const last = hay.length - needle.length;
  for (let i = hay.indexOf(first, from); i !== -1 && i <= last; i = hay.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && hay[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

/** The value of form field `name` in `body` (see the module rule), or null. */
export function multipartField(
  body: Uint8Array,
  boundary: string,
  name: string,
  maxBytes = 1024,
): string | null {
  const delim = encoder.encode(`--${boundary}`);
  const next = encoder.encode(`\r\n--${boundary}`);
  const blank = encoder.encode("\r\n\r\n");
  let at = indexOf(body, delim, 0);
  while (at !== -1) {
    const headStart = at + delim.length;
    if (body[headStart] === 0x2d && body[headStart + 1] === 0x2d) return null; // closing delimiter
    const headEnd = indexOf(body, blank, headStart);
    if (headEnd === -1) return null;
    const valueStart = headEnd + 4;
    const valueEnd = indexOf(body, next, valueStart);
    if (valueEnd === -1) return null;
    const head = decoder.decode(body.subarray(headStart, Math.min(headEnd, headStart + 4096)));
    if (namesField(head, name)) {
      return valueEnd - valueStart <= maxBytes
        ? decoder.decode(body.subarray(valueStart, valueEnd))
        : null;
    }
    at = valueEnd + 2;
  }
  return null;
}

/** Whether a part's header block has `Content-Disposition: form-data; name="<name>"`. */
function namesField(head: string, name: string): boolean {
  for (const line of head.split("\r\n")) {
    const m = /^content-disposition\s*:\s*form-data\s*;(.*)$/i.exec(line);
    if (m === null) continue;
    const n = /(?:^|;)\s*name\s*=\s*(?:"([^"]*)"|([^\s;]+))/i.exec(m[1]);
    return n !== null && (n[1] ?? n[2]) === name;
  }
  return false;
}

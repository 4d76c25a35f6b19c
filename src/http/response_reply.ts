/**
 * A `Response` as a {@link Reply}, for the router's endpoints off the hot path (`/metrics`,
 * `/healthz`, `/v1/models`) that are easier to write with the Fetch API. The body streams through
 * the response's own reader; the server frames it (chunked on HTTP/1.1).
 *
 * Cost: one reader and one header list per reply; not for the proxied requests.
 *
 * @module
 */

import type { BodySource, HeaderList, Reply } from "./types.ts";

/** `res` as a reply: status, reason, header list (`set-cookie` fields kept apart), body source. */
export function replyFromResponse(res: Response): Reply {
  const headers: HeaderList = [];
  for (const [name, value] of res.headers) headers.push([name, value]);
  let body: BodySource | null = null;
  if (res.body !== null) {
    const reader = res.body.getReader();
    body = {
      read: () => reader.read(),
      cancel: (reason) => reader.cancel(reason),
    };
  }
  return { status: res.status, statusText: res.statusText, headers, body };
}

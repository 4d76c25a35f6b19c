/**
 * Response head parsing (`parseHead`) on the heads uvicorn sends for a JSON answer and for an SSE
 * stream: the per-request cost of the client's RFC 9112 checks.
 */

import { headEnd, parseHead } from "./h1_head.ts";

const enc = new TextEncoder();
const HEADS = {
  json: "HTTP/1.1 200 OK\r\ndate: Tue, 25 Nov 2026 10:00:00 GMT\r\nserver: uvicorn\r\n" +
    "content-length: 712\r\ncontent-type: application/json\r\n\r\n",
  sse: "HTTP/1.1 200 OK\r\ndate: Tue, 25 Nov 2026 10:00:00 GMT\r\nserver: uvicorn\r\n" +
    "content-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n" +
    "x-request-id: 3f2b8c1e-9a7d-4e21-b0c3-5d6e7f8a9b0c\r\n\r\n",
};

for (const [name, text] of Object.entries(HEADS)) {
  const b = enc.encode(text);
  const end = headEnd(b, 0, b.length);
  Deno.bench(`parseHead: ${name} head (${b.length} bytes)`, () => {
    parseHead(b, 0, end);
  });
}

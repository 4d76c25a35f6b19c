/**
 * Runs the router's handler on `Deno.serve`: a `Request` as a {@link ServerRequest}, a
 * {@link Reply} as a `Response`. A bridge until the router's own HTTP/1.1 server serves it.
 *
 * @module
 */

import type { BodySource, HeaderList, Reply, ServerRequest } from "../http/types.ts";
import { readBody } from "./limits.ts";

/** `req` as the router's handler takes it. */
export function fromDenoRequest(req: Request, info: Deno.ServeHandlerInfo): ServerRequest {
  const url = new URL(req.url);
  const headers: HeaderList = [...req.headers];
  const remote = info.remoteAddr as Deno.NetAddr;
  return {
    method: req.method,
    path: url.pathname,
    search: url.search,
    version: "1.1",
    headers,
    header: (name) => req.headers.get(name),
    scheme: url.protocol === "https:" ? "https" : "http",
    remote: { hostname: remote?.hostname ?? "unknown", port: remote?.port ?? 0 },
    signal: req.signal,
    hasBody: req.body !== null,
    readBody: (max, timeoutMs) => readBody(req, max, timeoutMs),
    bodySource(): BodySource {
      const r = req.body?.getReader();
      return {
        read: () => r ? r.read() : Promise.resolve({ done: true, value: undefined }),
        cancel: (reason) => r ? r.cancel(reason) : Promise.resolve(),
      };
    },
  };
}

/** `reply` as a `Response`. */
export function toResponse(reply: Reply): Response {
  const body = reply.body;
  const init = { status: reply.status, statusText: reply.statusText, headers: reply.headers };
  if (body === null || body instanceof Uint8Array) {
    return new Response(body as Uint8Array<ArrayBuffer> | null, init);
  }
  const stream = new ReadableStream<Uint8Array>({
    pull: async (ctl) => {
      const r = await body.read();
      if (r.done) ctl.close();
      else ctl.enqueue(r.value);
    },
    cancel: (reason) => body.cancel(reason),
  }, { highWaterMark: 0 });
  try {
    return new Response(stream, init);
  } catch (err) {
    // The client validates the worker's head, so this should not happen; if it does, the
    // source's cancel settles the attempt before the error surfaces.
    body.cancel(err).catch(() => {});
    throw err;
  }
}

/**
 * Reference point of the overhead bench: the least a Deno proxy on the router's own HTTP/1.1
 * client does. `Deno.serve`, read the body, send it with `H1Pool` (src/proxy/h1_client.ts) to the
 * next of the upstream ports (round robin), hand the answer straight back: the whole bytes when
 * they came with the head, else the body as a stream. No parsing, routing, header policy, tap,
 * deadlines or metrics. It is the ceiling for the router on this runtime and client: whatever
 * the router costs above it is its own per-request work.
 *
 * Usage: deno run -A bench/overhead/h1_proxy.ts PORT UPSTREAM_PORT... (prints
 * `listening on http://127.0.0.1:PORT` once it listens; PORT 0 = any free port)
 *
 * @module
 */

import { H1Pool, toStream } from "../../src/proxy/h1_client.ts";
import { serveBareProxy } from "./bare_proxy.ts";

const never = new AbortController().signal;

serveBareProxy((ports) => {
  const pools = ports.map((p) => new H1Pool({ hostname: "127.0.0.1", port: p }));
  return async (req, i) => {
    const a = await pools[i].send(
      "POST",
      new URL(req.url).pathname,
      [["content-type", req.headers.get("content-type") ?? "application/json"]],
      await req.bytes(),
      never,
    );
    const body = a.whole ?? (a.body && toStream(a.body));
    return new Response(body, {
      status: a.status,
      headers: a.headers.filter(([n]) => n !== "content-length" && n !== "connection"),
    });
  };
});

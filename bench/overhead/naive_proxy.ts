/**
 * Reference point of the overhead bench: the least a Deno proxy does. `Deno.serve`, read the body,
 * `fetch` it to the next of the upstream ports (round robin), hand the upstream body straight back.
 * No routing, no headers policy, no tap, no timeouts, no metrics: the router can approach this
 * figure but not beat it while it forwards with `fetch`.
 *
 * Usage: deno run -A bench/overhead/naive_proxy.ts PORT UPSTREAM_PORT... (prints
 * `listening on http://127.0.0.1:PORT` once it listens; PORT 0 = any free port)
 *
 * @module
 */

import { serveBareProxy } from "./bare_proxy.ts";

serveBareProxy((ports) => {
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  return async (req, i) => {
    const res = await fetch(urls[i] + new URL(req.url).pathname, {
      method: req.method,
      headers: { "content-type": req.headers.get("content-type") ?? "application/json" },
      body: await req.bytes(),
    });
    return new Response(res.body, { status: res.status, headers: res.headers });
  };
});

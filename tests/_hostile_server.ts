/**
 * A small HTTP/1.1 server (src/http) for tests and benchmarks run as a child process: answers every
 * request with a small JSON body (`GET /stats`: the server's counters), prints
 * `listening on http://127.0.0.1:PORT` once bound, and writes its error log to stderr.
 *
 * Usage: deno run -A tests/_hostile_server.ts [PORT] [HEADER_TIMEOUT_MS]
 *
 * SIGTERM and SIGINT close the server and exit. They are registered before the listener, as
 * `cmd/router.ts` should: Deno 2.9.6 sets up its signal machinery lazily a few hundred ms after
 * start unless a listener made it earlier, and that setup panics ("ext/signals/lib.rs",
 * "Too many open files") when the descriptors are already exhausted by then.
 *
 * @module
 */

import { serveHttp } from "../src/http/mod.ts";

const enc = new TextEncoder();
const port = Number(Deno.args[0] ?? 0);
const headerTimeoutMs = Number(Deno.args[1] ?? 10_000);
const ok = enc.encode(JSON.stringify({ ok: true }));

for (const sig of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(sig, () => void server.closeAll().finally(() => Deno.exit(0)));
}

const server = serveHttp({
  hostname: "127.0.0.1",
  port,
  headerTimeoutMs,
  log: (level, msg, fields) => console.error(JSON.stringify({ level, msg, ...fields })),
  onListen: (addr) => console.log(`listening on http://127.0.0.1:${addr.port}`),
  handler: async (req) => {
    if (req.hasBody) await req.readBody(1 << 20, 10_000);
    const body = req.path === "/stats"
      ? enc.encode(JSON.stringify({ ...server.stats, connections: server.connections }))
      : ok;
    return { status: 200, headers: [["content-type", "application/json"]], body };
  },
});

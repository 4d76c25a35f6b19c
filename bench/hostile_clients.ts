/**
 * What hostile clients cost a server (issue 15): open N idle keep-alive connections (each sends
 * one GET, reads the answer, then sits idle) and M slow-header connections (a byte of a never-
 * ending head every 500 ms), then time one normal POST on a fresh connection, and read the
 * server's resident memory from /proc/<pid>/status before and after. Issue 15's target for the
 * router: the POST answered within 1 s, RSS within 64 MiB of its idle value.
 *
 * The client needs N + M + a few descriptors: raise `ulimit -n` in the shell that runs it (and in
 * the server's, for a server that should not run out).
 *
 * Usage: deno run -A bench/hostile_clients.ts URL [--pid PID] [--idle 2000] [--slow 20]
 *          [--path /v1/chat/completions] [--hold 2] [--json FILE]
 *
 * @module
 */

import { parseArgs } from "node:util";

const enc = new TextEncoder();

/** VmRSS of `pid` in KiB; null when it cannot be read. */
async function rssKiB(pid: number | null): Promise<number | null> {
  if (pid === null) return null;
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

/** Writes all of `b`. */
async function writeAll(c: Deno.Conn, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await c.write(b.subarray(off));
}

/** Reads until a whole response head and its Content-Length body arrived; false if it closed. */
async function readAnswer(c: Deno.Conn): Promise<boolean> {
  const buf = new Uint8Array(16 * 1024);
  let text = "";
  for (;;) {
    const n = await c.read(buf);
    if (n === null) return false;
    text += new TextDecoder().decode(buf.subarray(0, n));
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) continue;
    const m = /content-length:\s*(\d+)/i.exec(text.slice(0, end));
    if (m === null || text.length >= end + 4 + Number(m[1])) return true;
  }
}

/** Runs `fn` on `items` with at most `limit` at a time. */
async function pool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      pid: { type: "string" },
      idle: { type: "string", default: "2000" },
      slow: { type: "string", default: "20" },
      path: { type: "string", default: "/v1/chat/completions" },
      hold: { type: "string", default: "2" },
      json: { type: "string" },
    },
  });
  if (positionals.length !== 1) throw new Error("usage: hostile_clients.ts URL [--pid PID] ...");
  const url = new URL(positionals[0]);
  const hostname = url.hostname;
  const port = Number(url.port || 80);
  const pid = values.pid === undefined ? null : Number(values.pid);
  const idleN = Number(values.idle);
  const slowN = Number(values.slow);
  const host = `Host: ${url.host}\r\n`;

  const rssBefore = await rssKiB(pid);
  const conns: Deno.Conn[] = [];
  const t0 = performance.now();
  const idleOk = await pool(Array.from({ length: idleN }, (_, i) => i), 200, async () => {
    try {
      const c = await Deno.connect({ hostname, port });
      conns.push(c);
      await writeAll(c, enc.encode(`GET /healthz HTTP/1.1\r\n${host}\r\n`));
      return await readAnswer(c);
    } catch {
      return false;
    }
  });
  const idleOpened = idleOk.filter(Boolean).length;
  const idleSetupMs = performance.now() - t0;

  let slowOpen = 0;
  let dripping = true;
  const drips: Promise<void>[] = [];
  for (let i = 0; i < slowN; i++) {
    try {
      const c = await Deno.connect({ hostname, port });
      conns.push(c);
      slowOpen++;
      drips.push(
        (async () => {
          const head = `POST ${values.path} HTTP/1.1\r\n${host}X-Slow: ` + "a".repeat(100_000);
          for (let j = 0; dripping && j < head.length; j++) {
            await writeAll(c, enc.encode(head[j]));
            await new Promise((r) => setTimeout(r, 500));
          }
        })().catch(() => {}),
      );
    } catch { /* counted as not open */ }
  }
  await new Promise((r) => setTimeout(r, 1000));
  const rssLoaded = await rssKiB(pid);

  const body = JSON.stringify({
    model: "m",
    messages: [{ role: "user", content: "hello" }],
    max_tokens: 1,
    stream: false,
  });
  const s = performance.now();
  let status = 0;
  let error: string | null = null;
  try {
    const res = await fetch(url.origin + values.path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(30_000),
    });
    status = res.status;
    await res.arrayBuffer();
  } catch (err) {
    error = String(err);
  }
  const postMs = performance.now() - s;
  await new Promise((r) => setTimeout(r, Number(values.hold) * 1000));
  const rssAfter = await rssKiB(pid);
  // Connections the server has closed meanwhile (timeouts) answer a read with the end at once.
  let stillOpen = 0;
  await pool(conns, 200, async (c) => {
    const probe = c.read(new Uint8Array(1)).then(() => false, () => false);
    const alive = await Promise.race([
      probe,
      new Promise<boolean>((r) => setTimeout(() => r(true), 50)),
    ]);
    if (alive) stillOpen++;
  });
  dripping = false;
  for (const c of conns) {
    try {
      c.close();
    } catch { /* closed */ }
  }
  await Promise.all(drips);

  const mib = (k: number | null) => k === null ? null : Math.round(k / 102.4) / 10;
  const result = {
    url: url.href,
    idle_requested: idleN,
    idle_opened: idleOpened,
    idle_setup_ms: Math.round(idleSetupMs),
    slow_requested: slowN,
    slow_opened: slowOpen,
    still_open_at_end: stillOpen,
    post_status: status,
    post_error: error,
    post_ms: Math.round(postMs * 10) / 10,
    rss_before_mib: mib(rssBefore),
    rss_loaded_mib: mib(rssLoaded),
    rss_after_mib: mib(rssAfter),
    rss_growth_mib: rssBefore === null || rssAfter === null ? null : mib(rssAfter - rssBefore),
  };
  console.log(JSON.stringify(result, null, 2));
  if (values.json !== undefined) await Deno.writeTextFile(values.json, JSON.stringify(result));
  Deno.exit(0);
}

if (import.meta.main) await main();

/**
 * Test support for the HTTP/1.1 client's tests (and the tests under `tests/` that need a raw
 * peer): a raw TCP server on 127.0.0.1 port 0 that hands each request to a callback which writes
 * whatever bytes it likes, and small helpers around it. Not part of the client.
 *
 * @module
 */

import type { H1Pool } from "./h1_client.ts";

export const enc = new TextEncoder();
export const dec = new TextDecoder();

/** A raw HTTP server: `answer` gets each request (head text and body) and writes what it likes. */
export function rawServer(
  answer: (
    conn: Deno.Conn,
    head: string,
    body: Uint8Array,
    connNo: number,
  ) => Promise<"keep" | "close">,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let connNo = 0;
  const requests: { head: string; rawHead: Uint8Array; body: string; connNo: number }[] = [];
  const serveConn = async (conn: Deno.Conn, no: number) => {
    let buf = new Uint8Array(0);
    const more = async () => {
      const chunk = new Uint8Array(65536);
      const n = await conn.read(chunk);
      if (n === null) return false;
      const next = new Uint8Array(buf.length + n);
      next.set(buf);
      next.set(chunk.subarray(0, n), buf.length);
      buf = next;
      return true;
    };
    try {
      for (;;) {
        let at: number;
        while ((at = dec.decode(buf).indexOf("\r\n\r\n")) < 0) if (!await more()) return;
        const head = dec.decode(buf.subarray(0, at));
        const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        while (buf.length < at + 4 + len) if (!await more()) return;
        const body = buf.slice(at + 4, at + 4 + len);
        const rawHead = buf.slice(0, at);
        buf = buf.slice(at + 4 + len);
        requests.push({ head, rawHead, body: dec.decode(body), connNo: no });
        if (await answer(conn, head, body, no) === "close") return;
      }
    } catch {
      /* client went away */
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const loops: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (conn as Deno.TcpConn).setNoDelay(true);
      loops.push(serveConn(conn, ++connNo));
    }
  })();
  const port = (listener.addr as Deno.NetAddr).port;
  return {
    port,
    requests,
    get connections() {
      return connNo;
    },
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accepting.catch(() => {});
      await Promise.all(loops);
    },
  };
}

export async function write(conn: Deno.Conn, s: string | Uint8Array) {
  const b = typeof s === "string" ? enc.encode(s) : s;
  let off = 0;
  while (off < b.length) off += await conn.write(b.subarray(off));
}

export const never = new AbortController().signal;

/** POSTs `body` (JSON by default) through `pool`, the answer as a `Response`. */
export function post(pool: H1Pool, body = '{"x":1}', signal = never): Promise<Response> {
  return pool.request(
    "POST",
    "/v1/chat/completions",
    [["content-type", "application/json"]],
    enc.encode(body),
    signal,
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Workers that answer with bytes no engine should send, behind a real router (`startRouter`, the
 * native HTTP/1.1 client): control characters and obs-text in header values, broken status lines
 * and field names, conflicting `Content-Length`s, compressed bodies the router did not ask for,
 * and a worker that closes every kept-alive connection right after its answer (issue 15). Each
 * worker is a raw TCP server whose answers are written by hand, so nothing between it and the
 * router cleans them up. The router must survive every one; a head it cannot pass on is the
 * worker's failure before the first byte (502, or the retry on a good worker answers).
 *
 * @module
 */

import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { bytes, chatBody, chatCompletion, routerHarness, sample } from "./_support.ts";
import { dec, rawServer, write } from "../src/proxy/h1_test_server.ts";
import { concatBytes } from "../src/util/bytes.ts";

/** Bytes of `s`, one byte a char (chars above 0xff are not allowed). */
function latin1Bytes(s: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new Error(`char ${c} is not one byte`);
    out[i] = c;
  }
  return out;
}

/** `concatBytes` over its arguments. */
const concat = (...parts: Uint8Array[]) => concatBytes(parts);

/** What a raw worker does after reading request number `n` (1-based, over all connections). */
type Answer = (conn: Deno.Conn, n: number) => Promise<"keep" | "close">;

/** A raw HTTP/1.1 worker on 127.0.0.1 (`rawServer`): reads each request, then runs `answer`. */
function rawWorker(answer: Answer) {
  let requests = 0;
  const server = rawServer((conn) => answer(conn, ++requests));
  return {
    url: `http://127.0.0.1:${server.port}`,
    get requests() {
      return requests;
    },
    get connections() {
      return server.connections;
    },
    close: () => server.close(),
  };
}

/** A worker that writes `reply(n)` for request `n` and keeps the connection. */
function replyWorker(reply: (n: number) => Uint8Array) {
  return rawWorker(async (conn, n) => {
    await write(conn, reply(n));
    return "keep";
  });
}

const JSON_BODY = JSON.stringify(chatCompletion("hello", 40, 32));

/** A complete JSON answer whose head carries `extra` (raw header lines, each ending in CRLF). */
function jsonAnswer(extra: string, statusLine = "HTTP/1.1 200 OK"): Uint8Array {
  const body = bytes(JSON_BODY);
  return concat(
    latin1Bytes(
      `${statusLine}\r\ncontent-type: application/json\r\n${extra}` +
        `content-length: ${body.length}\r\n\r\n`,
    ),
    body,
  );
}

/** A worker that always answers a good JSON completion. */
function goodWorker() {
  return replyWorker(() => jsonAnswer(""));
}

/** The router still answers: `/healthz` on its main port. */
async function assertAlive(url: string): Promise<void> {
  const res = await fetch(`${url}/healthz`);
  await res.body?.cancel();
  assert.ok(res.status < 500 || res.status === 503, `router answers /healthz (${res.status})`);
}

/**
 * One worker answering `bad` (502 expected, nothing counted as a crash), then the same with a good
 * worker beside it and one retry (200 expected, whichever worker is tried first).
 */
async function assertRefusedHeads(cases: readonly Uint8Array[]): Promise<void> {
  for (const [i, answer] of cases.entries()) {
    const bad = replyWorker(() => answer);
    const alone = await routerHarness([bad.url], { router: { maxRetries: 0 } }, {
      closeAlso: [bad],
    });
    try {
      const res = await alone.post(chatBody(`case ${i}`));
      const text = await res.text();
      assert.equal(res.status, 502, `case ${i}: ${text}`);
      assert.equal(JSON.parse(text).error.type, "upstream_error", `case ${i}`);
      assert.equal(JSON.parse(text).error.code, "bad_response", `case ${i}`);
      assert.equal(bad.requests, 1, `case ${i}: the bad head reached the router`);
      await assertAlive(alone.url);
      const m = await alone.metrics();
      assert.equal(sample(m, "router_upstream_failures_total", { kind: "bad-response" }), 1);
      assert.equal(sample(m, "router_upstream_failures_total", { kind: "connect-error" }), 0);
      assert.equal(alone.router.backends[0].breaker.consecutiveFailures, 1);
    } finally {
      await alone.close();
    }
  }
  const good = goodWorker();
  const bads = cases.map((answer) => replyWorker(() => answer));
  for (const [i, bad] of bads.entries()) {
    const h = await routerHarness([bad.url, good.url], {
      router: { maxRetries: 1, strategy: "roundrobin" },
    });
    try {
      // Round robin: one of the two requests tries the bad worker first.
      for (let k = 0; k < 2; k++) {
        const res = await h.post(chatBody(`retry ${i}.${k}`));
        const text = await res.text();
        assert.equal(res.status, 200, `case ${i}: ${text}`);
        assert.equal(JSON.parse(text).choices[0].message.content, "hello");
      }
      assert.ok(bad.requests >= 1, `case ${i}: the bad worker was tried`);
      const m = await h.metrics();
      assert.equal(sample(m, "router_retries_total", { backend: "w1" }), bad.requests);
    } finally {
      await h.close();
    }
  }
  for (const w of [good, ...bads]) await w.close();
}

Deno.test("hostile worker: a bad head on a connect-only (passthrough) path is not retried: the worker may have run it", async () => {
  const bad = replyWorker(() => jsonAnswer("x-ctl: a\x01b\r\n"));
  const good = goodWorker();
  const h = await routerHarness([bad.url, good.url], {
    router: {
      maxRetries: 1,
      strategy: "roundrobin",
      passthroughPaths: ["/v1/load_lora_adapter"],
    },
  }, { closeAlso: [bad, good] });
  try {
    const statuses: number[] = [];
    for (let k = 0; k < 2; k++) {
      const res = await h.post(JSON.stringify({ lora_name: `a${k}`, lora_path: "/x" }), {
        path: "/v1/load_lora_adapter",
      });
      const text = await res.text();
      statuses.push(res.status);
      if (res.status === 502) assert.equal(JSON.parse(text).error.code, "bad_response", text);
    }
    // Round robin: one request goes to each worker first; the bad one's is not sent again.
    assert.deepEqual(statuses.toSorted(), [200, 502]);
    assert.equal(bad.requests, 1);
    assert.equal(good.requests, 1, "the request the bad worker may have run went nowhere else");
    const m = await h.metrics();
    assert.equal(sample(m, "router_retries_total", { backend: "w1" }), 0);
    assert.equal(sample(m, "router_upstream_failures_total", { kind: "bad-response" }), 1);
  } finally {
    await h.close();
  }
});

/** A header line `x-ctl: a<c>b` for each char code in `codes`. */
function ctlAnswers(codes: readonly number[]): Uint8Array[] {
  return codes.map((c) => jsonAnswer(`x-ctl: a${String.fromCharCode(c)}b\r\n`));
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

Deno.test("hostile worker: control characters 0x01-0x08 in a header value are the worker's failure", async () => {
  await assertRefusedHeads(ctlAnswers(range(0x01, 0x08)));
});

Deno.test("hostile worker: control characters 0x0B and 0x0C in a header value are the worker's failure", async () => {
  await assertRefusedHeads(ctlAnswers([0x0b, 0x0c]));
});

Deno.test("hostile worker: control characters 0x0E-0x1F in a header value are the worker's failure", async () => {
  await assertRefusedHeads(ctlAnswers(range(0x0e, 0x1f)));
});

Deno.test("hostile worker: DEL (0x7F) in a header value is the worker's failure", async () => {
  await assertRefusedHeads(ctlAnswers([0x7f]));
});

/** A raw `POST` to the router on a fresh connection; resolves with the answer's head bytes. */
async function rawHead(url: string, body: string): Promise<Uint8Array> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const b = bytes(body);
    await write(
      conn,
      concat(
        bytes(
          `POST /v1/chat/completions HTTP/1.1\r\nhost: ${hostname}:${port}\r\n` +
            `content-type: application/json\r\ncontent-length: ${b.length}\r\n` +
            "connection: close\r\n\r\n",
        ),
        b,
      ),
    );
    let got = new Uint8Array(0);
    const chunk = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(chunk);
      if (n === null) break;
      got = concat(got, chunk.subarray(0, n));
      const at = dec.decode(got).indexOf("\r\n\r\n");
      if (at >= 0) return got.subarray(0, at);
    }
    throw new Error(`no head in ${JSON.stringify(dec.decode(got))}`);
  } finally {
    conn.close();
  }
}

/** The raw value bytes of header `name` in a head (first such line), or null. */
function rawValue(head: Uint8Array, name: string): Uint8Array | null {
  let at = 0;
  while (at < head.length) {
    let end = at;
    while (end + 1 < head.length && !(head[end] === 13 && head[end + 1] === 10)) end++;
    if (end + 1 >= head.length) end = head.length;
    const line = head.subarray(at, end);
    const colon = line.indexOf(58);
    if (colon > 0 && dec.decode(line.subarray(0, colon)).toLowerCase() === name) {
      let s = colon + 1;
      while (s < line.length && (line[s] === 32 || line[s] === 9)) s++;
      return line.subarray(s);
    }
    at = end + 2;
  }
  return null;
}

Deno.test("hostile worker: obs-text bytes 0x80-0x9F (and 0xA0 last) in a header value pass as bytes, 200", async () => {
  const value = "a" + String.fromCharCode(...range(0x80, 0x9f)) + "\u00ff z\u00a0";
  const worker = replyWorker(() => jsonAnswer(`x-obs: ${value}\r\n`));
  const h = await routerHarness([worker.url], { router: { maxRetries: 0 } }, {
    closeAlso: [worker],
  });
  try {
    const res = await h.post(chatBody("obs-text"));
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get("x-obs"), value, "each byte one latin1 char");
    assert.equal(JSON.parse(await res.text()).choices[0].message.content, "hello");
    const head = await rawHead(h.url, chatBody("obs-text raw"));
    assert.deepEqual(rawValue(head, "x-obs"), latin1Bytes(value), "the bytes the worker sent");
    assert.equal(h.router.backends[0].breaker.consecutiveFailures, 0);
  } finally {
    await h.close();
  }
});

Deno.test("hostile worker: a bad status line is the worker's failure; obs-text in a reason is not", async () => {
  await assertRefusedHeads([
    jsonAnswer("", "HTTP/1.1 2000 OK"),
    jsonAnswer("", "HTTP/1.1 20 OK"),
    jsonAnswer("", "HTTP/2.0 200 OK"),
    jsonAnswer("", "HTTP/1.1  200 OK"),
    jsonAnswer("", "HTTP/1.1 200\tOK"),
    jsonAnswer("", "http/1.1 200 OK"),
    jsonAnswer("", "HTTP/1.1 200 O\x7fK"),
  ]);
  const worker = replyWorker(() => jsonAnswer("", "HTTP/1.1 200 D\u00e9j\u00e0 \x80\x9f"));
  const h = await routerHarness([worker.url], { router: { maxRetries: 0 } }, {
    closeAlso: [worker],
  });
  try {
    const res = await h.post(chatBody("reason"));
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(JSON.parse(await res.text()).choices[0].message.content, "hello");
  } finally {
    await h.close();
  }
});

Deno.test("hostile worker: a header name with a space (inside, or before the colon) is the worker's failure", async () => {
  await assertRefusedHeads([
    jsonAnswer("x bad: 1\r\n"),
    jsonAnswer("x-bad : 1\r\n"),
    jsonAnswer("content-length : 3\r\n"),
    jsonAnswer("x-b\u00e9d: 1\r\n"),
  ]);
});

Deno.test("hostile worker: differing or bad Content-Lengths are the worker's failure; a list of one value is not", async () => {
  const body = bytes(JSON_BODY);
  const n = body.length;
  const framed = (lines: string) =>
    concat(
      latin1Bytes(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${lines}\r\n`),
      body,
    );
  await assertRefusedHeads([
    framed(`content-length: ${n}\r\ncontent-length: ${n + 1}\r\n`),
    framed(`content-length: ${n}, ${n - 1}\r\n`),
    framed(`content-length: 99999999999999999999\r\n`),
    framed(`content-length: ${n}\r\ncontent-length: \r\n`),
  ]);
  const worker = replyWorker(() =>
    framed(`content-length: ${n}, ${n}\r\ncontent-length: ${n}\r\n`)
  );
  const h = await routerHarness([worker.url], { router: { maxRetries: 0 } }, {
    closeAlso: [worker],
  });
  try {
    const res = await h.post(chatBody("same length"));
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(JSON.parse(await res.text()).choices[0].message.content, "hello");
  } finally {
    await h.close();
  }
});

Deno.test("hostile worker: with upstream_client fetch, a gzip answer reaches the client decoded, its usage read", async () => {
  const gz = gzipSync(bytes(JSON_BODY));
  const worker = replyWorker(() =>
    concat(
      bytes(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n" +
          `content-length: ${gz.length}\r\n\r\n`,
      ),
      gz,
    )
  );
  const h = await routerHarness([worker.url], {
    router: { maxRetries: 0, upstreamClient: "fetch" },
  }, { closeAlso: [worker] });
  try {
    const res = await h.post(chatBody("gzip via fetch"), {
      headers: { "accept-encoding": "gzip, br" },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-encoding"), null, "the body is no longer encoded");
    assert.deepEqual(JSON.parse(await res.text()), JSON.parse(JSON_BODY));
    assert.equal(worker.requests, 1, "the fetch path reached the raw worker");
    const m = await h.metrics();
    assert.equal(sample(m, "router_upstream_cached_tokens_total", { backend: "w1" }), 32);
  } finally {
    await h.close();
  }
});

Deno.test("hostile worker: a gzip answer the router did not ask for is decoded, and its usage read", async () => {
  const gz = gzipSync(bytes(JSON_BODY));
  const sawEncoding: string[] = [];
  const worker = rawWorker(async (conn) => {
    await write(
      conn,
      concat(
        bytes(
          "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n" +
            `content-length: ${gz.length}\r\n\r\n`,
        ),
        gz,
      ),
    );
    return "keep";
  });
  // What the router asks for, seen by a second worker that records the request head.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seeing = (async () => {
    for await (const c of listener) {
      const b = new Uint8Array(65536);
      const n = await c.read(b);
      const head = dec.decode(b.subarray(0, n ?? 0));
      sawEncoding.push(/accept-encoding: *([^\r]*)/i.exec(head)?.[1] ?? "(none)");
      await write(c, jsonAnswer("connection: close\r\n"));
      c.close();
    }
  })();
  const h = await routerHarness([worker.url], { router: { maxRetries: 0 } }, {
    closeAlso: [worker],
  });
  try {
    const res = await h.post(chatBody("gzip"), { headers: { "accept-encoding": "gzip, br" } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-encoding"), null, "the body is no longer encoded");
    const text = await res.text();
    assert.deepEqual(JSON.parse(text), JSON.parse(JSON_BODY));
    const m = await h.metrics();
    assert.equal(sample(m, "router_upstream_cached_tokens_total", { backend: "w1" }), 32);
    const line = h.logs.find((l) => l.msg === "request");
    assert.equal(line?.cached_tokens, 32, JSON.stringify(h.logs));
  } finally {
    await h.close();
  }
  const asker = await routerHarness([`http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`]);
  try {
    const res = await asker.post(chatBody("what is asked"), {
      headers: { "accept-encoding": "gzip, deflate, br" },
    });
    await res.body?.cancel();
    assert.deepEqual(sawEncoding, ["identity"], "the router asks workers for identity");
  } finally {
    await asker.close();
    listener.close();
    await seeing.catch(() => {});
  }
});

Deno.test("hostile worker: an unknown content coding passes through untouched, with its Content-Encoding", async () => {
  const coded = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 0xff, 0x80, 0]);
  const worker = replyWorker(() =>
    concat(
      bytes(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: x-custom\r\n" +
          `content-length: ${coded.length}\r\n\r\n`,
      ),
      coded,
    )
  );
  const h = await routerHarness([worker.url], { router: { maxRetries: 0 } }, {
    closeAlso: [worker],
  });
  try {
    const res = await h.post(chatBody("custom"));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-encoding"), "x-custom");
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), coded);
  } finally {
    await h.close();
  }
});

Deno.test("hostile worker: one worker that closes every kept-alive connection after its answer: 240 requests all 200, no failure counted", async () => {
  let delay = 0;
  const worker = rawWorker(async (conn) => {
    // Answers as if it kept the connection (no `connection: close`), then closes it: at once, or
    // a moment later, when the router may already have sent the next request on it.
    await write(conn, jsonAnswer(""));
    const wait = delay++ % 3;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait - 1));
    return "close";
  });
  const h = await routerHarness([worker.url], { router: { maxRetries: 0 } }, {
    closeAlso: [worker],
  });
  try {
    const statuses = new Map<number, number>();
    for (let i = 0; i < 240; i++) {
      const res = await h.post(chatBody(`req ${i}`));
      const text = await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status !== 200) console.error(`request ${i}: ${res.status} ${text}`);
    }
    assert.deepEqual([...statuses], [[200, 240]]);
    const b = h.router.backends[0];
    assert.equal(b.breaker.consecutiveFailures, 0);
    const m = await h.metrics();
    assert.equal(sample(m, "router_upstream_failures_total"), 0, "no failure verdict");
  } finally {
    await h.close();
  }
});

Deno.test("hostile worker: a bad head quoting '(os error 24)' is its bad response, counted by its breaker, retried", async () => {
  await assertRefusedHeads([
    jsonAnswer("", "HTTP/1.1 2x0 Too many open files (os error 24)"),
    jsonAnswer("", "HTTP/1.1 200 OK (os error 23)\x7f"),
    jsonAnswer("content-length: (os error 24)\r\n"),
  ]);
});

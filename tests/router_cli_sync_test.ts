/**
 * `cmd/router.ts` with `sync.redis.url` set: the process connects its replica sync to a
 * `redis-server` started here, shows it on /metrics, publishes its routing records to the stream,
 * reports the loss when Redis stops, and writes its queue and exits 0 on SIGTERM.
 */

import assert from "node:assert/strict";
import { startRedisServer } from "../src/sync/redis_server.ts";
import { redisSkipReason } from "../src/sync/testing.ts";
import { chatCompletion, sample, spawnRouter, startServer } from "./_support.ts";

const ignore = redisSkipReason !== null;

async function metricsOf(url: string): Promise<string> {
  return await (await fetch(`${url}/metrics`)).text();
}

/** Polls /metrics until `name` reads `want`; returns the last text. */
async function untilMetric(url: string, name: string, want: (v: number) => boolean, ms = 10_000) {
  const end = performance.now() + ms;
  let text = "";
  while (performance.now() < end) {
    text = await metricsOf(url);
    if (want(sample(text, name))) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${name} did not reach the wanted value within ${ms} ms; last /metrics:\n${text}`);
}

/** XLEN of `stream` through a raw RESP exchange (no client library needed for one command). */
async function xlen(port: number, stream: string): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const cmd = `*2\r\n$4\r\nXLEN\r\n$${stream.length}\r\n${stream}\r\n`;
    await conn.write(new TextEncoder().encode(cmd));
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    const reply = new TextDecoder().decode(buf.subarray(0, n ?? 0));
    assert.match(reply, /^:\d+\r\n/);
    return Number(reply.slice(1, reply.indexOf("\r")));
  } finally {
    conn.close();
  }
}

Deno.test({
  name: "cmd/router.ts with sync.redis.url: connected on /metrics, records published, loss shown",
  ignore,
  async fn() {
    const redis = await startRedisServer();
    const upstream = await startServer(async (req) => {
      await req.arrayBuffer();
      return Response.json(chatCompletion("ok"));
    });
    const dir = await Deno.makeTempDir({ prefix: "router-cli-sync-" });
    const stream = `test:cli:${crypto.randomUUID()}`;
    const path = `${dir}/router.yaml`;
    await Deno.writeTextFile(
      path,
      [
        "health: {interval: 0s}",
        "logging: {level: info}",
        "workers:",
        "  - id: w1",
        `    url: ${upstream.url}`,
        "sync:",
        "  replica_id: cli-test",
        "  redis:",
        `    url: ${redis.url}`,
        `    stream: "${stream}"`,
        "",
      ].join("\n"),
    );
    const proc = await spawnRouter(path);
    try {
      const text = await untilMetric(proc.url, "router_sync_connected", (v) => v === 1);
      assert.match(text, /^router_sync_connected 1$/m);

      const res = await fetch(`${proc.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "m",
          messages: [{ role: "user", content: "a prompt long enough for a few chunks ".repeat(8) }],
        }),
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-router-backend"), "w1");
      await res.body?.cancel();
      await untilMetric(
        proc.url,
        "router_sync_records_total",
        (v) => v >= 1,
      ).then((t) =>
        assert.ok(sample(t, "router_sync_records_total", { result: "published" }) >= 1)
      );
      assert.equal(await xlen(redis.port, stream), 1);

      await redis.stop();
      await untilMetric(proc.url, "router_sync_connected", (v) => v === 0);
      const lost = await proc.stdout.next((l) => l.includes("redis sync lost"));
      assert.match(lost, /"level":"warn"/);
      await redis.restart();
      await untilMetric(proc.url, "router_sync_connected", (v) => v === 1, 15_000);

      const status = await proc.stop("SIGTERM");
      assert.equal(status.code, 0, proc.stderr.lines.join("\n"));
      assert.ok(proc.stdout.lines.some((l) => l.includes('"msg":"stopped"')));
    } finally {
      await proc.stop("SIGKILL");
      await upstream.close();
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

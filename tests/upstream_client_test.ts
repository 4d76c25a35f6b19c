/**
 * The router's two ways to reach a worker, `router.upstream_client: native` (its own HTTP/1.1
 * client, the default) and `fetch`, give the client the same answers and the router the same
 * accounting: JSON and SSE bodies, usage read from both, a worker URL with a base path, a large
 * body that does not arrive in one read, a 5xx passed through, and a 205 (a status with no body).
 */

import assert from "node:assert/strict";
import {
  chatBody,
  chatCompletion,
  readAll,
  routerHarness,
  sample,
  sseChunk,
  sseResponse,
  sseUsage,
  startServer,
} from "./_support.ts";

for (const client of ["native", "fetch"] as const) {
  Deno.test(`upstream_client ${client}: JSON, SSE, base path, large body and 5xx answers`, async () => {
    const paths: string[] = [];
    const ports = new Set<number>();
    const big = "x".repeat(300_000);
    const upstream = await startServer(async (req, info) => {
      ports.add(info.remoteAddr.port);
      paths.push(new URL(req.url).pathname);
      const body = JSON.parse(await req.text());
      const user = body.messages.at(-1).content as string;
      if (user === "fail") return Response.json({ error: { message: "boom" } }, { status: 500 });
      if (user === "reset") return new Response(null, { status: 205 });
      if (body.stream) {
        return sseResponse([
          sseChunk("Hel"),
          sseChunk("lo"),
          sseUsage(200, 160, 2),
          "data: [DONE]\n\n",
        ]);
      }
      return Response.json(chatCompletion(user === "big" ? big : "hi", 100, 64), {
        headers: { "x-engine": "test" },
      });
    });
    const h = await routerHarness([`${upstream.url}/base`], {
      router: { strategy: "roundrobin", maxRetries: 0, upstreamClient: client },
    }, { closeAlso: [upstream] });
    try {
      const json = await h.post(chatBody("hello"));
      assert.equal(json.status, 200);
      assert.equal(json.headers.get("x-engine"), "test");
      assert.equal(json.headers.get("x-router-backend"), "w1");
      assert.equal((await json.json()).choices[0].message.content, "hi");

      const sse = await h.post(chatBody("hello", { stream: true }));
      assert.equal(sse.headers.get("content-type"), "text/event-stream");
      const { text, error } = await readAll(sse);
      assert.equal(error, null);
      assert.match(text, /"Hel".*"lo".*\[DONE\]/s);

      const large = await h.post(chatBody("big"));
      assert.equal((await large.json()).choices[0].message.content, big);

      const failed = await h.post(chatBody("fail"));
      assert.equal(failed.status, 500);
      assert.equal((await failed.json()).error.message, "boom");

      assert.deepEqual(paths, Array(4).fill("/base/v1/chat/completions"));
      const m = await h.metrics();
      assert.equal(
        sample(m, "router_upstream_prompt_tokens_total", { backend: "w1" }),
        100 + 200 + 100,
      );
      assert.equal(
        sample(m, "router_upstream_cached_tokens_total", { backend: "w1" }),
        64 + 160 + 64,
      );
      const logged = h.logs.filter((l) => l.msg === "request").map((
        l,
      ) => [l.status, l.cached_tokens]);
      assert.deepEqual(logged, [[200, 64], [200, 160], [200, 64], [500, null]]);

      // A status Fetch gives no body (hyper frames this one with `content-length: 0`).
      const reset = await h.post(chatBody("reset"));
      assert.equal(reset.status, 205);
      assert.equal(reset.headers.get("x-router-backend"), "w1");
      assert.equal(await reset.text(), "");
      assert.equal(h.router.inflight, 0);
      const pool = h.router.backends[0].h1Pool;
      if (client === "native") {
        assert.equal(ports.size, 1, "one kept-alive connection for all four");
        assert.equal(pool?.idle, 1, "the router's own client carried them");
      } else assert.equal(pool, null, "fetch carried them: the own client never opened");
    } finally {
      await h.close();
    }
  });
}

Deno.test("upstream_client: an unknown value is a config error", async () => {
  const { parseConfig } = await import("../src/config/mod.ts");
  assert.throws(
    () =>
      parseConfig(
        "router: {upstream_client: curl}\nworkers: [{id: a, url: 'http://127.0.0.1:1'}]\n",
      ),
    /router\.upstream_client must be one of native, fetch, got "curl"/,
  );
});

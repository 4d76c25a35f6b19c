/**
 * Router API keys and header hygiene against in-process servers and a real router process: 401 in
 * OpenAI's shape without a valid bearer key, open health endpoints, `/metrics` per
 * `auth.protect_metrics` on the main and the admin listener, the client's `Authorization` kept from
 * workers unless `forward_client_auth`, per-worker `api_key`, `X-Forwarded-*` replaced, and key
 * rotation through `auth.api_keys_file` and SIGHUP.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  chatBody,
  chatCompletion,
  jsonLines,
  routerHarness,
  spawnRouter,
  startServer,
  type TestServer,
} from "./_support.ts";

/** A worker recording the headers of each completion request. */
async function recordingWorker(): Promise<TestServer & { seen: Headers[] }> {
  const seen: Headers[] = [];
  const s = await startServer(async (req) => {
    seen.push(new Headers(req.headers));
    await req.arrayBuffer();
    return Response.json(chatCompletion("ok"));
  });
  return { ...s, seen };
}

const KEY = "rk-0123456789abcdef";

Deno.test("with API keys set, requests without a valid bearer key get 401 in OpenAI's shape; health stays open", async () => {
  const w = await recordingWorker();
  const h = await routerHarness([w.url], { auth: { apiKeys: [KEY, "rk-second-key"] } }, {
    closeAlso: [w],
  });
  try {
    for (
      const authorization of [
        undefined,
        "",
        `Bearer ${KEY}x`,
        `Bearer ${KEY.slice(0, -1)}`,
        `Basic ${btoa(`user:${KEY}`)}`,
        `Bearer`,
        `Bearer ${KEY} extra`,
        KEY,
      ]
    ) {
      const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
      const res = await h.post(chatBody("x"), { headers });
      assert.equal(res.status, 401, `authorization ${JSON.stringify(authorization)}`);
      assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
      const body = await res.json();
      assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
      assert.equal(body.error.type, "authentication_error");
      assert.equal(body.error.code, "invalid_api_key");
    }
    assert.equal(w.seen.length, 0, "no unauthenticated request reaches a worker");

    for (const authorization of [`Bearer ${KEY}`, `bearer  rk-second-key `]) {
      const res = await h.post(chatBody("x"), { headers: { authorization } });
      assert.equal(res.status, 200, authorization);
      await res.body?.cancel();
    }
    // Unknown paths answer 401 too: routes are not revealed without a key.
    const unknown = await fetch(`${h.url}/v1/secret`);
    assert.equal(unknown.status, 401);
    await unknown.body?.cancel();
    const models = await fetch(`${h.url}/v1/models`);
    assert.equal(models.status, 401);
    await models.body?.cancel();
    for (const path of ["/healthz", "/readyz", "/metrics"]) {
      const res = await fetch(h.url + path);
      assert.equal(res.status, 200, path);
      await res.body?.cancel();
    }
  } finally {
    await h.close();
  }
});

Deno.test("protect_metrics puts /metrics behind the key; the admin listener serves only metrics and health", async () => {
  const w = await recordingWorker();
  const h = await routerHarness([w.url], {
    auth: { apiKeys: [KEY], protectMetrics: true },
    metrics: { addr: "127.0.0.1:0" },
  }, { closeAlso: [w] });
  try {
    const admin = h.running.adminUrl!;
    assert.ok(admin && admin !== h.url);
    const onMain = await fetch(`${h.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(onMain.status, 404, "metrics moved to the admin listener");
    await onMain.body?.cancel();

    const denied = await fetch(`${admin}/metrics`);
    assert.equal(denied.status, 401);
    assert.equal((await denied.json()).error.code, "invalid_api_key");
    const allowed = await fetch(`${admin}/metrics`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    assert.equal(allowed.status, 200);
    assert.match(await allowed.text(), /router_requests_total|router_inflight/);
    for (const path of ["/healthz", "/readyz"]) {
      const res = await fetch(admin + path);
      assert.equal(res.status, 200, path);
      await res.body?.cancel();
    }
    // Nothing is proxied on the admin port, with or without a key.
    const proxied = await fetch(`${admin}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}` },
      body: chatBody("x"),
    });
    assert.equal(proxied.status, 404);
    await proxied.body?.cancel();
    const post = await fetch(`${admin}/metrics`, { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
    assert.equal(w.seen.length, 0);
  } finally {
    await h.close();
  }
});

Deno.test("the client's Authorization is not forwarded unless forward_client_auth; a worker api_key replaces it", async () => {
  const plain = await recordingWorker();
  const keyed = await recordingWorker();
  const h = await routerHarness([plain.url, { url: keyed.url, apiKey: "worker-secret" }], {
    router: { strategy: "roundrobin" },
  }, { closeAlso: [plain, keyed] });
  try {
    for (let i = 0; i < 2; i++) {
      const res = await h.post(chatBody("x"), {
        headers: { authorization: "Bearer client-token" },
      });
      await res.body?.cancel();
    }
    assert.equal(plain.seen[0].get("authorization"), null);
    assert.equal(keyed.seen[0].get("authorization"), "Bearer worker-secret");
  } finally {
    await h.close();
  }

  const w = await recordingWorker();
  const keyedToo = await recordingWorker();
  const h2 = await routerHarness([w.url, { url: keyedToo.url, apiKey: "worker-secret" }], {
    router: { strategy: "roundrobin" },
    auth: { forwardClientAuth: true },
  }, { closeAlso: [w, keyedToo] });
  try {
    for (let i = 0; i < 2; i++) {
      const res = await h2.post(chatBody("x"), {
        headers: { authorization: "Bearer client-token" },
      });
      await res.body?.cancel();
    }
    assert.equal(w.seen[0].get("authorization"), "Bearer client-token");
    assert.equal(keyedToo.seen[0].get("authorization"), "Bearer worker-secret");
  } finally {
    await h2.close();
  }
});

Deno.test("client X-Forwarded-* and Forwarded are replaced, hop-by-hop request headers dropped", async () => {
  const w = await recordingWorker();
  const h = await routerHarness([w.url], {}, { closeAlso: [w] });
  try {
    const res = await h.post(chatBody("x"), {
      headers: {
        "x-forwarded-for": "6.6.6.6",
        "x-forwarded-host": "evil.example",
        "x-forwarded-proto": "gopher",
        forwarded: "for=6.6.6.6",
        "proxy-authorization": "Basic abc",
        te: "trailers",
        connection: "x-drop-me",
        "x-drop-me": "1",
      },
    });
    await res.body?.cancel();
    const seen = w.seen[0];
    assert.equal(seen.get("x-forwarded-for"), "127.0.0.1");
    assert.equal(seen.get("x-forwarded-host"), new URL(h.url).host);
    assert.equal(seen.get("x-forwarded-proto"), "http");
    assert.equal(seen.get("forwarded"), null);
    assert.equal(seen.get("proxy-authorization"), null);
    assert.equal(seen.get("te"), null);
    assert.equal(seen.get("x-drop-me"), null);
    assert.match(seen.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  } finally {
    await h.close();
  }
});

Deno.test("keys from ROUTER_AUTH_API_KEYS and auth.api_keys_file; a rotated file applies on SIGHUP", async () => {
  const w = await recordingWorker();
  const dir = await Deno.makeTempDir();
  const path = `${dir}/router.yaml`;
  await Deno.writeTextFile(`${dir}/keys.txt`, "# router keys\nfile-key-old\n");
  await Deno.writeTextFile(
    path,
    `health: {interval: 0s}\nauth: {api_keys_file: keys.txt}\nworkers:\n  - id: w1\n    url: ${w.url}\n`,
  );
  Deno.env.set("ROUTER_AUTH_API_KEYS", "env-key-1,env-key-2");
  let proc;
  try {
    proc = await spawnRouter(path);
  } finally {
    Deno.env.delete("ROUTER_AUTH_API_KEYS");
  }
  const status = async (key: string) => {
    const res = await fetch(`${proc.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}` },
      body: chatBody("x"),
    });
    await res.body?.cancel();
    return res.status;
  };
  try {
    assert.equal(await status("env-key-2"), 200);
    assert.equal(await status("file-key-old"), 200);
    assert.equal(await status("file-key-new"), 401);

    await Deno.writeTextFile(`${dir}/keys.txt`, "file-key-new\n");
    const from = proc.stdout.lines.length;
    proc.child.kill("SIGHUP");
    await proc.stdout.next((l) => l.includes('"msg":"config reloaded"'), 10_000, from);
    assert.equal(await status("file-key-old"), 401);
    assert.equal(await status("file-key-new"), 200);
    assert.equal(await status("env-key-1"), 200);
    // No key ever appears in the log.
    for (const line of jsonLines(proc.stdout.lines)) {
      assert.ok(!JSON.stringify(line).includes("key-"), JSON.stringify(line));
    }
    assert.equal((await proc.stop()).code, 0);
  } finally {
    await proc.stop("SIGKILL");
    await w.close();
    await Deno.remove(dir, { recursive: true });
  }
});

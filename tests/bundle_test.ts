/**
 * The single-file artifact: `deno bundle` of cmd/router.ts produces one JavaScript file that starts
 * on its own (no source tree next to it) and proxies a request.
 *
 * @module
 */

import assert from "node:assert/strict";
import { chatCompletion, startServer } from "./_support.ts";

const root = new URL("..", import.meta.url).pathname;

Deno.test("deno bundle produces a router that runs from a single file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "router-bundle-" });
  const out = `${dir}/router.js`;
  const upstream = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json(chatCompletion("bundled"));
  });
  let child: Deno.ChildProcess | undefined;
  try {
    const bundle = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "deno", "-o", out, "cmd/router.ts"],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(bundle.code, 0, new TextDecoder().decode(bundle.stderr));

    await Deno.writeTextFile(
      `${dir}/router.yaml`,
      `server:\n  addr: "127.0.0.1:0"\nhealth:\n  interval: 0s\nlogging:\n  level: error\nworkers:\n  - id: only\n    url: ${upstream.url}\n`,
    );
    // Run from the temp dir: nothing but the bundle and the config are there.
    child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-read", "--allow-env", out, "--config", "router.yaml"],
      cwd: dir,
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let first = "";
    while (!first.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      first += value;
    }
    const m = /listening on (http:\/\/\S+)/.exec(first);
    assert.ok(m, `unexpected first line: ${first}`);
    const res = await fetch(`${m[1]}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-router-backend"), "only");
    assert.equal((await res.json()).choices[0].message.content, "bundled");
    reader.releaseLock();
  } finally {
    if (child) {
      child.kill("SIGTERM");
      const status = await child.status;
      await child.stdout.cancel().catch(() => {});
      assert.equal(status.code, 0);
    }
    await upstream.close();
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { Registry } from "prom-client";
import {
  EventLoopLag,
  LAG_WINDOW,
  maxFds,
  openFds,
  registerProcessMetrics,
} from "./process_metrics.ts";

Deno.test("EventLoopLag sees a blocked event loop, and stop() clears its timer", async () => {
  const lag = new EventLoopLag(50);
  assert.equal(lag.running, false, "no timer before start()");
  lag.start();
  lag.start(); // idempotent: one timer
  try {
    const until = performance.now() + 300;
    while (performance.now() < until) { /* block the loop */ }
    // The tick due 50 ms after start fired at least 250 ms late.
    const deadline = performance.now() + 5000;
    while (lag.maxSeconds < 0.25 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(lag.maxSeconds >= 0.25, `max lag ${lag.maxSeconds}`);
  } finally {
    lag.stop();
  }
  assert.equal(lag.running, false);
});

Deno.test("EventLoopLag keeps the largest of the last LAG_WINDOW samples", () => {
  const lag = new EventLoopLag();
  lag.record(900);
  for (let i = 0; i < LAG_WINDOW - 1; i++) lag.record(1);
  assert.equal(lag.maxSeconds, 0.9);
  lag.record(2); // the 900 ms sample leaves the window
  assert.equal(lag.maxSeconds, 0.002);
  assert.equal(lag.lastSeconds, 0.002);
  lag.record(-5); // a timer that fired early is no lag
  assert.equal(lag.lastSeconds, 0);
});

Deno.test("file descriptor gauges exist only when /proc/self is readable", async () => {
  const r = new Registry();
  registerProcessMetrics(r, new EventLoopLag());
  const text = await r.metrics();
  const fds = openFds();
  if (fds === null) {
    assert.ok(!text.includes("process_open_fds"), "no false 0 when /proc/self is refused");
  } else {
    assert.match(text, /^process_open_fds \d+$/m);
    assert.ok(fds > 0);
    assert.ok((maxFds() ?? 0) >= fds);
  }
  assert.match(text, /^process_cpu_user_seconds_total [\d.e-]+$/m);
});

Deno.test("under the router's permissions the fd gauges are absent, not 0", async () => {
  const script = `
    import { Registry } from "prom-client";
    import { EventLoopLag, registerProcessMetrics } from "${
    new URL("./process_metrics.ts", import.meta.url).href
  }";
    const r = new Registry();
    registerProcessMetrics(r, new EventLoopLag());
    console.log(await r.metrics());
  `;
  const root = new URL("../..", import.meta.url).pathname;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, script);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      `${root}deno.json`,
      "--allow-read",
      "--allow-net",
      "--allow-env",
      file,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output().finally(() => Deno.remove(file));
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(text, /^process_resident_memory_bytes [1-9]\d*$/m);
  assert.ok(!text.includes("process_open_fds"), text);
});

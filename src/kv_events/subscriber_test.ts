import assert from "node:assert/strict";
import { KvEventSubscriber, reconnectDelay } from "./subscriber.ts";

Deno.test("reconnectDelay: doubles from the base, stops at the cap, jitter in [0.5, 1)", () => {
  const table: [number, number][] = [[1, 100], [2, 200], [3, 400], [6, 3200], [7, 5000], [
    60,
    5000,
  ]];
  for (const [attempt, full] of table) {
    assert.equal(
      reconnectDelay(attempt, 100, 5000, 1 - Number.EPSILON),
      full * (1 - Number.EPSILON / 2),
    );
    assert.equal(reconnectDelay(attempt, 100, 5000, 0), full / 2, `attempt ${attempt}`);
  }
});

Deno.test("subscriber: no timer or socket before start(); stop() without start() is a no-op", async () => {
  const sub = new KvEventSubscriber({
    endpoint: "tcp://127.0.0.1:1",
    replayEndpoint: "tcp://127.0.0.1:2",
    sink: { batch() {}, clear() {} },
  });
  assert.equal(sub.state, "stopped");
  await sub.stop(); // the test sanitizers fail it if anything was started
});

Deno.test("subscriber: an unreachable engine is retried until stop(), which leaves nothing running", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens there now
  const sub = new KvEventSubscriber({
    endpoint: `tcp://127.0.0.1:${port}`,
    sink: { batch() {}, clear() {} },
    reconnectBaseMs: 5,
    reconnectMaxMs: 20,
  });
  sub.start();
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(sub.state, "connecting");
  await sub.stop();
  assert.equal(sub.state, "stopped");
});

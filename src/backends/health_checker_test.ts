import assert from "node:assert/strict";
import { ManualClock } from "../util/clock.ts";
import { CircuitBreaker } from "./circuit_breaker.ts";
import { HealthChecker, type HealthTarget } from "./health_checker.ts";

/** A server on 127.0.0.1, port 0, closed by `close()`. */
interface TestServer {
  url: string;
  hits: Request[];
  close(): Promise<void>;
}

function serve(handler: (req: Request) => Response | Promise<Response>): TestServer {
  const hits: Request[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    hits.push(req);
    return handler(req);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    hits,
    close: () => server.shutdown(),
  };
}

/** URL of a port nobody listens on: bind, note the port, close. */
async function closedPortUrl(): Promise<string> {
  const s = serve(() => new Response("x"));
  await s.close();
  return s.url;
}

function breaker(clock: ManualClock, threshold = 2, cooldownMs = 1000): CircuitBreaker {
  return new CircuitBreaker({ threshold, cooldownMs, clock });
}

/** A checker of one target `w` at `url` with `b`, probing `path` every second (2 s timeout). */
function oneTarget(url: string, b: CircuitBreaker, path = "/health"): HealthChecker {
  return new HealthChecker({
    targets: [{ id: "w", url, breaker: b }],
    intervalMs: 1000,
    timeoutMs: 2000,
    path,
  });
}

Deno.test("healthy is up; 500 and closed port are down and open their breakers", async () => {
  const healthy = serve((req) =>
    new URL(req.url).pathname === "/health"
      ? new Response("ok")
      : new Response("no", { status: 404 })
  );
  const failing = serve(() => new Response("boom", { status: 500 }));
  const deadUrl = await closedPortUrl();
  const clock = new ManualClock();
  const targets: HealthTarget[] = [
    { id: "a", url: healthy.url, breaker: breaker(clock) },
    { id: "b", url: failing.url, breaker: breaker(clock) },
    { id: "c", url: deadUrl, breaker: breaker(clock) },
  ];
  const results: [string, boolean, string | undefined][] = [];
  const hc = new HealthChecker({
    targets,
    intervalMs: 1000,
    timeoutMs: 2000,
    path: "/health",
    onResult: (id, up, err) => results.push([id, up, err?.message]),
  });
  try {
    // Optimistic before the first probe.
    assert.equal(hc.up("a"), true);
    assert.equal(hc.up("b"), true);
    assert.equal(hc.up("c"), true);
    assert.equal(hc.up("nope"), false);

    await hc.checkOnce();
    assert.equal(hc.up("a"), true);
    assert.equal(hc.up("b"), false);
    assert.equal(hc.up("c"), false);
    assert.equal(healthy.hits.length, 1);
    assert.equal(new URL(healthy.hits[0].url).pathname, "/health");
    assert.equal(healthy.hits[0].method, "GET");
    // One failed probe each: counted, not yet at the threshold of 2.
    assert.equal(targets[1].breaker.consecutiveFailures, 1);
    assert.equal(targets[2].breaker.consecutiveFailures, 1);
    assert.equal(targets[1].breaker.state, "closed");

    await hc.checkOnce();
    assert.equal(targets[0].breaker.state, "closed");
    assert.equal(targets[1].breaker.state, "open");
    assert.equal(targets[2].breaker.state, "open");

    const byId = (id: string) => results.filter((r) => r[0] === id);
    assert.deepEqual(byId("a"), [["a", true, undefined], ["a", true, undefined]]);
    assert.equal(byId("b").length, 2);
    assert.equal(byId("b")[0][1], false);
    assert.match(byId("b")[0][2]!, /answered 500/);
    assert.equal(byId("c")[0][1], false);
    assert.match(byId("c")[0][2]!, /failed/);
  } finally {
    await hc.stop();
    await healthy.close();
    await failing.close();
  }
});

Deno.test("a passing probe closes an open breaker once the cooldown has elapsed", async () => {
  let status = 500;
  const srv = serve(() => new Response("", { status }));
  const clock = new ManualClock();
  const b = breaker(clock, 1, 1000);
  const hc = oneTarget(srv.url, b);
  try {
    await hc.checkOnce();
    assert.equal(b.state, "open");
    status = 200;
    clock.advance(999);
    await hc.checkOnce();
    assert.equal(hc.up("w"), true, "up/down follows the probe even while the breaker cools");
    assert.equal(b.state, "open", "still cooling: the health probe must not close it");
    clock.advance(1);
    await hc.checkOnce();
    assert.equal(b.state, "closed", "cooled: the health probe takes the probe slot and closes it");
  } finally {
    await srv.close();
  }
});

Deno.test("a failing probe after the cooldown reopens the breaker for a new cooldown", async () => {
  const srv = serve(() => new Response("", { status: 503 }));
  const clock = new ManualClock();
  const b = breaker(clock, 1, 1000);
  const hc = oneTarget(srv.url, b);
  try {
    await hc.checkOnce();
    assert.equal(b.state, "open");
    clock.advance(1000);
    assert.equal(b.canAdmit(), true);
    await hc.checkOnce();
    assert.equal(b.state, "open");
    assert.equal(b.canAdmit(), false, "the health probe spent the probe slot and failed");
    clock.advance(1000);
    assert.equal(b.canAdmit(), true);
  } finally {
    await srv.close();
  }
});

Deno.test("health probes leave a closed breaker's streak and a request's probe alone", async () => {
  let status = 200;
  const srv = serve(() => new Response("", { status }));
  const clock = new ManualClock();
  const b = breaker(clock, 2, 1000);
  const hc = oneTarget(srv.url, b);
  try {
    b.failure();
    await hc.checkOnce();
    assert.equal(b.consecutiveFailures, 1, "a passing health probe does not reset the streak");
    b.failure();
    assert.equal(b.state, "open");
    clock.advance(1000);
    b.acquire(); // a client request is the probe
    assert.equal(b.state, "half-open");
    await hc.checkOnce();
    assert.equal(b.state, "half-open", "pass while a request probes: untouched");
    status = 500;
    await hc.checkOnce();
    assert.equal(b.state, "half-open", "fail while a request probes: untouched");
    assert.equal(hc.up("w"), false);
  } finally {
    await srv.close();
  }
});

Deno.test("a 4xx answer marks down without counting as a breaker failure", async () => {
  const srv = serve(() => new Response("", { status: 404 }));
  const b = breaker(new ManualClock(), 1);
  const hc = oneTarget(srv.url, b, "/missing");
  try {
    await hc.checkOnce();
    assert.equal(hc.up("w"), false);
    assert.equal(b.state, "closed");
  } finally {
    await srv.close();
  }
});

Deno.test("the api key is sent as a bearer token", async () => {
  const srv = serve((req) =>
    req.headers.get("authorization") === "Bearer sekret"
      ? new Response("ok")
      : new Response("", { status: 401 })
  );
  const clock = new ManualClock();
  const hc = new HealthChecker({
    targets: [
      { id: "keyed", url: srv.url, breaker: breaker(clock), apiKey: "sekret" },
      { id: "bare", url: srv.url, breaker: breaker(clock), apiKey: null },
    ],
    intervalMs: 1000,
    timeoutMs: 2000,
    path: "/v1/models",
  });
  try {
    await hc.checkOnce();
    assert.equal(hc.up("keyed"), true);
    assert.equal(hc.up("bare"), false);
  } finally {
    await srv.close();
  }
});

Deno.test("a probe past the timeout marks the worker down and counts a failure", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const srv = serve(async () => {
    await gate;
    return new Response("late");
  });
  const b = breaker(new ManualClock(), 1);
  const errors: string[] = [];
  const hc = new HealthChecker({
    targets: [{ id: "slow", url: srv.url, breaker: b }],
    intervalMs: 1000,
    timeoutMs: 50,
    path: "/health",
    onResult: (_id, _up, err) => errors.push(err?.message ?? ""),
  });
  try {
    await hc.checkOnce();
    assert.equal(hc.up("slow"), false);
    assert.equal(b.state, "open");
    assert.equal(errors.length, 1);
    assert.match(errors[0], /timed out after 50 ms/);
  } finally {
    release();
    await srv.close();
  }
});

Deno.test("start probes periodically and stop ends the loop", async () => {
  const srv = serve(() => new Response("ok"));
  let results = 0;
  let third!: () => void;
  const gotThree = new Promise<void>((r) => third = r);
  const hc = new HealthChecker({
    targets: [{ id: "w", url: srv.url, breaker: breaker(new ManualClock()) }],
    intervalMs: 10,
    timeoutMs: 1000,
    path: "/health",
    onResult: () => {
      if (++results === 3) third();
    },
  });
  try {
    assert.equal(srv.hits.length, 0, "the constructor starts nothing");
    hc.start();
    hc.start(); // idempotent: no second loop
    assert.equal(hc.running, true);
    await gotThree;
    await hc.stop();
    assert.equal(hc.running, false);
    const after = srv.hits.length;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(srv.hits.length, after, "no probe after stop()");
  } finally {
    await hc.stop();
    await srv.close();
  }
});

Deno.test("stop then start without waiting leaves one loop, and a final stop ends it", async () => {
  const srv = serve(async () => {
    await new Promise((r) => setTimeout(r, 20)); // the first round is still out at the restart
    return new Response("ok");
  });
  const hc = new HealthChecker({
    targets: [{ id: "w", url: srv.url, breaker: breaker(new ManualClock()) }],
    intervalMs: 50,
    timeoutMs: 1000,
    path: "/health",
  });
  try {
    hc.start();
    await new Promise((r) => setTimeout(r, 5));
    const stopped = hc.stop(); // a restart that does not wait
    hc.start();
    await stopped;
    const from = srv.hits.length;
    await new Promise((r) => setTimeout(r, 350));
    // One loop: a round of about 20 ms every 50 ms, so about five; two loops made about ten.
    assert.ok(srv.hits.length - from <= 7, `${srv.hits.length - from} probes in 350 ms`);
    await hc.stop();
    const after = srv.hits.length;
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(srv.hits.length, after, "no probe after stop()");
  } finally {
    await hc.stop();
    await srv.close();
  }
});

Deno.test("stop aborts an in-flight probe and drops its result", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  let arrived!: () => void;
  const reached = new Promise<void>((r) => arrived = r);
  const srv = serve(async () => {
    arrived();
    await gate;
    return new Response("late");
  });
  const b = breaker(new ManualClock(), 1);
  let results = 0;
  const hc = new HealthChecker({
    targets: [{ id: "w", url: srv.url, breaker: b }],
    intervalMs: 10_000,
    timeoutMs: 10_000,
    path: "/health",
    onResult: () => results++,
  });
  try {
    hc.start();
    await reached;
    await hc.stop(); // must resolve without waiting for the 10 s timeout
    assert.equal(results, 0, "an aborted probe is no verdict");
    assert.equal(hc.up("w"), true);
    assert.equal(b.state, "closed");
  } finally {
    release();
    await srv.close();
  }
});

Deno.test("interval 0 turns periodic checks off", async () => {
  const srv = serve(() => new Response("ok"));
  const hc = new HealthChecker({
    targets: [{ id: "w", url: srv.url, breaker: breaker(new ManualClock()) }],
    intervalMs: 0,
    timeoutMs: 1000,
    path: "/health",
  });
  try {
    hc.start();
    assert.equal(hc.running, false);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(srv.hits.length, 0);
  } finally {
    await hc.stop();
    await srv.close();
  }
});

Deno.test("invalid health options are rejected with the value", () => {
  const b = breaker(new ManualClock());
  const base = { intervalMs: 1000, timeoutMs: 1000, path: "/health" };
  assert.throws(
    () => new HealthChecker({ ...base, targets: [], path: "health" }),
    /got "health"/,
  );
  assert.throws(() => new HealthChecker({ ...base, targets: [], timeoutMs: 0 }), /got 0/);
  assert.throws(
    () =>
      new HealthChecker({
        ...base,
        targets: [{ id: "x", url: "http://a", breaker: b }, {
          id: "x",
          url: "http://b",
          breaker: b,
        }],
      }),
    /Duplicate health target id "x"/,
  );
});

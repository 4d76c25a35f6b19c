import assert from "node:assert/strict";
import { ManualClock } from "../util/clock.ts";
import { type BreakerState, CircuitBreaker } from "./circuit_breaker.ts";

function make(threshold = 3, cooldownMs = 1000) {
  const clock = new ManualClock(10_000);
  const changes: [BreakerState, BreakerState][] = [];
  const breaker = new CircuitBreaker({
    threshold,
    cooldownMs,
    clock,
    onChange: (to, from) => changes.push([from, to]),
  });
  return { clock, breaker, changes };
}

function openIt(b: CircuitBreaker, n: number): void {
  for (let i = 0; i < n; i++) b.failure();
}

Deno.test("breaker starts closed and admits", () => {
  const { breaker, changes } = make();
  assert.equal(breaker.state, "closed");
  assert.equal(breaker.stateCode, 0);
  assert.equal(breaker.canAdmit(), true);
  breaker.acquire(); // no-op while closed
  assert.equal(breaker.state, "closed");
  assert.deepEqual(changes, []);
});

Deno.test("breaker opens after threshold consecutive failures, not before", () => {
  const { breaker, changes } = make(3);
  breaker.failure();
  breaker.failure();
  assert.equal(breaker.state, "closed");
  assert.equal(breaker.consecutiveFailures, 2);
  assert.equal(breaker.canAdmit(), true);
  breaker.failure();
  assert.equal(breaker.state, "open");
  assert.equal(breaker.stateCode, 1);
  assert.equal(breaker.canAdmit(), false);
  assert.deepEqual(changes, [["closed", "open"]]);
});

Deno.test("a success resets the consecutive failure count", () => {
  const { breaker } = make(3);
  breaker.failure();
  breaker.failure();
  breaker.success();
  assert.equal(breaker.consecutiveFailures, 0);
  breaker.failure();
  breaker.failure();
  assert.equal(breaker.state, "closed");
  breaker.failure();
  assert.equal(breaker.state, "open");
});

Deno.test("threshold 1 opens on the first failure", () => {
  const { breaker } = make(1);
  breaker.failure();
  assert.equal(breaker.state, "open");
});

Deno.test("open breaker admits nothing until the cooldown has elapsed", () => {
  const { breaker, clock } = make(2, 1000);
  openIt(breaker, 2);
  clock.advance(999);
  assert.equal(breaker.canAdmit(), false);
  breaker.acquire(); // too early: must not take a probe
  assert.equal(breaker.state, "open");
  clock.advance(1);
  assert.equal(breaker.canAdmit(), true);
  // canAdmit is a pure query: asking again changes nothing.
  assert.equal(breaker.canAdmit(), true);
  assert.equal(breaker.state, "open");
});

Deno.test("exactly one probe is let through after the cooldown", () => {
  const { breaker, clock, changes } = make(2, 1000);
  openIt(breaker, 2);
  clock.advance(1000);
  assert.equal(breaker.canAdmit(), true);
  breaker.acquire();
  assert.equal(breaker.state, "half-open");
  assert.equal(breaker.stateCode, 2);
  assert.equal(breaker.canAdmit(), false);
  clock.advance(60_000);
  assert.equal(breaker.canAdmit(), false, "still one probe out, however long it takes");
  breaker.acquire(); // a second acquire must not change anything
  assert.equal(breaker.state, "half-open");
  assert.deepEqual(changes, [["closed", "open"], ["open", "half-open"]]);
});

Deno.test("probe success closes the breaker", () => {
  const { breaker, clock, changes } = make(2, 1000);
  openIt(breaker, 2);
  clock.advance(1000);
  breaker.acquire();
  breaker.success();
  assert.equal(breaker.state, "closed");
  assert.equal(breaker.canAdmit(), true);
  assert.equal(breaker.consecutiveFailures, 0);
  assert.deepEqual(changes, [["closed", "open"], ["open", "half-open"], ["half-open", "closed"]]);
  // Fully closed again: threshold failures are needed to reopen.
  breaker.failure();
  assert.equal(breaker.state, "closed");
  breaker.failure();
  assert.equal(breaker.state, "open");
});

Deno.test("probe failure reopens for another full cooldown", () => {
  const { breaker, clock, changes } = make(2, 1000);
  openIt(breaker, 2);
  clock.advance(1500);
  breaker.acquire();
  clock.advance(200); // probe takes a while
  breaker.failure();
  assert.equal(breaker.state, "open");
  assert.equal(breaker.canAdmit(), false);
  clock.advance(999);
  assert.equal(breaker.canAdmit(), false, "cooldown restarts at the probe's failure");
  clock.advance(1);
  assert.equal(breaker.canAdmit(), true);
  assert.deepEqual(changes, [["closed", "open"], ["open", "half-open"], ["half-open", "open"]]);
});

Deno.test("release frees the probe slot without restarting the cooldown", () => {
  const { breaker, clock, changes } = make(2, 1000);
  openIt(breaker, 2);
  clock.advance(1000);
  breaker.release(breaker.acquire());
  assert.equal(breaker.state, "open");
  assert.equal(breaker.canAdmit(), true, "the next request may probe at once");
  breaker.acquire();
  assert.equal(breaker.state, "half-open");
  breaker.success();
  assert.equal(breaker.state, "closed");
  assert.deepEqual(changes, [
    ["closed", "open"],
    ["open", "half-open"],
    ["half-open", "open"],
    ["open", "half-open"],
    ["half-open", "closed"],
  ]);
});

Deno.test("release is a no-op when closed or open", () => {
  const { breaker, clock, changes } = make(2, 1000);
  breaker.release(breaker.acquire());
  assert.equal(breaker.state, "closed");
  openIt(breaker, 2);
  breaker.release(1);
  assert.equal(breaker.state, "open");
  clock.advance(500);
  assert.equal(breaker.canAdmit(), false, "release must not shorten the cooldown");
  assert.deepEqual(changes, [["closed", "open"]]);
});

Deno.test("only the probe frees the probe slot: a straggler's release, or an old probe's, does not", () => {
  const { breaker, clock } = make(1, 1000);
  const straggler = breaker.acquire(); // admitted while closed
  assert.equal(straggler, 0);
  breaker.failure();
  clock.advance(1000);
  const probe = breaker.acquire();
  assert.ok(probe > 0);
  breaker.release(straggler); // its client went away: no verdict, and not the probe
  assert.equal(breaker.state, "half-open");
  assert.equal(breaker.canAdmit(), false, "no second probe while the first is out");
  breaker.failure(); // the probe fails: open again
  clock.advance(1000);
  const next = breaker.acquire();
  breaker.release(probe); // the first probe's token is stale
  assert.equal(breaker.state, "half-open");
  breaker.release(next);
  assert.equal(breaker.state, "open");
  assert.equal(breaker.canAdmit(), true);
});

Deno.test("verdicts of stragglers while open are ignored", () => {
  const { breaker, clock } = make(2, 1000);
  openIt(breaker, 2);
  clock.advance(600);
  breaker.success(); // a request admitted before opening answers late
  assert.equal(breaker.state, "open", "a stale success must not close the breaker");
  breaker.failure();
  clock.advance(400);
  assert.equal(breaker.canAdmit(), true, "a stale failure must not extend the cooldown");
});

Deno.test("invalid options are rejected with the value", () => {
  const clock = new ManualClock();
  assert.throws(() => new CircuitBreaker({ threshold: 0, cooldownMs: 1, clock }), /got 0/);
  assert.throws(() => new CircuitBreaker({ threshold: 1.5, cooldownMs: 1, clock }), /got 1.5/);
  assert.throws(() => new CircuitBreaker({ threshold: 1, cooldownMs: -1, clock }), /got -1/);
});

Deno.test("cooldown 0 lets a probe through immediately", () => {
  const { breaker } = make(1, 0);
  breaker.failure();
  assert.equal(breaker.state, "open");
  assert.equal(breaker.canAdmit(), true);
  breaker.acquire();
  assert.equal(breaker.canAdmit(), false);
});

Deno.test("since: the clock time of the last transition, not moved by verdicts that change nothing", () => {
  const { clock, breaker } = make(2, 1000);
  assert.equal(breaker.since, 10_000, "creation time before any change");
  clock.advance(50);
  breaker.failure(); // still closed
  breaker.success();
  assert.equal(breaker.since, 10_000);
  clock.advance(50);
  openIt(breaker, 2);
  assert.equal(breaker.state, "open");
  assert.equal(breaker.since, 10_100);
  clock.advance(1000);
  breaker.failure(); // ignored while open
  assert.equal(breaker.since, 10_100);
  breaker.acquire();
  assert.equal(breaker.state, "half-open");
  assert.equal(breaker.since, 11_100);
  clock.advance(7);
  breaker.success();
  assert.equal(breaker.since, 11_107);
});

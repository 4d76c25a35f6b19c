import assert from "node:assert/strict";
import { chunkHashes } from "../prefix/mod.ts";
import { anyCandidate, candidates, choose, record, SESSION_REASON } from "./choose.ts";
import type { Backend } from "./pool.ts";
import { testState } from "./testing.ts";

const W = ["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"];
const hashes = chunkHashes("system: you are helpful. ".repeat(20), 32);

Deno.test("candidates: admitted workers not tried yet, in order", () => {
  const s = testState(W, { worker: { maxInflight: 1 } });
  const [a, b, c] = s.backends;
  assert.deepEqual(candidates(s.backends, new Set()).map((x) => x.id), ["w1", "w2", "w3"]);
  a.up = false; // health check failed
  b.inflight = 1; // at max_inflight
  assert.deepEqual(candidates(s.backends, new Set()).map((x) => x.id), ["w3"]);
  assert.deepEqual(candidates(s.backends, new Set<Backend>([c])), []);
  assert.equal(anyCandidate(s.backends, new Set<Backend>([c])), false);
  for (let i = 0; i < 5; i++) c.breaker.failure(); // opens
  assert.deepEqual(candidates(s.backends, new Set()), []);
});

Deno.test("choose: the strategy picks among candidates; the choice records the prefix", () => {
  const s = testState(W, { router: { strategy: "prefixaware" } });
  const first = choose(
    s,
    { hashes, sessionId: null, served: null, previousResponseId: null },
    new Set(),
    false,
    0,
  )!;
  assert.match(first.reason, /^fallback-/, "nothing held yet: least-loaded fallback");
  assert.equal(first.match, 0);
  record(first, hashes);
  const again = choose(
    s,
    { hashes, sessionId: null, served: null, previousResponseId: null },
    new Set(),
    false,
    0,
  )!;
  assert.equal(again.backend, first.backend);
  assert.equal(again.reason, "longest-prefix");
  assert.equal(again.match, hashes.length / 2);
  const retry = choose(
    s,
    { hashes, sessionId: null, served: null, previousResponseId: null },
    new Set([first.backend]),
    true,
    0,
  )!;
  assert.notEqual(retry.backend, first.backend, "a tried worker is never chosen again");
  assert.match(retry.reason, /^retry-after-/);
  assert.equal(
    choose(
      s,
      { hashes, sessionId: null, served: null, previousResponseId: null },
      new Set(s.backends),
      true,
      0,
    ),
    null,
  );
});

Deno.test("choose: a pinned session goes to its worker while it is a candidate", () => {
  const s = testState(W, { router: { strategy: "roundrobin" } });
  const req = { hashes, sessionId: "sess", served: null, previousResponseId: null };
  const first = choose(s, req, new Set(), false, 0)!;
  assert.notEqual(first.reason, SESSION_REASON);
  for (let i = 0; i < 4; i++) {
    const c = choose(s, req, new Set(), false, 0)!;
    assert.equal(c.backend, first.backend);
    assert.equal(c.reason, SESSION_REASON);
  }
  first.backend.up = false;
  const moved = choose(s, req, new Set(), false, 0)!;
  assert.notEqual(moved.backend, first.backend);
  assert.equal(s.sessions.get("sess"), moved.backend, "the pin follows the new choice");
});

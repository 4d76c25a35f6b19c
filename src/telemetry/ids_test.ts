import assert from "node:assert/strict";
import { RandomIds } from "./ids.ts";

Deno.test("ids: lower-case hex of the right length, distinct across pool refills", () => {
  const ids = new RandomIds();
  const seen = new Set<string>();
  // 2 000 trace ids and span ids use about 48 KB: a dozen refills of the 8 KiB pool.
  for (let i = 0; i < 2000; i++) {
    const t = ids.traceId();
    const s = ids.spanId();
    assert.match(t, /^[0-9a-f]{32}$/);
    assert.match(s, /^[0-9a-f]{16}$/);
    assert.notEqual(t, "0".repeat(32));
    assert.ok(!seen.has(t) && !seen.has(s));
    seen.add(t).add(s);
  }
});

Deno.test("ids: every hex digit occurs, at a share near 1/16", () => {
  const ids = new RandomIds();
  const counts = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < 5000; i++) {
    for (const c of ids.traceId()) {
      counts.set(c, (counts.get(c) ?? 0) + 1);
      total++;
    }
  }
  assert.equal(counts.size, 16);
  for (const [c, n] of counts) assert.ok(Math.abs(n / total - 1 / 16) < 0.01, `${c}: ${n / total}`);
});

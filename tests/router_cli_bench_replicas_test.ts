/**
 * `cmd/bench.ts --replicas R`: per sessions point × seed, 1 router and R replicas with and without
 * Redis sync over simulated workers, and the KV-cached share per arm in `replicas.md`. Tiny sizes.
 */

import assert from "node:assert/strict";
import { main } from "../cmd/bench.ts";
import { redisSkipReason } from "../src/sync/testing.ts";

const tiny = [
  "--sessions",
  "2,3",
  "--seeds",
  "1",
  "--turns",
  "3",
  "--workers",
  "3",
  "--time-scale",
  "0.01",
  "--max-tokens",
  "8",
];

Deno.test({
  name: "bench --replicas 2: one router, replicas with and without sync, a table per arm",
  ignore: redisSkipReason !== null,
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "bench-replicas-" });
    try {
      assert.equal(await main(["--replicas", "2", ...tiny, "--out", out, "--name", "r"]), 0);
      const md = await Deno.readTextFile(`${out}/r/replicas.md`);
      assert.match(md, /\| sessions \| 1 router \| 2 replicas, sync \| 2 replicas, no sync \|/);
      assert.match(md, /^\| 2 \| \d+\.\d\d% \| \d+\.\d\d% \| \d+\.\d\d% \|$/m);
      assert.match(md, /^\| 3 \| \d+\.\d\d% \| \d+\.\d\d% \| \d+\.\d\d% \|$/m);
      assert.match(md, /prefixaware/);
      const runs = JSON.parse(await Deno.readTextFile(`${out}/r/replicas.json`));
      assert.deepEqual(
        runs.map((r: { replicas: number; sync: boolean; sessions: number }) => [
          r.sessions,
          r.replicas,
          r.sync,
        ]),
        [[2, 1, false], [2, 2, true], [2, 2, false], [3, 1, false], [3, 2, true], [3, 2, false]],
      );
      // With sync every follow-up turn still reaches its session's worker.
      for (const r of runs.filter((r: { sync: boolean }) => r.sync)) {
        assert.equal(r.sameWorkerShare, 1);
        assert.equal(r.errors, 0);
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test("bench --replicas --sync off runs no Redis; bad flags are refused", async () => {
  const out = await Deno.makeTempDir({ prefix: "bench-replicas-" });
  try {
    const args = ["--replicas", "2", "--sync", "off", ...tiny, "--sessions", "2"];
    assert.equal(await main([...args, "--out", out, "--name", "off"]), 0);
    const md = await Deno.readTextFile(`${out}/off/replicas.md`);
    assert.match(md, /\| sessions \| 1 router \| 2 replicas, no sync \|/);
    assert.doesNotMatch(md, /replicas, sync/);
    assert.equal(await main(["--replicas", "1"]), 2);
    assert.equal(await main(["--replicas", "2", "--sync", "maybe"]), 2);
    assert.equal(await main(["--replicas", "2", "--offline"]), 2);
    assert.equal(await main(["--sync", "on"]), 2);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

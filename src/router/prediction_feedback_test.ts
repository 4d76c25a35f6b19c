import assert from "node:assert/strict";
import { classifyReport, nextCapacity } from "./prediction_feedback.ts";

// 32-byte chunks at 4 bytes per token: 8 tokens per chunk.
const T = 8;

Deno.test("prediction feedback: a large miss shrinks the tree by the missed chunks, a quarter at most", () => {
  // Predicted 800 cached tokens, engine had 160: 640 tokens = 80 chunks missed.
  assert.equal(
    nextCapacity({ capacity: 0, configured: 0, chunks: 1000, recorded: 50 }, 800, 160, T),
    920,
  );
  assert.equal(
    nextCapacity({ capacity: 5000, configured: 5000, chunks: 1000, recorded: 50 }, 800, 160, T),
    920,
  );
  // A small tree: by at most a quarter of it; never below one chunk, nor below the request
  // just recorded.
  assert.equal(nextCapacity({ capacity: 0, configured: 0, chunks: 10, recorded: 0 }, 800, 0, T), 7);
  assert.equal(nextCapacity({ capacity: 0, configured: 0, chunks: 1, recorded: 0 }, 800, 0, T), 1);
  assert.equal(
    nextCapacity({ capacity: 0, configured: 0, chunks: 120, recorded: 100 }, 800, 0, T),
    100,
  );
});

Deno.test("prediction feedback: small or relative-small misses are noise", () => {
  const tree = { capacity: 0, configured: 0, chunks: 1000, recorded: 50 };
  assert.equal(nextCapacity(tree, 800, 760, T), null); // 40 tokens < 64
  assert.equal(nextCapacity(tree, 2000, 1600, T), null); // 400 tokens but 20% < 25%
  assert.equal(nextCapacity(tree, 800, 900, T), null); // engine had more: nothing to shrink
  assert.equal(nextCapacity(tree, NaN, 0, T), null);
});

Deno.test("prediction feedback: a shrink never raises the capacity", () => {
  assert.equal(
    nextCapacity({ capacity: 500, configured: 5000, chunks: 1000, recorded: 50 }, 800, 160, T),
    null,
  );
});

Deno.test("prediction feedback: accurate reports grow a shrunk capacity back to the budget", () => {
  assert.equal(
    nextCapacity({ capacity: 920, configured: 5000, chunks: 920, recorded: 50 }, 800, 796, T),
    929,
  );
  assert.equal(
    nextCapacity({ capacity: 4990, configured: 5000, chunks: 4990, recorded: 50 }, 800, 800, T),
    5000,
  );
  assert.equal(
    nextCapacity({ capacity: 5000, configured: 5000, chunks: 4990, recorded: 50 }, 800, 800, T),
    null,
  );
  // Unbounded budget: keeps growing from the shrunk value.
  assert.equal(
    nextCapacity({ capacity: 920, configured: 0, chunks: 920, recorded: 50 }, 800, 800, T),
    929,
  );
  assert.equal(
    nextCapacity({ capacity: 0, configured: 0, chunks: 920, recorded: 50 }, 800, 800, T),
    null,
  );
});

Deno.test("prediction feedback: one full miss takes at most a quarter of the tree, in proportion", () => {
  // The report: 1496 predicted, 0 reported, 189 chunks just recorded, a tree of 2000.
  const tree = { capacity: 0, configured: 0, chunks: 2000, recorded: 189 };
  assert.equal(nextCapacity(tree, 1496, 0, T), 1813); // 187 missed chunks < 25% of 2000
  const big = { ...tree, chunks: 20_000 };
  assert.equal(nextCapacity(big, 16_000, 0, T), 18_000); // 2000 missed chunks, 10% of the tree
  // Half missed: half the bound (12.5%), when the missed chunks are more than that.
  assert.equal(nextCapacity({ ...tree, chunks: 1000 }, 4000, 2000, T), 875);
  // Repeated full misses converge geometrically rather than wiping the tree on the first.
  let chunks = 1000;
  for (let i = 0; i < 3; i++) {
    chunks = nextCapacity({ capacity: 0, configured: 0, chunks, recorded: 50 }, 8000, 0, T)!;
  }
  assert.equal(chunks, 421); // 1000 → 750 → 562 → 421
});

Deno.test("prediction feedback: nothing cached while others were in flight is a busy slot, not an eviction", () => {
  const tree = { capacity: 0, configured: 0, chunks: 2000, recorded: 189, othersInflight: 1 };
  assert.equal(classifyReport(tree, 1496, 0, T), "busy-slot");
  assert.equal(nextCapacity(tree, 1496, 0, T), null);
  assert.equal(nextCapacity(tree, 1496, 7, T), null); // less than one chunk: still nothing
  // A partial hit while busy is an eviction of the tail: it shrinks.
  assert.equal(classifyReport(tree, 1496, 400, T), "miss");
  assert.equal(nextCapacity(tree, 1496, 400, T), 1863);
  // Alone on the worker, nothing cached is a miss.
  assert.equal(classifyReport({ othersInflight: 0 }, 1496, 0, T), "miss");
  assert.equal(classifyReport({}, 1496, 0, T), "miss");
  assert.equal(classifyReport({}, 800, 760, T), "noise");
  assert.equal(classifyReport({}, 800, 796, T), "accurate");
});

import assert from "node:assert/strict";
import { nextCapacity } from "./prediction_feedback.ts";

// 32-byte chunks at 4 bytes per token: 8 tokens per chunk.
const T = 8;

Deno.test("prediction feedback: a large miss shrinks the tree by the missed chunks", () => {
  // Predicted 800 cached tokens, engine had 160: 640 tokens = 80 chunks missed.
  assert.equal(
    nextCapacity({ capacity: 0, configured: 0, chunks: 1000, recorded: 50 }, 800, 160, T),
    920,
  );
  assert.equal(
    nextCapacity({ capacity: 5000, configured: 5000, chunks: 1000, recorded: 50 }, 800, 160, T),
    920,
  );
  // Never below one chunk, nor below the request just recorded.
  assert.equal(nextCapacity({ capacity: 0, configured: 0, chunks: 10, recorded: 0 }, 800, 0, T), 1);
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

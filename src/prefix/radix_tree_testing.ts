/**
 * Test helpers for RadixTree's tests: chunk sequences written as small ids, the held sequences
 * read back as id lists, and the size counters checked against a full recount.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { RadixTree } from "./radix_tree.ts";
import type { ChunkHashes } from "./types.ts";

/** Sequence of chunk ids → hash pairs (`hi = id`, `lo = ~id`), readable in table tests. */
export function s(...ids: number[]): ChunkHashes {
  const out = new Uint32Array(ids.length * 2);
  ids.forEach((id, i) => {
    out[2 * i] = id;
    out[2 * i + 1] = ~id >>> 0;
  });
  return out;
}

/** Held sequences as sorted id lists. */
export function held(tree: RadixTree): string[] {
  const out: string[] = [];
  for (const h of tree.sequences()) {
    const ids: number[] = [];
    for (let i = 0; i < h.length; i += 2) ids.push(h[i]);
    out.push(ids.join(","));
  }
  return out.sort();
}

/** The tree's size counters, asserted equal to a full recount, and its node count. */
export function sizes(tree: RadixTree) {
  const { chunks, terminals, evictions } = tree.stats();
  const re = tree.recount();
  assert.equal(re.chunks, chunks, "chunks counter differs from recount");
  assert.equal(re.terminals, terminals, "terminals counter differs from recount");
  return { chunks, terminals, evictions, nodes: re.nodes };
}

/**
 * Micro-benchmarks of the prefix layer: chunking, one tree lookup, one insert, and the lookup
 * pattern of a prefixaware decision (one `match` per admitted worker). Budgets the decision must
 * meet: 200 KB prompt × 64 workers ≤ 2 ms, 6 KB × 4 workers ≤ 20 µs.
 *
 * Run: `deno bench src/prefix/prefix_bench.ts`
 *
 * @module
 */

import { SeededRng } from "../util/rng.ts";
import { chunkHashes } from "./chunker.ts";
import { RadixTree } from "./radix_tree.ts";
import type { ChunkHashes } from "./types.ts";

const CHUNK = 32;
const rng = new SeededRng(42);
const WORDS = ["the", "cache", "router", "prefix", "token", "日本語", "café", "worker", "🙂", "kv"];

/** Pseudo-random text of about `bytes` UTF-8 bytes. */
function text(bytes: number): string {
  let out = "";
  while (out.length < bytes) out += WORDS[rng.int(WORDS.length)] + " ";
  return out.slice(0, bytes);
}

// ---- chunking ----

const text4k = text(4 * 1024);
const text200k = text(200 * 1024);

Deno.bench("chunkHashes 4 KB", { group: "chunk" }, () => {
  chunkHashes(text4k, CHUNK);
});

Deno.bench("chunkHashes 200 KB", { group: "chunk" }, () => {
  chunkHashes(text200k, CHUNK);
});

// ---- one tree: 1000 related prompts (shared 1 KB system prompt, 20 conversations) ----

const system = text(1024);
const conversations = Array.from({ length: 20 }, () => text(1024));
const related: ChunkHashes[] = [];
for (let i = 0; i < 1000; i++) {
  // system + conversation + growing history + a fresh 1 KB turn ≈ 4 KB (128 chunks)
  const conv = conversations[i % 20];
  related.push(chunkHashes(system + conv + text(1024) + text(1024), CHUNK));
}
const tree = new RadixTree({ maxChunks: 0 });
for (const h of related) tree.insert(h);
// The query shares system + conversation (64 chunks) with held prompts, then differs.
const query4k = chunkHashes(system + conversations[3] + text(2048), CHUNK);
const held4k = related[503];

Deno.bench("RadixTree.match 4 KB, partial hit, 1000 prompts held", { group: "tree" }, () => {
  tree.match(query4k);
});

Deno.bench("RadixTree.match 4 KB, full hit, 1000 prompts held", { group: "tree" }, () => {
  tree.match(held4k);
});

const fresh = Array.from({ length: 1000 }, () => chunkHashes(system + text(3 * 1024), CHUNK));
const bounded = new RadixTree({ maxChunks: 64 * 1024 });
let next = 0;
Deno.bench("RadixTree.insert 4 KB, 64 Ki-chunk budget (steady-state eviction)", {
  group: "tree",
}, () => {
  bounded.insert(fresh[next]);
  next = (next + 1) % fresh.length;
});

// ---- decision shape: one match per worker ----

/** `workers` trees, each holding `prompt` minus its last chunk plus a few unrelated prompts. */
function fleet(workers: number, prompt: ChunkHashes, noise: number): RadixTree[] {
  const trees: RadixTree[] = [];
  const almost = prompt.slice(0, prompt.length - 2); // worst case: compare nearly every chunk
  for (let w = 0; w < workers; w++) {
    const t = new RadixTree({ maxChunks: 0 });
    for (let i = 0; i < 4; i++) t.insert(chunkHashes(text(noise), CHUNK));
    t.insert(almost);
    trees.push(t);
  }
  return trees;
}

function matchAll(trees: RadixTree[], h: ChunkHashes): number {
  let best = 0;
  for (let i = 0; i < trees.length; i++) best = Math.max(best, trees[i].match(h));
  return best;
}

const text6k = text(6 * 1024);
const hashes6k = chunkHashes(text6k, CHUNK);
const hashes200k = chunkHashes(text200k, CHUNK);
const four = fleet(4, hashes6k, 6 * 1024);
const sixtyFour = fleet(64, hashes200k, 8 * 1024);

Deno.bench("decision: match 6 KB (192 chunks) in 4 trees", { group: "decision" }, () => {
  matchAll(four, hashes6k);
});

Deno.bench("decision: chunk + match 6 KB in 4 trees", { group: "decision" }, () => {
  matchAll(four, chunkHashes(text6k, CHUNK));
});

Deno.bench("decision: match 200 KB (6400 chunks) in 64 trees", { group: "decision" }, () => {
  matchAll(sixtyFour, hashes200k);
});

Deno.bench("decision: chunk + match 200 KB in 64 trees", { group: "decision" }, () => {
  matchAll(sixtyFour, chunkHashes(text200k, CHUNK));
});

/**
 * The node of `RadixTree`, its LRU list, and the two hash helpers its walks use: the small-integer
 * child key of a chunk hash, and the binary search for where a chained edge stops agreeing with a
 * request.
 *
 * @module
 */

import type { ChunkHashes } from "./types.ts";

/** One node of the tree: the edge from its parent, its children, and its place in the LRU list. */
export class Node {
  /** Hash pairs on the edge from the parent to this node (empty for the root). */
  edge: Uint32Array;
  parent: Node | null;
  /** Children keyed by `childKey` of their first chunk; colliding keys chain via `keyNext`. */
  children: Map<number, Node> | null = null;
  childCount = 0;
  /** Next child of the same parent with the same key. */
  keyNext: Node | null = null;
  terminal = false;
  /** LRU list links (towards the head = least recent, towards the tail = most recent). */
  prev: Node | null = null;
  next: Node | null = null;

  constructor(edge: Uint32Array, parent: Node | null) {
    this.edge = edge;
    this.parent = parent;
  }
}

export const EMPTY = new Uint32Array(0);

/** An intrusive doubly linked list of nodes: head = least recently used, tail = most recent. */
export class LruList {
  head: Node | null = null;
  tail: Node | null = null;
  /** Nodes in the list. */
  size = 0;

  append(x: Node): void {
    this.size++;
    x.prev = this.tail;
    x.next = null;
    if (this.tail === null) this.head = x;
    else this.tail.next = x;
    this.tail = x;
  }

  remove(x: Node): void {
    this.size--;
    if (x.prev === null) this.head = x.next;
    else x.prev.next = x.next;
    if (x.next === null) this.tail = x.prev;
    else x.next.prev = x.prev;
    x.prev = null;
    x.next = null;
  }

  moveToTail(x: Node): void {
    if (this.tail === x) return;
    this.remove(x);
    this.append(x);
  }

  /** Puts `x` right after `anchor` (towards the tail). */
  insertAfter(anchor: Node, x: Node): void {
    this.size++;
    x.prev = anchor;
    x.next = anchor.next;
    if (anchor.next === null) this.tail = x;
    else anchor.next.prev = x;
    anchor.next = x;
  }

  clear(): void {
    this.head = null;
    this.tail = null;
    this.size = 0;
  }
}

/**
 * Small-integer (Smi) key of a chunk hash: 30 bits, so `Map` lookups never box a number. Both
 * halves are still compared after the lookup.
 */
export function childKey(hi: number, lo: number): number {
  return (lo ^ Math.imul(hi, 0x9e3779b1)) & 0x3fffffff;
}

/**
 * Hash words of `edge` that agree with `hashes` from `at`, comparing at most `lim` words, when both
 * are chained (agreement is monotone: a prefix of the words agrees, the rest does not). The first
 * chunk is known to agree. Checks the last chunk in reach, then binary-searches the first chunk
 * that differs.
 */
export function chainedCommon(
  edge: Uint32Array,
  hashes: ChunkHashes,
  at: number,
  lim: number,
): number {
  const last = lim - 2;
  if (edge[last] === hashes[at + last] && edge[last + 1] === hashes[at + last + 1]) return lim;
  // Chunk `lo` agrees (or is 0), chunk `hi` differs; find the first differing chunk.
  let lo = 0;
  let hi = last >>> 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    const w = 2 * mid;
    if (edge[w] === hashes[at + w] && edge[w + 1] === hashes[at + w + 1]) lo = mid;
    else hi = mid;
  }
  return 2 * hi;
}

/**
 * RadixTree: what the router believes one worker holds in its KV cache, as a compressed radix tree
 * over chained 64-bit chunk hashes.
 *
 * Rule:
 * - `match(h)` walks from the root along `h` and returns how many chunks it could follow; the walk
 *   may end inside an edge. It does not refresh recency (a lookup is not a use: only the worker
 *   that gets the request touches its cache).
 * - `insert(h)` follows `h`, splits the edge where it diverges, hangs the new suffix below, marks
 *   the end node terminal and moves every node of the path to the most-recent end of the LRU list.
 * - Capacity `maxChunks` (the worker's `kv_budget`; 0 = unbounded) counts edge chunks. After an
 *   insert, while chunks > maxChunks, the least recently used leaf is evicted: its edge chunks go,
 *   a parent left childless and non-terminal is pruned, and a parent left non-terminal with one
 *   child is merged into that child so the tree stays compressed. The sequence just inserted is
 *   never evicted: a sequence longer than the budget is inserted as its first `maxChunks` chunks
 *   (the longest prefix that fits; the dropped tail was never held, so it is not counted as an
 *   eviction). A leaf's recency is the last insert that covered its whole sequence (the insert
 *   itself or one that extended it); eviction is per leaf edge, not per chunk.
 * - `resize(max)` (prediction feedback, a reload) trims to the new capacity: least-recently-used
 *   leaves go and the last one only loses the tail of its edge, so a shrink by a few chunks never
 *   takes a whole branch (with the shared prefix merged into it, possibly the whole tree).
 * - `touch(h)` refreshes the recency of what is held along `h` (the engine just ran it).
 * - `truncate(h, k)` (the engine reported fewer cached chunks than predicted) removes the subtree
 *   that continues `h` past its first `k` chunks; removed chunks count as evictions.
 * - `clear()` empties the tree; `inserts`, `queries` and `evictions` stay monotonic (Prometheus).
 *
 * LRU without a heap: one intrusive doubly linked list holds every non-root node. An insert moves
 * the path's nodes to the tail deepest first, so a node always sits before all of its ancestors.
 * The head therefore has no descendants, i.e. it is the least recently used leaf, and a node whose
 * children were all evicted is already at the right place when it becomes a leaf.
 *
 * Cost: `match` is O(chunks compared + nodes on the path) with no allocation: one `Map.get` per
 * node (keyed by a small integer derived from the first chunk hash, both halves then compared; keys
 * that collide chain through `keyNext`), then a tight `Uint32Array` compare along the edge (about
 * 2 ns a chunk). With `chained: true` (sequences from `chunkHashes`, where hash `i` covers the
 * whole prefix up to chunk `i`, so equality at `i` implies equality before it) an edge is checked
 * by its last chunk the request reaches, and a mismatch is located by binary search: O(nodes on the
 * path × log edge length), so a router whose every worker holds the same long prefix does not pay
 * prompt length × workers per decision.
 * `insert` is the same walk plus O(1) per path node for the LRU moves, one copy of the new suffix
 * and one node per split. An eviction is O(1) plus a copy when two edges merge.
 *
 * Memory: a held chunk costs {@link CHUNK_BYTES} bytes of hash, a node about {@link NODE_BYTES}
 * (the node object, its edge array, its entry in the parent's child map, LRU links; measured in
 * docs/performance.md). `maxChunks` bounds the first, `maxNodes` the second, so a tree holds at most
 * `maxChunks × CHUNK_BYTES + maxNodes × NODE_BYTES` bytes whatever the shape of what is inserted
 * (prompts that differ only in their last chunk make one node per chunk), plus the nodes of the
 * path just inserted, which is never evicted (one per turn of a conversation, say).
 * `insert` copies the part of `hashes` it keeps (callers may reuse their buffers); edges
 * created by splits are `subarray` views of that copy. A node that loses a child re-copies its edge
 * when the edge covers less than half of its buffer, so evicted tails do not stay reachable.
 *
 * @module
 */

import { chainedCommon, childKey, EMPTY, LruList, Node } from "./radix_node.ts";
import type { ChunkHashes, PrefixIndex, PrefixIndexStats } from "./types.ts";

/** Options of {@linkcode RadixTree}. */
export interface RadixTreeOptions {
  /** Capacity in chunks (the worker's `kv_budget`); 0 = unbounded. */
  readonly maxChunks: number;
  /**
   * Nodes at most (0 = unbounded): the budget on the node overhead that `maxChunks` does not see
   * (see "Memory" above); least-recently-used leaves are evicted while either bound is passed.
   */
  readonly maxNodes?: number;
  /**
   * Sequences are chained hashes (as `chunkHashes` makes them): equal hashes at chunk `i` mean equal
   * prefixes up to `i`. Lets `match` skip whole edges; gives the same answers for such sequences
   * (up to 64-bit hash collisions, which the index already treats as equal prefixes). Default false.
   */
  readonly chained?: boolean;
}

/** Bytes of one held chunk (two 32-bit hash halves). */
export const CHUNK_BYTES = 8;
/** Bytes of one node, measured (docs/performance.md, "Memory bound"), rounded up. */
export const NODE_BYTES = 340;

/** Counts from a full walk of the tree, for tests and debugging. */
export interface RadixTreeRecount {
  /** Sum of edge lengths, in chunks. */
  readonly chunks: number;
  /** Nodes that end an inserted sequence. */
  readonly terminals: number;
  /** Nodes besides the root. */
  readonly nodes: number;
  /** Nodes without children besides the root. */
  readonly leaves: number;
}

/** Per-worker prefix index: a compressed radix tree with LRU eviction over its leaves. */
export class RadixTree implements PrefixIndex {
  #maxChunks: number;
  #maxNodes: number;
  readonly #chained: boolean;
  #root = new Node(EMPTY, null);
  /** Every node but the root: head = least recently used, tail = most recently used. */
  readonly #lru = new LruList();
  #chunks = 0;
  #terminals = 0;
  #inserts = 0;
  #queries = 0;
  #evictions = 0;

  /** @param options.maxChunks capacity in chunks, a non-negative integer; 0 = unbounded */
  constructor(options: RadixTreeOptions) {
    const max = options.maxChunks;
    if (!Number.isInteger(max) || max < 0) {
      throw new RangeError(`maxChunks must be a non-negative integer, got ${max}`);
    }
    this.#maxChunks = max;
    const maxNodes = options.maxNodes ?? 0;
    if (!Number.isInteger(maxNodes) || maxNodes < 0) {
      throw new RangeError(`maxNodes must be a non-negative integer, got ${maxNodes}`);
    }
    this.#maxNodes = maxNodes;
    this.#chained = options.chained ?? false;
  }

  /** Longest prefix of `hashes` held, in chunks. Does not refresh recency. */
  match(hashes: ChunkHashes): number {
    this.#queries++;
    const len = hashes.length & ~1;
    let node = this.#root;
    let i = 0; // index into `hashes` (two per chunk)
    while (i < len) {
      const child = this.#child(node, hashes[i], hashes[i + 1]);
      if (child === undefined) break;
      const edge = child.edge;
      const lim = Math.min(edge.length, len - i);
      let j = 2; // first chunk already compared by #child
      if (this.#chained && lim > 4) j = chainedCommon(edge, hashes, i, lim);
      else {
        while (j < lim && edge[j] === hashes[i + j] && edge[j + 1] === hashes[i + j + 1]) j += 2;
      }
      i += j;
      if (j < edge.length) break; // ended inside the edge
      node = child;
    }
    return i >>> 1;
  }

  /** Records that the worker now holds `hashes`; refreshes the path's recency, then evicts. */
  insert(hashes: ChunkHashes): void {
    this.#inserts++;
    let n = hashes.length >>> 1;
    if (this.#maxChunks > 0 && n > this.#maxChunks) n = this.#maxChunks;
    if (n === 0) return;
    const len = 2 * n;
    let node = this.#root;
    let i = 0;
    for (;;) {
      if (i === len) {
        if (!node.terminal) {
          node.terminal = true;
          this.#terminals++;
        }
        break;
      }
      const child = this.#child(node, hashes[i], hashes[i + 1]);
      if (child === undefined) {
        // Copy: the caller may reuse `hashes`.
        const leaf = new Node(hashes.slice(i, len), node);
        leaf.terminal = true;
        this.#addChild(node, leaf);
        this.#lru.append(leaf);
        this.#chunks += (len - i) >>> 1;
        this.#terminals++;
        node = leaf;
        break;
      }
      const edge = child.edge;
      const lim = Math.min(edge.length, len - i);
      let j = 2;
      while (j < lim && edge[j] === hashes[i + j] && edge[j + 1] === hashes[i + j + 1]) j += 2;
      node = j < edge.length ? this.#split(child, j) : child;
      i += j;
    }
    // Deepest first, so that every node ends up before its ancestors.
    for (let x: Node | null = node; x !== this.#root && x !== null; x = x.parent) {
      this.#lru.moveToTail(x);
    }
    if (this.#maxChunks > 0 || this.#maxNodes > 0) this.#evictTo(this.#maxChunks, node);
  }

  /**
   * Changes the capacity to `maxChunks` (0 = unbounded) and, when given, the node budget, and
   * trims the tree until it fits: least-recently-used leaves go, and the last one only in part
   * (the tail of its edge), so that a shrink by a few chunks does not take a whole branch with
   * it (an engine evicts a sequence's blocks tail first too). Used when the engine's reports show
   * it holds less than the tree believes, and when a reload changes the budgets.
   */
  resize(maxChunks: number, maxNodes = this.#maxNodes): void {
    if (!Number.isInteger(maxChunks) || maxChunks < 0) {
      throw new RangeError(`maxChunks must be a non-negative integer, got ${maxChunks}`);
    }
    if (!Number.isInteger(maxNodes) || maxNodes < 0) {
      throw new RangeError(`maxNodes must be a non-negative integer, got ${maxNodes}`);
    }
    this.#maxChunks = maxChunks;
    this.#maxNodes = maxNodes;
    if (maxChunks > 0 || this.#maxNodes > 0) this.#evictTo(maxChunks, null, true);
  }

  /**
   * Refreshes the recency of what is held along `hashes` (the engine just used it) without
   * inserting anything; not counted as an insert or a query.
   */
  touch(hashes: ChunkHashes): void {
    const len = hashes.length & ~1;
    let node = this.#root;
    let i = 0;
    while (i < len) {
      const child = this.#child(node, hashes[i], hashes[i + 1]);
      if (child === undefined) break;
      node = child;
      const n = child.edge.length;
      if (n > len - i || !this.#edgeAgrees(child.edge, hashes, i)) break;
      i += n;
    }
    for (let x: Node | null = node; x !== this.#root && x !== null; x = x.parent) {
      this.#lru.moveToTail(x);
    }
  }

  /** Whether the whole of `edge` agrees with `hashes` from `at` (its first chunk does). */
  #edgeAgrees(edge: Uint32Array, hashes: ChunkHashes, at: number): boolean {
    const n = edge.length;
    if (this.#chained && n > 4) return chainedCommon(edge, hashes, at, n) === n;
    for (let j = 2; j < n; j++) if (edge[j] !== hashes[at + j]) return false;
    return true;
  }

  /**
   * Evicts LRU leaves until at most `max` chunks (0: no bound) and `maxNodes` nodes are held,
   * never `keep` (the path just inserted). With `partial`, the last leaf the chunk bound needs
   * loses only the tail of its edge.
   */
  #evictTo(max: number, keep: Node | null, partial = false): void {
    const maxNodes = this.#maxNodes;
    while ((max > 0 && this.#chunks > max) || (maxNodes > 0 && this.#lru.size > maxNodes)) {
      const lru = this.#lru.head;
      // Unreachable while the list invariant holds: the path just inserted fits the budget.
      if (lru === null || lru === keep) break;
      const excess = this.#chunks - max;
      const n = lru.edge.length >>> 1;
      if (partial && excess > 0 && excess < n && !(maxNodes > 0 && this.#lru.size > maxNodes)) {
        lru.edge = lru.edge.slice(0, 2 * (n - excess));
        this.#chunks -= excess;
        this.#evictions += excess;
        break;
      }
      this.#evictedChunks(lru);
      this.#removeLeaf(lru);
    }
  }

  /**
   * Drops what is held along `hashes` beyond its first `keepChunks` chunks: the subtree that
   * continues `hashes` past that point (other branches that diverge from `hashes` later stay, as
   * chained hashes make them different prefixes). The node left at the cut becomes a terminal
   * leaf when nothing remains below it. Removed chunks count as evictions (the engine evicted them).
   * Does not refresh recency and does not count as a query.
   */
  truncate(hashes: ChunkHashes, keepChunks: number): void {
    if (!Number.isInteger(keepChunks) || keepChunks < 0) {
      throw new RangeError(`keepChunks must be a non-negative integer, got ${keepChunks}`);
    }
    const len = hashes.length & ~1;
    const keep = keepChunks * 2;
    if (keep >= len) return;
    let node = this.#root;
    let i = 0;
    // Walk to the node whose subtree holds chunk `keep/2` of `hashes`.
    for (;;) {
      const child = this.#child(node, hashes[i], hashes[i + 1]);
      if (child === undefined) return; // nothing held beyond `keep`
      const edge = child.edge;
      if (i + edge.length <= keep) {
        // The cut lies at or below this child's end: the whole edge must match.
        for (let j = 2; j < edge.length; j++) if (edge[j] !== hashes[i + j]) return;
        i += edge.length;
        node = child;
        continue;
      }
      // The cut lies inside this edge (or at its start, when i === keep).
      for (let j = 2; j < keep - i + 2 && j < edge.length; j++) {
        if (edge[j] !== hashes[i + j]) return;
      }
      if (i === keep) {
        this.#removeSubtree(child);
        this.#afterChildRemoved(node);
      } else {
        // Cut the edge after `keep - i` hash words; everything below goes.
        const kept = keep - i;
        const removed = (edge.length - kept) >>> 1;
        this.#chunks -= removed;
        this.#evictions += removed;
        this.#removeChildren(child);
        child.edge = edge.slice(0, kept);
        if (!child.terminal) {
          child.terminal = true;
          this.#terminals++;
        }
      }
      return;
    }
  }

  /** Forgets everything. The cumulative counters (inserts, queries, evictions) stay monotonic. */
  clear(): void {
    this.#root = new Node(EMPTY, null);
    this.#lru.clear();
    this.#chunks = 0;
    this.#terminals = 0;
  }

  /** Chunks held now. */
  get chunks(): number {
    return this.#chunks;
  }

  /** Nodes held now (besides the root). */
  get nodes(): number {
    return this.#lru.size;
  }

  /** What the tree holds now is at most worth this many bytes (see "Memory"). */
  get bytes(): number {
    return this.#chunks * CHUNK_BYTES + this.#lru.size * NODE_BYTES;
  }

  /** Current size counters. */
  stats(): PrefixIndexStats {
    return {
      chunks: this.#chunks,
      terminals: this.#terminals,
      maxChunks: this.#maxChunks,
      inserts: this.#inserts,
      queries: this.#queries,
      evictions: this.#evictions,
    };
  }

  /**
   * Walks the whole tree, checks its structural invariants (compression, leaves are terminal,
   * child keys, parent links, LRU list = all non-root nodes with every node before its ancestors)
   * and returns the counts. Throws on a broken invariant. O(nodes · depth); for tests.
   */
  recount(): RadixTreeRecount {
    let chunks = 0;
    let terminals = 0;
    let nodes = 0;
    let leaves = 0;
    const stack: Node[] = [this.#root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      let count = 0;
      if (node.children !== null) {
        for (const [key, first] of node.children) {
          for (let c: Node | null = first; c !== null; c = c.keyNext) {
            count++;
            if (c.parent !== node) throw new Error("broken parent link");
            if (c.edge.length < 2 || (c.edge.length & 1) !== 0) throw new Error("bad edge length");
            if (childKey(c.edge[0], c.edge[1]) !== key) throw new Error("child under wrong key");
            stack.push(c);
          }
        }
      }
      if (count !== node.childCount) throw new Error("childCount differs from children");
      if (node === this.#root) continue;
      nodes++;
      chunks += node.edge.length >>> 1;
      if (node.terminal) terminals++;
      if (count === 0) {
        leaves++;
        if (!node.terminal) throw new Error("non-terminal leaf");
      } else if (count === 1 && !node.terminal) {
        throw new Error("uncompressed node: non-terminal with one child");
      }
    }
    // The LRU list holds every non-root node once, each before all of its ancestors.
    const seen = new Set<Node>();
    let listed = 0;
    for (let x = this.#lru.head, prev: Node | null = null; x !== null; prev = x, x = x.next) {
      if (x.prev !== prev) throw new Error("broken LRU back link");
      for (let a = x.parent; a !== null && a !== this.#root; a = a.parent) {
        if (seen.has(a)) throw new Error("LRU list has an ancestor before its descendant");
      }
      seen.add(x);
      listed++;
    }
    if (listed !== nodes) throw new Error(`LRU list has ${listed} nodes, tree has ${nodes}`);
    if (nodes !== this.#lru.size) {
      throw new Error(`node counter says ${this.#lru.size}, tree has ${nodes}`);
    }
    return { chunks, terminals, nodes, leaves };
  }

  /** Every held terminal sequence (in no particular order); copies, for tests and debugging. */
  *sequences(): Generator<ChunkHashes> {
    const walk = function* (node: Node, prefix: number[]): Generator<ChunkHashes> {
      const path = prefix.concat(Array.from(node.edge));
      if (node.terminal) yield Uint32Array.from(path);
      if (node.children === null) return;
      for (const first of node.children.values()) {
        for (let c: Node | null = first; c !== null; c = c.keyNext) yield* walk(c, path);
      }
    };
    yield* walk(this.#root, []);
  }

  // ---- children ----

  #child(node: Node, hi: number, lo: number): Node | undefined {
    const children = node.children;
    if (children === null) return undefined;
    let c: Node | null | undefined = children.get(childKey(hi, lo));
    while (c != null && (c.edge[0] !== hi || c.edge[1] !== lo)) c = c.keyNext;
    return c ?? undefined;
  }

  #addChild(parent: Node, child: Node): void {
    if (parent.children === null) parent.children = new Map();
    const key = childKey(child.edge[0], child.edge[1]);
    child.keyNext = parent.children.get(key) ?? null;
    parent.children.set(key, child);
    parent.childCount++;
  }

  #unlinkChild(parent: Node, child: Node): void {
    const children = parent.children!;
    const key = childKey(child.edge[0], child.edge[1]);
    const first = children.get(key)!;
    if (first === child) {
      if (child.keyNext === null) children.delete(key);
      else children.set(key, child.keyNext);
    } else {
      let c = first;
      while (c.keyNext !== child) c = c.keyNext!;
      c.keyNext = child.keyNext;
    }
    child.keyNext = null;
    parent.childCount--;
    if (parent.childCount === 0) parent.children = null;
  }

  /** Puts `next` where `prev` is among its parent's children (same first chunk, same key). */
  #replaceChild(parent: Node, prev: Node, next: Node): void {
    const children = parent.children!;
    const key = childKey(prev.edge[0], prev.edge[1]);
    next.keyNext = prev.keyNext;
    prev.keyNext = null;
    const first = children.get(key)!;
    if (first === prev) {
      children.set(key, next);
    } else {
      let c = first;
      while (c.keyNext !== prev) c = c.keyNext!;
      c.keyNext = next;
    }
  }

  /** Splits `child`'s edge after `at` hash words; returns the new node at the split point. */
  #split(child: Node, at: number): Node {
    const parent = child.parent!;
    const mid = new Node(child.edge.subarray(0, at), parent);
    this.#replaceChild(parent, child, mid);
    child.edge = child.edge.subarray(at);
    child.parent = mid;
    mid.children = new Map([[childKey(child.edge[0], child.edge[1]), child]]);
    mid.childCount = 1;
    this.#lru.insertAfter(child, mid); // an ancestor stays after its descendants
    return mid;
  }

  // ---- removal ----

  #evictedChunks(node: Node): void {
    const n = node.edge.length >>> 1;
    this.#chunks -= n;
    this.#evictions += n;
  }

  /** Removes leaf `leaf` (chunks already counted), then repairs its parent. */
  #removeLeaf(leaf: Node): void {
    const parent = leaf.parent!;
    if (leaf.terminal) this.#terminals--;
    this.#unlinkChild(parent, leaf);
    this.#lru.remove(leaf);
    leaf.parent = null;
    this.#afterChildRemoved(parent);
  }

  /**
   * Restores the invariants of `node` after it lost a child: merge it into its only child when
   * non-terminal, prune it when left empty and non-terminal (only possible for a node that was
   * already uncompressed; kept as a guard), else re-copy its edge if it became a small view.
   */
  #afterChildRemoved(node: Node): void {
    if (node === this.#root) return;
    if (node.childCount === 0) {
      if (node.terminal) {
        this.#compactEdge(node);
      } else {
        this.#evictedChunks(node);
        this.#removeLeaf(node);
      }
    } else if (node.childCount === 1 && !node.terminal) {
      this.#merge(node);
    } else {
      this.#compactEdge(node);
    }
  }

  /** Merges non-terminal `node` into its only child; the child keeps its LRU position. */
  #merge(node: Node): void {
    const child = node.children!.values().next().value!;
    const edge = new Uint32Array(node.edge.length + child.edge.length);
    edge.set(node.edge, 0);
    edge.set(child.edge, node.edge.length);
    const parent = node.parent!;
    child.keyNext = null;
    child.edge = edge;
    child.parent = parent;
    this.#replaceChild(parent, node, child);
    this.#lru.remove(node);
    node.parent = null;
    node.children = null;
  }

  #compactEdge(node: Node): void {
    const edge = node.edge;
    if (edge.length * 2 * Uint32Array.BYTES_PER_ELEMENT < edge.buffer.byteLength) {
      node.edge = edge.slice();
    }
  }

  /** Removes every descendant of `node`, counting their chunks as evicted. */
  #removeChildren(node: Node): void {
    if (node.children === null) return;
    const stack: Node[] = [];
    for (const first of node.children.values()) {
      for (let c: Node | null = first; c !== null; c = c.keyNext) stack.push(c);
    }
    node.children = null;
    node.childCount = 0;
    this.#dropAll(stack);
  }

  /** Unlinks `child` from its parent and removes it with all its descendants. */
  #removeSubtree(child: Node): void {
    this.#unlinkChild(child.parent!, child);
    this.#dropAll([child]);
  }

  #dropAll(stack: Node[]): void {
    while (stack.length > 0) {
      const x = stack.pop()!;
      if (x.children !== null) {
        for (const first of x.children.values()) {
          for (let c: Node | null = first; c !== null; c = c.keyNext) stack.push(c);
        }
      }
      this.#evictedChunks(x);
      if (x.terminal) this.#terminals--;
      this.#lru.remove(x);
      x.parent = null;
      x.children = null;
      x.keyNext = null;
    }
  }
}

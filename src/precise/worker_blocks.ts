/**
 * The blocks one engine holds, as the precise index stores them: slots in typed arrays, found by
 * the router's own hash (for matching) and by the engine's hash (to apply BlockRemoved), with an
 * LRU list for the memory cap and a ring of predicted entries.
 *
 * Rules:
 * - A slot is one engine block: engine hash, own hash, and the tiers that hold it (a bit per
 *   tier: GPU, CPU, other). BlockStored sets a tier bit (on a new slot, or an existing one for
 *   that engine hash), BlockRemoved clears one; a slot with no tier left is freed. Several engine
 *   hashes may map to one own hash (the engine keyed by something the router does not see): each
 *   is its own slot (at most 4 per own hash; a fifth frees the first), and the own hash matches
 *   while any of them is held.
 * - A predicted slot has an own hash, no engine hash and an expiry time; it matches until then.
 *   A real store of the same own hash frees the prediction (confirmed). Predictions sit in a ring
 *   of `maxPredicted`; expired ones are freed from the ring's head by `sweep`, and predicting into
 *   a full ring frees the oldest first.
 * - Cap: at most `maxSlots` slots. Storing into a full store first frees the least recently
 *   stored slot (LRU order by store, touch on re-store; matching does not touch). The owner may
 *   also cap the sum over all workers: `budget.reserve()` is asked before each new slot and may
 *   free a slot of the largest worker.
 *
 * Lookup: two open-addressing tables (linear probing, `Int32Array` of slot + 1, load ≤ 1/2,
 * backward-shift deletion so no tombstones build up), bucket from a mix of both hash words.
 *
 * Memory per slot (measured in `block_index_bench.ts`): own and engine hash 16 B, tier bits 1 B,
 * LRU links 8 B, expiry 8 B, plus 2 table entries at load ≤ 1/2 (≥ 16 B): about 49 B per slot
 * allocated; arrays grow by doubling up to the cap, so 49-98 B per block held.
 *
 * @module
 */

/** Tier indices; a slot's `tiers` has bit `1 << tier` set for each tier holding it. */
export const TIER_GPU = 0;
export const TIER_CPU = 1;
export const TIER_OTHER = 2;
export const TIER_COUNT = 3;
/** `lookup` flag: held only as a prediction. */
export const PREDICTED = 0x80;

/** Asked before a new slot is taken, for a cap over every worker. */
export interface SlotBudget {
  /** Called before taking a slot; may free a slot somewhere (possibly in the caller). */
  reserve(): void;
  /** A slot was taken (+1) or freed (-1). */
  change(delta: number): void;
}

const NO_BUDGET: SlotBudget = { reserve() {}, change() {} };
const MIN_CAP = 256;
/** Most slots (engine hashes) kept for one own hash. */
const MAX_DUPLICATES = 4;

/** `to` with `from` copied into its start. */
function grown<T extends { set(a: ArrayLike<number>): void }>(from: ArrayLike<number>, to: T): T {
  to.set(from);
  return to;
}

function bucketOf(hi: number, lo: number, mask: number): number {
  let h = (lo ^ Math.imul(hi, 0x9e3779b1)) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  return (h ^ (h >>> 13)) & mask;
}

/** One worker's blocks; see the module comment. */
export class WorkerBlocks {
  readonly maxSlots: number;
  readonly maxPredicted: number;
  readonly #budget: SlotBudget;
  #cap = 0;
  #ownHi = new Uint32Array(0);
  #ownLo = new Uint32Array(0);
  #engHi = new Uint32Array(0);
  #engLo = new Uint32Array(0);
  #tiers = new Uint8Array(0);
  #expires = new Float64Array(0);
  #prev = new Int32Array(0);
  #next = new Int32Array(0);
  #ownT = new Int32Array(0);
  #engT = new Int32Array(0);
  #mask = 0;
  #head = -1;
  #tail = -1;
  #free = -1;
  #fresh = 0;
  #used = 0;
  #predicted = 0;
  #ring: Int32Array;
  #ringAt: Float64Array;
  #ringHead = 0;
  #ringLen = 0;
  /** Slots freed to make room (cap), since creation. */
  evictions = 0;

  constructor(maxSlots: number, maxPredicted: number, budget: SlotBudget = NO_BUDGET) {
    this.maxSlots = Math.max(1, maxSlots);
    this.maxPredicted = Math.max(1, Math.min(maxPredicted, this.maxSlots));
    this.#budget = budget;
    this.#ring = new Int32Array(this.maxPredicted);
    this.#ringAt = new Float64Array(this.maxPredicted);
  }

  /** Slots in use (held blocks and predictions). */
  get used(): number {
    return this.#used;
  }

  /** Held blocks (not predictions). */
  get blocks(): number {
    return this.#used - this.#predicted;
  }

  /** Predictions held (some may have expired and wait for `sweep`). */
  get predicted(): number {
    return this.#predicted;
  }

  /** Typed-array bytes held now. */
  get bytes(): number {
    return this.#cap * 33 + this.#ownT.length * 8 + this.#ring.length * 12;
  }

  /** Records that the engine holds block `eng` (own hash `own`) on `tier`. */
  store(eHi: number, eLo: number, oHi: number, oLo: number, tier: number): void {
    let s = this.#findEng(eHi, eLo);
    if (s >= 0 && (this.#ownHi[s] !== oHi || this.#ownLo[s] !== oLo)) {
      this.#free1(s); // the engine reused a hash for other content: the new one wins
      s = -1;
    }
    if (s >= 0) {
      this.#tiers[s] |= 1 << tier;
      this.#touch(s);
      return;
    }
    this.#confirm(oHi, oLo);
    this.#capDuplicates(oHi, oLo);
    s = this.#alloc();
    this.#ownHi[s] = oHi;
    this.#ownLo[s] = oLo;
    this.#engHi[s] = eHi;
    this.#engLo[s] = eLo;
    this.#tiers[s] = 1 << tier;
    this.#expires[s] = 0;
    this.#tableAdd(this.#ownT, s, oHi, oLo);
    this.#tableAdd(this.#engT, s, eHi, eLo);
  }

  /** Adds `tier` to a known engine block (an offload store without tokens); false if unknown. */
  addTier(eHi: number, eLo: number, tier: number): boolean {
    const s = this.#findEng(eHi, eLo);
    if (s < 0) return false;
    this.#tiers[s] |= 1 << tier;
    this.#touch(s);
    return true;
  }

  /** The slot of an engine hash, or -1; its own hash is `ownHiOf(s)`, `ownLoOf(s)`. */
  engineSlot(eHi: number, eLo: number): number {
    return this.#findEng(eHi, eLo);
  }

  ownHiOf(slot: number): number {
    return this.#ownHi[slot];
  }

  ownLoOf(slot: number): number {
    return this.#ownLo[slot];
  }

  /** Drops `tier` from an engine block; false when the hash is unknown. */
  remove(eHi: number, eLo: number, tier: number): boolean {
    const s = this.#findEng(eHi, eLo);
    if (s < 0) return false;
    this.#tiers[s] &= ~(1 << tier);
    if (this.#tiers[s] === 0) this.#free1(s);
    return true;
  }

  /** Drops `tier` from every block (a tier-scoped clear). */
  clearTier(tier: number): void {
    for (let s = this.#head; s >= 0;) {
      const next = this.#next[s];
      if (this.#tiers[s] !== PREDICTED) {
        this.#tiers[s] &= ~(1 << tier);
        if (this.#tiers[s] === 0) this.#free1(s);
      }
      s = next;
    }
  }

  /** Forgets everything (memory shrinks back to nothing). */
  clear(): void {
    this.#budget.change(-this.#used);
    this.#cap = 0;
    this.#ownHi = new Uint32Array(0);
    this.#ownLo = new Uint32Array(0);
    this.#engHi = new Uint32Array(0);
    this.#engLo = new Uint32Array(0);
    this.#tiers = new Uint8Array(0);
    this.#expires = new Float64Array(0);
    this.#prev = new Int32Array(0);
    this.#next = new Int32Array(0);
    this.#ownT = new Int32Array(0);
    this.#engT = new Int32Array(0);
    this.#mask = 0;
    this.#head = this.#tail = this.#free = -1;
    this.#fresh = this.#used = this.#predicted = 0;
    this.#ringHead = this.#ringLen = 0;
  }

  /**
   * What holds own hash `(hi, lo)` at time `now`: the tier bits of every held slot, or
   * `PREDICTED` for an unexpired prediction only, or 0.
   */
  lookup(hi: number, lo: number, now: number): number {
    const t = this.#ownT;
    if (t.length === 0) return 0;
    let flags = 0;
    for (let b = bucketOf(hi, lo, this.#mask);; b = (b + 1) & this.#mask) {
      const e = t[b];
      if (e === 0) return flags;
      const s = e - 1;
      if (this.#ownHi[s] !== hi || this.#ownLo[s] !== lo) continue;
      const tiers = this.#tiers[s];
      if (tiers !== PREDICTED) flags |= tiers;
      else if (this.#expires[s] > now && flags === 0) flags = PREDICTED;
      if ((flags & 1) !== 0) return flags; // GPU: nothing better to find
    }
  }

  /** Predicts own hash `(hi, lo)` until `until` (kept or extended when already predicted). */
  predict(hi: number, lo: number, until: number): void {
    const s = this.#findOwn(hi, lo);
    if (s >= 0) {
      if (this.#tiers[s] !== PREDICTED) return; // held for real
      if (this.#expires[s] < until) this.#expires[s] = until;
      this.#ringPush(s, this.#expires[s]);
      return;
    }
    const n = this.#alloc();
    this.#ownHi[n] = hi;
    this.#ownLo[n] = lo;
    this.#engHi[n] = this.#engLo[n] = 0;
    this.#tiers[n] = PREDICTED;
    this.#expires[n] = until;
    this.#predicted++;
    this.#tableAdd(this.#ownT, n, hi, lo);
    this.#ringPush(n, until);
  }

  /** Frees the prediction of own hash `(hi, lo)`, if any. */
  unpredict(hi: number, lo: number): void {
    const s = this.#findPredicted(hi, lo);
    if (s >= 0) this.#free1(s);
  }

  /** Frees predictions whose time is up, from the ring's head. */
  sweep(now: number): void {
    while (this.#ringLen > 0 && this.#ringAt[this.#ringHead] <= now) this.#ringPop();
  }

  /** Frees the least recently stored slot; false when empty. */
  evictOne(): boolean {
    const s = this.#head;
    if (s < 0) return false;
    this.evictions++;
    this.#free1(s);
    return true;
  }

  #ringPush(slot: number, at: number): void {
    if (this.#ringLen === this.maxPredicted) this.#ringPop();
    const i = (this.#ringHead + this.#ringLen) % this.maxPredicted;
    this.#ring[i] = slot;
    this.#ringAt[i] = at;
    this.#ringLen++;
  }

  /** Takes the ring's head and frees its slot if it is still that prediction, due then. */
  #ringPop(): void {
    const s = this.#ring[this.#ringHead];
    const at = this.#ringAt[this.#ringHead];
    this.#ringHead = (this.#ringHead + 1) % this.maxPredicted;
    this.#ringLen--;
    if (s < this.#cap && this.#tiers[s] === PREDICTED && this.#expires[s] === at) this.#free1(s);
  }

  /** Frees predictions of an own hash that a real store just confirmed. */
  #confirm(hi: number, lo: number): void {
    if (this.#predicted === 0) return;
    for (let s = this.#findPredicted(hi, lo); s >= 0; s = this.#findPredicted(hi, lo)) {
      this.#free1(s);
    }
  }

  /**
   * Keeps at most `MAX_DUPLICATES - 1` other slots of one own hash when a new one is added:
   * same tokens under ever new engine hashes (a buggy or hostile engine) would otherwise grow one
   * probe chain without bound. The slot freed loses only its engine-hash mapping.
   */
  #capDuplicates(hi: number, lo: number): void {
    const t = this.#ownT;
    if (t.length === 0) return;
    let count = 0;
    let first = -1;
    for (let b = bucketOf(hi, lo, this.#mask);; b = (b + 1) & this.#mask) {
      const e = t[b];
      if (e === 0) break;
      const s = e - 1;
      if (this.#ownHi[s] === hi && this.#ownLo[s] === lo && this.#tiers[s] !== PREDICTED) {
        if (first < 0) first = s;
        count++;
      }
    }
    if (count >= MAX_DUPLICATES) this.#free1(first);
  }

  #findPredicted(hi: number, lo: number): number {
    const t = this.#ownT;
    if (t.length === 0) return -1;
    for (let b = bucketOf(hi, lo, this.#mask);; b = (b + 1) & this.#mask) {
      const e = t[b];
      if (e === 0) return -1;
      const s = e - 1;
      if (this.#ownHi[s] === hi && this.#ownLo[s] === lo && this.#tiers[s] === PREDICTED) return s;
    }
  }

  #findOwn(hi: number, lo: number): number {
    return this.#find(this.#ownT, this.#ownHi, this.#ownLo, hi, lo);
  }

  #findEng(hi: number, lo: number): number {
    return this.#find(this.#engT, this.#engHi, this.#engLo, hi, lo);
  }

  #find(t: Int32Array, his: Uint32Array, los: Uint32Array, hi: number, lo: number): number {
    if (t.length === 0) return -1;
    for (let b = bucketOf(hi, lo, this.#mask);; b = (b + 1) & this.#mask) {
      const e = t[b];
      if (e === 0) return -1;
      if (his[e - 1] === hi && los[e - 1] === lo) return e - 1;
    }
  }

  #tableAdd(t: Int32Array, slot: number, hi: number, lo: number): void {
    let b = bucketOf(hi, lo, this.#mask);
    while (t[b] !== 0) b = (b + 1) & this.#mask;
    t[b] = slot + 1;
  }

  /** Removes `slot` from table `t` by backward shift (keeps probe chains unbroken). */
  #tableDel(t: Int32Array, his: Uint32Array, los: Uint32Array, slot: number): void {
    const mask = this.#mask;
    let i = bucketOf(his[slot], los[slot], mask);
    while (t[i] !== slot + 1) i = (i + 1) & mask;
    for (let j = (i + 1) & mask; t[j] !== 0; j = (j + 1) & mask) {
      const k = bucketOf(his[t[j] - 1], los[t[j] - 1], mask);
      // Move t[j] into the hole at i unless its home bucket k lies cyclically in (i, j].
      const inRange = i <= j ? i < k && k <= j : i < k || k <= j;
      if (!inRange) {
        t[i] = t[j];
        i = j;
      }
    }
    t[i] = 0;
  }

  #alloc(): number {
    if (this.#used >= this.maxSlots) this.evictOne();
    this.#budget.reserve();
    let s: number;
    if (this.#free >= 0) {
      s = this.#free;
      this.#free = this.#next[s];
    } else {
      if (this.#fresh === this.#cap) this.#grow();
      s = this.#fresh++;
    }
    this.#used++;
    this.#budget.change(1);
    this.#linkTail(s);
    return s;
  }

  #free1(s: number): void {
    if (this.#tiers[s] === PREDICTED) this.#predicted--;
    else this.#tableDel(this.#engT, this.#engHi, this.#engLo, s);
    this.#tableDel(this.#ownT, this.#ownHi, this.#ownLo, s);
    this.#unlink(s);
    this.#tiers[s] = 0;
    this.#expires[s] = 0;
    this.#next[s] = this.#free;
    this.#free = s;
    this.#used--;
    this.#budget.change(-1);
  }

  #touch(s: number): void {
    if (this.#tail === s) return;
    this.#unlink(s);
    this.#linkTail(s);
  }

  #linkTail(s: number): void {
    this.#prev[s] = this.#tail;
    this.#next[s] = -1;
    if (this.#tail >= 0) this.#next[this.#tail] = s;
    else this.#head = s;
    this.#tail = s;
  }

  #unlink(s: number): void {
    const p = this.#prev[s];
    const n = this.#next[s];
    if (p >= 0) this.#next[p] = n;
    else this.#head = n;
    if (n >= 0) this.#prev[n] = p;
    else this.#tail = p;
  }

  #grow(): void {
    const cap = Math.min(this.maxSlots, Math.max(MIN_CAP, this.#cap * 2));
    this.#ownHi = grown(this.#ownHi, new Uint32Array(cap));
    this.#ownLo = grown(this.#ownLo, new Uint32Array(cap));
    this.#engHi = grown(this.#engHi, new Uint32Array(cap));
    this.#engLo = grown(this.#engLo, new Uint32Array(cap));
    this.#tiers = grown(this.#tiers, new Uint8Array(cap));
    this.#expires = grown(this.#expires, new Float64Array(cap));
    this.#prev = grown(this.#prev, new Int32Array(cap));
    this.#next = grown(this.#next, new Int32Array(cap));
    this.#cap = cap;
    let size = 1;
    while (size < cap * 2) size <<= 1;
    this.#mask = size - 1;
    this.#ownT = new Int32Array(size);
    this.#engT = new Int32Array(size);
    for (let s = this.#head; s >= 0; s = this.#next[s]) {
      this.#tableAdd(this.#ownT, s, this.#ownHi[s], this.#ownLo[s]);
      if (this.#tiers[s] !== PREDICTED) {
        this.#tableAdd(this.#engT, s, this.#engHi[s], this.#engLo[s]);
      }
    }
  }
}

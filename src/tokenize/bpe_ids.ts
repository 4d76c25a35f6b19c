/**
 * Byte-pair encoding of one pre-token on token ids, equivalent to `@huggingface/tokenizers`' BPE
 * model for the configurations it accepts, without the library's per-pair `JSON.stringify` key
 * and per-node objects (a new 8-letter word took about 15 µs; here about 1 µs).
 *
 * Rule: the pre-token's characters (code points) become their vocabulary ids; then, while some
 * adjacent pair has a merge, the pair with the lowest merge rank is merged, the leftmost one when
 * the same pair occurs more than once: the order in which the library's priority queue (score =
 * rank + start position / length) pops them. A pair listed twice among the merges has the rank of
 * its last listing, as in the library's `Map`. With `ignore_merges`, a pre-token that is itself in
 * the vocabulary is that token. The result's ids are the library's token strings mapped as the
 * caller maps them (added tokens first), which {@linkcode BpeIds.create} checks gives the same ids.
 * Guards (`create` returns undefined and the library's model is used): not a BPE model, an
 * end-of-word or continuing-subword suffix, byte fallback, fused unknown tokens, or an added token
 * whose id differs from the vocabulary's. {@linkcode BpeIds.encode} returns undefined, for the
 * caller to use the library, when a character is not in the vocabulary, when a merge would make a
 * token that is not in it, and for pre-tokens over {@linkcode MAX_FAST_SYMBOLS} characters.
 *
 * Cost: one table lookup per adjacent pair at the start and two per merge, and a scan of the
 * symbols per merge: O(n²) comparisons for n characters, which is why long pre-tokens go to the
 * library's O(n log n) queue. The merge table is an open-addressing hash of typed arrays, 16 bytes
 * a slot at most 3/4 full: 4 MiB for Qwen3's 151 k merges, 8 MiB for Llama 3's 280 k; built in
 * about 30 ms at load.
 *
 * @module
 */

import type { Tokenizer } from "@huggingface/tokenizers";

/** Longest pre-token, in characters, encoded here (longer ones: the library's queue). */
export const MAX_FAST_SYMBOLS = 96;

/** The fields of the library's BPE model read here. */
interface BpeModelFields {
  readonly config?: Record<string, unknown>;
  readonly tokens_to_ids: ReadonlyMap<string, number>;
  readonly merges?: readonly unknown[];
  readonly end_of_word_suffix?: unknown;
  readonly continuing_subword_suffix?: unknown;
  readonly byte_fallback?: unknown;
  readonly ignore_merges?: unknown;
  readonly fuse_unk?: unknown;
}

/** Merge table: pair of ids → (rank, merged id); open addressing with linear probing. */
class MergeTable {
  readonly #mask: number;
  readonly #left: Int32Array;
  readonly #right: Int32Array;
  readonly #rank: Int32Array;
  readonly #merged: Int32Array;

  constructor(entries: number) {
    let capacity = 16;
    while (capacity * 3 < entries * 4) capacity *= 2;
    this.#mask = capacity - 1;
    this.#left = new Int32Array(capacity).fill(-1);
    this.#right = new Int32Array(capacity);
    this.#rank = new Int32Array(capacity);
    this.#merged = new Int32Array(capacity);
  }

  #slot(a: number, b: number): number {
    // Multiplicative mixing of both ids; Math.imul keeps it in 32 bits.
    let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15;
    let i = h & this.#mask;
    while (this.#left[i] !== -1 && (this.#left[i] !== a || this.#right[i] !== b)) {
      i = (i + 1) & this.#mask;
    }
    return i;
  }

  /** Sets (or replaces: the last listing wins) the merge of `a` then `b`. */
  set(a: number, b: number, rank: number, merged: number): void {
    const i = this.#slot(a, b);
    this.#left[i] = a;
    this.#right[i] = b;
    this.#rank[i] = rank;
    this.#merged[i] = merged;
  }

  /** The slot of the merge of `a` then `b`, or -1 when there is none. */
  find(a: number, b: number): number {
    const i = this.#slot(a, b);
    return this.#left[i] === -1 ? -1 : i;
  }

  rank(slot: number): number {
    return this.#rank[slot];
  }

  merged(slot: number): number {
    return this.#merged[slot];
  }
}

/** Rank of "no merge" in the scan (above any real rank). */
const NONE = 0x7fffffff;

/** BPE on ids for one tokenizer (see the module rule). */
export class BpeIds {
  readonly #vocab: ReadonlyMap<string, number>;
  readonly #table: MergeTable;
  readonly #ignoreMerges: boolean;
  /** Scratch: symbol ids, and the slot of the merge of each symbol with the next (-1: none). */
  readonly #ids = new Int32Array(MAX_FAST_SYMBOLS);
  readonly #slots = new Int32Array(MAX_FAST_SYMBOLS);

  private constructor(vocab: ReadonlyMap<string, number>, table: MergeTable, ignore: boolean) {
    this.#vocab = vocab;
    this.#table = table;
    this.#ignoreMerges = ignore;
  }

  /**
   * The id-based BPE of `tok`'s model, or undefined when the model is not one it reproduces.
   * @param added the caller's added-token lookup (content → id), consulted before the vocabulary
   */
  static create(tok: Tokenizer, added: ReadonlyMap<string, number>): BpeIds | undefined {
    const model = tok.model as unknown as BpeModelFields | null;
    if (model === null || model.config?.type !== "BPE" || !Array.isArray(model.merges)) {
      return undefined;
    }
    if (
      model.end_of_word_suffix || model.continuing_subword_suffix || model.byte_fallback ||
      model.fuse_unk
    ) {
      return undefined;
    }
    const vocab = model.tokens_to_ids;
    for (const [content, id] of added) {
      const inVocab = vocab.get(content);
      if (inVocab !== undefined && inVocab !== id) return undefined;
    }
    const table = new MergeTable(model.merges.length);
    for (let rank = 0; rank < model.merges.length; rank++) {
      const pair = model.merges[rank];
      if (!Array.isArray(pair) || pair.length !== 2) continue;
      const [left, right] = pair;
      if (typeof left !== "string" || typeof right !== "string") continue;
      const a = vocab.get(left);
      const b = vocab.get(right);
      // A pair with a part outside the vocabulary never forms here: encode gives up before a
      // token outside it exists.
      if (a === undefined || b === undefined) continue;
      table.set(a, b, rank, vocab.get(left + right) ?? -1);
    }
    return new BpeIds(vocab, table, !!model.ignore_merges);
  }

  /** Ids of one model input (a byte-level pre-token), or undefined to use the library. */
  encode(piece: string): Uint32Array | undefined {
    if (piece.length === 0) return new Uint32Array(0);
    const vocab = this.#vocab;
    if (this.#ignoreMerges) {
      const whole = vocab.get(piece);
      if (whole !== undefined) return Uint32Array.of(whole);
    }
    if (piece.length > MAX_FAST_SYMBOLS) return undefined;
    const ids = this.#ids;
    let n = 0;
    for (const char of piece) {
      const id = vocab.get(char);
      if (id === undefined) return undefined;
      ids[n++] = id;
    }
    return this.#merge(n);
  }

  /** Merges the `n` symbols in the scratch array; undefined when a merge leaves the vocabulary. */
  #merge(n: number): Uint32Array | undefined {
    const ids = this.#ids;
    const slots = this.#slots;
    const table = this.#table;
    for (let i = 0; i + 1 < n; i++) slots[i] = table.find(ids[i], ids[i + 1]);
    slots[n - 1] = -1;
    while (n > 1) {
      let best = -1;
      let bestRank = NONE;
      for (let i = 0; i + 1 < n; i++) {
        const slot = slots[i];
        if (slot !== -1 && table.rank(slot) < bestRank) {
          bestRank = table.rank(slot);
          best = i;
        }
      }
      if (best < 0) break;
      const merged = table.merged(slots[best]);
      if (merged < 0) return undefined;
      ids[best] = merged;
      ids.copyWithin(best + 1, best + 2, n);
      slots.copyWithin(best + 1, best + 2, n);
      n--;
      slots[n - 1] = -1;
      if (best + 1 < n) slots[best] = table.find(merged, ids[best + 1]);
      else slots[best] = -1;
      if (best > 0) slots[best - 1] = table.find(ids[best - 1], merged);
    }
    return Uint32Array.from(ids.subarray(0, n));
  }
}

/**
 * Text → token ids with `@huggingface/tokenizers`, reusing the ids of text sections seen before.
 *
 * Why sections are safe: the tokenizer first splits the text at its added tokens (`<|im_start|>`,
 * `<|eot_id|>`, `<think>`, ...: every added token not matched after normalization), then
 * normalizes, pre-tokenizes and runs BPE on each piece between them separately. BPE merges never
 * cross an added token, so the ids of a piece depend on that piece's text alone, and a prompt's ids
 * are the concatenation of its pieces' ids with the added tokens' ids between them. A chat
 * template puts an added token at every message boundary, so a follow-up turn finds every earlier
 * message's piece in the {@linkcode SectionCache} and runs BPE only on the new ones. The cache is
 * content-addressed: a piece that the template renders differently in the new turn (Qwen3 drops an
 * earlier answer's reasoning) is simply a miss, and pieces shared across conversations (system
 * prompts, tool lists) hit too.
 *
 * Rule: pieces are found the way the library finds them (the longest added token at the leftmost
 * position, compared by UTF-16 code units; a regex of the tokens sorted longest first does the
 * same); the `lstrip`/`rstrip` trimming of neighbours is applied as the library applies it; each
 * piece is encoded alone with `add_special_tokens: false`, or taken from the cache. With
 * `add_special_tokens: true`, the ids the post-processor puts around a sequence (BOS, EOS) are
 * found once by probing and added around the result.
 * Guards: the cache is off when a piece's ids depend on its position (a Metaspace pre-tokenizer
 * with `prepend_scheme: "first"`, as in Llama 2 and Mistral v1), and when a self-check at load (a
 * few texts with added tokens, whitespace next to them and multi-byte characters, encoded both ways)
 * finds any difference. Off means every text is encoded whole, which is always right.
 *
 * A section that is not cached is encoded word by word with a pre-token cache (word_encoder.ts)
 * where that is exact, else by the library's `encode`; the library's ByteLevel step is replaced by
 * an equivalent one without per-piece allocations (byte_level.ts).
 *
 * Cost: one regex split of the text and one map lookup per section; the pre-tokenizer and one
 * lookup per word on new sections; BPE only on words never seen. Ids are written into one reused
 * buffer and copied once into the result: about 0.13 ms for a 6 KB follow-up turn whose new part is
 * 700 characters (tokenize_bench.ts).
 *
 * @module
 */

import { Tokenizer } from "@huggingface/tokenizers";
import { speedUpByteLevel } from "./byte_level.ts";
import { IdBuffer } from "./id_buffer.ts";
import { SectionCache } from "./section_cache.ts";
import { WORD_CACHE_BYTES, WordEncoder, wordReason } from "./word_encoder.ts";

/** An entry of tokenizer.json's `added_tokens`. */
interface AddedTokenJson {
  readonly id: number;
  readonly content: string;
  readonly lstrip?: boolean;
  readonly rstrip?: boolean;
  readonly special?: boolean;
  readonly normalized?: boolean;
}

/** The ids of one text and how many came from the cache. */
export interface EncodeOutcome {
  /** The ids, a fresh array. */
  readonly tokens: Uint32Array;
  /** Ids taken from the cache. */
  readonly cachedTokens: number;
  /** Ids computed by the tokenizer model in this call. */
  readonly encodedTokens: number;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** True when any object in `value` (recursively) has `prepend_scheme: "first"`. */
function hasPrependFirst(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(hasPrependFirst);
  if (typeof value !== "object" || value === null) return false;
  const obj = value as Record<string, unknown>;
  if (obj.prepend_scheme === "first") return true;
  return Object.values(obj).some(hasPrependFirst);
}

function sameIds(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Where `inner` sits inside `outer`, or -1. */
function indexOfIds(outer: ArrayLike<number>, inner: ArrayLike<number>): number {
  for (let at = 0; at + inner.length <= outer.length; at++) {
    let j = 0;
    while (j < inner.length && outer[at + j] === inner[j]) j++;
    if (j === inner.length) return at;
  }
  return -1;
}

/** Encodes text with a Hugging Face tokenizer, reusing cached sections where that is exact. */
export class SectionEncoder {
  /** The library tokenizer (encodes whole texts; the reference). */
  readonly tokenizer: Tokenizer;
  /** Why the cache is not used, or undefined when it is. */
  readonly cacheOff: string | undefined;
  readonly #cache: SectionCache;
  readonly #splitter: RegExp | undefined;
  /** Reused output buffer (encoding is synchronous); each result is a copy. */
  readonly #out = new IdBuffer(4096);
  /** The library's added-token lookup: content (and normalized content) → id. */
  readonly #added = new Map<string, number>();
  readonly #strips = new Map<string, { lstrip: boolean; rstrip: boolean }>();
  #specialPrefix: Uint32Array | undefined;
  #specialSuffix: Uint32Array | undefined;
  /** Encodes sections word by word, when that is exact (word_encoder.ts). */
  readonly #words: WordEncoder | undefined;

  /**
   * @param tokenizerJson parsed tokenizer.json
   * @param tokenizerConfig parsed tokenizer_config.json
   * @param cache where sections are kept; a cache with a 0 budget turns the reuse off
   * @param fastByteLevel install the equivalent, faster ByteLevel step (byte_level.ts)
   */
  constructor(
    tokenizerJson: Record<string, unknown>,
    tokenizerConfig: Record<string, unknown>,
    cache: SectionCache,
    fastByteLevel = true,
  ) {
    this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    if (fastByteLevel) speedUpByteLevel(this.tokenizer);
    this.#cache = cache;
    const added = Array.isArray(tokenizerJson.added_tokens)
      ? tokenizerJson.added_tokens as AddedTokenJson[]
      : [];
    const normalizer = this.tokenizer.normalizer;
    const splitOn: string[] = [];
    let normalizedAdded = 0;
    for (const token of added) {
      const special = token.special ?? false;
      const normalized = token.normalized ?? !special;
      this.#added.set(token.content, token.id);
      if (token.lstrip || token.rstrip) {
        this.#strips.set(token.content, { lstrip: !!token.lstrip, rstrip: !!token.rstrip });
      }
      if (normalized && normalizer !== null) {
        normalizedAdded++;
        const content = normalizer(token.content);
        this.#added.set(content, token.id);
        if (token.lstrip || token.rstrip) {
          this.#strips.set(content, { lstrip: !!token.lstrip, rstrip: !!token.rstrip });
        }
      } else if (token.content.length > 0) {
        splitOn.push(token.content);
      }
    }
    this.#words = wordReason(tokenizerConfig, this.tokenizer, normalizedAdded) === undefined
      ? new WordEncoder(this.tokenizer, this.#added, Math.min(WORD_CACHE_BYTES, cache.maxBytes))
      : undefined;
    splitOn.sort((a, b) => b.length - a.length);
    this.#splitter = splitOn.length === 0
      ? undefined
      : new RegExp(`(${splitOn.map(escapeRegExp).join("|")})`);
    this.#probeSpecials();
    this.cacheOff = this.#whyOff(tokenizerJson, added);
  }

  #whyOff(json: Record<string, unknown>, added: readonly AddedTokenJson[]): string | undefined {
    if (this.#cache.maxBytes === 0) return "the cache budget is 0";
    if (hasPrependFirst(json.pre_tokenizer) || hasPrependFirst(json.normalizer)) {
      return "the pre-tokenizer treats the first section differently (prepend_scheme first)";
    }
    return this.#selfCheck(added);
  }

  /** Finds the ids the post-processor adds around one sequence, by encoding two probes both ways. */
  #probeSpecials(): void {
    let prefix: Uint32Array | undefined;
    let suffix: Uint32Array | undefined;
    for (const probe of ["Hello world", "a"]) {
      const bare = this.tokenizer.encode(probe, { add_special_tokens: false }).ids;
      const full = this.tokenizer.encode(probe, { add_special_tokens: true }).ids;
      const at = indexOfIds(full, bare);
      if (at < 0) return;
      const p = Uint32Array.from(full.slice(0, at));
      const s = Uint32Array.from(full.slice(at + bare.length));
      if (prefix !== undefined && (!sameIds(prefix, p) || !sameIds(suffix!, s))) return;
      prefix = p;
      suffix = s;
    }
    this.#specialPrefix = prefix;
    this.#specialSuffix = suffix;
  }

  /** Encodes sample texts by sections and whole; a reason when they differ. */
  #selfCheck(added: readonly AddedTokenJson[]): string | undefined {
    const tokens = added.slice(0, 12).map((t) => t.content);
    const samples = ["Hello world", " leading and trailing \n", "café 世界 🙂 naïve\u0301"];
    for (let i = 0; i < tokens.length; i++) {
      const a = tokens[i];
      const b = tokens[(i + 1) % tokens.length];
      samples.push(`${a}user\nHi there${b}\n${a}${b} x  ${a}\n\n é${b}`);
      samples.push(` ${a} ${a}${a}\t${b}🙂 end `);
    }
    const scratch = new SectionCache(1 << 20);
    for (const text of samples) {
      for (const special of this.#specialPrefix === undefined ? [false] : [false, true]) {
        const whole = this.encodeWhole(text, special);
        const bySection = this.#encodeSections(text, special, scratch).tokens;
        if (!sameIds(whole, bySection)) {
          return `the self-check found a difference for ${JSON.stringify(text)}`;
        }
      }
    }
    return undefined;
  }

  /** Appends the ids of one section (no added token inside) to `out`; returns a copy of them. */
  #encodeSection(section: string, out: IdBuffer): Uint32Array {
    if (this.#words === undefined) {
      const ids = Uint32Array.from(
        this.tokenizer.encode(section, { add_special_tokens: false }).ids,
      );
      out.append(ids);
      return ids;
    }
    const start = out.length;
    this.#words.encodeInto(section, out);
    return out.ids.slice(start, out.length);
  }

  /** Ids of `text` encoded whole by the library (no cache). */
  encodeWhole(text: string, addSpecialTokens: boolean): Uint32Array {
    return Uint32Array.from(
      this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids,
    );
  }

  /** Ids of `text`, from cached sections where the cache is on. */
  encode(text: string, addSpecialTokens: boolean): EncodeOutcome {
    if (this.cacheOff !== undefined || (addSpecialTokens && this.#specialPrefix === undefined)) {
      const tokens = this.encodeWhole(text, addSpecialTokens);
      return { tokens, cachedTokens: 0, encodedTokens: tokens.length };
    }
    return this.#encodeSections(text, addSpecialTokens, this.#cache);
  }

  /** The library's sections of `text`, with its lstrip/rstrip trimming applied. */
  #sections(text: string): string[] {
    const parts = this.#splitter === undefined ? [text] : text.split(this.#splitter);
    if (this.#strips.size === 0) return parts;
    // The library trims the neighbours in its list of non-empty sections, in order.
    const sections = parts.filter((p) => p.length > 0);
    for (let i = 0; i < sections.length; i++) {
      const strip = this.#strips.get(sections[i]);
      if (strip === undefined) continue;
      if (strip.lstrip && i > 0) sections[i - 1] = sections[i - 1].trimEnd();
      if (strip.rstrip && i < sections.length - 1) sections[i + 1] = sections[i + 1].trimStart();
    }
    return sections;
  }

  #encodeSections(text: string, addSpecialTokens: boolean, cache: SectionCache): EncodeOutcome {
    const out = this.#out;
    out.length = 0;
    if (addSpecialTokens) out.append(this.#specialPrefix!);
    let cachedTokens = 0;
    let encodedTokens = 0;
    const sections = this.#sections(text);
    for (let i = 0; i < sections.length; i++) {
      const section = sections[i];
      if (section.length === 0) continue;
      const id = this.#added.get(section);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      const key = SectionCache.key(section);
      const cached = cache.get(key);
      if (cached !== undefined) {
        cachedTokens += cached.length;
        out.append(cached);
      } else {
        const ids = this.#encodeSection(section, out);
        encodedTokens += ids.length;
        cache.set(key, ids);
      }
    }
    if (addSpecialTokens) out.append(this.#specialSuffix!);
    return { tokens: out.result(), cachedTokens, encodedTokens };
  }
}

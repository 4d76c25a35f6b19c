/**
 * Word-level encoding of one text section, calling `@huggingface/tokenizers`' own steps directly
 * and remembering each pre-token's ids.
 *
 * For a section with no added token inside, the library's `encode` normalizes the text, emits an
 * added token if the normalized text is exactly one, pre-tokenizes, runs the model on each
 * pre-token independently, fuses unknown tokens if the model asks for it, and maps token strings
 * to ids (added tokens first, then the vocabulary, then the unknown id). Rule: the same steps in
 * the same order, with the ids of each pre-token kept in a {@linkcode WordCache} (4 MiB): words
 * repeat, so a new message mostly costs the pre-tokenizer. When the pre-tokenizer is a Sequence
 * that ends in a ByteLevel step without its own regex and without a prefix space (Qwen, Llama 3,
 * DeepSeek), that last step maps each piece to exactly one string, so it is applied only to pieces
 * not yet cached, and the cache is keyed by the piece before it. Exact shortcuts: when that piece
 * comes from a single Split step with the GPT-4 or Qwen2 regex, pretoken_scan.ts finds the pieces
 * as offsets (a cached word is looked up in place), and bpe_ids.ts runs BPE on ids for new words.
 * Guards ({@linkcode wordReason}): the model must not fuse unknown tokens (that crosses words), no
 * added token may be matched after normalization, and the config must not ask for space removal
 * or lowercasing; otherwise sections go through the library's `encode`. The property tests compare
 * every result with the library encoding the whole text.
 *
 * Cost: normalizer + pre-tokenizer over the section, one word-cache lookup per piece; BPE only on
 * pieces never seen.
 *
 * @module
 */

import {
  ByteLevelPreTokenizer,
  type PreTokenizer,
  SequencePreTokenizer,
  SplitPreTokenizer,
  type Tokenizer,
} from "@huggingface/tokenizers";
import { BpeIds } from "./bpe_ids.ts";
import { IdBuffer } from "./id_buffer.ts";
import { PreTokenScanner } from "./pretoken_scan.ts";
import { WordCache } from "./word_cache.ts";
import { TokenizeError } from "./types.ts";

/** Byte budget of the word cache (pre-token → ids). */
export const WORD_CACHE_BYTES = 4 * 1024 * 1024;

/**
 * Longest pre-token encoded. The library's BPE takes superlinear time on one long word (100 k
 * letters without a space: 0.2 s; 400 k: 1.4 s), which would stall the router's event loop; such
 * prompts (base64 blobs, minified data) are refused as `too_large` and routed approximately.
 */
export const MAX_WORD_CHARS = 2048;

/**
 * Why sections cannot be encoded word by word (see the module rule), or undefined when they can.
 * @param normalizedAdded added tokens matched after normalization
 */
export function wordReason(
  config: Record<string, unknown>,
  tok: Tokenizer,
  normalizedAdded: number,
): string | undefined {
  if (tok.model === null) return "no model";
  if (tok.model.fuse_unk) return "the model fuses unknown tokens";
  if (normalizedAdded > 0) return "added tokens are matched after normalization";
  if (config.remove_space === true || config.do_lowercase_and_remove_accent === true) {
    return "the config removes spaces or lowercases";
  }
  return undefined;
}

/** The steps before a final one-to-one ByteLevel step, when the pre-tokenizer has that shape. */
function splitBeforeByteLevel(
  pre: PreTokenizer | null,
): { steps: PreTokenizer[]; byteLevel: ByteLevelPreTokenizer } | undefined {
  if (!(pre instanceof SequencePreTokenizer)) return undefined;
  const steps = pre.tokenizers.filter((t): t is PreTokenizer => t !== null);
  const last = steps[steps.length - 1];
  if (!(last instanceof ByteLevelPreTokenizer) || last.use_regex || last.add_prefix_space) {
    return undefined;
  }
  return { steps: steps.slice(0, -1), byteLevel: last };
}

/** The fields of the library's Split pre-tokenizer read here. */
interface SplitFields {
  readonly pattern: RegExp | null;
  readonly config: { readonly invert?: boolean; readonly behavior?: string };
}

/**
 * One pre-tokenizer step as a function of one text, faster where that is exact: a Split step that
 * keeps matches and gaps (not inverted, not "removed") is the library's `matchAll` loop, which
 * yields the gaps between matches and the non-empty matches. When the matches of `String#match`
 * (the same regex, the same advance over empty matches) add up to the text's length they tile it,
 * so there are no gaps and the pieces are the non-empty matches; otherwise the library's step runs.
 */
function stepFunction(step: PreTokenizer): (text: string) => string[] {
  const options = { section_index: 0 };
  const library = (text: string) => step.pre_tokenize_text(text, options);
  if (!(step instanceof SplitPreTokenizer)) return library;
  const split = step as unknown as SplitFields;
  const pattern = split.pattern;
  if (pattern === null || !pattern.global || split.config.invert) return library;
  if (split.config.behavior?.toLowerCase() === "removed") return library;
  return (text: string): string[] => {
    const matches = text.match(pattern);
    if (matches === null) return library(text);
    let covered = 0;
    let empty = 0;
    for (let i = 0; i < matches.length; i++) {
      covered += matches[i].length;
      if (matches[i].length === 0) empty++;
    }
    if (covered !== text.length) return library(text);
    return empty === 0 ? matches : matches.filter((m) => m.length > 0);
  };
}

/** The scanner of a Split step whose regex it reproduces, or undefined. */
function knownSplit(step: PreTokenizer): PreTokenScanner | undefined {
  if (!(step instanceof SplitPreTokenizer)) return undefined;
  const split = step as unknown as SplitFields;
  // The scanner's pieces tile the text, so the library's split (matches and the gaps between
  // them) gives the same pieces whatever the behavior, unless matches are removed or inverted.
  if (split.pattern === null || split.config.invert) return undefined;
  if (split.config.behavior?.toLowerCase() === "removed") return undefined;
  return PreTokenScanner.forPattern(split.pattern);
}

/** Encodes sections word by word with a pre-token cache. */
export class WordEncoder {
  readonly #tok: Tokenizer;
  readonly #added: ReadonlyMap<string, number>;
  readonly #cache: WordCache;
  readonly #split: { steps: PreTokenizer[]; byteLevel: ByteLevelPreTokenizer } | undefined;
  /** The steps before ByteLevel as functions (one step: the common case, no flattening). */
  readonly #steps: ((text: string) => string[])[] | undefined;
  /** BPE on ids, when it reproduces the model (bpe_ids.ts). */
  readonly #bpe: BpeIds | undefined;
  /** The scanner of the only step before ByteLevel, when it is a known Split (pretoken_scan.ts). */
  readonly #scanner: PreTokenScanner | undefined;

  /**
   * @param tok the library tokenizer (its model, normalizer and pre-tokenizer are called)
   * @param added the library's added-token lookup: content (and normalized content) → id
   * @param cacheBytes budget of the pre-token cache
   */
  constructor(tok: Tokenizer, added: ReadonlyMap<string, number>, cacheBytes: number) {
    this.#tok = tok;
    this.#added = added;
    this.#cache = new WordCache(cacheBytes);
    this.#split = splitBeforeByteLevel(tok.pre_tokenizer);
    this.#steps = this.#split?.steps.map(stepFunction);
    this.#bpe = BpeIds.create(tok, added);
    this.#scanner = this.#split?.steps.length === 1 ? knownSplit(this.#split.steps[0]) : undefined;
  }

  /** Which of the exact shortcuts this encoder takes (both for Qwen3 and Llama 3; tests). */
  get shortcuts(): { scanner: boolean; bpeIds: boolean } {
    return { scanner: this.#scanner !== undefined, bpeIds: this.#bpe !== undefined };
  }

  /** The pre-tokens of a normalized section. */
  #preTokens(text: string): string[] {
    const steps = this.#steps;
    if (steps === undefined) {
      const pre = this.#tok.pre_tokenizer;
      return pre === null ? [text] : pre(text, { section_index: 0 });
    }
    if (steps.length === 0) return [text];
    let pieces = steps[0](text);
    for (let s = 1; s < steps.length; s++) pieces = pieces.flatMap(steps[s]);
    return pieces;
  }

  /** Appends the ids of one section that has no added token inside to `out`. */
  encodeInto(section: string, out: IdBuffer): void {
    const tok = this.#tok;
    const text = tok.normalizer === null ? section : tok.normalizer(section);
    if (text.length === 0) return;
    const added = this.#added.get(text);
    if (added !== undefined) {
      out.push(added);
      return;
    }
    const scanner = this.#scanner;
    if (scanner !== undefined) {
      // The pieces as offsets: a cached word is looked up in place, cut out only when new.
      const n = scanner.scan(text);
      const ends = scanner.ends;
      let start = 0;
      for (let i = 0; i < n; i++) {
        const end = ends[i];
        if (!this.#cache.lookupIn(text, start, end, out)) {
          this.#newWord(text.slice(start, end), out);
        }
        start = end;
      }
      return;
    }
    const pieces = this.#preTokens(text);
    for (let i = 0; i < pieces.length; i++) {
      if (!this.#cache.lookup(pieces[i], out)) this.#newWord(pieces[i], out);
    }
  }

  /** Encodes a pre-token not in the cache, stores and appends its ids. */
  #newWord(piece: string, out: IdBuffer): void {
    if (piece.length > MAX_WORD_CHARS) {
      throw new TokenizeError(
        "too_large",
        `A word of ${piece.length} characters is over the ${MAX_WORD_CHARS} encoded locally`,
      );
    }
    const ids = this.#pieceIds(piece);
    this.#cache.set(piece, ids);
    out.append(ids);
  }

  /** The ids of one pre-token not in the cache. */
  #pieceIds(piece: string): Uint32Array {
    if (this.#split === undefined) return this.#modelIds([piece]);
    const inputs = this.#split.byteLevel.pre_tokenize_text(piece, { section_index: 0 });
    if (this.#bpe !== undefined && inputs.length === 1) {
      const ids = this.#bpe.encode(inputs[0]);
      if (ids !== undefined) return ids;
    }
    return this.#modelIds(inputs);
  }

  /** The model's ids for pre-tokens, mapped as the library maps token strings. */
  #modelIds(pieces: string[]): Uint32Array {
    const model = this.#tok.model!;
    const tokens = model(pieces);
    const ids = new Uint32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      ids[i] = this.#added.get(t) ?? model.tokens_to_ids.get(t) ?? model.unk_token_id ?? 0;
    }
    return ids;
  }
}

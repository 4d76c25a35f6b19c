/**
 * Word-level encoding of one text section, calling `@huggingface/tokenizers`' own steps directly
 * and remembering each pre-token's ids.
 *
 * For a section with no added token inside, the library's `encode` normalizes the text, emits an
 * added token if the normalized text is exactly one, pre-tokenizes, runs the model on each
 * pre-token independently, fuses unknown tokens if the model asks for it, and maps token strings
 * to ids (added tokens first, then the vocabulary, then the unknown id). Rule: the same steps in
 * the same order, with the ids of each pre-token kept in a {@linkcode SectionCache} (4 MiB): words
 * repeat, so a new message mostly costs the pre-tokenizer. When the pre-tokenizer is a Sequence
 * that ends in a ByteLevel step without its own regex and without a prefix space (Qwen, Llama 3,
 * DeepSeek), that last step maps each piece to exactly one string, so it is applied only to pieces
 * not yet cached, and the cache is keyed by the piece before it.
 * Guards ({@linkcode wordReason}): the model must not fuse unknown tokens (that crosses words), no
 * added token may be matched after normalization, and the config must not ask for space removal
 * or lowercasing; otherwise sections go through the library's `encode`. The property tests compare
 * every result with the library encoding the whole text.
 *
 * Cost: normalizer + pre-tokenizer over the section, one map lookup per piece; BPE only on pieces
 * never seen.
 *
 * @module
 */

import {
  ByteLevelPreTokenizer,
  type PreTokenizer,
  SequencePreTokenizer,
  type Tokenizer,
} from "@huggingface/tokenizers";
import { IdBuffer } from "./id_buffer.ts";
import { SectionCache } from "./section_cache.ts";
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

/** Encodes sections word by word with a pre-token cache. */
export class WordEncoder {
  readonly #tok: Tokenizer;
  readonly #added: ReadonlyMap<string, number>;
  readonly #cache: SectionCache;
  readonly #split: { steps: PreTokenizer[]; byteLevel: ByteLevelPreTokenizer } | undefined;

  /**
   * @param tok the library tokenizer (its model, normalizer and pre-tokenizer are called)
   * @param added the library's added-token lookup: content (and normalized content) → id
   * @param cacheBytes budget of the pre-token cache
   */
  constructor(tok: Tokenizer, added: ReadonlyMap<string, number>, cacheBytes: number) {
    this.#tok = tok;
    this.#added = added;
    this.#cache = new SectionCache(cacheBytes);
    this.#split = splitBeforeByteLevel(tok.pre_tokenizer);
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
    const options = { section_index: 0 };
    let pieces: string[];
    if (this.#split !== undefined) {
      pieces = [text];
      for (const step of this.#split.steps) pieces = step.pre_tokenize(pieces, options);
    } else {
      pieces = tok.pre_tokenizer === null ? [text] : tok.pre_tokenizer(text, options);
    }
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      const key = SectionCache.key(piece);
      let ids = this.#cache.get(key);
      if (ids === undefined) {
        if (piece.length > MAX_WORD_CHARS) {
          throw new TokenizeError(
            "too_large",
            `A word of ${piece.length} characters is over the ${MAX_WORD_CHARS} encoded locally`,
          );
        }
        const modelInput = this.#split === undefined
          ? [piece]
          : this.#split.byteLevel.pre_tokenize_text(piece, options);
        ids = this.#modelIds(modelInput);
        this.#cache.set(key, ids);
      }
      out.append(ids);
    }
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

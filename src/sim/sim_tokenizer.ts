/**
 * The sim worker's tokenizer: what turns a request into the token ids the engine caches, for the
 * generation endpoints, `/tokenize` and `/detokenize` alike, so that the ids `/tokenize` returns
 * are exactly those whose blocks the KV events announce.
 *
 * - Pseudo (default): the sim's chat template (src/sim/chat_template.ts), then 4 bytes a token
 *   (src/sim/token_ids.ts); token-id prompts keep their ids; `decode` turns ids back into bytes.
 * - Local (`--tokenizer-json`, `--tokenizer-config`, optional `--chat-template`): the model's real
 *   tokenizer and chat template through `loadLocalTokenizer` (src/tokenize), as vLLM renders and
 *   encodes; answers are real tokens too: each word of the answer cycle that the model encodes as
 *   one token, so a next turn that re-encodes the answer text finds the same ids. `decode` builds
 *   the library tokenizer on first use (a second copy of tokenizer.json in memory, only then).
 *
 * Errors: a body the template cannot take is a `BadRequestError` (HTTP 400).
 *
 * @module
 */

import { Tokenizer } from "@huggingface/tokenizers";
import {
  loadLocalTokenizer,
  type LocalTokenizer,
  type LocalTokenizerFiles,
  TokenizeError,
} from "../tokenize/mod.ts";
import { RouterError } from "../util/errors.ts";
import { BadRequestError, chatPromptText, completionPrompt } from "./chat_template.ts";
import { promptBytes, pseudoTail, pseudoText, pseudoTokenIds } from "./token_ids.ts";
import type { AnswerVocab } from "./types.ts";

/** A prompt's token ids; with pseudo tokens of a text, also its bytes past the last token. */
export interface PromptTokens {
  readonly tokens: Uint32Array;
  /** See `EngineRequest.tail`. */
  readonly tail?: Uint8Array;
}

/** Request bodies → the engine's token ids, and back. */
export interface SimTokenizer {
  /** `pseudo` or `local:<tokenizer class>`. */
  readonly name: string;
  /** Ids of a chat body (chat template, `add_generation_prompt` and the other vLLM flags). */
  chat(body: Record<string, unknown>): PromptTokens;
  /** Ids of a legacy completion body (`prompt`: text or token ids). */
  completion(body: Record<string, unknown>): PromptTokens;
  /** Ids of plain text (pooling inputs), special tokens added as for a completion. */
  text(text: string): PromptTokens;
  /** Text of ids. */
  decode(ids: readonly number[]): Promise<string>;
  /** Generated tokens, when they are real ones; undefined for pseudo tokens. */
  readonly vocab?: AnswerVocab;
}

/** Pseudo tokens of a text, with its tail. */
function pseudo(text: string): PromptTokens {
  const bytes = promptBytes(text);
  return { tokens: pseudoTokenIds(bytes), tail: pseudoTail(bytes) };
}

/** The pseudo tokenizer: 4 bytes a token of the sim's chat template. */
export function pseudoTokenizer(): SimTokenizer {
  return {
    name: "pseudo",
    chat: (body) => pseudo(chatPromptText(body)),
    completion(body) {
      const p = completionPrompt(body);
      return p.ids !== undefined ? { tokens: Uint32Array.from(p.ids) } : pseudo(p.text);
    },
    text: pseudo,
    decode: (ids) => Promise.resolve(pseudoText(ids)),
  };
}

/** Words of the answer cycle, each with its leading space. */
const ANSWER_WORDS = [" The", " simulated", " engine", " writes", " this", " same", " calm"];

/** Runs `fn`, turning the tokenizer's refusals into 400s. */
function guarded<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RouterError) throw new BadRequestError(err.message, err.param);
    if (err instanceof TokenizeError) throw new BadRequestError(err.message);
    throw err;
  }
}

class LocalSimTokenizer implements SimTokenizer {
  readonly name: string;
  readonly vocab: AnswerVocab;
  readonly #tok: LocalTokenizer;
  readonly #files: LocalTokenizerFiles;
  #decoder: Promise<Tokenizer> | undefined;

  constructor(tok: LocalTokenizer, files: LocalTokenizerFiles) {
    this.#tok = tok;
    this.#files = files;
    this.name = tok.name;
    const pieces: Array<{ id: number; text: string }> = [];
    for (const w of [...ANSWER_WORDS, "."]) {
      const ids = tok.encodeText(w, false).tokens;
      if (ids.length === 1) pieces.push({ id: ids[0], text: w });
    }
    if (pieces.length === 0) throw new Error("the tokenizer encodes no answer word as one token");
    this.vocab = {
      id: (i) => pieces[i % pieces.length].id,
      text: (i) => pieces[i % pieces.length].text,
    };
  }

  chat(body: Record<string, unknown>): PromptTokens {
    return guarded(() => ({ tokens: this.#tok.tokenizeSync({ kind: "chat", body }).tokens }));
  }

  completion(body: Record<string, unknown>): PromptTokens {
    return guarded(() => ({ tokens: this.#tok.tokenizeSync({ kind: "completion", body }).tokens }));
  }

  text(text: string): PromptTokens {
    return guarded(() => ({ tokens: this.#tok.encodeText(text, true).tokens }));
  }

  async decode(ids: readonly number[]): Promise<string> {
    // The library tokenizer is built on the first call (once) and kept.
    this.#decoder ??= (async () => {
      const read = async (p: string) => JSON.parse(await Deno.readTextFile(p));
      const files = this.#files;
      const [json, config] = await Promise.all([
        read(files.tokenizerJson),
        read(files.tokenizerConfig),
      ]);
      return new Tokenizer(json, config);
    })();
    const d = await this.#decoder;
    return d.decode([...ids], { skip_special_tokens: false });
  }
}

/** Loads a model's tokenizer files as the sim's tokenizer. */
export async function loadSimTokenizer(files: LocalTokenizerFiles): Promise<SimTokenizer> {
  const tok = await loadLocalTokenizer(files);
  return new LocalSimTokenizer(tok, files);
}

/**
 * Local tokenizer: a model's tokenizer.json and tokenizer_config.json, read once, turn request
 * bodies into the engine's token ids without a network call.
 *
 * Rule (chat): the body is rendered with the chat template as vLLM renders it
 * ({@linkcode ChatRenderer}), then encoded with `add_special_tokens` (default false: the template
 * writes BOS itself). Rule (completion): a string prompt is encoded with `add_special_tokens`
 * (default true); token ids are passed through. Both: `truncate_prompt_tokens` keeps the last k.
 * The chat template is tokenizer_config.json's `chat_template` (a string, or named templates of
 * which `tool_use` serves requests with tools and `default` the rest), or the file given as
 * `chatTemplate` (vLLM's `--chat-template`, or a model's chat_template.jinja). The template sees
 * the config's special tokens (`bos_token`, `eos_token`, ..., `additional_special_tokens`).
 *
 * Encoding reuses cached sections ({@linkcode SectionEncoder}): a follow-up turn runs the
 * tokenizer only on what is new. Cost per follow-up turn of a 6-7 KB conversation (new answer and
 * question of 700 characters): 0.19-0.25 ms at best, p75 0.36-0.48 ms on a busy 2-core machine,
 * against 3-12 ms for a full re-tokenization (tokenize_bench.ts); the template render is 0.09-0.17
 * ms of it. Limits: texts over `maxChars` and single words over 2048 characters are `too_large`.
 * Loading Qwen3's 11 MB tokenizer.json takes about 0.7 s, 70 MiB of heap (160 MiB RSS).
 * The work is synchronous: a 400 KB prompt seen for the first time holds the event loop ~70 ms.
 *
 * @module
 */

import { ChatRenderer, type ChatRendererOptions, type ContentFormat } from "./chat_render.ts";
import { isObject } from "../prefix/json_fields.ts";
import { bodyObject, chatFlags, completionPrompt, flag, truncated } from "./request_fields.ts";
import { SectionCache } from "./section_cache.ts";
import { type EncodeOutcome, SectionEncoder } from "./section_encoder.ts";
import {
  type RequestTokenizer,
  TokenizeError,
  type TokenizeRequest,
  type TokenizeResult,
  type TokenizerStats,
  zeroStats,
} from "./types.ts";

/** Default byte budget of the section cache. */
export const DEFAULT_CACHE_BYTES = 32 * 1024 * 1024;

/** Where a model's tokenizer files are. */
export interface LocalTokenizerFiles {
  /** Path of tokenizer.json. */
  readonly tokenizerJson: string;
  /** Path of tokenizer_config.json. */
  readonly tokenizerConfig: string;
  /** Path of a Jinja chat template that replaces the config's (e.g. chat_template.jinja). */
  readonly chatTemplate?: string;
}

/** How a {@linkcode LocalTokenizer} renders and caches. */
export interface LocalTokenizerOptions {
  /** Byte budget of the section cache; 0 encodes every text whole. Default 32 MiB. */
  readonly cacheBytes?: number;
  /** Template text replacing the config's `chat_template`. */
  readonly chatTemplate?: string;
  /** vLLM's `--chat-template-content-format`: `auto` (default), `string` or `openai`. */
  readonly contentFormat?: "auto" | ContentFormat;
  /** vLLM's `--default-chat-template-kwargs`, e.g. `{enable_thinking: false}`. */
  readonly defaultChatTemplateKwargs?: Readonly<Record<string, unknown>>;
  /** Longest prompt text encoded, in UTF-16 units; longer ones are `too_large`. Default 1 Mi. */
  readonly maxChars?: number;
  /** Clock for the time counters, in milliseconds. Default `performance.now`. */
  readonly now?: () => number;
}

/** Default {@linkcode LocalTokenizerOptions.maxChars}: about 250 k tokens, 70 ms of prose. */
export const DEFAULT_MAX_CHARS = 1024 * 1024;

const SPECIAL_TOKEN_KEYS = [
  "bos_token",
  "eos_token",
  "unk_token",
  "sep_token",
  "pad_token",
  "cls_token",
  "mask_token",
];

/** A special token from the config: a string or an `AddedToken` object with `content`. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (isObject(value) && typeof value.content === "string") return value.content;
  return undefined;
}

/** The special-token variables Hugging Face gives a chat template (`special_tokens_map`). */
export function specialTokenVariables(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const text = tokenText(config[key]);
    if (text !== undefined) out[key] = text;
  }
  const extra = config.additional_special_tokens;
  if (Array.isArray(extra)) {
    out.additional_special_tokens = extra.map(tokenText).filter((t) => t !== undefined);
  }
  return out;
}

/** The default and tool-use templates of a config's `chat_template`. */
function configTemplates(config: Record<string, unknown>): { main?: string; toolUse?: string } {
  const value = config.chat_template;
  if (typeof value === "string") return { main: value };
  if (!Array.isArray(value)) return {};
  const named = new Map<string, string>();
  for (const entry of value) {
    if (isObject(entry) && typeof entry.name === "string" && typeof entry.template === "string") {
      named.set(entry.name, entry.template);
    }
  }
  return { main: named.get("default"), toolUse: named.get("tool_use") };
}

/** Tokenizes request bodies from a model's tokenizer files. */
export class LocalTokenizer implements RequestTokenizer {
  readonly name: string;
  /** The chat renderer, or undefined when the model has no chat template. */
  readonly renderer: ChatRenderer | undefined;
  readonly #encoder: SectionEncoder;
  readonly #cache: SectionCache;
  readonly #now: () => number;
  readonly #maxChars: number;
  #stats: {
    -readonly [K in keyof TokenizerStats]: TokenizerStats[K];
  } = { ...zeroStats() };

  /**
   * Builds the tokenizer from parsed files (see {@linkcode loadLocalTokenizer} for paths).
   * @param tokenizerJson parsed tokenizer.json
   * @param tokenizerConfig parsed tokenizer_config.json
   * @throws Error when the files do not describe a tokenizer or a template does not parse
   */
  constructor(tokenizerJson: unknown, tokenizerConfig: unknown, opts: LocalTokenizerOptions = {}) {
    if (!isObject(tokenizerJson) || !isObject(tokenizerJson.model)) {
      throw new Error("tokenizer.json must be an object with a model");
    }
    if (!isObject(tokenizerConfig)) throw new Error("tokenizer_config.json must be an object");
    this.#now = opts.now ?? (() => performance.now());
    this.#maxChars = opts.maxChars ?? DEFAULT_MAX_CHARS;
    this.#cache = new SectionCache(opts.cacheBytes ?? DEFAULT_CACHE_BYTES);
    this.#encoder = new SectionEncoder(tokenizerJson, tokenizerConfig, this.#cache);
    const templates = configTemplates(tokenizerConfig);
    const main = opts.chatTemplate ?? templates.main;
    if (main !== undefined) {
      const rendererOpts: ChatRendererOptions = {
        chatTemplate: main,
        toolUseTemplate: opts.chatTemplate === undefined ? templates.toolUse : undefined,
        specialTokens: specialTokenVariables(tokenizerConfig),
        contentFormat: opts.contentFormat,
        defaultKwargs: opts.defaultChatTemplateKwargs,
      };
      this.renderer = new ChatRenderer(rendererOpts);
    }
    const cls = tokenizerConfig.tokenizer_class;
    this.name = `local:${typeof cls === "string" ? cls : "tokenizer"}`;
  }

  /** Why sections are not reused (undefined when they are). */
  get cacheOff(): string | undefined {
    return this.#encoder.cacheOff;
  }

  /**
   * Ids of `text` (cached sections where possible).
   * @throws TokenizeError `too_large` over `maxChars` or for one very long word
   */
  encodeText(text: string, addSpecialTokens: boolean): EncodeOutcome {
    if (text.length > this.#maxChars) {
      throw new TokenizeError(
        "too_large",
        `A prompt of ${text.length} characters is over the ${this.#maxChars} encoded locally`,
      );
    }
    return this.#encoder.encode(text, addSpecialTokens);
  }

  /** Ids of `text` encoded whole by the library: the reference the cache must equal. */
  encodeWhole(text: string, addSpecialTokens: boolean): Uint32Array {
    return this.#encoder.encodeWhole(text, addSpecialTokens);
  }

  /** The prompt text of a chat body (what the engine tokenizes). */
  renderChat(body: unknown): string {
    const obj = bodyObject(body);
    return this.#renderer().render(obj, chatFlags(obj));
  }

  #renderer(): ChatRenderer {
    if (this.renderer === undefined) {
      throw new TokenizeError("unsupported", "The model's tokenizer config has no chat template");
    }
    return this.renderer;
  }

  /** {@linkcode tokenize} without the promise (the work is synchronous). */
  tokenizeSync(req: TokenizeRequest): TokenizeResult {
    const s = this.#stats;
    s.requests++;
    const start = this.#now();
    try {
      const body = bodyObject(req.body);
      let outcome: EncodeOutcome;
      if (req.kind === "chat") {
        const flags = chatFlags(body);
        const text = this.#renderer().render(body, flags);
        const rendered = this.#now();
        s.renderMs += rendered - start;
        outcome = this.encodeText(text, flags.addSpecialTokens);
        s.encodeMs += this.#now() - rendered;
      } else {
        const prompt = completionPrompt(body);
        if (prompt.ids !== undefined) {
          outcome = { tokens: prompt.ids, cachedTokens: 0, encodedTokens: 0 };
        } else {
          outcome = this.encodeText(prompt.text, flag(body, "add_special_tokens", true));
          s.encodeMs += this.#now() - start;
        }
      }
      s.cachedTokens += outcome.cachedTokens;
      s.encodedTokens += outcome.encodedTokens;
      return {
        tokens: truncated(body, outcome.tokens),
        cachedTokens: outcome.cachedTokens,
        encodedTokens: outcome.encodedTokens,
        ms: this.#now() - start,
      };
    } catch (err) {
      s.failures++;
      throw err;
    }
  }

  /** Token ids of `req` as the engine computes them (see the module rule). */
  tokenize(req: TokenizeRequest): Promise<TokenizeResult> {
    try {
      return Promise.resolve(this.tokenizeSync(req));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Current counters, the cache's included. */
  stats(): TokenizerStats {
    const c = this.#cache.stats();
    return {
      ...this.#stats,
      cacheHits: c.hits,
      cacheMisses: c.misses,
      cacheEntries: c.entries,
      cacheBytes: c.bytes,
      cacheMaxBytes: this.cacheOff === undefined ? c.maxBytes : 0,
      cacheEvictions: c.evictions,
    };
  }
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new Error(`Cannot read ${what} at ${path}: ${err instanceof Error ? err.message : err}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${what} at ${path} is not JSON: ${err instanceof Error ? err.message : err}`);
  }
}

/**
 * Reads a model's tokenizer files and builds its {@linkcode LocalTokenizer}.
 * @throws Error naming the path when a file cannot be read or parsed
 */
export async function loadLocalTokenizer(
  files: LocalTokenizerFiles,
  opts: LocalTokenizerOptions = {},
): Promise<LocalTokenizer> {
  const [json, config] = await Promise.all([
    readJson(files.tokenizerJson, "tokenizer.json"),
    readJson(files.tokenizerConfig, "tokenizer_config.json"),
  ]);
  let chatTemplate = opts.chatTemplate;
  if (files.chatTemplate !== undefined) {
    try {
      chatTemplate = await Deno.readTextFile(files.chatTemplate);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new Error(`Cannot read the chat template at ${files.chatTemplate}: ${message}`);
    }
  }
  try {
    return new LocalTokenizer(json, config, { ...opts, chatTemplate });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`Cannot build a tokenizer from ${files.tokenizerJson}: ${message}`);
  }
}

/**
 * Engine tokenizer: asks the engine itself (vLLM's `POST /tokenize`) for a request's token ids,
 * for models that have no local tokenizer configured.
 *
 * Rule (request): chat bodies become `{model, messages, add_generation_prompt,
 * continue_final_message, add_special_tokens}` plus `tools`, `chat_template_kwargs`,
 * `chat_template` and `mm_processor_kwargs` when the body has them; completion bodies become
 * `{model, prompt, add_special_tokens}`. Token-id prompts never leave the router. `model` is the
 * body's, else the configured one. The defaults are vLLM's (generation prompt on; special tokens
 * off for chat, on for completions), written out so that an engine with other defaults still
 * computes the chat endpoint's tokens.
 * Rule (response): `{tokens: [ids...], count, max_model_len}`; anything else (a status other than
 * 2xx, a body that is not JSON, ids that are not integers from 0 to 2^32-1) is `engine_failed`.
 * Bounds: `timeoutMs` (default 2000) covers the headers and the body; a body over
 * `maxResponseBytes` (default 8 MiB, about 400 k ids) is cancelled and is `too_large`; at most
 * `maxInFlight` (default 64) calls at once, the next one fails at once as `overloaded`. The
 * caller's signal aborts the call.
 *
 * Cost: one HTTP round trip to the engine (a few ms, the engine's tokenizer included), JSON of
 * about 7 bytes per token. No cache: the engine's answer cannot be split into reusable sections.
 *
 * @module
 */

import { readCapped } from "../util/read_capped.ts";
import { bad, isObject, typeName } from "../prefix/json_fields.ts";
import { bodyObject, chatFlags, completionPrompt, flag, truncated } from "./request_fields.ts";
import {
  type RequestTokenizer,
  TokenizeError,
  type TokenizeRequest,
  type TokenizeResult,
  type TokenizerStats,
  zeroStats,
} from "./types.ts";

/** Where the engine is and how long to wait for it. */
export interface EngineTokenizerOptions {
  /** The engine's root URL, e.g. `http://10.0.0.5:8000` (`/tokenize` is appended; a trailing `/v1` is dropped). */
  readonly url: string;
  /** `model` sent when the body has none. */
  readonly model?: string;
  /** Limit for one call, headers and body. Default 2000 ms. */
  readonly timeoutMs?: number;
  /** Largest response body accepted. Default 8 MiB. */
  readonly maxResponseBytes?: number;
  /** Calls in flight at most. Default 64. */
  readonly maxInFlight?: number;
  /** Extra request headers (e.g. the engine's `Authorization`). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Clock for the time counters, in milliseconds. Default `performance.now`. */
  readonly now?: () => number;
}

const CHAT_EXTRAS = ["tools", "chat_template_kwargs", "chat_template", "mm_processor_kwargs"];
const MAX_ID = 0xffffffff;
const ERROR_SNIPPET = 300;

/** The `/tokenize` body for a chat request. */
function chatPayload(
  body: Record<string, unknown>,
  model: string | undefined,
): Record<string, unknown> {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw bad("messages", `messages must be a non-empty array, got ${typeName(messages)}`);
  }
  const flags = chatFlags(body);
  const out: Record<string, unknown> = {
    model,
    messages,
    add_generation_prompt: flags.addGenerationPrompt,
    continue_final_message: flags.continueFinalMessage,
    add_special_tokens: flags.addSpecialTokens,
  };
  for (const key of CHAT_EXTRAS) {
    if (body[key] !== undefined && body[key] !== null) out[key] = body[key];
  }
  return out;
}

/** Reads at most `max` bytes of `res`'s body; cancels it and throws `too_large` past that. */
function readBounded(res: Response, max: number): Promise<Uint8Array> {
  return readCapped(res, max, (declared) =>
    new TokenizeError(
      "too_large",
      declared === null
        ? `Engine /tokenize answer is over ${max} bytes`
        : `Engine /tokenize answer of ${declared} bytes is over ${max}`,
    ));
}

/** The ids of a `/tokenize` answer. */
function responseTokens(json: unknown): Uint32Array {
  const tokens = isObject(json) ? json.tokens : undefined;
  if (!Array.isArray(tokens)) {
    throw new TokenizeError("engine_failed", "Engine /tokenize answer has no tokens array");
  }
  const out = new Uint32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const id: unknown = tokens[i];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_ID) {
      throw new TokenizeError(
        "engine_failed",
        `Engine /tokenize answer has token ${String(id)} at ${i}`,
      );
    }
    out[i] = id;
  }
  return out;
}

/** The message of an engine's error body (OpenAI's shape or vLLM's), cut short. */
function errorText(bytes: Uint8Array): string {
  const text = new TextDecoder().decode(bytes);
  try {
    const json: unknown = JSON.parse(text);
    if (isObject(json)) {
      const err = json.error;
      const message = isObject(err) ? err.message : json.message ?? err;
      if (typeof message === "string") return message.slice(0, ERROR_SNIPPET);
    }
  } catch {
    // Not JSON: the raw text.
  }
  return text.slice(0, ERROR_SNIPPET);
}

/** Tokenizes request bodies by asking the engine. */
export class EngineTokenizer implements RequestTokenizer {
  readonly name: string;
  readonly #endpoint: string;
  readonly #model: string | undefined;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #maxInFlight: number;
  readonly #headers: Record<string, string>;
  readonly #now: () => number;
  #inFlight = 0;
  #stats: { -readonly [K in keyof TokenizerStats]: TokenizerStats[K] } = { ...zeroStats() };

  /**
   * Checks the options; makes no call.
   * @throws Error when `url` is not an http(s) URL or a bound is not positive
   */
  constructor(opts: EngineTokenizerOptions) {
    const url = new URL(opts.url);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new Error(`Engine URL must be http(s), got ${JSON.stringify(opts.url)}`);
    }
    const root = url.href.replace(/\/+$/, "").replace(/\/v1$/, "");
    this.#endpoint = `${root}/tokenize`;
    this.name = `engine:${root}`;
    this.#model = opts.model;
    this.#timeoutMs = positive(opts.timeoutMs ?? 2000, "timeoutMs");
    this.#maxBytes = positive(opts.maxResponseBytes ?? 8 * 1024 * 1024, "maxResponseBytes");
    this.#maxInFlight = positive(opts.maxInFlight ?? 64, "maxInFlight");
    this.#headers = { ...opts.headers, "content-type": "application/json" };
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Calls waiting for the engine now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Token ids of `req` from the engine (see the module rule). */
  async tokenize(req: TokenizeRequest): Promise<TokenizeResult> {
    const s = this.#stats;
    s.requests++;
    const start = this.#now();
    try {
      const body = bodyObject(req.body);
      const model = typeof body.model === "string" ? body.model : this.#model;
      let payload: Record<string, unknown>;
      if (req.kind === "chat") {
        payload = chatPayload(body, model);
      } else {
        const prompt = completionPrompt(body);
        if (prompt.ids !== undefined) {
          return { tokens: truncated(body, prompt.ids), cachedTokens: 0, encodedTokens: 0, ms: 0 };
        }
        payload = {
          model,
          prompt: prompt.text,
          add_special_tokens: flag(body, "add_special_tokens", true),
        };
      }
      const tokens = await this.#call(payload, req.signal);
      const ms = this.#now() - start;
      s.engineMs += ms;
      return { tokens: truncated(body, tokens), cachedTokens: 0, encodedTokens: tokens.length, ms };
    } catch (err) {
      s.failures++;
      throw err;
    }
  }

  async #call(
    payload: Record<string, unknown>,
    signal: AbortSignal | undefined,
  ): Promise<Uint32Array> {
    if (this.#inFlight >= this.#maxInFlight) {
      throw new TokenizeError("overloaded", `${this.#inFlight} engine /tokenize calls in flight`);
    }
    if (signal?.aborted) throw new TokenizeError("engine_failed", "Tokenize call aborted");
    this.#inFlight++;
    const ctl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctl.abort();
    }, this.#timeoutMs);
    const onAbort = () => ctl.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const res = await fetch(this.#endpoint, {
        method: "POST",
        headers: this.#headers,
        body: JSON.stringify(payload),
        signal: ctl.signal,
      });
      if (!res.ok) {
        const detail = errorText(await readBounded(res, 64 * 1024).catch(() => new Uint8Array(0)));
        throw new TokenizeError(
          "engine_failed",
          `Engine /tokenize answered ${res.status}: ${detail}`,
        );
      }
      const bytes = await readBounded(res, this.#maxBytes);
      let json: unknown;
      try {
        json = JSON.parse(new TextDecoder().decode(bytes));
      } catch {
        throw new TokenizeError("engine_failed", "Engine /tokenize answer is not JSON");
      }
      return responseTokens(json);
    } catch (err) {
      if (err instanceof TokenizeError) throw err;
      if (timedOut) {
        throw new TokenizeError(
          "timeout",
          `Engine /tokenize did not answer within ${this.#timeoutMs} ms`,
        );
      }
      if (signal?.aborted) throw new TokenizeError("engine_failed", "Tokenize call aborted");
      const message = err instanceof Error ? err.message : String(err);
      throw new TokenizeError("engine_failed", `Engine /tokenize failed: ${message}`);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      this.#inFlight--;
    }
  }

  /** Current counters. */
  stats(): TokenizerStats {
    return { ...this.#stats };
  }
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${name} must be a positive number, got ${value}`);
  }
  return value;
}

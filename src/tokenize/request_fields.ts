/**
 * The request fields that decide tokenization, read the way vLLM reads them, shared by the local
 * and the engine tokenizer.
 *
 * Rule (completion): `prompt` is a string, an array of token ids (passed through unchanged), or an
 * array of one of those; an array of two or more prompts is a batch the engine turns into several
 * requests, so it is `unsupported`. `add_special_tokens` defaults to true.
 * Rule (chat): `add_generation_prompt` defaults to true, `continue_final_message` to false (both
 * true is a bad request, as in vLLM), `add_special_tokens` to false (the template adds BOS).
 * Rule (both): `truncate_prompt_tokens` = k > 0 keeps the last k ids, as vLLM does.
 *
 * @module
 */

import { bad, isObject, typeName } from "../prefix/json_fields.ts";
import { TokenizeError } from "./types.ts";

/** The body as an object, or a `bad_request`. */
export function bodyObject(body: unknown): Record<string, unknown> {
  if (!isObject(body)) {
    throw bad(null, `Request body must be a JSON object, got ${typeName(body)}`);
  }
  return body;
}

/** An optional boolean field: its value, `fallback` when absent or null. */
export function flag(body: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const value = body[key] ?? undefined;
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw bad(key, `${key} must be a boolean, got ${typeName(value)}`);
  }
  return value;
}

/** What a completion request's `prompt` asks for: text to tokenize, or ids to pass through. */
export type CompletionPrompt =
  | { readonly text: string; readonly ids?: undefined }
  | { readonly ids: Uint32Array; readonly text?: undefined };

const MAX_ID = 0xffffffff;

function tokenIds(ids: unknown[], path: string): Uint32Array {
  const out = new Uint32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_ID) {
      throw bad(
        "prompt",
        `${path}[${i}] must be a token id (an integer from 0), got ${String(id)}`,
      );
    }
    out[i] = id;
  }
  return out;
}

/**
 * The single prompt of a completion body.
 * @throws RouterError `bad_request` for a prompt of the wrong type
 * @throws TokenizeError `unsupported` for a batch of prompts
 */
export function completionPrompt(body: Record<string, unknown>): CompletionPrompt {
  let prompt = body.prompt;
  if (Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] !== "number") {
    if (prompt.length > 1) {
      throw new TokenizeError(
        "unsupported",
        `A batch of ${prompt.length} prompts cannot be tokenized as one request`,
      );
    }
    prompt = prompt[0];
    if (typeof prompt !== "string" && !Array.isArray(prompt)) {
      throw bad(
        "prompt",
        `prompt[0] must be a string or an array of token ids, got ${typeName(prompt)}`,
      );
    }
    if (Array.isArray(prompt)) return { ids: tokenIds(prompt, "prompt[0]") };
  }
  if (typeof prompt === "string") return { text: prompt };
  if (Array.isArray(prompt)) {
    if (prompt.length === 0) throw bad("prompt", "prompt must not be an empty array");
    return { ids: tokenIds(prompt, "prompt") };
  }
  throw bad(
    "prompt",
    `prompt must be a string, an array of token ids or an array of one of those, got ${
      typeName(prompt)
    }`,
  );
}

/** The chat flags that change the rendering, with vLLM's defaults. */
export interface ChatFlags {
  /** `add_generation_prompt` (default true). */
  readonly addGenerationPrompt: boolean;
  /** `continue_final_message` (default false). */
  readonly continueFinalMessage: boolean;
  /** `add_special_tokens` (default false for chat). */
  readonly addSpecialTokens: boolean;
}

/** Reads {@linkcode ChatFlags} from a chat body. */
export function chatFlags(body: Record<string, unknown>): ChatFlags {
  const addGenerationPrompt = flag(body, "add_generation_prompt", true);
  const continueFinalMessage = flag(body, "continue_final_message", false);
  if (addGenerationPrompt && continueFinalMessage) {
    throw bad(
      "continue_final_message",
      "Cannot set both continue_final_message and add_generation_prompt to true",
    );
  }
  return {
    addGenerationPrompt,
    continueFinalMessage,
    addSpecialTokens: flag(body, "add_special_tokens", false),
  };
}

/** Applies `truncate_prompt_tokens` (keep the last k ids when k > 0; other values change nothing). */
export function truncated(body: Record<string, unknown>, tokens: Uint32Array): Uint32Array {
  const k = body.truncate_prompt_tokens;
  if (typeof k !== "number" || !Number.isInteger(k) || k <= 0 || k >= tokens.length) return tokens;
  return tokens.slice(tokens.length - k);
}

/**
 * The sim worker's chat template: the text the simulated model "sees" for a request.
 *
 * Rule: the router's routing text (`routingText` from src/prefix/routing_text.ts: tools, then per
 * message `role[name]:content` and a newline) followed by the generation prompt `assistant:`. The
 * generated answer follows the generation prompt directly, so the next turn, which carries
 * `assistant:<answer>\n` in its history, extends the previous prompt + answer byte for byte and
 * reuses its KV blocks, as a real chat template does. vLLM's `add_generation_prompt: false` drops
 * the generation prompt and `continue_final_message: true` also leaves the last message open (no
 * newline). A legacy completion's prompt is its routing text as is; a token-id prompt keeps its
 * ids, which the engine caches as they are (16 ids a block).
 *
 * @module
 */

import { routingText } from "../prefix/routing_text.ts";

/** A request body that is not a valid chat or completion request. */
export class BadRequestError extends Error {
  constructor(message: string, readonly param: string | null = null) {
    super(message);
    this.name = "BadRequestError";
  }
}

/** The generation prompt appended after the history. */
export const GENERATION_PROMPT = "assistant:";

/** The prompt the simulated model processes for a chat request. */
export function chatPromptText(body: Record<string, unknown>): string {
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    throw new BadRequestError("messages must be a non-empty array", "messages");
  }
  const cont = boolField(body, "continue_final_message", false);
  const gen = boolField(body, "add_generation_prompt", !cont);
  if (cont && gen) {
    throw new BadRequestError(
      "continue_final_message and add_generation_prompt cannot both be true",
      "continue_final_message",
    );
  }
  const text = routingText(body, "chat");
  if (cont) return text.endsWith("\n") ? text.slice(0, -1) : text;
  return gen ? text + GENERATION_PROMPT : text;
}

/** A boolean field, `fallback` when absent or null; validated. */
function boolField(body: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const v = body[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") {
    throw new BadRequestError(`${key} must be a boolean, got ${JSON.stringify(v)}`, key);
  }
  return v;
}

/**
 * Prompt of a legacy completion request: its text, or its token ids. One prompt per request: a
 * batch (several strings or id lists) is a 400, since the simulator answers one sequence per
 * request where OpenAI and vLLM answer one choice per prompt.
 */
export function completionPrompt(
  body: Record<string, unknown>,
): { text: string; ids?: undefined } | { text?: undefined; ids: number[] } {
  const p = body.prompt;
  if (
    Array.isArray(p) && p.length > 1 && p.every((x) => typeof x === "string" || Array.isArray(x))
  ) {
    throw new BadRequestError(
      `the simulator takes one prompt per request, got a batch of ${p.length}`,
      "prompt",
    );
  }
  const ids = Array.isArray(p) && p.length === 1 && Array.isArray(p[0]) ? p[0] : p;
  if (Array.isArray(ids) && ids.length > 0 && ids.every((x) => typeof x === "number")) {
    for (const x of ids as number[]) {
      if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) {
        throw new BadRequestError(
          `token ids must be integers from 0 to 2^32-1, got ${x}`,
          "prompt",
        );
      }
    }
    return { ids: ids as number[] };
  }
  const text = routingText(body, "completion");
  if (text === "") throw new BadRequestError("prompt must not be empty", "prompt");
  return { text };
}

/** `max_completion_tokens` or `max_tokens`, else `fallback`; validated. */
export function maxTokensOf(body: Record<string, unknown>, fallback: number): number {
  const v = body.max_completion_tokens ?? body.max_tokens;
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new BadRequestError(
      `max_tokens must be a positive integer, got ${JSON.stringify(v)}`,
      "max_tokens",
    );
  }
  return v;
}

/** vLLM's sampling fields the simulator honours: `ignore_eos` and `min_tokens`; validated. */
export function samplingOf(
  body: Record<string, unknown>,
): { ignoreEos?: boolean; minTokens?: number } {
  const out: { ignoreEos?: boolean; minTokens?: number } = {};
  const ie = body.ignore_eos;
  if (ie !== undefined && ie !== null) {
    if (typeof ie !== "boolean") {
      throw new BadRequestError(
        `ignore_eos must be a boolean, got ${JSON.stringify(ie)}`,
        "ignore_eos",
      );
    }
    out.ignoreEos = ie;
  }
  const mt = body.min_tokens;
  if (mt !== undefined && mt !== null) {
    if (typeof mt !== "number" || !Number.isInteger(mt) || mt < 0) {
      throw new BadRequestError(
        `min_tokens must be an integer ≥ 0, got ${JSON.stringify(mt)}`,
        "min_tokens",
      );
    }
    out.minTokens = mt;
  }
  return out;
}

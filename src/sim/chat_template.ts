/**
 * The sim worker's chat template: the text the simulated model "sees" for a request.
 *
 * Rule: the router's routing text (`routingText` from src/prefix/routing_text.ts: tools, then per
 * message `role[name]:content` and a newline) followed by the generation prompt `assistant:`. The
 * generated answer follows the generation prompt directly, so the next turn, which carries
 * `assistant:<answer>\n` in its history, extends the previous prompt + answer byte for byte and
 * reuses its KV blocks, as a real chat template does. A legacy completion's prompt is its routing
 * text as is; a token-id prompt also gives the real token count.
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
  return routingText(body, "chat") + GENERATION_PROMPT;
}

/** Prompt of a legacy completion request, with the real token count for a token-id prompt. */
export function completionPrompt(
  body: Record<string, unknown>,
): { text: string; promptTokens?: number } {
  const text = routingText(body, "completion");
  const p = body.prompt;
  const ids = Array.isArray(p) && p.length === 1 && Array.isArray(p[0]) ? p[0] : p;
  if (Array.isArray(ids) && ids.length > 0 && typeof ids[0] === "number") {
    return { text, promptTokens: ids.length };
  }
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

/**
 * `POST /v1/messages` of the sim worker: Anthropic's Messages API as vLLM serves it (vLLM turns
 * it into a chat request: `system` first, then the messages, text blocks joined).
 *
 * Rules:
 * - Request: `max_tokens` (required, as Anthropic requires it), `messages` (content a string or
 *   blocks; `text` blocks count, other blocks are a 400), `system` (a string or text blocks).
 * - Answer: `{id: "msg_…", type: "message", role: "assistant", model, content: [{type: "text",
 *   text}], stop_reason: "end_turn" | "max_tokens", stop_sequence: null, usage}`.
 * - Usage as Anthropic defines it: `input_tokens` are the prompt tokens not read from the cache,
 *   `cache_read_input_tokens` those read from it (the engine's cached tokens),
 *   `cache_creation_input_tokens` 0, `output_tokens`. (vLLM's own endpoint reports
 *   `input_tokens` as the whole prompt; the sum `input_tokens + cache_read_input_tokens` is the
 *   prompt here.)
 * - Streams, with Anthropic's `event:` names: at the first token `message_start` (its usage
 *   already carries the cache figures), `content_block_start`, `ping`, then one
 *   `content_block_delta` (`text_delta`) per token, then `content_block_stop`, `message_delta`
 *   (`stop_reason`, `usage.output_tokens`) and `message_stop`.
 * - Errors in Anthropic's shape `{type: "error", error: {type, message}}` (an unknown model is a
 *   404 `not_found_error`).
 *
 * @module
 */

import { BadRequestError, maxTokensOf } from "./chat_template.ts";
import {
  admit,
  type Admitted,
  errorFor,
  jsonAnswer,
  randomHex,
  readJson,
  sseResponse,
  type WorkerCore,
} from "./generation.ts";
import type { EngineEvent } from "./types.ts";
import { anthropicError, errorParts } from "./vllm_errors.ts";

/** Text of a content that is a string or blocks (only `text` blocks). */
function textOf(content: unknown, where: string): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) throw new BadRequestError(`${where} must be a string or blocks`);
  let s = "";
  content.forEach((b, i) => {
    const block = b as Record<string, unknown> | null;
    if (block === null || typeof block !== "object" || block.type !== "text") {
      throw new BadRequestError(`${where}[${i}] must be a text block; the simulator takes text`);
    }
    if (typeof block.text !== "string") {
      throw new BadRequestError(`${where}[${i}].text must be a string`);
    }
    s += block.text;
  });
  return s;
}

/** The chat messages vLLM renders for an Anthropic body. */
function chatMessages(body: Record<string, unknown>): Array<{ role: string; content: string }> {
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    throw new BadRequestError("messages must be a non-empty array", "messages");
  }
  const out: Array<{ role: string; content: string }> = [];
  if (body.system !== undefined && body.system !== null) {
    out.push({ role: "system", content: textOf(body.system, "system") });
  }
  body.messages.forEach((m, i) => {
    const msg = m as Record<string, unknown> | null;
    const role = msg?.role;
    if (role !== "user" && role !== "assistant") {
      throw new BadRequestError(`messages[${i}].role must be user or assistant`, "messages");
    }
    out.push({ role, content: textOf(msg!.content, `messages[${i}].content`) });
  });
  return out;
}

async function anthropicShaped(res: Response): Promise<Response> {
  const { status, message } = await errorParts(res);
  return anthropicError(status, message);
}

function usage(ev: EngineEvent, output: number) {
  return {
    input_tokens: ev.promptTokens - ev.cachedTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: ev.cachedTokens,
    output_tokens: output,
  };
}

/** Handles `POST /v1/messages`. */
export async function messagesRequest(core: WorkerCore, req: Request): Promise<Response> {
  const body = await readJson(core, req);
  if (body instanceof Response) return await anthropicShaped(body);
  let messages: Array<{ role: string; content: string }>;
  try {
    if (body.max_tokens === undefined) {
      throw new BadRequestError("max_tokens is required", "max_tokens");
    }
    messages = chatMessages(body);
  } catch (err) {
    return await anthropicShaped(errorFor(core, err));
  }
  const a = await admit(core, body, () => ({
    ...core.tokenizer.chat({ messages }),
    maxTokens: maxTokensOf({ max_tokens: body.max_tokens }, core.defaultMaxTokens),
  }));
  if (a instanceof Response) return await anthropicShaped(a);
  const id = `msg_${randomHex(12)}`;
  const stop = (ev: EngineEvent) => ev.finishReason === "length" ? "max_tokens" : "end_turn";
  if (body.stream !== true) {
    return jsonAnswer(core, a, (ev, text) => ({
      id,
      type: "message",
      role: "assistant",
      model: a.model.name,
      content: [{ type: "text", text }],
      stop_reason: stop(ev),
      stop_sequence: null,
      usage: usage(ev, ev.completionTokens),
    }));
  }
  return stream(a, core, id, stop);
}

function stream(
  a: Admitted,
  core: WorkerCore,
  id: string,
  stop: (ev: EngineEvent) => string,
): Response {
  const event = (type: string, data: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  return sseResponse(core, a, (ev, send) => {
    if (ev.kind === "first_token") {
      const message = {
        id,
        type: "message",
        role: "assistant",
        model: a.model.name,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: usage(ev, 0),
      };
      if (!send(event("message_start", { message }))) return;
      const block = { index: 0, content_block: { type: "text", text: "" } };
      if (!send(event("content_block_start", block))) return;
      if (!send(event("ping", {}))) return;
    }
    if (ev.kind !== "done") {
      send(
        event("content_block_delta", { index: 0, delta: { type: "text_delta", text: ev.text } }),
      );
      return;
    }
    if (!send(event("content_block_stop", { index: 0 }))) return;
    const delta = { delta: { stop_reason: stop(ev), stop_sequence: null } };
    if (
      !send(event("message_delta", { ...delta, usage: { output_tokens: ev.completionTokens } }))
    ) {
      return;
    }
    send(event("message_stop", {}));
  });
}

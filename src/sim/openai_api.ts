/**
 * `POST /v1/chat/completions` and `POST /v1/completions` of the sim worker, in OpenAI's (and
 * vLLM's) shapes.
 *
 * Streams: a first chunk with `delta: {role: "assistant", content: ""}` (chat), one chunk per token,
 * a final chunk with an empty delta and `finish_reason` `"stop"` or `"length"`, then, with
 * `stream_options.include_usage`, a `choices: []` chunk with `usage`, then `data: [DONE]`. JSON
 * answers carry the whole text and `usage`. Responses name the resolved model (the adapter, else
 * the first base name), as vLLM does.
 *
 * @module
 */

import { maxTokensOf, samplingOf } from "./chat_template.ts";
import {
  admit,
  type Admitted,
  jsonAnswer,
  readJson,
  sseResponse,
  usageOf,
  type WorkerCore,
} from "./generation.ts";
import type { EngineEvent } from "./types.ts";

type Kind = "chat" | "text";

/** Handles a chat (`kind` "chat") or legacy completion ("text") request. */
export async function completionRequest(
  core: WorkerCore,
  req: Request,
  kind: Kind,
): Promise<Response> {
  const body = await readJson(core, req);
  if (body instanceof Response) return body;
  const a = await admit(core, body, () => ({
    ...(kind === "chat" ? core.tokenizer.chat(body) : core.tokenizer.completion(body)),
    maxTokens: maxTokensOf(body, core.defaultMaxTokens),
    ...samplingOf(body),
  }));
  if (a instanceof Response) return a;
  const reqId = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${core.id()}-${core.nextSeq()}`;
  const so = body.stream_options as Record<string, unknown> | undefined;
  const includeUsage = so !== null && typeof so === "object" && so.include_usage === true;
  return body.stream === true
    ? stream(core, a, kind, reqId, includeUsage)
    : whole(core, a, kind, reqId);
}

function chunkOf(
  core: WorkerCore,
  a: Admitted,
  kind: Kind,
  reqId: string,
  choice: Record<string, unknown> | null,
  usage?: unknown,
): string {
  const obj: Record<string, unknown> = {
    id: reqId,
    object: kind === "chat" ? "chat.completion.chunk" : "text_completion",
    created: core.created,
    model: a.model.name,
    choices: choice === null ? [] : [choice],
  };
  if (usage !== undefined) obj.usage = usage;
  return `data: ${JSON.stringify(obj)}\n\n`;
}

function stream(
  core: WorkerCore,
  a: Admitted,
  kind: Kind,
  reqId: string,
  includeUsage: boolean,
): Response {
  const chunk = (choice: Record<string, unknown> | null, usage?: unknown) =>
    chunkOf(core, a, kind, reqId, choice, usage);
  return sseResponse(core, a, (ev: EngineEvent, send) => {
    if (ev.kind === "first_token" && kind === "chat") {
      const role = {
        index: 0,
        delta: { role: "assistant", content: "" },
        logprobs: null,
        finish_reason: null,
      };
      if (!send(chunk(role))) return;
    }
    if (ev.kind !== "done") {
      send(chunk(
        kind === "chat"
          ? { index: 0, delta: { content: ev.text }, logprobs: null, finish_reason: null }
          : { index: 0, text: ev.text, logprobs: null, finish_reason: null },
      ));
      return;
    }
    const last = kind === "chat"
      ? { index: 0, delta: {}, logprobs: null, finish_reason: ev.finishReason, stop_reason: null }
      : { index: 0, text: "", logprobs: null, finish_reason: ev.finishReason, stop_reason: null };
    if (!send(chunk(last))) return;
    if (includeUsage && !send(chunk(null, usageOf(ev)))) return;
    send("data: [DONE]\n\n");
  });
}

function whole(core: WorkerCore, a: Admitted, kind: Kind, reqId: string): Response {
  return jsonAnswer(core, a, (ev, text) => ({
    id: reqId,
    object: kind === "chat" ? "chat.completion" : "text_completion",
    created: core.created,
    model: a.model.name,
    choices: [
      kind === "chat"
        ? {
          index: 0,
          message: { role: "assistant", content: text },
          logprobs: null,
          finish_reason: ev.finishReason,
          stop_reason: null,
        }
        : { index: 0, text, logprobs: null, finish_reason: ev.finishReason, stop_reason: null },
    ],
    usage: usageOf(ev),
  }));
}

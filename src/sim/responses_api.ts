/**
 * `POST /v1/responses` and `GET /v1/responses/{id}` of the sim worker: OpenAI's Responses API as
 * vLLM serves it, with responses kept in this worker's memory only.
 *
 * Rules:
 * - Input: `input` is a string (one user message) or a list of messages (`{role, content}` or
 *   `{type: "message", role, content}`, content a string or `input_text` / `output_text` parts;
 *   role `developer` is a system message); other item types are a 400. `instructions` becomes a
 *   leading system message of this request only (OpenAI: not carried into a follow-up).
 *   `max_output_tokens` caps the answer (default: the worker's `max_tokens`).
 * - `previous_response_id`: the stored conversation (its inputs and answers) comes first, then
 *   the new input, so the prompt extends the previous one and the prefix cache hits. An id this
 *   worker does not hold is vLLM's 404 `Response with id '…' not found.` (`invalid_request_error`,
 *   param `response_id`): ids are `resp_` + 32 random hex digits, known only to the worker that
 *   made them, so a router must send a follow-up back there.
 * - Kept unless `store: false`, at most `maxEntries` (default 1024) and `maxBytes` of
 *   conversation text (default 64 MiB), oldest dropped first; the prompt is re-rendered from the
 *   stored messages through the chat template, as vLLM does.
 * - Streams (`stream: true`) send Responses events as `event: TYPE` / `data: {type,
 *   sequence_number, ...}`: `response.created`, `response.in_progress` at once, then at the first
 *   token `response.output_item.added`, `response.content_part.added`, one
 *   `response.output_text.delta` per token, then `response.output_text.done`,
 *   `response.content_part.done`, `response.output_item.done` and `response.completed` (status
 *   `incomplete` with reason `max_output_tokens` when the answer hit the cap, as vLLM sends it).
 * - Usage: `{input_tokens, input_tokens_details: {cached_tokens}, output_tokens,
 *   output_tokens_details: {reasoning_tokens: 0}, total_tokens}`.
 *
 * Cost: a follow-up re-renders the whole conversation (as the engine re-tokenizes it).
 *
 * @module
 */

import { BadRequestError, maxTokensOf } from "./chat_template.ts";
import {
  admit,
  type Admitted,
  errorFor,
  json,
  jsonAnswer,
  randomHex,
  readJson,
  sseResponse,
  type WorkerCore,
} from "./generation.ts";
import type { EngineEvent } from "./types.ts";
import { vllmError } from "./vllm_errors.ts";

type Message = { role: string; content: string | Array<{ type: "text"; text: string }> };

interface Stored {
  readonly response: Record<string, unknown>;
  /** The conversation without instructions: inputs and answers, in order. */
  readonly messages: readonly Message[];
  readonly bytes: number;
}

/** Responses kept by one worker, oldest dropped first past either bound. */
export class ResponseStore {
  readonly #entries = new Map<string, Stored>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(maxEntries = 1024, maxBytes = 64 * 1024 * 1024) {
    this.#maxEntries = maxEntries;
    this.#maxBytes = maxBytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(id: string): Stored | undefined {
    return this.#entries.get(id);
  }

  put(id: string, s: Stored): void {
    if (s.bytes > this.#maxBytes || this.#maxEntries < 1) return;
    this.#entries.set(id, s);
    this.#bytes += s.bytes;
    while (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes) {
      const [oldId, old] = this.#entries.entries().next().value!;
      this.#entries.delete(oldId);
      this.#bytes -= old.bytes;
    }
  }
}

function notFound(id: string): Response {
  return vllmError(
    404,
    "invalid_request_error",
    `Response with id '${id}' not found.`,
    "response_id",
  );
}

/** One input item as a chat message. */
function messageOf(item: unknown, i: number): Message {
  if (item === null || typeof item !== "object" || Array.isArray(item)) {
    throw new BadRequestError(`input[${i}] must be an object`, "input");
  }
  const it = item as Record<string, unknown>;
  if (it.type !== undefined && it.type !== "message") {
    throw new BadRequestError(
      `input[${i}] has type ${JSON.stringify(it.type)}; the simulator takes messages`,
      "input",
    );
  }
  const role = it.role === "developer" ? "system" : it.role;
  if (typeof role !== "string" || !["system", "user", "assistant"].includes(role)) {
    throw new BadRequestError(
      `input[${i}].role must be system, developer, user or assistant`,
      "input",
    );
  }
  if (typeof it.content === "string") return { role, content: it.content };
  if (!Array.isArray(it.content)) {
    throw new BadRequestError(`input[${i}].content must be a string or a list of parts`, "input");
  }
  const parts = it.content.map((p, j) => {
    const part = p as Record<string, unknown> | null;
    const ok = part !== null && typeof part === "object" && typeof part.text === "string" &&
      ["input_text", "output_text", "text"].includes(part.type as string);
    if (!ok) throw new BadRequestError(`input[${i}].content[${j}] must be a text part`, "input");
    return { type: "text" as const, text: part!.text as string };
  });
  return { role, content: parts };
}

/** The request's own input as chat messages. */
function inputMessages(body: Record<string, unknown>): Message[] {
  const input = body.input;
  if (typeof input === "string") return [{ role: "user", content: input }];
  if (!Array.isArray(input) || input.length === 0) {
    throw new BadRequestError("input must be a string or a non-empty list of messages", "input");
  }
  return input.map(messageOf);
}

/** Handles `POST /v1/responses`. */
export async function responsesRequest(
  core: WorkerCore,
  store: ResponseStore,
  req: Request,
): Promise<Response> {
  const body = await readJson(core, req);
  if (body instanceof Response) return body;
  const model = core.models.resolve(body.model);
  if (model instanceof Response) return model;
  const prevId = body.previous_response_id;
  let prev: Stored | undefined;
  if (prevId !== undefined && prevId !== null) {
    if (typeof prevId !== "string") return notFound(String(prevId));
    prev = store.get(prevId);
    if (prev === undefined) return notFound(prevId);
  }
  let conversation: Message[];
  let prompt: Message[];
  try {
    conversation = [...(prev?.messages ?? []), ...inputMessages(body)];
    const ins = body.instructions;
    if (ins !== undefined && ins !== null && typeof ins !== "string") {
      throw new BadRequestError("instructions must be a string", "instructions");
    }
    prompt = typeof ins === "string" && ins !== ""
      ? [{ role: "system", content: ins }, ...conversation]
      : conversation;
  } catch (err) {
    return errorFor(core, err);
  }
  const maxTokens = body.max_output_tokens ?? body.max_tokens;
  const a = await admit(core, body, () => ({
    ...core.tokenizer.chat({ messages: prompt, ...(body.tools ? { tools: body.tools } : {}) }),
    maxTokens: maxTokensOf({ max_tokens: maxTokens }, core.defaultMaxTokens),
  }));
  if (a instanceof Response) return a;
  const ids = { resp: `resp_${randomHex()}`, msg: `msg_${randomHex()}` };
  const keep = (ev: EngineEvent, text: string) => {
    const r = responseObject(core, a, body, ids, text, ev, "completed");
    if (body.store !== false) {
      const messages = [...conversation, { role: "assistant", content: text }];
      const bytes = JSON.stringify(messages).length * 2;
      store.put(ids.resp, { response: r, messages, bytes });
    }
    return r;
  };
  if (body.stream !== true) return jsonAnswer(core, a, (ev, text) => keep(ev, text));
  return stream(core, a, body, ids, keep);
}

/** Handles `GET /v1/responses/{id}`. */
export function retrieveResponse(store: ResponseStore, id: string): Response {
  const s = store.get(id);
  return s === undefined ? notFound(id) : json(s.response);
}

function outputItem(id: string, text: string, status: string) {
  const content = text === "" && status === "in_progress"
    ? []
    : [{ type: "output_text", text, annotations: [], logprobs: [] }];
  return { id, type: "message", status, role: "assistant", content };
}

function responseObject(
  core: WorkerCore,
  a: Admitted,
  body: Record<string, unknown>,
  ids: { resp: string; msg: string },
  text: string,
  ev: EngineEvent | null,
  status: "in_progress" | "completed",
): Record<string, unknown> {
  const incomplete = ev !== null && ev.finishReason === "length";
  const st = status === "completed" && incomplete ? "incomplete" : status;
  return {
    id: ids.resp,
    object: "response",
    created_at: core.created,
    model: a.model.name,
    status: st,
    error: null,
    incomplete_details: st === "incomplete" ? { reason: "max_output_tokens" } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: a.req.maxTokens,
    previous_response_id: body.previous_response_id ?? null,
    output: ev === null ? [] : [outputItem(ids.msg, text, "completed")],
    parallel_tool_calls: true,
    temperature: typeof body.temperature === "number" ? body.temperature : 1,
    tool_choice: "auto",
    tools: [],
    top_p: typeof body.top_p === "number" ? body.top_p : 1,
    store: body.store !== false,
    text: { format: { type: "text" } },
    truncation: "disabled",
    usage: ev === null ? null : {
      input_tokens: ev.promptTokens,
      input_tokens_details: { cached_tokens: ev.cachedTokens },
      output_tokens: ev.completionTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: ev.promptTokens + ev.completionTokens,
    },
  };
}

function stream(
  core: WorkerCore,
  a: Admitted,
  body: Record<string, unknown>,
  ids: { resp: string; msg: string },
  keep: (ev: EngineEvent, text: string) => Record<string, unknown>,
): Response {
  let n = 0;
  const event = (type: string, data: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: n++, ...data })}\n\n`;
  const start = responseObject(core, a, body, ids, "", null, "in_progress");
  const prelude = [
    event("response.created", { response: start }),
    event("response.in_progress", { response: start }),
  ];
  const at = { item_id: ids.msg, output_index: 0, content_index: 0 };
  let text = "";
  return sseResponse(core, a, (ev, send) => {
    if (ev.kind === "first_token") {
      const item = outputItem(ids.msg, "", "in_progress");
      if (!send(event("response.output_item.added", { output_index: 0, item }))) return;
      const part = { type: "output_text", text: "", annotations: [], logprobs: [] };
      if (!send(event("response.content_part.added", { ...at, part }))) return;
    }
    if (ev.kind !== "done") {
      text += ev.text;
      send(event("response.output_text.delta", { ...at, delta: ev.text, logprobs: [] }));
      return;
    }
    const part = { type: "output_text", text, annotations: [], logprobs: [] };
    if (!send(event("response.output_text.done", { ...at, text, logprobs: [] }))) return;
    if (!send(event("response.content_part.done", { ...at, part }))) return;
    const item = outputItem(ids.msg, text, "completed");
    if (!send(event("response.output_item.done", { output_index: 0, item }))) return;
    send(event("response.completed", { response: keep(ev, text) }));
  }, prelude);
}

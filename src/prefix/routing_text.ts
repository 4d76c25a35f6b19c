/**
 * Routing text: the part of an OpenAI request body that decides which KV-cache prefix it needs,
 * flattened into one string for the chunker, plus the few fields the router itself reads.
 *
 * Rule (chat): `tools:` + `JSON.stringify(tools)` + `\n` when `tools` is a non-empty array, then per
 * message `role`, `[name]` when the message has a non-empty string `name`, `:`, the content, then
 * `JSON.stringify(tool_calls)` when `tool_calls` is a non-empty array, then `\n`. Content is a string,
 * `null`/absent (empty), or an array of parts: the `text` of `text` parts concatenated, any other part
 * replaced by `[<type>:<fnv1a64Hex(JSON.stringify(part))>]` (stable, short, and different when the
 * image or audio differs).
 * Rule (completion): `prompt` as a string; an array of strings joined by `\n`; an array of token
 * ids joined by `,`; an array of token-id arrays, each joined by `,`, joined by `\n`.
 *
 * The text follows the order in which engines render the prompt (tools, then messages), so that
 * requests sharing a conversation prefix share a text prefix. It is not the engine's chat template:
 * only equality of prefixes matters.
 *
 * Cost: one pass over the messages; string concatenation (V8 ropes) and one `JSON.stringify` per
 * non-text part or tool list.
 *
 * @module
 */

import { bad, isObject, typeName } from "./json_fields.ts";
import { fnv1a64Hex } from "./chunker.ts";
import { messagesText, rerankText, responsesText, scoreText, toolsText } from "./endpoint_text.ts";

/** How a body's routing text is read: which endpoint family it belongs to (`endpoint_text.ts`). */
export type RequestKind =
  | "chat"
  | "completion"
  | "responses"
  | "messages"
  | "embeddings"
  | "pooling"
  | "rerank"
  | "score"
  | "none";

/** What the router needs from a request body. */
export interface ParsedRequest {
  /** `model`, when present. */
  readonly model: string | undefined;
  /** `stream`, false when absent. */
  readonly stream: boolean;
  /** `stream_options.include_usage === true`. */
  readonly includeUsage: boolean;
  /** The routing text (see the module rule). */
  readonly text: string;
  /** `previous_response_id` of a Responses API body, or null. */
  readonly previousResponseId: string | null;
}

function contentText(content: unknown, path: string): string {
  if (typeof content === "string") return content;
  if (content === null || content === undefined) return "";
  if (!Array.isArray(content)) {
    throw bad(
      path,
      `${path} must be a string, an array of parts or null, got ${typeName(content)}`,
    );
  }
  let out = "";
  for (let i = 0; i < content.length; i++) {
    const part: unknown = content[i];
    const partPath = `${path}[${i}]`;
    if (!isObject(part)) {
      throw bad(partPath, `${partPath} must be an object, got ${typeName(part)}`);
    }
    const type = part.type;
    if (typeof type !== "string") {
      throw bad(`${partPath}.type`, `${partPath}.type must be a string, got ${typeName(type)}`);
    }
    if (type === "text") {
      if (typeof part.text !== "string") {
        throw bad(
          `${partPath}.text`,
          `${partPath}.text must be a string, got ${typeName(part.text)}`,
        );
      }
      out += part.text;
    } else {
      out += `[${type}:${fnv1a64Hex(JSON.stringify(part))}]`;
    }
  }
  return out;
}

function chatText(body: Record<string, unknown>): string {
  const messages = body.messages;
  if (!Array.isArray(messages)) {
    throw bad("messages", `messages must be a non-empty array, got ${typeName(messages)}`);
  }
  if (messages.length === 0) {
    throw bad("messages", "messages must be a non-empty array, got an empty array");
  }
  let out = toolsText(body.tools);
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i];
    const path = `messages[${i}]`;
    if (!isObject(m)) throw bad(path, `${path} must be an object, got ${typeName(m)}`);
    if (typeof m.role !== "string") {
      throw bad(`${path}.role`, `${path}.role must be a string, got ${typeName(m.role)}`);
    }
    out += m.role;
    if (typeof m.name === "string" && m.name !== "") out += `[${m.name}]`;
    out += ":";
    out += contentText(m.content, `${path}.content`);
    if (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) out += JSON.stringify(m.tool_calls);
    out += "\n";
  }
  return out;
}

const PROMPT_TYPES = "a string, an array of strings, an array of token ids or an array of those";

function tokenIds(ids: unknown[], path: string, param: string): string {
  for (let i = 0; i < ids.length; i++) {
    if (!Number.isInteger(ids[i])) {
      throw bad(param, `${path}[${i}] must be an integer token id, got ${typeName(ids[i])}`);
    }
  }
  return ids.join(",");
}

/** The text of a completion `prompt` (or an embeddings `input`, named by `param`). */
function promptText(prompt: unknown, param = "prompt"): string {
  if (typeof prompt === "string") return prompt;
  if (!Array.isArray(prompt)) {
    throw bad(param, `${param} must be ${PROMPT_TYPES}, got ${typeName(prompt)}`);
  }
  if (prompt.length === 0) return "";
  const first: unknown = prompt[0];
  if (typeof first === "number") return tokenIds(prompt, param, param);
  const lines: string[] = new Array(prompt.length);
  for (let i = 0; i < prompt.length; i++) {
    const item: unknown = prompt[i];
    if (typeof first === "string") {
      if (typeof item !== "string") {
        throw bad(param, `${param}[${i}] must be a string, got ${typeName(item)}`);
      }
      lines[i] = item;
    } else if (Array.isArray(first)) {
      if (!Array.isArray(item)) {
        throw bad(param, `${param}[${i}] must be an array of token ids, got ${typeName(item)}`);
      }
      lines[i] = tokenIds(item, `${param}[${i}]`, param);
    } else {
      throw bad(
        param,
        `${param}[0] must be a string, a token id or an array of token ids, got ${typeName(first)}`,
      );
    }
  }
  return lines.join("\n");
}

/**
 * Routing text of an OpenAI request body (see the module rule).
 * @throws RouterError `bad_request` when the body does not have the shape `kind` requires
 */
export function routingText(body: unknown, kind: RequestKind): string {
  if (!isObject(body)) {
    throw bad(null, `Request body must be a JSON object, got ${typeName(body)}`);
  }
  return textOf(body, kind);
}

/** The routing text of `body` read as `kind`. */
function textOf(body: Record<string, unknown>, kind: RequestKind): string {
  switch (kind) {
    case "chat":
      return chatText(body);
    case "completion":
      return promptText(body.prompt);
    case "responses":
      return responsesText(body);
    case "messages":
      return messagesText(body);
    case "embeddings":
    case "pooling":
      return body.input === undefined ? "" : promptText(body.input, "input");
    case "rerank":
      return rerankText(body);
    case "score":
      return scoreText(body);
    case "none":
      return "";
  }
}

/**
 * Validates the fields the router reads and computes the routing text. The rest of the body is
 * the engine's to validate.
 * @throws RouterError `bad_request` naming the field, its path and the type it got
 */
export function parseRequest(kind: RequestKind, json: unknown): ParsedRequest {
  if (!isObject(json)) {
    throw bad(null, `Request body must be a JSON object, got ${typeName(json)}`);
  }
  // `null` counts as absent, as in OpenAI's API.
  const model = json.model ?? undefined;
  if (model !== undefined && typeof model !== "string") {
    throw bad("model", `model must be a string, got ${typeName(model)}`);
  }
  const stream = json.stream ?? undefined;
  if (stream !== undefined && typeof stream !== "boolean") {
    throw bad("stream", `stream must be a boolean, got ${typeName(stream)}`);
  }
  const options = json.stream_options;
  const includeUsage = isObject(options) && options.include_usage === true;
  return {
    model,
    stream: stream === true,
    includeUsage,
    text: textOf(json, kind),
    previousResponseId: typeof json.previous_response_id === "string"
      ? json.previous_response_id
      : null,
  };
}

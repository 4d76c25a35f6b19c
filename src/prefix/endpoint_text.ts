/**
 * Routing texts of the endpoints beyond chat and completions. Each follows the order in which the
 * engine renders its prompt, so requests that share a prefix share a text prefix; only equality of
 * prefixes matters. The engine validates the rest of the body: the router reads what it routes on
 * and refuses only a field it cannot read.
 *
 * - `responses` (OpenAI Responses API): `tools:` + tools JSON, then `instructions:` + the
 *   instructions, then per input item `role:` + its content (text parts concatenated, other parts
 *   as in chat), or for other items (function calls and their outputs, reasoning) `[type]` + the
 *   item's JSON; a string `input` is one user message.
 * - `messages` (Anthropic Messages API, which vLLM serves): `tools:` + tools JSON, `system:` + the
 *   system text, then per message `role:` + its content (text blocks concatenated, other blocks
 *   as `[type:hash]`).
 * - `embeddings`, `pooling`: `input` read like a completion prompt (string, strings, token ids).
 * - `rerank`: `query`; `score`: `text_1` (or `queries`).
 * - `none` (tokenize, detokenize, other pass-through paths): no routing text (the strategy
 *   decides with no match: the prefix strategies fall back to least-loaded).
 *
 * @module
 */

import { bad, isObject, typeName } from "./json_fields.ts";
import { fnv1a64Hex } from "./chunker.ts";

/** `tools:` + the tools' JSON + newline when `tools` is a non-empty array, else "". */
export function toolsText(tools: unknown): string {
  return Array.isArray(tools) && tools.length > 0 ? `tools:${JSON.stringify(tools)}\n` : "";
}

/**
 * Text of a content value: a string; null or absent (empty); or an array of parts whose text parts
 * (`text`, `input_text`, `output_text`) are concatenated and every other part stands as
 * `[<type>:<hash of its JSON>]`.
 */
export function partsText(content: unknown, path: string): string {
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
    if (!isObject(part)) {
      throw bad(`${path}[${i}]`, `${path}[${i}] must be an object, got ${typeName(part)}`);
    }
    const type = typeof part.type === "string" ? part.type : "part";
    if (
      (type === "text" || type === "input_text" || type === "output_text") &&
      typeof part.text === "string"
    ) {
      out += part.text;
    } else out += `[${type}:${fnv1a64Hex(JSON.stringify(part))}]`;
  }
  return out;
}

/** Routing text of a Responses API body (see the module rule). */
export function responsesText(body: Record<string, unknown>): string {
  let out = toolsText(body.tools);
  const instructions = body.instructions;
  if (typeof instructions === "string" && instructions !== "") {
    out += `instructions:${instructions}\n`;
  } else if (
    instructions !== undefined && instructions !== null && typeof instructions !== "string"
  ) {
    throw bad("instructions", `instructions must be a string, got ${typeName(instructions)}`);
  }
  const input = body.input;
  if (typeof input === "string") return `${out}user:${input}\n`;
  if (input === undefined || input === null) return out;
  if (!Array.isArray(input)) {
    throw bad("input", `input must be a string or an array of items, got ${typeName(input)}`);
  }
  for (let i = 0; i < input.length; i++) {
    const item: unknown = input[i];
    const path = `input[${i}]`;
    if (!isObject(item)) throw bad(path, `${path} must be an object, got ${typeName(item)}`);
    const type = item.type ?? "message";
    if (type === "message" && typeof item.role === "string") {
      out += `${item.role}:${partsText(item.content, `${path}.content`)}\n`;
    } else {
      out += `[${String(type)}]${JSON.stringify(item)}\n`;
    }
  }
  return out;
}

/** Routing text of an Anthropic Messages API body (see the module rule). */
export function messagesText(body: Record<string, unknown>): string {
  const messages = body.messages;
  if (!Array.isArray(messages)) {
    throw bad("messages", `messages must be an array, got ${typeName(messages)}`);
  }
  let out = toolsText(body.tools);
  if (body.system !== undefined && body.system !== null) {
    out += `system:${partsText(body.system, "system")}\n`;
  }
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i];
    const path = `messages[${i}]`;
    if (!isObject(m)) throw bad(path, `${path} must be an object, got ${typeName(m)}`);
    if (typeof m.role !== "string") {
      throw bad(`${path}.role`, `${path}.role must be a string, got ${typeName(m.role)}`);
    }
    out += `${m.role}:${partsText(m.content, `${path}.content`)}\n`;
  }
  return out;
}

/** A string, or the first string of an array of strings, else "" (rerank, score keys). */
function leadingString(v: unknown): string {
  if (typeof v === "string") return v;
  if (Array.isArray(v) && typeof v[0] === "string") return v[0];
  return "";
}

/** Routing text of a rerank body: its query. */
export function rerankText(body: Record<string, unknown>): string {
  return leadingString(body.query);
}

/** Routing text of a score body: `text_1` (or `queries`). */
export function scoreText(body: Record<string, unknown>): string {
  return leadingString(body.text_1 ?? body.queries);
}

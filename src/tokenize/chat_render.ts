/**
 * Chat template rendering as vLLM does it: the request's messages and tools turned into the
 * conversation vLLM hands to the model's Jinja chat template, rendered with `@huggingface/jinja`
 * (trim_blocks and lstrip_blocks on, `tojson` with Python's separators, `raise_exception`,
 * `strftime_now`), the same environment Hugging Face's `apply_chat_template` provides.
 *
 * Rule (messages, vLLM's "string" content format): content is a string; `null`/absent is "";
 * an array of parts becomes the texts of its text parts (`text`, `input_text`, `output_text`,
 * `refusal`, `thinking`, plain strings, `tool_reference` names) joined by "\n", parts whose text
 * is null skipped. Media parts (images, audio, video, embeddings) are `unsupported`: the engine's
 * processor expands them into placeholder tokens the router cannot count. In the "openai" format
 * (templates that loop over `message.content`) the parts stay a list of `{type: "text", text}`.
 * Assistant messages keep `tool_calls` (an empty list is dropped) with each `function.arguments`
 * JSON string parsed into an object (`{}` when it does not parse, as vLLM does) and `reasoning`
 * (also as `reasoning_content`); tool messages keep `tool_call_id`; any message keeps a string
 * `name` and `task`; developer messages keep `tools`.
 * Rule (tools): each becomes what vLLM's pydantic model dumps: `{type: "function", function:
 * {name, description, parameters, ...extra keys}, ...extra keys}` with absent description and
 * parameters as null, so the template's `tool | tojson` prints `"description": null` as vLLM's does.
 * Rule (variables): the tokenizer config's special tokens (bos_token, eos_token, ...), then the
 * configured default kwargs, then the request's `chat_template_kwargs`, then `messages`, `tools`
 * (null when absent), `documents`, `add_generation_prompt`, `continue_final_message`.
 * Rule (continue_final_message): the rendering is cut after the last occurrence of the final
 * message's text, as Hugging Face does.
 *
 * Known gaps: numbers are JSON-parsed by JavaScript, so `1.0` in tool parameters or arguments
 * prints as `1` where Python prints `1.0`, and integer-like object keys come first; a boolean
 * printed by a template reads `true` (Python: `True`); `strftime_now` (Llama 3.1+ templates) reads
 * the router's clock and time zone, not the engine's; a request's own `chat_template` is
 * `unsupported`. The rules follow vLLM (mid 2026); SGLang and llama.cpp render on their own terms.
 *
 * Cost: one pass over the messages (shallow copies), then the template interpreter with the
 * shortcuts of fast_template.ts (same output as `Template.render`, about 40% less CPU):
 * about 0.05-0.10 ms for a 6 KB, 12-message conversation with Qwen3's template once warm (the
 * interpreter's work is per template node, barely per character).
 *
 * @module
 */

import { Template } from "@huggingface/jinja";
import { renderTemplate } from "./fast_template.ts";
import { bad, isObject, typeName } from "../prefix/json_fields.ts";
import type { ChatFlags } from "./request_fields.ts";
import { TokenizeError } from "./types.ts";

/** How message content reaches the template: one string, or OpenAI's list of parts. */
export type ContentFormat = "string" | "openai";

/** Options of a {@linkcode ChatRenderer}. */
export interface ChatRendererOptions {
  /** The Jinja chat template (tokenizer_config.json's `chat_template`, or the engine's `--chat-template`). */
  readonly chatTemplate: string;
  /** The template used when the request has tools (a named `tool_use` template), if any. */
  readonly toolUseTemplate?: string;
  /** Template variables from the tokenizer config: `bos_token`, `eos_token`, ... */
  readonly specialTokens?: Readonly<Record<string, unknown>>;
  /** `auto` (default) detects a loop over `message.content` in the template, as vLLM does. */
  readonly contentFormat?: "auto" | ContentFormat;
  /** Variables every request gets (vLLM's `--default-chat-template-kwargs`). */
  readonly defaultKwargs?: Readonly<Record<string, unknown>>;
  /** Render with the library's plain `Template.render`, not fast_template.ts (tests, benches). */
  readonly plainRender?: boolean;
}

// A loop over a message's content: `for part in message['content']`, `for c in m.content`.
const CONTENT_LOOP = /\bfor\s+\w+\s+in\s+\w+(?:\.content\b|\[\s*["']content["']\s*\])/;

/** The content format vLLM's "auto" picks for `template`. */
export function detectContentFormat(template: string): ContentFormat {
  return CONTENT_LOOP.test(template) ? "openai" : "string";
}

const TEXT_FIELD: Readonly<Record<string, string>> = {
  text: "text",
  input_text: "text",
  output_text: "text",
  refusal: "refusal",
  thinking: "thinking",
  tool_reference: "name",
};

const RESERVED_VARIABLES = new Set([
  "messages",
  "tools",
  "documents",
  "add_generation_prompt",
  "continue_final_message",
]);

/** Texts of a content value, in order (`null` for a text part whose text is null). */
function contentTexts(content: unknown, path: string): string[] {
  if (typeof content === "string") return [content];
  if (content === null || content === undefined) return [];
  if (!Array.isArray(content)) {
    throw bad(
      path,
      `${path} must be a string, an array of parts or null, got ${typeName(content)}`,
    );
  }
  const texts: string[] = [];
  for (let i = 0; i < content.length; i++) {
    const part: unknown = content[i];
    const partPath = `${path}[${i}]`;
    if (typeof part === "string") {
      texts.push(part);
      continue;
    }
    if (!isObject(part)) {
      throw bad(partPath, `${partPath} must be an object, got ${typeName(part)}`);
    }
    const type = part.type;
    const field = typeof type === "string" && part.uuid === undefined
      ? TEXT_FIELD[type]
      : undefined;
    if (field === undefined) {
      throw new TokenizeError(
        "unsupported",
        `${partPath} of type ${JSON.stringify(type)} needs the engine's multimodal processor`,
      );
    }
    const text = part[field];
    if (text === null || text === undefined) continue;
    if (typeof text !== "string") {
      throw bad(
        `${partPath}.${field}`,
        `${partPath}.${field} must be a string, got ${typeName(text)}`,
      );
    }
    texts.push(text);
  }
  return texts;
}

function toolCalls(calls: unknown, path: string): unknown[] {
  if (!Array.isArray(calls)) throw bad(path, `${path} must be an array, got ${typeName(calls)}`);
  return calls.map((call: unknown, i) => {
    const callPath = `${path}[${i}]`;
    if (!isObject(call) || !isObject(call.function)) {
      throw bad(callPath, `${callPath} must be an object with a function object`);
    }
    const args = call.function.arguments;
    let parsed: unknown = {};
    if (typeof args === "string") {
      try {
        parsed = JSON.parse(args);
      } catch {
        parsed = {};
      }
    } else if (typeof args === "object" && args !== null) {
      parsed = args;
    }
    return { ...call, function: { ...call.function, arguments: parsed } };
  });
}

/** One request message as vLLM's conversation message. */
function conversationMessage(
  m: unknown,
  i: number,
  format: ContentFormat,
): Record<string, unknown> {
  const path = `messages[${i}]`;
  if (!isObject(m)) throw bad(path, `${path} must be an object, got ${typeName(m)}`);
  const role = m.role;
  if (typeof role !== "string") {
    throw bad(`${path}.role`, `${path}.role must be a string, got ${typeName(role)}`);
  }
  const texts = contentTexts(m.content, `${path}.content`);
  const out: Record<string, unknown> = { role };
  if (format === "string" || role === "tool") out.content = texts.join("\n");
  else out.content = texts.map((text) => ({ type: "text", text }));
  if (role === "assistant") {
    if (m.tool_calls !== undefined && m.tool_calls !== null) {
      const calls = toolCalls(m.tool_calls, `${path}.tool_calls`);
      if (calls.length > 0) out.tool_calls = calls;
    }
    const reasoning = m.reasoning;
    if (reasoning !== undefined && reasoning !== null) {
      out.reasoning = reasoning;
      out.reasoning_content = reasoning;
    }
  } else if (role === "tool" && "tool_call_id" in m) {
    out.tool_call_id = m.tool_call_id;
  }
  if (typeof m.name === "string") out.name = m.name;
  if (typeof m.task === "string") out.task = m.task;
  if (role === "developer") out.tools = m.tools ?? null;
  return out;
}

/** One request tool as vLLM's `ChatCompletionToolsParam.model_dump()`. */
function dumpedTool(tool: unknown, i: number): Record<string, unknown> {
  const path = `tools[${i}]`;
  if (!isObject(tool) || !isObject(tool.function)) {
    throw bad(path, `${path} must be an object with a function object`);
  }
  if (tool.type !== undefined && tool.type !== "function") {
    throw new TokenizeError(
      "unsupported",
      `${path}.type ${JSON.stringify(tool.type)} is not supported`,
    );
  }
  const fn = tool.function;
  if (typeof fn.name !== "string") {
    throw bad(
      `${path}.function.name`,
      `${path}.function.name must be a string, got ${typeName(fn.name)}`,
    );
  }
  const dumpedFn: Record<string, unknown> = {
    name: fn.name,
    description: fn.description ?? null,
    parameters: fn.parameters ?? null,
  };
  for (const key of Object.keys(fn)) if (!(key in dumpedFn)) dumpedFn[key] = fn[key];
  const out: Record<string, unknown> = { type: "function", function: dumpedFn };
  for (const key of Object.keys(tool)) if (!(key in out)) out[key] = tool[key];
  return out;
}

/** The final message's text for continue_final_message (the last text part of a list). */
function finalText(messages: Record<string, unknown>[]): string {
  const content = messages[messages.length - 1].content;
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    for (let i = content.length - 1; i >= 0; i--) {
      const part = content[i];
      if (isObject(part) && typeof part.text === "string") return part.text;
    }
  }
  throw bad("messages", "continue_final_message needs a final message with text");
}

/** Cuts `rendered` after the final message's text, as Hugging Face's apply_chat_template does. */
function continuedFinal(rendered: string, text: string): string {
  const stripped = text.trim();
  const at = rendered.lastIndexOf(stripped);
  if (at < 0) {
    throw new TokenizeError(
      "unsupported",
      "continue_final_message is set but the final message does not appear in the rendered chat",
    );
  }
  const kept = text.trimStart();
  if (rendered.slice(at, at + kept.length) === text) return rendered.slice(0, at + kept.length);
  return rendered.slice(0, at + stripped.length);
}

/** Renders chat request bodies into the prompt text the engine tokenizes. */
export class ChatRenderer {
  /** The content format in use (after `auto` detection). */
  readonly contentFormat: ContentFormat;
  readonly #template: Template;
  readonly #toolUse: Template | undefined;
  readonly #base: Readonly<Record<string, unknown>>;
  readonly #plain: boolean;

  /**
   * Parses the templates once.
   * @throws Error when a template does not parse
   */
  constructor(opts: ChatRendererOptions) {
    this.#template = new Template(opts.chatTemplate);
    this.#toolUse = opts.toolUseTemplate === undefined
      ? undefined
      : new Template(opts.toolUseTemplate);
    const format = opts.contentFormat ?? "auto";
    this.contentFormat = format === "auto" ? detectContentFormat(opts.chatTemplate) : format;
    this.#base = { ...opts.specialTokens, ...opts.defaultKwargs };
    this.#plain = opts.plainRender === true;
  }

  /**
   * The prompt text of a chat body.
   * @throws RouterError `bad_request` when the body does not have the chat shape
   * @throws TokenizeError `unsupported` for media parts, a request template, or a template error
   */
  render(body: Record<string, unknown>, flags: ChatFlags): string {
    const raw = body.messages;
    if (!Array.isArray(raw) || raw.length === 0) {
      throw bad("messages", `messages must be a non-empty array, got ${typeName(raw)}`);
    }
    if (body.chat_template !== undefined && body.chat_template !== null) {
      throw new TokenizeError("unsupported", "A request's own chat_template is not reproduced");
    }
    const messages = raw.map((m: unknown, i) => conversationMessage(m, i, this.contentFormat));
    let tools: Record<string, unknown>[] | null = null;
    if (body.tools !== undefined && body.tools !== null) {
      if (!Array.isArray(body.tools)) {
        throw bad("tools", `tools must be an array, got ${typeName(body.tools)}`);
      }
      tools = body.tools.map(dumpedTool);
    }
    const vars: Record<string, unknown> = { ...this.#base };
    const kwargs = body.chat_template_kwargs;
    if (isObject(kwargs)) {
      for (const key of Object.keys(kwargs)) {
        if (!RESERVED_VARIABLES.has(key)) vars[key] = kwargs[key];
      }
    }
    vars.messages = messages;
    vars.tools = tools;
    vars.documents = body.documents ?? null;
    vars.add_generation_prompt = flags.addGenerationPrompt;
    vars.continue_final_message = flags.continueFinalMessage;
    const template = tools !== null && this.#toolUse !== undefined ? this.#toolUse : this.#template;
    let rendered: string;
    try {
      rendered = this.#plain ? template.render(vars) : renderTemplate(template, vars);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new TokenizeError("unsupported", `Chat template failed: ${message}`);
    }
    return flags.continueFinalMessage ? continuedFinal(rendered, finalText(messages)) : rendered;
  }
}

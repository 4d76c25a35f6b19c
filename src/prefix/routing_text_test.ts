/**
 * Routing text and request parsing tests, with literal expected strings and messages.
 *
 * @module
 */

import assert from "node:assert/strict";
import { RouterError } from "../util/errors.ts";
import { fnv1a64Hex } from "./chunker.ts";
import { parseRequest, routingText } from "./routing_text.ts";

Deno.test("routingText: chat messages with roles, names, tools and tool calls", () => {
  const tools = [{ type: "function", function: { name: "f", parameters: {} } }];
  const calls = [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }];
  const body = {
    model: "m",
    tools,
    messages: [
      { role: "system", content: "Be brief." },
      { role: "user", name: "ann", content: "Hi" },
      { role: "assistant", content: null, tool_calls: calls },
      { role: "tool", tool_call_id: "c1", content: "42" },
      { role: "assistant", content: "ok", tool_calls: [] },
      { role: "user", name: "", content: "" },
    ],
  };
  assert.equal(
    routingText(body, "chat"),
    'tools:[{"type":"function","function":{"name":"f","parameters":{}}}]\n' +
      "system:Be brief.\n" +
      "user[ann]:Hi\n" +
      'assistant:[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]\n' +
      "tool:42\n" +
      "assistant:ok\n" +
      "user:\n",
  );
  // Empty tools list and absent content add nothing.
  assert.equal(
    routingText({ tools: [], messages: [{ role: "assistant" }] }, "chat"),
    "assistant:\n",
  );
});

Deno.test("routingText: content parts concatenate text and stand in other parts stably", () => {
  const image = { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } };
  const body = {
    messages: [{
      role: "user",
      content: [{ type: "text", text: "Look: " }, image, { type: "text", text: "what is it?" }],
    }],
  };
  const placeholder = `[image_url:${fnv1a64Hex(JSON.stringify(image))}]`;
  assert.equal(fnv1a64Hex(JSON.stringify(image)).length, 16);
  assert.equal(routingText(body, "chat"), `user:Look: ${placeholder}what is it?\n`);
  // Same parts as a string give the same text, so both forms share cache.
  assert.equal(
    routingText({ messages: [{ role: "user", content: [{ type: "text", text: "a" }] }] }, "chat"),
    routingText({ messages: [{ role: "user", content: "a" }] }, "chat"),
  );
  // Literal: the placeholder is the FNV-1a 64 of the part's JSON.
  const audio = { type: "input_audio", input_audio: { data: "AAAA", format: "wav" } };
  assert.equal(
    routingText({ messages: [{ role: "user", content: [audio] }] }, "chat"),
    "user:[input_audio:ea6c6c5a9844195e]\n",
  );
  // A different image gives a different placeholder.
  const other = { ...image, image_url: { url: "data:image/png;base64,BBBB" } };
  const body2 = { messages: [{ role: "user", content: [other] }] };
  assert.notEqual(
    routingText(body2, "chat"),
    routingText({ messages: [{ role: "user", content: [image] }] }, "chat"),
  );
});

Deno.test("routingText: completion prompts in each accepted shape", () => {
  const cases: [unknown, string][] = [
    ["Once upon", "Once upon"],
    ["", ""],
    [["a", "b", "c"], "a\nb\nc"],
    [[1, 2, 30], "1,2,30"],
    [[[1, 2], [3]], "1,2\n3"],
    [[], ""],
  ];
  for (const [prompt, want] of cases) {
    assert.equal(routingText({ prompt }, "completion"), want, JSON.stringify(prompt));
  }
});

Deno.test("parseRequest: reads model, stream and include_usage", () => {
  assert.deepEqual(
    parseRequest("chat", {
      model: "qwen",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "hi" }],
    }),
    {
      model: "qwen",
      stream: true,
      includeUsage: true,
      text: "user:hi\n",
      previousResponseId: null,
    },
  );
  assert.deepEqual(
    parseRequest("completion", { prompt: "p", stream: null, model: null }),
    { model: undefined, stream: false, includeUsage: false, text: "p", previousResponseId: null },
  );
  assert.deepEqual(
    parseRequest("completion", {
      prompt: "p",
      stream: false,
      stream_options: { include_usage: 1 },
    }),
    { model: undefined, stream: false, includeUsage: false, text: "p", previousResponseId: null },
  );
});

function rejects(
  kind: "chat" | "completion",
  body: unknown,
  message: string,
  param: string | null,
) {
  assert.throws(
    () => parseRequest(kind, body),
    (e: unknown) => {
      assert.ok(e instanceof RouterError, `not a RouterError: ${e}`);
      assert.equal(e.kind, "bad_request");
      assert.equal(e.status, 400);
      assert.equal(e.message, message);
      assert.equal(e.param, param);
      return true;
    },
  );
}

Deno.test("parseRequest: rejects malformed chat bodies with the path and the type", () => {
  const user = { role: "user", content: "x" };
  const cases: [unknown, string, string | null][] = [
    [[user], "Request body must be a JSON object, got array", null],
    [null, "Request body must be a JSON object, got null", null],
    ["hi", "Request body must be a JSON object, got string", null],
    [{}, "messages must be a non-empty array, got undefined", "messages"],
    [{ messages: "hi" }, "messages must be a non-empty array, got string", "messages"],
    [{ messages: [] }, "messages must be a non-empty array, got an empty array", "messages"],
    [{ messages: [user, 3] }, "messages[1] must be an object, got number", "messages[1]"],
    [
      { messages: [user, user, { role: 7, content: "x" }] },
      "messages[2].role must be a string, got number",
      "messages[2].role",
    ],
    [
      { messages: [{ content: "x" }] },
      "messages[0].role must be a string, got undefined",
      "messages[0].role",
    ],
    [
      { messages: [{ role: "user", content: 5 }] },
      "messages[0].content must be a string, an array of parts or null, got number",
      "messages[0].content",
    ],
    [
      { messages: [{ role: "user", content: { text: "x" } }] },
      "messages[0].content must be a string, an array of parts or null, got object",
      "messages[0].content",
    ],
    [
      { messages: [{ role: "user", content: ["x"] }] },
      "messages[0].content[0] must be an object, got string",
      "messages[0].content[0]",
    ],
    [
      { messages: [{ role: "user", content: [{ text: "x" }] }] },
      "messages[0].content[0].type must be a string, got undefined",
      "messages[0].content[0].type",
    ],
    [
      { messages: [{ role: "user", content: [{ type: "text", text: ["x"] }] }] },
      "messages[0].content[0].text must be a string, got array",
      "messages[0].content[0].text",
    ],
    [{ model: 3, messages: [user] }, "model must be a string, got number", "model"],
    [{ stream: "yes", messages: [user] }, "stream must be a boolean, got string", "stream"],
  ];
  for (const [body, message, param] of cases) rejects("chat", body, message, param);
});

Deno.test("parseRequest: rejects malformed completion prompts", () => {
  const shapes = "a string, an array of strings, an array of token ids or an array of those";
  const cases: [unknown, string][] = [
    [{}, `prompt must be ${shapes}, got undefined`],
    [{ prompt: 5 }, `prompt must be ${shapes}, got number`],
    [{ prompt: null }, `prompt must be ${shapes}, got null`],
    [{ prompt: ["a", 1] }, "prompt[1] must be a string, got number"],
    [{ prompt: [1, "a"] }, "prompt[1] must be an integer token id, got string"],
    [{ prompt: [1, 2.5] }, "prompt[1] must be an integer token id, got number"],
    [{ prompt: [[1], 2] }, "prompt[1] must be an array of token ids, got number"],
    [{ prompt: [[1], [2, "x"]] }, "prompt[1][1] must be an integer token id, got string"],
    [
      { prompt: [{}] },
      "prompt[0] must be a string, a token id or an array of token ids, got object",
    ],
  ];
  for (const [body, message] of cases) rejects("completion", body, message, "prompt");
  assert.throws(
    () => routingText(42, "completion"),
    /Request body must be a JSON object, got number/,
  );
});

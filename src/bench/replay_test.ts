import { assertEquals } from "./test_util.ts";
import { chatCompletionsUrl, groupSessions, SseParser } from "./replay.ts";
import { generateTrace } from "./traces.ts";

Deno.test("SSE parser handles events split anywhere, CRLF, comments and multi-line data", () => {
  const stream =
    ': keep-alive\r\ndata: {"a":1}\r\n\r\ndata: x\ndata: y\n\nevent: e\ndata: [DONE]\n\n';
  for (let step = 1; step <= stream.length; step++) {
    const p = new SseParser();
    const out: string[] = [];
    for (let i = 0; i < stream.length; i += step) out.push(...p.push(stream.slice(i, i + step)));
    out.push(...p.end());
    assertEquals(out, ['{"a":1}', "x\ny", "[DONE]"], `step ${step}`);
  }
  const p = new SseParser();
  assertEquals(p.push("data: tail"), []);
  assertEquals(p.end(), ["tail"]);
});

Deno.test("chat completions URL from a base URL", () => {
  assertEquals(chatCompletionsUrl("http://h:1"), "http://h:1/v1/chat/completions");
  assertEquals(chatCompletionsUrl("http://h:1/"), "http://h:1/v1/chat/completions");
  assertEquals(chatCompletionsUrl("http://h:1/v1"), "http://h:1/v1/chat/completions");
  assertEquals(
    chatCompletionsUrl("http://h:1/v1/chat/completions"),
    "http://h:1/v1/chat/completions",
  );
});

Deno.test("sessions grouped in order of first appearance, turns in trace order", () => {
  const t = generateTrace({ shape: "mixed", sessions: 4, turns: 3, seed: 1 });
  const shuffled = [t[0], t[3], t[1], t[6], t[4], t[2], ...t.slice(7), t[5]];
  const g = groupSessions(shuffled);
  assertEquals(g.map((s) => s[0].session_id), ["multiturn-0", "tool-loop-1", "rag-2", "single-3"]);
  assertEquals(g[0], t.slice(0, 3));
});

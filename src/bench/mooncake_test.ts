import { assert, assertEquals } from "./test_util.ts";
import {
  importMooncake,
  mooncakeEntry,
  type MooncakeRequest,
  parseMooncakeLine,
} from "./mooncake.ts";
import { chatPromptText } from "../sim/chat_template.ts";
import { EngineModel } from "../sim/engine.ts";
import { getProfile } from "../sim/profiles.ts";
import { parseAnyTraceJsonl, traceToJsonl } from "./traces.ts";

const SHARED = "/work/shared/traces/mooncake_synthetic_trace.jsonl";

function promptOf(r: MooncakeRequest): string {
  return chatPromptText(mooncakeEntry(r, 0).body as unknown as Record<string, unknown>);
}

function common(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

const engine = new EngineModel(getProfile("a100-7b-128k").params);

Deno.test("mooncake: the engine counts exactly input_length tokens, last block partial", () => {
  for (const input of [5, 511, 512, 513, 1000, 1024, 1500, 40_160]) {
    const ids = Array.from({ length: Math.ceil(input / 512) }, (_, i) => 1000 + i);
    const r = { timestamp: 7, input_length: input, output_length: 9, hash_ids: ids };
    const prompt = promptOf(r);
    assertEquals(new TextEncoder().encode(prompt).length, 4 * input, `input ${input}`);
    assertEquals(engine.countTokens(prompt), input, `input ${input}`);
    const e = mooncakeEntry(r, 3);
    assertEquals(e.arrival_ms, 7);
    assertEquals(e.output_tokens, 9);
    assertEquals(e.body.max_tokens, 9);
    assertEquals(e.body.ignore_eos, true);
    assertEquals(e.session_id, "mooncake-3");
  }
});

Deno.test("mooncake: equal leading hash ids give equal leading text, and only that", () => {
  const a = { timestamp: 0, input_length: 2000, output_length: 1, hash_ids: [1, 2, 3, 4] };
  const cases: Array<{ ids: number[]; sharedBlocks: number }> = [
    { ids: [1, 2, 3, 4], sharedBlocks: 4 },
    { ids: [1, 2, 3, 9], sharedBlocks: 3 },
    { ids: [1, 2, 8, 4], sharedBlocks: 2 },
    { ids: [5, 2, 3, 4], sharedBlocks: 0 },
  ];
  const pa = promptOf(a);
  for (const c of cases) {
    const pb = promptOf({ ...a, hash_ids: c.ids });
    const n = common(pa, pb);
    if (c.sharedBlocks === 4) {
      assertEquals(pa, pb);
      continue;
    }
    // "user:" then 2 048 bytes a block; different blocks differ within their first words.
    const shared = 5 + 2048 * c.sharedBlocks;
    assert(n >= shared && n < shared + 64, `${c.ids}: ${n} common bytes, blocks end at ${shared}`);
  }
  // A shorter request over the same ids is a prefix of the longer one.
  const short = promptOf({ ...a, input_length: 1100, hash_ids: [1, 2, 3] });
  const head = short.slice(0, short.length - "\nassistant:".length);
  assert(pa.startsWith(head));
});

Deno.test("mooncake: malformed lines are errors that name the line", () => {
  const cases: Array<[string, RegExp]> = [
    ["{", /mooncake line 4 is not JSON/],
    ['{"timestamp":0,"input_length":0,"output_length":1,"hash_ids":[]}', /input_length must be/],
    [
      '{"timestamp":0,"input_length":600,"output_length":1,"hash_ids":[1]}',
      /1 hash_ids for input_length 600/,
    ],
    ['{"timestamp":-1,"input_length":6,"output_length":1,"hash_ids":[1]}', /timestamp must be/],
  ];
  for (const [line, re] of cases) {
    let msg = "";
    try {
      parseMooncakeLine(line, 4);
    } catch (err) {
      msg = (err as Error).message;
    }
    assert(re.test(msg), `${line}: ${msg}`);
  }
});

Deno.test("mooncake: the public synthetic trace imports as an open-loop trace", async () => {
  let text: string;
  try {
    text = await Deno.readTextFile(SHARED);
  } catch {
    console.log(`skipped: ${SHARED} not found`);
    return;
  }
  const src = text.split("\n").filter((l) => l.trim() !== "").slice(0, 40).map((l, i) =>
    parseMooncakeLine(l, i + 1)
  );
  const entries = [...importMooncake(text, { limit: 40 })];
  assertEquals(entries.length, 40);
  entries.forEach((e, i) => {
    const prompt = chatPromptText(e.body as unknown as Record<string, unknown>);
    assertEquals(engine.countTokens(prompt), src[i].input_length);
    assertEquals(e.arrival_ms, src[i].timestamp);
    assertEquals(e.output_tokens, src[i].output_length);
  });
  // Round trip through the trace format, as open loop.
  const back = parseAnyTraceJsonl(traceToJsonl(entries.slice(0, 3)));
  assertEquals(back, entries.slice(0, 3));
});

/**
 * Word-like text and tool calls for generated traces: deterministic from a seeded rng, ASCII (so
 * the simulated engine counts 4 bytes a token), and varied enough that different draws differ
 * within their first words.
 *
 * @module
 */

import { SeededRng } from "../util/rng.ts";
import type { Rng } from "../util/rng.ts";
import type { ChatMessage, ToolCall, ToolDef } from "./types.ts";

const VOCABULARY = (
  "the a of to and in is for on with as by at from that this it be are was can will not or " +
  "cache prefix router worker engine token block request session model prompt answer query " +
  "system user assistant tool result document memory latency throughput batch queue stream " +
  "server client network packet buffer index tree node edge leaf root hash chunk window " +
  "policy strategy load balance spill fallback valve budget capacity eviction recency " +
  "measure compare report table chart sample median tail percentile mean spread seed trace " +
  "river mountain forest garden harbor bridge castle market village meadow valley island " +
  "quickly carefully gently rarely often always never mostly nearly simply clearly " +
  "green bright quiet heavy narrow ancient modern simple complex stable rapid gentle " +
  "build check write read parse route send receive store fetch merge split match insert " +
  "evaluate explain describe summarize translate classify extract improve reduce increase " +
  "because although while after before during between within without across through " +
  "number letter paper story question problem method example detail reason point part"
).split(" ");

/** Tools offered in every tool-loop request (shared across sessions, so part of the prefix). */
export const TOOLS: readonly ToolDef[] = [
  tool("search_code", "Search the repository for a text pattern", { query: "string" }),
  tool("read_file", "Read a file of the repository", { path: "string" }),
  tool("run_tests", "Run the tests matching a filter and return the output", {
    filter: "string",
  }),
  tool("write_file", "Replace the content of a file", { path: "string", content: "string" }),
];

function tool(name: string, description: string, props: Record<string, string>): ToolDef {
  const properties: Record<string, unknown> = {};
  for (const [k, t] of Object.entries(props)) properties[k] = { type: t };
  return {
    type: "function",
    function: {
      name,
      description,
      parameters: { type: "object", properties, required: Object.keys(props) },
    },
  };
}

/** FNV-1a 32 of a string, used to derive independent seeds. */
function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** An independent random stream for (seed, label…). */
export function deriveRng(seed: number, ...labels: (string | number)[]): SeededRng {
  return new SeededRng(fnv1a32(`${seed}|${labels.join("|")}`));
}

/** One vocabulary word. */
export function word(rng: Rng): string {
  return VOCABULARY[rng.int(VOCABULARY.length)];
}

/** A sentence of 6–16 words, capitalized, ending with a period. */
function sentence(rng: Rng): string {
  const n = 6 + rng.int(11);
  const ws: string[] = [];
  for (let i = 0; i < n; i++) ws.push(word(rng));
  ws[0] = ws[0][0].toUpperCase() + ws[0].slice(1);
  return ws.join(" ") + ".";
}

/**
 * Word-like ASCII text of exactly `bytes` bytes (sentences cut at the end; the last byte is a
 * period when the text is cut mid-sentence).
 */
export function wordText(rng: Rng, bytes: number): string {
  if (bytes <= 0) return "";
  const parts: string[] = [];
  let len = -1;
  while (len < bytes) {
    const s = sentence(rng);
    parts.push(s);
    len += s.length + 1;
  }
  const text = parts.join(" ");
  if (text.length === bytes) return text;
  const cut = text.slice(0, bytes);
  return bytes > 1 ? cut.slice(0, -1) + "." : cut;
}

/** Length drawn log-uniformly from [lo, hi]. */
export function varied(rng: Rng, lo: number, hi: number): number {
  return Math.round(lo * Math.pow(hi / lo, rng.next()));
}

const TOOL_ARGS: Record<string, string[]> = {
  search_code: ["query"],
  read_file: ["path"],
  run_tests: ["filter"],
  write_file: ["path", "content"],
};

/**
 * One tool step of an agent: an assistant message calling one of {@link TOOLS} with `id`, and the
 * tool's result of `resultBytes` bytes (default: 200–1500, log-uniform).
 */
export function toolStep(rng: Rng, id: string, resultBytes?: number): ChatMessage[] {
  const name = TOOLS[rng.int(TOOLS.length)].function.name;
  const args: Record<string, string> = {};
  for (const a of TOOL_ARGS[name]) {
    args[a] = a === "path"
      ? `src/${word(rng)}/${word(rng)}_${word(rng)}.ts`
      : a === "content"
      ? wordText(rng, varied(rng, 80, 400))
      : `${word(rng)} ${word(rng)}`;
  }
  const call: ToolCall = {
    id,
    type: "function",
    function: { name, arguments: JSON.stringify(args) },
  };
  return [
    { role: "assistant", content: null, tool_calls: [call] },
    {
      role: "tool",
      tool_call_id: id,
      content: wordText(rng, resultBytes ?? varied(rng, 200, 1500)),
    },
  ];
}

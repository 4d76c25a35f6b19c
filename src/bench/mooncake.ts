/**
 * Importer of Mooncake traces (kvcache-ai/Mooncake, FAST'25; one JSON object a line:
 * `{timestamp, input_length, output_length, hash_ids}`) into this project's open-loop trace format.
 *
 * Rule: each Mooncake line becomes one request of its own session (`mooncake-<n>`, pattern
 * `mooncake`), sent at `arrival_ms = timestamp`, with `output_tokens = output_length` and a body
 * with `max_tokens = output_length` and `ignore_eos: true` (so a real vLLM replays the recorded
 * length too). The prompt is one user message whose text is built from the hash ids: id h stands
 * for a block of 512 tokens whose text is a fixed function of h (word-like ASCII, seeded by the
 * import seed and h), and the prompt is the concatenation of its ids' blocks, cut so that the
 * simulated engine counts exactly `input_length` tokens. Hence equal leading ids give equal leading
 * text, and the last block is partial, as in the trace.
 *
 * Token arithmetic: the simulated engine counts `floor(bytes / 4)` of the prompt it sees, the chat
 * template's `user:<content>\nassistant:` (src/sim/chat_template.ts); the content is therefore
 * `4 × input_length − 16` bytes (16 = the template's bytes), and every 512-token block is 2 048
 * bytes. The template's leading `user:` shifts every block by the same 5 bytes for every request,
 * so block boundaries differ from the trace's by a constant and prefixes still match exactly.
 * A prompt under 5 tokens cannot be written exactly; its content is one byte.
 *
 * Cost: O(input bytes) per line; entries are produced one at a time (`importMooncake` is a
 * generator), so a whole trace (about 250 MB of JSONL for the 4 000-line synthetic trace) never
 * sits in memory at once.
 *
 * @module
 */

import { chatPromptText } from "../sim/chat_template.ts";
import { deriveRng, wordText } from "./traces.ts";
import type { OpenTraceEntry } from "./types.ts";

/** Tokens per Mooncake hash block (the trace format's fixed block size). */
export const MOONCAKE_BLOCK_TOKENS = 512;

/** Bytes per token of the simulated engine's count. */
const BYTES_PER_TOKEN = 4;

/** One line of a Mooncake trace, checked. */
export interface MooncakeRequest {
  readonly timestamp: number;
  readonly input_length: number;
  readonly output_length: number;
  readonly hash_ids: readonly number[];
}

/** Options of {@linkcode importMooncake}. */
export interface MooncakeOptions {
  /** Seed of the block texts (default 1). */
  readonly seed?: number;
  /** Model name in each body (default `sim`). */
  readonly model?: string;
  /** Import only the first N requests (default all). */
  readonly limit?: number;
}

function isCount(v: unknown, min: number): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= min;
}

/** Parses and checks one Mooncake line; errors name the line (1-based). */
export function parseMooncakeLine(text: string, line: number): MooncakeRequest {
  const where = `mooncake line ${line}`;
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new SyntaxError(`${where} is not JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new SyntaxError(`${where} must be a JSON object`);
  }
  for (const [k, min] of [["timestamp", 0], ["input_length", 1], ["output_length", 1]] as const) {
    if (!isCount(v[k], min)) {
      throw new SyntaxError(
        `${where}: ${k} must be an integer ≥ ${min}, got ${JSON.stringify(v[k])}`,
      );
    }
  }
  const ids = v.hash_ids;
  if (!Array.isArray(ids) || !ids.every((h) => isCount(h, 0))) {
    throw new SyntaxError(`${where}: hash_ids must be an array of integers ≥ 0`);
  }
  const input = v.input_length as number;
  const blocks = Math.ceil(input / MOONCAKE_BLOCK_TOKENS);
  if (ids.length !== blocks) {
    throw new SyntaxError(
      `${where}: ${ids.length} hash_ids for input_length ${input} (one per ` +
        `${MOONCAKE_BLOCK_TOKENS}-token block means ${blocks})`,
    );
  }
  return {
    timestamp: v.timestamp as number,
    input_length: input,
    output_length: v.output_length as number,
    hash_ids: ids as number[],
  };
}

/** Bytes the chat template adds around one user message (`user:` … `\nassistant:`). */
const TEMPLATE_BYTES = chatPromptText({ messages: [{ role: "user", content: "" }] }).length;

/** The text of Mooncake block `id`: 2 048 ASCII bytes, a fixed function of (seed, id). */
export function mooncakeBlockText(seed: number, id: number): string {
  return wordText(deriveRng(seed, "mooncake", id), MOONCAKE_BLOCK_TOKENS * BYTES_PER_TOKEN);
}

/** The user message of `r`: its blocks' texts, cut to `4 × input_length − 16` bytes. */
export function mooncakePrompt(r: MooncakeRequest, seed: number): string {
  const bytes = Math.max(1, r.input_length * BYTES_PER_TOKEN - TEMPLATE_BYTES);
  const parts: string[] = [];
  let len = 0;
  for (const id of r.hash_ids) {
    if (len >= bytes) break;
    const t = mooncakeBlockText(seed, id);
    parts.push(t);
    len += t.length;
  }
  return parts.join("").slice(0, bytes);
}

/** The trace entry of Mooncake request `r`, the `n`-th (0-based) of its file. */
export function mooncakeEntry(
  r: MooncakeRequest,
  n: number,
  opts: MooncakeOptions = {},
): OpenTraceEntry {
  return {
    session_id: `mooncake-${n}`,
    arrival_ms: r.timestamp,
    pattern: "mooncake",
    output_tokens: r.output_length,
    body: {
      model: opts.model ?? "sim",
      messages: [{ role: "user", content: mooncakePrompt(r, opts.seed ?? 1) }],
      max_tokens: r.output_length,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    },
  };
}

/** Converts a Mooncake JSONL text, one entry at a time (blank lines skipped). */
export function* importMooncake(
  text: string,
  opts: MooncakeOptions = {},
): Generator<OpenTraceEntry> {
  const limit = opts.limit ?? Infinity;
  let n = 0;
  let start = 0;
  for (let line = 1; start < text.length && n < limit; line++) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const raw = text.slice(start, end).trim();
    start = end + 1;
    if (raw === "") continue;
    yield mooncakeEntry(parseMooncakeLine(raw, line), n++, opts);
  }
}

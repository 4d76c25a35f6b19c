/**
 * Replays a trace against an OpenAI-compatible endpoint (the router, or an engine directly) and
 * records what each request did as the client saw it.
 *
 * - Sessions run in parallel, at most `concurrency` at once (default: all). Requests of a session
 *   run in order; each waits its `delay_ms` after the previous one finished (the first, after the
 *   session started).
 * - Every request streams with `stream_options.include_usage`, whatever the trace says; the SSE
 *   body is parsed incrementally as bytes arrive.
 * - TTFT is the time from sending the request to the first generated token: the first non-empty
 *   `delta.content`, reasoning (`reasoning_content`, `reasoning`) or tool call, the rule the
 *   router's tap uses; total is the time to the end of the stream. A stream that ends without
 *   `data: [DONE]` was cut, and its record carries an error. Backend and reason come from `X-Router-Backend` and
 *   `X-Router-Reason`; prompt, cached and completion tokens from the usage chunk
 *   (`usage.prompt_tokens_details.cached_tokens`).
 * - Multiturn histories are replayed as the trace gives them: earlier assistant turns are the
 *   trace's generated answers, not the live answers. The prompt a worker sees is then independent
 *   of what the engine generated, so every strategy, seed and engine gets the same prompts, and
 *   the prefix property (turn k+1 extends turn k) holds exactly as it does in real chat.
 *
 * @module
 */

import type { RequestRecord, TraceEntry } from "./types.ts";

/** Options of `replayTrace`. */
export interface ReplayOptions {
  /** Base URL (`http://host:port`, optionally ending in `/v1` or the full chat path). */
  url: string;
  /** Sessions in flight at most; default all. */
  concurrency?: number;
  /** Aborting stops new requests and cancels those in flight (they are recorded with an error). */
  signal?: AbortSignal;
  /** Per-request time limit in ms (default 300000). */
  timeoutMs?: number;
  /** Extra request headers (e.g. `Authorization`). */
  headers?: Record<string, string>;
  /** Called as each request completes (progress display). */
  onRecord?: (r: RequestRecord) => void;
}

/** The chat completions endpoint of a base URL. */
export function chatCompletionsUrl(url: string): string {
  const u = url.replace(/\/+$/, "");
  if (u.endsWith("/v1/chat/completions")) return u;
  return u.endsWith("/v1") ? `${u}/chat/completions` : `${u}/v1/chat/completions`;
}

/**
 * Incremental parser of a `text/event-stream` body: feed decoded text as it arrives, get the
 * `data` payload of each complete event (multi-line data joined by `\n`). Comments and other
 * fields are ignored.
 */
export class SseParser {
  #buf = "";
  #data: string[] = [];

  /** Adds text; returns the data of the events it completed. */
  push(text: string): string[] {
    this.#buf += text;
    const out: string[] = [];
    let nl: number;
    while ((nl = this.#buf.search(/\r\n|\r|\n/)) >= 0) {
      const sep = this.#buf.startsWith("\r\n", nl) ? 2 : 1;
      // A lone trailing \r may be the first half of \r\n: wait for more text.
      if (sep === 1 && this.#buf[nl] === "\r" && nl === this.#buf.length - 1) break;
      const line = this.#buf.slice(0, nl);
      this.#buf = this.#buf.slice(nl + sep);
      this.#line(line, out);
    }
    return out;
  }

  /** Ends the stream; returns the data of a last event not followed by a blank line. */
  end(): string[] {
    const out: string[] = [];
    if (this.#buf !== "") this.#line(this.#buf, out);
    this.#buf = "";
    this.#line("", out);
    return out;
  }

  #line(line: string, out: string[]): void {
    if (line === "") {
      if (this.#data.length > 0) out.push(this.#data.join("\n"));
      this.#data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.#data.push(value);
  }
}

interface StreamChunk {
  choices?: { delta?: Delta }[];
  usage?: {
    prompt_tokens?: number;
    completion_tokens?: number;
    prompt_tokens_details?: { cached_tokens?: number } | null;
  } | null;
  error?: { message?: string };
}

interface Delta {
  content?: string | null;
  reasoning_content?: string | null;
  reasoning?: string | null;
  tool_calls?: unknown[] | null;
}

/**
 * Whether a stream delta carries generated output: answer text, reasoning (`reasoning_content`
 * from vLLM's and DeepSeek's parsers, `reasoning` from others) or a tool call. The router's tap
 * uses the same rule for its time to first token (src/proxy/usage_tap.ts).
 */
function generated(d: Delta | undefined): boolean {
  return !!(d?.content || d?.reasoning_content || d?.reasoning || d?.tool_calls?.length);
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

/** Sends one streamed request and records it. `t0` is the replay's time origin. */
export async function sendRequest(
  entry: TraceEntry,
  turn: number,
  opts: ReplayOptions,
  t0: number,
): Promise<RequestRecord> {
  const rec: RequestRecord = {
    session_id: entry.session_id,
    pattern: entry.pattern,
    turn,
    start_ms: performance.now() - t0,
    ttft_ms: null,
    total_ms: 0,
    status: 0,
    backend: null,
    reason: null,
    prompt_tokens: null,
    cached_tokens: null,
    completion_tokens: null,
    error: null,
  };
  const start = performance.now();
  const ctrl = new AbortController();
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const timer = setTimeout(
    () => ctrl.abort(new Error(`Request timed out after ${timeoutMs} ms`)),
    timeoutMs,
  );
  const onAbort = () => ctrl.abort(new Error("Replay aborted"));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  try {
    const body = {
      ...entry.body,
      stream: true,
      stream_options: { ...entry.body.stream_options, include_usage: true },
    };
    const res = await fetch(chatCompletionsUrl(opts.url), {
      method: "POST",
      headers: { "content-type": "application/json", ...opts.headers },
      body: JSON.stringify(body),
      signal: ctrl.signal,
    });
    rec.status = res.status;
    rec.backend = res.headers.get("x-router-backend");
    rec.reason = res.headers.get("x-router-reason");
    if (!res.ok || !res.body) {
      const text = await res.text();
      let msg = text.slice(0, 300);
      try {
        msg = JSON.parse(text)?.error?.message ?? msg;
      } catch { /* not JSON: keep the text */ }
      rec.error = `HTTP ${res.status}: ${msg}`;
      return rec;
    }
    const parser = new SseParser();
    let ended = false;
    const handle = (data: string) => {
      if (data === "[DONE]") {
        ended = true;
        return;
      }
      let chunk: StreamChunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        rec.error ??= `Unparsable stream chunk: ${data.slice(0, 100)}`;
        return;
      }
      if (chunk.error) rec.error ??= `Stream error: ${chunk.error.message ?? "unknown"}`;
      if (rec.ttft_ms === null && chunk.choices?.some((c) => generated(c.delta))) {
        rec.ttft_ms = performance.now() - start;
      }
      if (chunk.usage) {
        rec.prompt_tokens = chunk.usage.prompt_tokens ?? rec.prompt_tokens;
        rec.completion_tokens = chunk.usage.completion_tokens ?? rec.completion_tokens;
        rec.cached_tokens = chunk.usage.prompt_tokens_details?.cached_tokens ?? rec.cached_tokens;
      }
    };
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const d of parser.push(value)) handle(d);
      }
    } finally {
      reader.releaseLock();
    }
    for (const d of parser.end()) handle(d);
    // OpenAI-compatible engines end every stream with `data: [DONE]`: without it, it was cut.
    if (!ended) rec.error ??= "Stream ended without data: [DONE]";
    return rec;
  } catch (err) {
    rec.error = ctrl.signal.aborted ? errorText(ctrl.signal.reason) : errorText(err);
    return rec;
  } finally {
    rec.total_ms = performance.now() - start;
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

/** Resolves after `ms`, or early (false) when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Groups entries by session, sessions in order of first appearance, entries in trace order. */
export function groupSessions(entries: readonly TraceEntry[]): TraceEntry[][] {
  const m = new Map<string, TraceEntry[]>();
  for (const e of entries) {
    let s = m.get(e.session_id);
    if (!s) m.set(e.session_id, s = []);
    s.push(e);
  }
  return [...m.values()];
}

/**
 * Replays `entries` and returns one record per request sent, in trace order (session by session).
 * Requests not sent because the replay was aborted have no record.
 */
export async function replayTrace(
  entries: readonly TraceEntry[],
  opts: ReplayOptions,
): Promise<RequestRecord[]> {
  const sessions = groupSessions(entries);
  const concurrency = Math.max(1, Math.min(opts.concurrency ?? sessions.length, sessions.length));
  const results: RequestRecord[][] = sessions.map(() => []);
  const t0 = performance.now();
  let next = 0;
  const runSession = async (i: number) => {
    const turns = sessions[i];
    for (let k = 0; k < turns.length; k++) {
      if (!(await sleep(turns[k].delay_ms, opts.signal))) return;
      const rec = await sendRequest(turns[k], k, opts, t0);
      results[i].push(rec);
      opts.onRecord?.(rec);
      if (opts.signal?.aborted) return;
    }
  };
  const lane = async () => {
    while (next < sessions.length && !opts.signal?.aborted) await runSession(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return results.flat();
}

/** Records as JSONL, one a line. */
export function recordsToJsonl(records: readonly object[]): string {
  return records.map((r) => JSON.stringify(r)).join("\n") + (records.length ? "\n" : "");
}

/** The records of a JSONL text written by {@link recordsToJsonl} (blank lines skipped). */
export function recordsFromJsonl<T = RequestRecord>(text: string): T[] {
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as T);
}

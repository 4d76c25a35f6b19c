/**
 * Passes an upstream body through unchanged, chunk by chunk, while noting what the router needs:
 * time of the first byte, time of the first generated token (first non-empty `content` or `text`
 * in an SSE event), bytes sent, and the `usage` object of the response (the final usage chunk of a
 * stream with `stream_options.include_usage`, or the JSON body's `usage`; llama-server's
 * `timings` when it gives no `cached_tokens`).
 *
 * Nothing is buffered for the client: each upstream chunk is enqueued as soon as it arrives. To find
 * `usage` the tap keeps only the last {@link TAIL_BYTES} bytes (usage comes last in both vLLM's and
 * OpenAI's bodies). To find the first token it scans chunks only until one is found.
 *
 * Completion is reported exactly once through `onDone`, whether the body ended, failed, or the
 * client cancelled it; the caller releases in-flight counts there.
 *
 * A failing upstream body (the worker died, a deadline aborted it) errors the client's stream, so
 * the client sees a truncated body rather than a clean end. For SSE the tap can instead end the
 * stream with one OpenAI-shaped error event, `data: {"error":{...}}` (see {@link sseErrorEvent}),
 * and close it: clients of OpenAI's SDKs then raise the error instead of reading a short answer as
 * complete. No `data: [DONE]` follows, so a client that ignores error events still sees a stream
 * without its terminator.
 *
 * @module
 */

import type { BodySource } from "../http/types.ts";
import { DONE, toStream } from "./h1_body.ts";

/** Bytes kept from the end of the body to parse `usage` from. */
const TAIL_BYTES = 8192;

/** Token counts the engine reported. */
export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** `usage.prompt_tokens_details.cached_tokens`; null when the engine did not report it. */
  readonly cachedTokens: number | null;
}

/** How a tapped body ended. */
export interface TapResult {
  /** `done` (upstream ended), `error` (upstream failed mid-body), `cancelled` (client went away). */
  readonly outcome: "done" | "error" | "cancelled";
  readonly bytes: number;
  /** ms from `start` to the first byte, or null. */
  readonly firstByteMs: number | null;
  /** ms from `start` to the first token, or null. */
  readonly firstTokenMs: number | null;
  readonly usage: Usage | null;
  readonly error: unknown;
}

/** Options of {@link tapReader}. */
export interface TapOptions {
  readonly now: () => number;
  /** Time the offsets are measured from; defaults to the tap's creation. */
  readonly start?: number;
  /** Whether the body is SSE: a failing SSE body ends with an error event (see `errorEvent`). */
  readonly sse: boolean;
  /** Called once, when the first generated token is seen. */
  readonly onFirstToken?: () => void;
  /** Called for every chunk read from the upstream (not for a pre-read first chunk). */
  readonly onChunk?: () => void;
  /**
   * For SSE bodies: the JSON payload of the error event sent when the upstream body fails after
   * the response started (see the module comment). Absent, or not SSE: the client's stream errors.
   */
  readonly errorEvent?: (err: unknown) => string;
  readonly onDone: (result: TapResult) => void;
}

/**
 * Keys whose non-empty value is generated output: answer text (`content` in chat, `text` in
 * completions), reasoning (`reasoning_content` from vLLM's and DeepSeek's reasoning parsers,
 * `reasoning` from newer vLLM and others) and tool calls. Whitespace may sit around the colon
 * (compact JSON from vLLM, SGLang and llama-server has none; Python's `json.dumps` puts one).
 */
const TOKEN_KEYS = ['"content"', '"text"', '"reasoning_content"', '"reasoning"', '"tool_calls"'];

const encoder = new TextEncoder();
const lenient = new TextDecoder();
/** `TextDecoder.decode` options for a body read in pieces. */
const STREAMING = { stream: true };

/**
 * Wraps an upstream body in a source that forwards every chunk and reports once when it ends. The
 * caller has already read the first chunk from `reader` (to know that the upstream answered before
 * committing the response): `first` goes out first, and counts as the first byte at the time of
 * this call; null when nothing was read yet.
 *
 * The source is pulled by the router's HTTP server (`src/http/`): one `read` per chunk sent, no JS
 * stream in between. A failing upstream read either throws (the server cuts the response short) or,
 * for SSE with `errorEvent`, yields one error event and then ends.
 */
export function tapSource(
  reader: BodySource,
  first: Uint8Array | null,
  opts: TapOptions,
): BodySource {
  const start = opts.start ?? opts.now();
  const decoder = new TextDecoder();
  let bytes = 0;
  let firstByteMs: number | null = null;
  let firstTokenMs: number | null = null;
  const tail = new TailKeeper();
  let carry = "";
  let settled = false;
  let ended = false;

  const finish = (outcome: TapResult["outcome"], error: unknown) => {
    if (settled) return;
    settled = true;
    const usage = usageIn(lenient.decode(tail.bytes()));
    opts.onDone({ outcome, bytes, firstByteMs, firstTokenMs, usage, error });
  };

  const note = (chunk: Uint8Array) => {
    if (bytes === 0) {
      firstByteMs = opts.now() - start;
    }
    bytes += chunk.length;
    if (firstTokenMs === null) {
      const text = carry + decoder.decode(chunk, STREAMING);
      if (hasToken(text)) {
        firstTokenMs = opts.now() - start;
        opts.onFirstToken?.();
      } else carry = text.slice(-64);
    }
    tail.push(chunk);
  };

  let pending = first;
  if (pending !== null) note(pending);

  return {
    async read(): Promise<ReadableStreamReadResult<Uint8Array>> {
      if (pending !== null) {
        const value = pending;
        pending = null;
        return { done: false, value };
      }
      if (ended || settled) return DONE;
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (err) {
        if (settled) return DONE; // cancelled by the client meanwhile
        const event = opts.sse && opts.errorEvent ? opts.errorEvent(err) : null;
        finish("error", err);
        if (event === null) throw err;
        ended = true;
        // A partial event would swallow ours: end it first (an extra blank line is harmless).
        const sep = endsWithBlankLine(tail.bytes()) ? "" : "\n\n";
        return { done: false, value: encoder.encode(`${sep}${sseErrorEvent(event)}`) };
      }
      if (r.done) {
        ended = true;
        finish("done", null);
        return DONE;
      }
      opts.onChunk?.();
      note(r.value);
      return r;
    },
    cancel(reason?: unknown): Promise<void> {
      pending = null;
      finish("cancelled", reason);
      return reader.cancel(reason).catch(() => {});
    },
  };
}

/** {@link tapSource} as a byte stream (for `fetch`-style consumers and tests). */
export function tapReader(
  reader: BodySource,
  first: Uint8Array | null,
  opts: TapOptions,
): ReadableStream<Uint8Array> {
  return toStream(tapSource(reader, first, opts));
}

/**
 * What {@link tapReader} would report for a body that is already whole in memory (a small answer
 * the HTTP/1.1 client read together with its head): the same figures, at once, with no stream.
 * The first byte (and the first token, if the body holds one) counts as seen now.
 */
export function tapWhole(
  body: Uint8Array,
  opts: Pick<TapOptions, "now" | "start" | "onFirstToken">,
): TapResult {
  const at = opts.now() - (opts.start ?? opts.now());
  const text = lenient.decode(body);
  let firstTokenMs: number | null = null;
  if (hasToken(text)) {
    firstTokenMs = at;
    opts.onFirstToken?.();
  }
  const usage = usageIn(text.length > TAIL_BYTES ? text.slice(-TAIL_BYTES) : text);
  return {
    outcome: "done",
    bytes: body.length,
    firstByteMs: body.length > 0 ? at : null,
    firstTokenMs,
    usage,
    error: null,
  };
}

/**
 * The last {@link TAIL_BYTES} bytes of a body, kept as copied pieces: each byte is copied once on
 * the way in (so a chunk the client side may later reuse or transfer cannot change it), pieces
 * wholly before the last `TAIL_BYTES` are dropped, and the tail is joined only when asked for.
 * Keeping one joined array instead cost a copy of up to `TAIL_BYTES` per chunk: about 8 MB of
 * copying for a 1 000-token stream.
 */
class TailKeeper {
  #pieces: Uint8Array[] = [];
  /** Index of the oldest piece still kept. */
  #first = 0;
  /** Bytes in the kept pieces. */
  #length = 0;

  push(chunk: Uint8Array): void {
    const piece = chunk.length > TAIL_BYTES
      ? chunk.slice(chunk.length - TAIL_BYTES)
      : chunk.slice();
    this.#pieces.push(piece);
    this.#length += piece.length;
    const pieces = this.#pieces;
    while (this.#length - pieces[this.#first].length >= TAIL_BYTES) {
      this.#length -= pieces[this.#first].length;
      this.#first++;
    }
    if (this.#first >= 64 && this.#first * 2 >= pieces.length) {
      this.#pieces = pieces.slice(this.#first);
      this.#first = 0;
    }
  }

  /** The kept tail: at most `TAIL_BYTES`, the body's last bytes. */
  bytes(): Uint8Array {
    const n = Math.min(this.#length, TAIL_BYTES);
    const out = new Uint8Array(n);
    let at = n;
    for (let i = this.#pieces.length - 1; i >= this.#first && at > 0; i--) {
      const p = this.#pieces[i];
      const take = Math.min(p.length, at);
      out.set(p.subarray(p.length - take), at - take);
      at -= take;
    }
    return out;
  }
}

/** `parseUsage`, with an unparsable tail counting as no usage. */
function usageIn(tail: string): Usage | null {
  try {
    return parseUsage(tail);
  } catch {
    return null;
  }
}

/** One SSE event carrying `json` as its data. */
function sseErrorEvent(json: string): string {
  return `data: ${json}\n\n`;
}

/** Whether `b` ends an SSE event (a blank line), or is empty. */
function endsWithBlankLine(b: Uint8Array): boolean {
  const n = b.length;
  if (n === 0) return true;
  if (n >= 2 && b[n - 1] === 0x0a && b[n - 2] === 0x0a) return true;
  if (n >= 2 && b[n - 1] === 0x0d && b[n - 2] === 0x0d) return true;
  return n >= 4 && b[n - 1] === 0x0a && b[n - 2] === 0x0d && b[n - 3] === 0x0a &&
    b[n - 4] === 0x0d;
}

/** Whether `text` holds a generated token: one of {@link TOKEN_KEYS} with a non-empty value. */
function hasToken(text: string): boolean {
  for (const key of TOKEN_KEYS) {
    let at = text.indexOf(key);
    while (at !== -1) {
      if (valueStarts(text, at + key.length, key === '"tool_calls"')) return true;
      at = text.indexOf(key, at + key.length);
    }
  }
  return false;
}

/**
 * Whether a key that ends at `i` is followed by `:` and a non-empty string or, for `list`, by an
 * array whose first element is an object (`"tool_calls":[]` is no call). False when `text` ends
 * first: the caller carries the tail over to the next chunk.
 */
function valueStarts(text: string, i: number, list: boolean): boolean {
  i = skipSpace(text, i);
  if (text.charCodeAt(i) !== 0x3a) return false; // ':'
  i = skipSpace(text, i + 1);
  if (list) return text.charCodeAt(i) === 0x5b && text.charCodeAt(skipSpace(text, i + 1)) === 0x7b;
  // A string whose next character is not its closing quote.
  return text.charCodeAt(i) === 0x22 && i + 1 < text.length && text.charCodeAt(i + 1) !== 0x22;
}

/** Index of the first non-whitespace character at or after `i`. */
function skipSpace(text: string, i: number): number {
  let c = text.charCodeAt(i);
  while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++i);
  return i;
}

/**
 * Finds the last `"usage":{...}` object in `text` and reads its counts. Returns null when there is
 * none or it is `null`. llama-server's last chunk carries `timings` (`prompt_n` computed,
 * `cache_n` reused, `predicted_n` generated) even when the client did not ask for usage: they
 * fill in what `usage` lacks (its `cached_tokens`), or stand for it when there is no `usage`.
 */
function parseUsage(text: string): Usage | null {
  const u = lastObject(text, '"usage"', (o) => count(o.prompt_tokens) !== null);
  const prompt = u !== null ? count(u.prompt_tokens) : null;
  const t = text.includes('"timings"')
    ? lastObject(text, '"timings"', (o) => count(o.prompt_n) !== null)
    : null;
  const cacheN = t !== null ? count(t.cache_n) : null;
  if (prompt !== null) {
    const details = u!.prompt_tokens_details as Record<string, unknown> | null | undefined;
    return {
      promptTokens: prompt,
      completionTokens: count(u!.completion_tokens) ?? 0,
      cachedTokens: count(details?.cached_tokens) ??
        (cacheN !== null && cacheN <= prompt ? cacheN : null),
    };
  }
  const computed = t !== null ? count(t.prompt_n) : null;
  if (computed === null) return null;
  return {
    promptTokens: computed + (cacheN ?? 0),
    completionTokens: count(t!.predicted_n) ?? 0,
    cachedTokens: cacheN,
  };
}

/**
 * The last `key:{...}` object in `text` that `accept` takes, or null; `key:null` and a truncated
 * object are skipped.
 */
function lastObject(
  text: string,
  key: string,
  accept: (o: Record<string, unknown>) => boolean,
): Record<string, unknown> | null {
  let at = text.lastIndexOf(key);
  while (at !== -1) {
    const open = text.indexOf("{", at);
    const colon = text.indexOf(":", at);
    // `"usage":null` or a truncated tail: try an earlier occurrence.
    if (open !== -1 && colon !== -1 && text.slice(colon + 1, open).trim() === "") {
      const close = matchBrace(text, open);
      if (close !== -1) {
        const v = JSON.parse(text.slice(open, close + 1));
        if (v !== null && typeof v === "object" && !Array.isArray(v) && accept(v)) return v;
      }
    }
    at = at === 0 ? -1 : text.lastIndexOf(key, at - 1);
  }
  return null;
}

/**
 * `v` when it is a token count: a finite number ≥ 0 (`1e999` parses to Infinity, which a metric
 * counter refuses); null otherwise.
 */
function count(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : null;
}

function matchBrace(text: string, open: number): number {
  let depth = 0;
  let inString = false;
  for (let i = open; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b) depth++;
    else if (c === 0x7d && --depth === 0) return i;
  }
  return -1;
}

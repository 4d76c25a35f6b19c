/**
 * A fake llama.cpp `llama-server` for tests: an in-process HTTP server with llama-server's
 * per-slot prompt cache (`--parallel N`), so tests can see what the router makes of it.
 *
 * - N slots, each keeping the text of the last prompt it ran. A request takes the idle slot whose
 *   text shares the longest prefix with its prompt (ties: the least recently used), as
 *   llama-server picks a slot by prompt similarity, else by LRU. A request whose prefix is held by
 *   a busy slot therefore starts cold in another slot; with no idle slot it waits.
 * - The prompt is the request's routing text (`role:content` lines), 4 bytes a token.
 *   `cache_n` = the shared prefix in tokens (at most prompt − 1: the last token is always
 *   computed), `prompt_n` = the rest.
 * - Streams a content chunk, then the finish chunk with llama-server's `timings` (`cache_n`,
 *   `prompt_n`, `predicted_n`), then, only with `stream_options.include_usage`, a `choices: []`
 *   usage chunk with `prompt_tokens_details.cached_tokens`, then `data: [DONE]`.
 * - `hold()` keeps every new request in its slot until `release()`; `bodies` has every request
 *   body as it arrived.
 *
 * @module
 */

import { parseRequest } from "../src/prefix/mod.ts";
import { bytes, startServer, type TestServer } from "./_support.ts";

/** One slot: the text it holds and whether a request runs in it. */
export interface Slot {
  text: string;
  busy: boolean;
  lastUsed: number;
}

/** A running fake llama-server. */
export interface FakeLlamaServer extends TestServer {
  readonly slots: readonly Slot[];
  /** Request bodies in arrival order. */
  readonly bodies: string[];
  /** From now on, requests stay in their slot until `release()`. */
  hold(): void;
  /** Lets every held request finish (and stops holding). */
  release(): void;
  /** Requests that took a slot so far. */
  readonly started: number;
}

/** Starts a fake llama-server with `parallel` slots; see the module comment. */
export async function startLlamaServer(parallel = 2): Promise<FakeLlamaServer> {
  const slots: Slot[] = Array.from({ length: parallel }, () => ({
    text: "",
    busy: false,
    lastUsed: 0,
  }));
  const bodies: string[] = [];
  const waiting: (() => void)[] = [];
  let gate: PromiseWithResolvers<void> | null = null;
  let clock = 0;
  let started = 0;

  const take = async (prompt: string): Promise<[Slot, number]> => {
    for (;;) {
      let best: Slot | null = null;
      let bestCommon = -1;
      for (const s of slots) {
        if (s.busy) continue;
        const c = common(s.text, prompt);
        if (c > bestCommon || (c === bestCommon && best !== null && s.lastUsed < best.lastUsed)) {
          best = s;
          bestCommon = c;
        }
      }
      if (best !== null) {
        best.busy = true;
        best.lastUsed = ++clock;
        best.text = prompt;
        started++;
        return [best, bestCommon];
      }
      await new Promise<void>((r) => waiting.push(r));
    }
  };

  const server = await startServer(async (req) => {
    const text = await req.text();
    bodies.push(text);
    const json = JSON.parse(text);
    const prompt = parseRequest("chat", json).text;
    const [slot, shared] = await take(prompt);
    const promptTokens = Math.max(1, Math.floor(prompt.length / 4));
    const cacheN = Math.min(promptTokens - 1, Math.floor(shared / 4));
    const held = gate?.promise;
    const done = () => {
      slot.busy = false;
      waiting.shift()?.();
    };
    const chunk = (fields: Record<string, unknown>) =>
      bytes(`data: ${JSON.stringify({ object: "chat.completion.chunk", ...fields })}\n\n`);
    const stream = new ReadableStream<Uint8Array>({
      async start(c) {
        try {
          if (held) await held;
          c.enqueue(chunk({ choices: [{ index: 0, delta: { content: "ok" } }] }));
          c.enqueue(chunk({
            choices: [{ index: 0, delta: {}, finish_reason: "stop" }],
            timings: { cache_n: cacheN, prompt_n: promptTokens - cacheN, predicted_n: 1 },
          }));
          if (json.stream_options?.include_usage === true) {
            c.enqueue(chunk({
              choices: [],
              usage: {
                prompt_tokens: promptTokens,
                completion_tokens: 1,
                total_tokens: promptTokens + 1,
                prompt_tokens_details: { cached_tokens: cacheN },
              },
            }));
          }
          c.enqueue(bytes("data: [DONE]\n\n"));
          c.close();
        } catch {
          /* the reader went away */
        } finally {
          done();
        }
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  });
  return {
    ...server,
    slots,
    bodies,
    hold: () => (gate = Promise.withResolvers<void>()),
    release: () => {
      gate?.resolve();
      gate = null;
    },
    get started() {
      return started;
    },
  };
}

/** Length of the common prefix of `a` and `b`, in UTF-16 units (the tests use ASCII). */
function common(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

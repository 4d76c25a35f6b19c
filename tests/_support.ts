/**
 * Test support: real in-process upstream servers on 127.0.0.1 port 0, a URL that refuses
 * connections, SSE framing, and bounded polling.
 *
 * @module
 */

/** A started in-process HTTP server. */
export interface TestServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Starts `handler` on 127.0.0.1, any free port. */
export async function startServer(
  handler: (req: Request) => Response | Promise<Response>,
): Promise<TestServer> {
  const ready = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: (a) => ready.resolve(a.port),
    onError: () => new Response("upstream handler failed", { status: 500 }),
  }, handler);
  const port = await ready.promise;
  let closed: Promise<void> | null = null;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () => (closed ??= server.shutdown()),
  };
}

/** A URL on which nothing listens: connecting fails at once. */
export function refusedUrl(): string {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return `http://127.0.0.1:${port}`;
}

/** Polls `cond` every 5 ms until it holds or `ms` elapse; returns its last value. */
export async function waitFor(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/** One SSE event carrying a chat.completion.chunk with `content`. */
export function sseChunk(content: string, extra: Record<string, unknown> = {}): string {
  return `data: ${
    JSON.stringify({
      id: "chatcmpl-test",
      object: "chat.completion.chunk",
      created: 0,
      model: "test-model",
      choices: [{ index: 0, delta: { content }, finish_reason: null }],
      ...extra,
    })
  }\n\n`;
}

/** The final usage event of a stream with `include_usage`. */
export function sseUsage(prompt: number, cached: number, completion = 1): string {
  return `data: ${
    JSON.stringify({
      id: "chatcmpl-test",
      object: "chat.completion.chunk",
      created: 0,
      model: "test-model",
      choices: [],
      usage: {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        prompt_tokens_details: { cached_tokens: cached },
      },
    })
  }\n\n`;
}

/** A non-streaming chat completion body. */
export function chatCompletion(content: string, prompt = 10, cached = 0): Record<string, unknown> {
  return {
    id: "chatcmpl-test",
    object: "chat.completion",
    created: 0,
    model: "test-model",
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
    usage: {
      prompt_tokens: prompt,
      completion_tokens: 1,
      total_tokens: prompt + 1,
      prompt_tokens_details: { cached_tokens: cached },
    },
  };
}

/** A chat request body with a long shared system prompt, so prefix routing has chunks to match. */
export function chatBody(user: string, opts: { stream?: boolean; system?: string } = {}): string {
  return JSON.stringify({
    model: "test-model",
    stream: opts.stream ?? false,
    ...(opts.stream ? { stream_options: { include_usage: true } } : {}),
    messages: [
      { role: "system", content: opts.system ?? "You are a careful assistant. ".repeat(40) },
      { role: "user", content: user },
    ],
  });
}

const encoder = new TextEncoder();
/** UTF-8 bytes of `s`. */
export function bytes(s: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(s);
}

/**
 * Test support: real in-process upstream servers on 127.0.0.1 port 0, a URL that refuses
 * connections and a port whose connections hang, SSE framing and parsing, bounded polling, an
 * in-process router harness, a sim worker for one test, and a `cmd/router.ts` child process with
 * its output read line by line.
 *
 * @module
 */

import { configFromWorkers, type ConfigOverrides, type WorkerInput } from "../src/config/mod.ts";
import { type ChunkHashes, chunkHashes, parseRequest } from "../src/prefix/mod.ts";
import { modelTag } from "../src/router/plan.ts";
import { Logger, type Router, type RunningRouter, startRouter } from "../src/router/mod.ts";
import type { Clock } from "../src/util/clock.ts";
import { type SimWorker, type SimWorkerOptions, startSimWorker } from "../src/sim/server.ts";

/** A started in-process HTTP server. */
export interface TestServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Starts `handler` on 127.0.0.1, any free port. */
export async function startServer(
  handler: (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ) => Response | Promise<Response>,
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

/**
 * A JSON worker that holds every request until `release()` (then answers `name`): keeps requests
 * in flight for as long as a test needs.
 */
export async function heldWorker(name = "held"): Promise<TestServer & { release: () => void }> {
  const gate = Promise.withResolvers<void>();
  const server = await startServer(async (req) => {
    await req.arrayBuffer();
    await gate.promise;
    return Response.json(chatCompletion(name));
  });
  return { ...server, release: () => gate.resolve() };
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

/** One SSE event carrying a chat.completion.chunk with `fields` (choices, usage, ...). */
function chunkEvent(fields: Record<string, unknown>): string {
  return `data: ${
    JSON.stringify({
      id: "chatcmpl-test",
      object: "chat.completion.chunk",
      created: 0,
      model: "test-model",
      ...fields,
    })
  }\n\n`;
}

/** One SSE event carrying a chat.completion.chunk with `content`. */
export function sseChunk(content: string, extra: Record<string, unknown> = {}): string {
  return chunkEvent({
    choices: [{ index: 0, delta: { content }, finish_reason: null }],
    ...extra,
  });
}

/** The final usage event of a stream with `include_usage`. */
export function sseUsage(prompt: number, cached: number, completion = 1): string {
  return chunkEvent({
    choices: [],
    usage: {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      prompt_tokens_details: { cached_tokens: cached },
    },
  });
}

/** An SSE response that sends `events` at once and ends. */
export function sseResponse(events: readonly string[]): Response {
  return new Response(
    new ReadableStream({
      start(c) {
        for (const e of events) c.enqueue(bytes(e));
        c.close();
      },
    }),
    { headers: { "content-type": "text/event-stream" } },
  );
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
/**
 * The chunk hashes the router routes a chat (or completion) body by: its routing text, tagged with
 * the body's model as `plan.ts` does (no aliases, no learned models).
 */
export function routingHashes(
  body: string | Record<string, unknown>,
  chunkSize = 32,
  kind: "chat" | "completion" = "chat",
): ChunkHashes {
  const json = typeof body === "string" ? JSON.parse(body) : body;
  const text = parseRequest(kind, json).text;
  const model = json.model;
  return chunkHashes(typeof model === "string" ? modelTag(model) + text : text, chunkSize);
}

/** UTF-8 bytes of `s`. */
export function bytes(s: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(s);
}

/** Reads a whole body as text, or the error that broke it. */
export async function readAll(res: Response): Promise<{ text: string; error: unknown }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    return { text, error: null };
  } catch (err) {
    return { text, error: err };
  }
}

/** The `data:` payloads of an SSE text, in order (a trailing partial event is dropped). */
export function sseData(text: string): string[] {
  const events = text.split(/\r?\n\r?\n/);
  events.pop(); // whatever follows the last blank line is not a complete event
  return events.flatMap((ev) => {
    const lines = ev.split(/\r?\n/).filter((l) => l.startsWith("data:"));
    return lines.length === 0 ? [] : [lines.map((l) => l.slice(5).trimStart()).join("\n")];
  });
}

/**
 * A port whose connections hang: a listener that never accepts, its accept queue filled, so the
 * kernel drops further SYNs and `connect` waits. Linux only (other systems may refuse instead).
 */
export async function hangingPort(): Promise<{ url: string; close(): void }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < 10_000; i++) {
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const conn = await Promise.race([
      Deno.connect({ hostname: "127.0.0.1", port, signal: ctl.signal }),
      new Promise<null>((r) => (timer = setTimeout(() => r(null), 100))),
    ]).catch(() => null);
    clearTimeout(timer);
    if (conn === null) {
      ctl.abort();
      break;
    }
    conns.push(conn);
  }
  return {
    url: `http://127.0.0.1:${port}`,
    close() {
      for (const c of conns) c.close();
      listener.close();
    },
  };
}

/** Lines of a child process's stdout, read in the background; `next` waits for a match. */
export class LineReader {
  readonly lines: string[] = [];
  readonly #waiters: { match: (line: string) => boolean; resolve: (l: string) => void }[] = [];
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      let buf = "";
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        buf += text;
        let nl: number;
        while ((nl = buf.indexOf("\n")) !== -1) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.lines.push(line);
          for (const w of [...this.#waiters]) {
            if (w.match(line)) {
              this.#waiters.splice(this.#waiters.indexOf(w), 1);
              w.resolve(line);
            }
          }
        }
      }
    })();
  }

  /** The first line (already read or still to come) for which `match` holds; rejects after `ms`. */
  next(match: (line: string) => boolean, ms = 10_000, from = 0): Promise<string> {
    const seen = this.lines.slice(from).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error(`no matching line within ${ms} ms; got:\n${this.lines.join("\n")}`));
      }, ms);
      const waiter = {
        match,
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      this.#waiters.push(waiter);
    });
  }
}

/** JSON log lines (those that parse) of `lines`. */
export function jsonLines(lines: readonly string[]): Record<string, unknown>[] {
  return lines.flatMap((l) => {
    try {
      const v = JSON.parse(l);
      return v && typeof v === "object" ? [v] : [];
    } catch {
      return [];
    }
  });
}

/** A started `cmd/router.ts` child process. */
export interface RouterProcess {
  readonly url: string;
  readonly child: Deno.ChildProcess;
  readonly stdout: LineReader;
  readonly stderr: LineReader;
  /** Sends `signal` and waits for the exit status and both streams' end. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/** Runs `cmd/router.ts --config <configPath> --port 0` and waits for its `listening on` line. */
export async function spawnRouter(configPath: string): Promise<RouterProcess> {
  const root = new URL("..", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cmd/router.ts", "--config", configPath, "--port", "0"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stdout = new LineReader(child.stdout);
  const stderr = new LineReader(child.stderr);
  let first: string;
  try {
    first = await stdout.next((l) => l.startsWith("listening on "), 20_000);
  } catch (err) {
    child.kill("SIGKILL");
    await Promise.all([child.status, stdout.done, stderr.done]);
    throw err;
  }
  let stopped: Promise<Deno.CommandStatus> | null = null;
  return {
    url: first.slice("listening on ".length),
    child,
    stdout,
    stderr,
    stop(signal: Deno.Signal = "SIGTERM") {
      stopped ??= (async () => {
        try {
          child.kill(signal);
        } catch { /* already gone */ }
        const [status] = await Promise.all([child.status, stdout.done, stderr.done]);
        return status;
      })();
      return stopped;
    },
  };
}

/** A router started in-process over test upstreams, with its log lines collected. */
export interface RouterHarness {
  readonly running: RunningRouter;
  readonly router: Router;
  readonly url: string;
  readonly logs: Record<string, unknown>[];
  /** POSTs `body` to `path` (chat completions by default). */
  post(
    body: string | Uint8Array<ArrayBuffer>,
    init?: { headers?: Record<string, string>; signal?: AbortSignal; path?: string },
  ): Promise<Response>;
  /** The Prometheus text of `/metrics` (main port). */
  metrics(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Starts a router on 127.0.0.1 port 0 over `workers` (URLs or worker inputs), health checks off,
 * seed 7. `closeAlso` are shut down after the router by `close()`.
 */
export async function routerHarness(
  workers: WorkerInput[],
  overrides: ConfigOverrides = {},
  opts: { clock?: Clock; closeAlso?: { close(): Promise<void> | void }[] } = {},
): Promise<RouterHarness> {
  const logs: Record<string, unknown>[] = [];
  const config = configFromWorkers(workers, {
    ...overrides,
    server: { addr: "127.0.0.1:0", ...overrides.server },
    health: { intervalMs: 0, ...overrides.health },
    router: { seed: 7, ...overrides.router },
  });
  const running = await startRouter(config, {
    logger: new Logger("info", "json", (line) => logs.push(JSON.parse(line))),
    clock: opts.clock,
  });
  return {
    running,
    router: running.router,
    url: running.url,
    logs,
    post(body, init = {}) {
      return fetch(running.url + (init.path ?? "/v1/chat/completions"), {
        method: "POST",
        headers: { "content-type": "application/json", ...init.headers },
        body,
        signal: init.signal,
      });
    },
    async metrics() {
      return await (await fetch(`${running.url}/metrics`)).text();
    },
    async close() {
      await running.shutdown();
      for (const c of opts.closeAlso ?? []) await c.close();
    },
  };
}

/** The value of the sample `name{labels}` in Prometheus text, or 0 when absent. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = (m[2] ?? "").split(",").filter(Boolean);
    if (want.every((w) => have.includes(w))) return Number(m[3]);
  }
  return 0;
}

/** An SSE upstream: sends `events` with `gapMs` between them, then `tail` decides the end. */
export function sseWorker(opts: {
  events: number;
  gapMs?: number;
  /** `done` (default): usage + [DONE], close. `error`: error the body. `hang`: send nothing more. */
  tail?: "done" | "error" | "hang";
  /** Bytes sent before the tail (e.g. half an event). */
  partial?: string;
  onRequest?: () => void;
}): Promise<TestServer> {
  return startServer(async (req) => {
    await req.arrayBuffer();
    opts.onRequest?.();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        const step = () => {
          try {
            if (sent < opts.events) {
              c.enqueue(bytes(sseChunk(`t${sent++}`)));
              timer = setTimeout(step, opts.gapMs ?? 1);
              return;
            }
            if (opts.partial) c.enqueue(bytes(opts.partial));
            const tail = opts.tail ?? "done";
            if (tail === "done") {
              c.enqueue(bytes(sseUsage(100, 64, opts.events)));
              c.enqueue(bytes("data: [DONE]\n\n"));
              c.close();
            } else if (tail === "error") {
              c.error(new Error("worker died"));
            }
          } catch {
            // The server dropped the body (the reader went away): stop sending.
          }
        };
        step();
      },
      cancel() {
        clearTimeout(timer);
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  });
}

/**
 * Runs `fn` against a sim worker on port 0 whose answers run to max_tokens unless `opts` says
 * otherwise (a100-7b at time scale 0.01, `opts` over those), then shuts the worker down.
 */
export async function withSimWorker(
  opts: Partial<SimWorkerOptions>,
  fn: (w: SimWorker) => Promise<void>,
): Promise<void> {
  const w = await startSimWorker({
    profile: "a100-7b",
    timeScale: 0.01,
    answerLength: { kind: "max" },
    ...opts,
  });
  try {
    await fn(w);
  } finally {
    await w.shutdown();
  }
}

/** POSTs `body` as JSON to `path` of the server at `w.url`. */
export function postJson(
  w: { readonly url: string },
  path: string,
  body: unknown,
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(w.url + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
}

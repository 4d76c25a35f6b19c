/**
 * Router overhead bench: the same fixed upstream reached directly, through nginx, through HAProxy
 * (`balance leastconn`) and through this router with each strategy, at 1 and 16 connections, for a
 * 6 KB chat body, non-streaming (JSON) and streaming (8 SSE events). Load comes from wrk.
 *
 * Setup, all on 127.0.0.1 of this machine:
 * - upstream: nginx answering every POST with a canned chat completion on four JSON ports and a
 *   canned 8-event SSE stream on four SSE ports (`upstream.nginx.conf`), far faster than any proxy
 *   in front of it, so it is not the bottleneck;
 * - nginx proxy (`proxy.nginx.conf`) and HAProxy (`haproxy.cfg`) over those four ports;
 * - the router (`deno run -A cmd/router.ts --config <tmp> --port 0`), four workers on those four
 *   ports, logging level error, everything else at its defaults (metrics on, health checks on);
 * - wrk with `post.lua`, cycling through 256 distinct 6 KB chat bodies that share a 1 KB system
 *   prompt (so prefixaware sees realistic partial matches and inserts).
 *
 * Output: one markdown table per (mode, connections): req/s, p50, p99, each also as a ratio to
 * nginx, and added p50/p99 versus direct. nginx, HAProxy and wrk are installed from Debian's
 * packages with apt-get when absent.
 *
 * Usage: deno run -A bench/overhead/run.ts [--duration 8] [--warmup 2] [--conns 1,16]
 *          [--modes json,sse] [--targets direct,nginx,haproxy,roundrobin,...] [--out FILE]
 *          [--json FILE]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { SeededRng } from "../../src/util/rng.ts";

const HERE = new URL(".", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;
const STRATEGIES = ["roundrobin", "random", "leastloaded", "prefixaware"] as const;
const ALL_TARGETS = ["direct", "nginx", "haproxy", ...STRATEGIES];

type Mode = "json" | "sse";

/** One wrk run's summary, from post.lua's `done`. */
interface WrkResult {
  requests: number;
  duration_us: number;
  bytes: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  mean_us: number;
  max_us: number;
}

interface Cell {
  target: string;
  mode: Mode;
  conns: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

// ---------------------------------------------------------------------------------------------
// Tools

async function sh(cmd: string, args: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

async function have(bin: string): Promise<boolean> {
  return (await sh("sh", ["-c", `command -v ${bin} || test -x /usr/sbin/${bin}`])).code === 0;
}

/** Installs the Debian packages of the missing tools (needs root, as on this project's machines). */
async function ensureTools(): Promise<void> {
  const missing: string[] = [];
  for (const [bin, pkg] of [["nginx", "nginx"], ["haproxy", "haproxy"], ["wrk", "wrk"]]) {
    if (!(await have(bin))) missing.push(pkg);
  }
  if (missing.length === 0) return;
  console.error(`installing ${missing.join(", ")} with apt-get`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  let r = await sh("apt-get", ["install", "-y", "--no-install-recommends", ...missing], env);
  if (r.code !== 0) {
    await sh("apt-get", ["update"], env);
    r = await sh("apt-get", ["install", "-y", "--no-install-recommends", ...missing], env);
  }
  if (r.code !== 0) throw new Error(`apt-get install ${missing.join(" ")} failed:\n${r.stderr}`);
}

function bin(name: string): string {
  for (const dir of ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]) {
    try {
      Deno.statSync(`${dir}/${name}`);
      return `${dir}/${name}`;
    } catch { /* next */ }
  }
  return name;
}

// ---------------------------------------------------------------------------------------------
// Payloads

const WORDS = [
  "the",
  "router",
  "sends",
  "each",
  "request",
  "to",
  "worker",
  "that",
  "holds",
  "prefix",
  "cache",
  "tokens",
  "prefill",
  "decode",
  "latency",
  "stream",
];

function words(rng: SeededRng, bytes: number): string {
  let s = "";
  while (s.length < bytes) s += WORDS[rng.int(WORDS.length)] + " ";
  return s.slice(0, bytes);
}

/** 256 distinct chat bodies of about 6 KB: a shared 1 KB system prompt, then a 5 KB user turn. */
function chatBodies(stream: boolean): string[] {
  const rng = new SeededRng(6);
  const system = words(rng, 1024);
  const out: string[] = [];
  for (let i = 0; i < 256; i++) {
    const body: Record<string, unknown> = {
      model: "bench-model",
      messages: [
        { role: "system", content: system },
        { role: "user", content: `question ${i}: ` + words(rng, 5 * 1024 - 16) },
      ],
      max_tokens: 16,
    };
    if (stream) {
      body.stream = true;
      body.stream_options = { include_usage: true };
    }
    out.push(JSON.stringify(body));
  }
  return out;
}

const USAGE = {
  prompt_tokens: 1536,
  completion_tokens: 7,
  total_tokens: 1543,
  prompt_tokens_details: { cached_tokens: 256 },
};

/** A chat completion as vLLM returns it (about 450 bytes). */
function jsonAnswer(): string {
  return JSON.stringify({
    id: "chatcmpl-bench",
    object: "chat.completion",
    created: 1700000000,
    model: "bench-model",
    choices: [{
      index: 0,
      message: { role: "assistant", content: "The router sends it to the warm worker." },
      logprobs: null,
      finish_reason: "stop",
      stop_reason: null,
    }],
    usage: USAGE,
  });
}

/** 8 SSE events: role, 5 content deltas, the usage chunk, `[DONE]`. */
function sseAnswer(): string {
  const chunk = (delta: Record<string, unknown>, finish: string | null, usage: unknown = null) =>
    `data: ${
      JSON.stringify({
        id: "chatcmpl-bench",
        object: "chat.completion.chunk",
        created: 1700000000,
        model: "bench-model",
        choices: usage ? [] : [{ index: 0, delta, logprobs: null, finish_reason: finish }],
        usage,
      })
    }\n\n`;
  let s = chunk({ role: "assistant", content: "" }, null);
  const parts = ["The", " router", " sends", " it", " warm."];
  parts.forEach((p, i) => (s += chunk({ content: p }, i === parts.length - 1 ? "stop" : null)));
  s += chunk({}, null, USAGE);
  s += "data: [DONE]\n\n";
  return s;
}

/** Quotes `s` for an nginx single-quoted string (nginx also expands `$name` in `return`). */
function nginxQuote(s: string): string {
  if (s.includes("$")) throw new Error("canned bodies must not contain $");
  return s.replaceAll("\\", "\\\\").replaceAll("'", "\\'");
}

// ---------------------------------------------------------------------------------------------
// Processes

function freePorts(n: number): number[] {
  const ls = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = ls.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of ls) l.close();
  return ports;
}

async function waitPort(port: number, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      if (Date.now() > end) throw new Error(`nothing listens on port ${port} after ${ms} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

class Proc {
  readonly #child: Deno.ChildProcess;
  constructor(readonly name: string, cmd: string, args: string[], stdout: "null" | "piped") {
    this.#child = new Deno.Command(cmd, {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout,
      stderr: "inherit",
    }).spawn();
  }
  get child(): Deno.ChildProcess {
    return this.#child;
  }
  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5000);
    await this.#child.status;
    clearTimeout(timer);
  }
}

/** Starts the router for `strategy` over `ports`; resolves once it printed its listen line. */
async function startRouter(
  dir: string,
  strategy: string,
  ports: number[],
): Promise<{ proc: Proc; port: number }> {
  const cfg = `${dir}/router-${strategy}.yaml`;
  const workers = ports.map((p, i) => `  - id: w${i + 1}\n    url: http://127.0.0.1:${p}\n`);
  Deno.writeTextFileSync(
    cfg,
    `server:\n  addr: "127.0.0.1:0"\nrouter:\n  strategy: ${strategy}\nlogging:\n  level: error\n` +
      `workers:\n${workers.join("")}`,
  );
  const proc = new Proc(`router-${strategy}`, Deno.execPath(), [
    "run",
    "-A",
    "cmd/router.ts",
    "--config",
    cfg,
    "--port",
    "0",
  ], "piped");
  const reader = proc.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (!buf.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`router ${strategy} exited before listening`);
    buf += value;
  }
  const line = buf.slice(0, buf.indexOf("\n"));
  const m = /^listening on http:\/\/[^:]+:(\d+)/.exec(line);
  if (!m) throw new Error(`router ${strategy}: unexpected first line ${JSON.stringify(line)}`);
  // Keep draining stdout so the router never blocks on a full pipe.
  (async () => {
    try {
      while (!(await reader.read()).done) { /* discard */ }
    } catch { /* closed */ }
  })();
  return { proc, port: Number(m[1]) };
}

// ---------------------------------------------------------------------------------------------
// Load

async function wrk(
  port: number,
  conns: number,
  seconds: number,
  bodies: string,
): Promise<WrkResult> {
  const threads = Math.min(conns, 2);
  const r = await sh(bin("wrk"), [
    `-t${threads}`,
    `-c${conns}`,
    `-d${seconds}s`,
    "--timeout",
    "5s",
    "-s",
    `${HERE}post.lua`,
    `http://127.0.0.1:${port}/v1/chat/completions`,
  ], { BENCH_BODIES: bodies });
  const line = r.stdout.split("\n").filter((l) => l.startsWith("{")).pop();
  if (r.code !== 0 || !line) throw new Error(`wrk failed (${r.code}): ${r.stderr}${r.stdout}`);
  return JSON.parse(line);
}

/** One request through `port`, checked, so that a broken target fails the run instead of lying. */
async function check(port: number, body: string, mode: Mode, name: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  const text = await res.text();
  const ok = res.status === 200 &&
    (mode === "json" ? text.includes('"chat.completion"') : text.split("data: ").length - 1 === 8);
  if (!ok) throw new Error(`${name} (${mode}) answered ${res.status}: ${text.slice(0, 200)}`);
}

// ---------------------------------------------------------------------------------------------
// Report

function fmtNum(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

function table(cells: Cell[], mode: Mode, conns: number): string {
  const rows = cells.filter((c) => c.mode === mode && c.conns === conns);
  const nginx = rows.find((c) => c.target === "nginx");
  const direct = rows.find((c) => c.target === "direct");
  const ratio = (a: number, b: number | undefined) => (b ? `${fmtNum(a / b, 2)}×` : "–");
  const added = (a: number, b: number | undefined) => (b === undefined ? "–" : fmtNum(a - b, 3));
  const head = "| target | req/s | req/s ÷ nginx | p50 ms | p50 ÷ nginx | p99 ms | p99 ÷ nginx " +
    "| +p50 vs direct ms | +p99 vs direct ms | errors |\n" +
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n";
  return head +
    rows.map((c) =>
      `| ${c.target} | ${Math.round(c.rps)} | ${ratio(c.rps, nginx?.rps)} | ${
        fmtNum(c.p50Ms, 3)
      } | ` +
      `${ratio(c.p50Ms, nginx?.p50Ms)} | ${fmtNum(c.p99Ms, 3)} | ${
        ratio(c.p99Ms, nginx?.p99Ms)
      } | ` +
      `${c.target === "direct" ? "0" : added(c.p50Ms, direct?.p50Ms)} | ` +
      `${c.target === "direct" ? "0" : added(c.p99Ms, direct?.p99Ms)} | ${c.errors} |`
    ).join("\n") + "\n";
}

async function machine(): Promise<string> {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ??
    "unknown CPU";
  const nproc = (await sh("nproc", [])).stdout.trim();
  const nginxV = (await sh(bin("nginx"), ["-v"])).stderr.trim();
  const haproxyV = (await sh(bin("haproxy"), ["-v"])).stdout.split("\n")[0].trim();
  const wrkV = (await sh(bin("wrk"), ["-v"])).stdout.split("\n")[0].trim();
  return `${nproc} × ${cpu}; Deno ${Deno.version.deno}; ${nginxV}; ${haproxyV}; ${wrkV}`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      duration: { type: "string", default: "8" },
      warmup: { type: "string", default: "2" },
      conns: { type: "string", default: "1,16" },
      modes: { type: "string", default: "json,sse" },
      targets: { type: "string", default: ALL_TARGETS.join(",") },
      out: { type: "string" },
      json: { type: "string" },
      hold: { type: "boolean", default: false },
    },
    strict: true,
  });
  const duration = Number(values.duration);
  const warmup = Number(values.warmup);
  const connsList = values.conns!.split(",").map(Number);
  const modes = values.modes!.split(",") as Mode[];
  const targets = values.targets!.split(",");
  for (const t of targets) {
    if (!ALL_TARGETS.includes(t)) throw new Error(`unknown target ${t}; valid: ${ALL_TARGETS}`);
  }

  await ensureTools();
  const dir = await Deno.makeTempDir({ prefix: "overhead-" });
  await Deno.chmod(dir, 0o755); // nginx workers run as an unprivileged user
  const procs: Proc[] = [];
  const cells: Cell[] = [];
  try {
    const [uJ1, uJ2, uJ3, uJ4, uS1, uS2, uS3, uS4, nJ, nS, hJ, hS] = freePorts(12);
    const up = { json: [uJ1, uJ2, uJ3, uJ4], sse: [uS1, uS2, uS3, uS4] };
    const fill = (tpl: string, vars: Record<string, string>) =>
      tpl.replace(/\{\{(\w+)\}\}/g, (_, k) => {
        if (!(k in vars)) throw new Error(`template placeholder ${k} has no value`);
        return vars[k];
      });
    const listen = (ps: number[]) => ps.map((p) => `    listen 127.0.0.1:${p};`).join("\n");
    Deno.writeTextFileSync(
      `${dir}/upstream.conf`,
      fill(Deno.readTextFileSync(`${HERE}upstream.nginx.conf`), {
        DIR: dir,
        JSON_LISTEN: listen(up.json),
        SSE_LISTEN: listen(up.sse),
        JSON_BODY: nginxQuote(jsonAnswer()),
        SSE_BODY: nginxQuote(sseAnswer()),
      }),
    );
    Deno.writeTextFileSync(
      `${dir}/proxy.conf`,
      fill(Deno.readTextFileSync(`${HERE}proxy.nginx.conf`), {
        DIR: dir,
        JSON_PORT: String(nJ),
        SSE_PORT: String(nS),
        JSON_SERVERS: up.json.map((p) => `    server 127.0.0.1:${p};`).join("\n"),
        SSE_SERVERS: up.sse.map((p) => `    server 127.0.0.1:${p};`).join("\n"),
      }),
    );
    Deno.writeTextFileSync(
      `${dir}/haproxy.cfg`,
      fill(Deno.readTextFileSync(`${HERE}haproxy.cfg`), {
        JSON_PORT: String(hJ),
        SSE_PORT: String(hS),
        JSON_SERVERS: up.json.map((p, i) => `  server w${i + 1} 127.0.0.1:${p}`).join("\n"),
        SSE_SERVERS: up.sse.map((p, i) => `  server w${i + 1} 127.0.0.1:${p}`).join("\n"),
      }),
    );
    const bodyFiles = { json: `${dir}/bodies-json.txt`, sse: `${dir}/bodies-sse.txt` };
    const bodies = { json: chatBodies(false), sse: chatBodies(true) };
    Deno.writeTextFileSync(bodyFiles.json, bodies.json.join("\n") + "\n");
    Deno.writeTextFileSync(bodyFiles.sse, bodies.sse.join("\n") + "\n");

    const nginxArgs = (conf: string) => ["-p", dir, "-e", `${dir}/startup.err`, "-c", conf];
    procs.push(new Proc("upstream", bin("nginx"), nginxArgs(`${dir}/upstream.conf`), "null"));
    await Promise.all([...up.json, ...up.sse].map((p) => waitPort(p)));
    if (targets.includes("nginx")) {
      procs.push(new Proc("nginx", bin("nginx"), nginxArgs(`${dir}/proxy.conf`), "null"));
      await Promise.all([waitPort(nJ), waitPort(nS)]);
    }
    if (targets.includes("haproxy")) {
      procs.push(new Proc("haproxy", bin("haproxy"), ["-db", "-f", `${dir}/haproxy.cfg`], "null"));
      await Promise.all([waitPort(hJ), waitPort(hS)]);
    }

    if (values.hold) {
      // Keeps the fixed upstream (and proxies) up for profiling by hand; stop with Ctrl-C.
      console.log(
        JSON.stringify({
          dir,
          upstream: up,
          nginx: { json: nJ, sse: nS },
          haproxy: { json: hJ, sse: hS },
          bodies: bodyFiles,
        }),
      );
      const stop = Promise.withResolvers<void>();
      Deno.addSignalListener("SIGINT", () => stop.resolve());
      Deno.addSignalListener("SIGTERM", () => stop.resolve());
      await stop.promise;
      return;
    }

    const measure = async (target: string, mode: Mode, port: number) => {
      await check(port, bodies[mode][0], mode, target);
      if (warmup > 0) await wrk(port, Math.max(...connsList), warmup, bodyFiles[mode]);
      for (const conns of connsList) {
        const r = await wrk(port, conns, duration, bodyFiles[mode]);
        const cell: Cell = {
          target,
          mode,
          conns,
          rps: r.requests / (r.duration_us / 1e6),
          p50Ms: r.p50_us / 1000,
          p99Ms: r.p99_us / 1000,
          errors: r.connect + r.read + r.write + r.status + r.timeout,
        };
        cells.push(cell);
        console.error(
          `${mode} c=${conns} ${target}: ${Math.round(cell.rps)} req/s, ` +
            `p50 ${cell.p50Ms.toFixed(3)} ms, p99 ${
              cell.p99Ms.toFixed(3)
            } ms, errors ${cell.errors}`,
        );
      }
    };

    for (const mode of modes) {
      for (const target of targets) {
        if (target === "direct") await measure(target, mode, up[mode][0]);
        else if (target === "nginx") await measure(target, mode, mode === "json" ? nJ : nS);
        else if (target === "haproxy") await measure(target, mode, mode === "json" ? hJ : hS);
        else {
          const r = await startRouter(dir, target, up[mode]);
          try {
            await measure(`router ${target}`, mode, r.port);
          } finally {
            await r.proc.stop();
          }
        }
      }
    }
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  let md = `Machine: ${await machine()}\n` +
    `Date: ${new Date().toISOString().slice(0, 10)}; ${duration} s per cell after a ` +
    `${warmup} s warm-up; 6 KB chat bodies (256 distinct, shared 1 KB system prompt)\n`;
  for (const mode of modes) {
    for (const conns of connsList) {
      md += `\n### ${mode === "json" ? "Non-streaming (JSON)" : "Streaming (8 SSE events)"}, ` +
        `${conns} connection${conns === 1 ? "" : "s"}\n\n` + table(cells, mode, conns);
    }
  }
  console.log(md);
  if (values.out) await Deno.writeTextFile(values.out, md);
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(cells, null, 2) + "\n");
}

if (import.meta.main) await main();

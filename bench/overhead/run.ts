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
 * - `deno-fetch` (`naive_proxy.ts`): the least a Deno proxy does (`Deno.serve` + `fetch`, round
 *   robin), the ceiling for a router that forwards with `fetch`;
 * - `deno-h1` (`h1_proxy.ts`): `Deno.serve` + the router's own HTTP/1.1 client, round robin, no
 *   routing, the ceiling for this router: the gap between it and the router is the router's own
 *   per-request work;
 * - the router (`deno run -A cmd/router.ts --config <tmp> --port 0`), four workers on those four
 *   ports, logging level error, everything else at its defaults (metrics on, health checks on);
 * - wrk with `post.lua`, cycling through 256 distinct 6 KB chat bodies that share a 1 KB system
 *   prompt (so prefixaware sees realistic partial matches and inserts).
 *
 * Output: one markdown table per (mode, connections): req/s, p50, p99, each also as a ratio to
 * nginx, and added p50/p99 versus direct. nginx, HAProxy and wrk are installed from Debian's
 * packages with apt-get when absent.
 *
 * One-connection cells run with wrk, the upstream and the target pinned to CPU 0 (`--no-pin` turns
 * that off): on this kind of 2-vCPU VM an unpinned one-connection run is bimodal (direct p50 13 µs
 * or 85 µs from run to run, depending on whether wrk and nginx share a CPU), which says more about
 * the hypervisor's cross-CPU wake-ups than about the proxy. Pinned, each request's latency is the
 * work done on its path, and repeat runs agree within a few µs. 16-connection cells are unpinned.
 *
 * Usage: deno task bench:overhead [--duration 6] [--warmup 2] [--conns 1,16] [--modes json,sse]
 *          [--targets direct,nginx,haproxy,deno-fetch,deno-h1,roundrobin,...] [--no-pin] [--out FILE]
 *          [--json FILE] [--hold]
 * `--hold` only starts the upstream and the proxies, prints their ports and waits (profiling).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { SeededRng } from "../../src/util/rng.ts";

const HERE = new URL(".", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;
const STRATEGIES = ["roundrobin", "random", "leastloaded", "prefixaware", "costaware"] as const;
const ALL_TARGETS = ["direct", "nginx", "haproxy", "deno-fetch", "deno-h1", ...STRATEGIES];

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

/** Every process id of the tree under `pid` (nginx's master and its workers). */
async function processTree(pid: number): Promise<number[]> {
  const out = [pid];
  const r = await sh("pgrep", ["-P", String(pid)]);
  for (const line of r.stdout.split("\n")) {
    if (line.trim() !== "") out.push(...(await processTree(Number(line))));
  }
  return out;
}

/** Sets the CPU affinity of every thread of every process in `pids`. */
async function pin(pids: number[], cpus: string): Promise<void> {
  for (const pid of pids) {
    const r = await sh("taskset", ["-a", "-p", "-c", cpus, String(pid)]);
    if (r.code !== 0) throw new Error(`taskset -a -p -c ${cpus} ${pid} failed: ${r.stderr}`);
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
function startRouter(
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
  return startListener(`router-${strategy}`, [
    "run",
    "-A",
    "cmd/router.ts",
    "--config",
    cfg,
    "--port",
    "0",
  ]);
}

/** Starts a reference proxy (`deno-fetch`: `naive_proxy.ts`, `deno-h1`: `h1_proxy.ts`). */
function startReference(
  name: "deno-fetch" | "deno-h1",
  ports: number[],
): Promise<{ proc: Proc; port: number }> {
  return startListener(name, [
    "run",
    "-A",
    `${HERE}${name === "deno-fetch" ? "naive_proxy.ts" : "h1_proxy.ts"}`,
    "0",
    ...ports.map(String),
  ]);
}

/** Runs `deno ARGS`; resolves once it printed `listening on http://HOST:PORT` as its first line. */
async function startListener(name: string, args: string[]): Promise<{ proc: Proc; port: number }> {
  const proc = new Proc(name, Deno.execPath(), args, "piped");
  const reader = proc.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (!buf.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`${name} exited before listening`);
    buf += value;
  }
  const line = buf.slice(0, buf.indexOf("\n"));
  const m = /^listening on http:\/\/[^:]+:(\d+)/.exec(line);
  if (!m) throw new Error(`${name}: unexpected first line ${JSON.stringify(line)}`);
  // Keep draining stdout so the process never blocks on a full pipe.
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
  cpu: string | null = null,
): Promise<WrkResult> {
  const threads = Math.min(conns, 2);
  const pin = cpu === null ? [] : ["-c", cpu, bin("wrk")];
  const r = await sh(cpu === null ? bin("wrk") : "taskset", [
    ...pin,
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
  const haproxyV = (await sh(bin("haproxy"), ["-v"])).stdout.split("\n")[0].replace(
    / \d{4}\/.*/,
    "",
  )
    .trim();
  const wrkV = (await sh(bin("wrk"), ["-v"])).stdout.split("\n")[0].replace(/ \[.*/, "").trim();
  return `nproc ${nproc}, ${cpu}; Deno ${Deno.version.deno}; ${nginxV}; ${haproxyV}; ${wrkV}`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      duration: { type: "string", default: "6" },
      warmup: { type: "string", default: "2" },
      conns: { type: "string", default: "1,16" },
      modes: { type: "string", default: "json,sse" },
      targets: { type: "string", default: ALL_TARGETS.join(",") },
      out: { type: "string" },
      json: { type: "string" },
      hold: { type: "boolean", default: false },
      pin: { type: "boolean", default: true },
      "no-pin": { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values["no-pin"]) values.pin = false;
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

    const procByName = (name: string) => procs.find((p) => p.name === name) ?? null;
    const allCpus = `0-${navigator.hardwareConcurrency - 1}`;
    const measure = async (target: string, mode: Mode, port: number, own: Proc | null) => {
      await check(port, bodies[mode][0], mode, target);
      if (warmup > 0) await wrk(port, Math.max(...connsList), warmup, bodyFiles[mode]);
      // Processes on the path of this target: the upstream, and the proxy or router itself.
      const pids: number[] = [];
      for (const p of [procs[0], own]) if (p) pids.push(...(await processTree(p.child.pid)));
      for (const conns of connsList) {
        // One connection: everything on CPU 0, so that latency is the work done on the path and
        // not the hypervisor's cross-CPU wake-up time, which makes unpinned runs bimodal here.
        const cpu = conns === 1 && values.pin ? "0" : null;
        if (cpu !== null) await pin(pids, cpu);
        const r = await wrk(port, conns, duration, bodyFiles[mode], cpu);
        if (cpu !== null) await pin(pids, allCpus);
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
        if (target === "direct") await measure(target, mode, up[mode][0], null);
        else if (target === "nginx") {
          await measure(target, mode, mode === "json" ? nJ : nS, procByName("nginx"));
        } else if (target === "haproxy") {
          await measure(target, mode, mode === "json" ? hJ : hS, procByName("haproxy"));
        } else {
          const ref = target === "deno-fetch" || target === "deno-h1";
          const r = ref
            ? await startReference(target, up[mode])
            : await startRouter(dir, target, up[mode]);
          try {
            await measure(ref ? target : `router ${target}`, mode, r.port, r.proc);
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
    `${warmup} s warm-up; 6 KB chat bodies (256 distinct, shared 1 KB system prompt); ` +
    (values.pin
      ? "1-connection cells with wrk, upstream and the target pinned to CPU 0; "
      : "nothing pinned; ") +
    "16-connection cells unpinned\n";
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

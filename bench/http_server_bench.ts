/**
 * The router's own HTTP/1.1 server (src/http) against `Deno.serve`, same handler, same machine:
 * wrk at 16 connections and at 1, in alternating rounds (the order flips every round), since this
 * machine is noisy. The handler is what a router's cheapest request does: read the body (POST
 * mode: 256 distinct ~6 KB chat bodies, through bench/overhead/post.lua) and answer a fixed small
 * JSON. Each server runs alone in its own child process.
 *
 * Output: one markdown table, a row per (round, connections, server): req/s, p50 and p99 (µs), the
 * server process's CPU time per request (user + system from /proc/<pid>/stat, which a busy shared
 * machine disturbs less than throughput), and a summary of the own server's figures as ratios to
 * `Deno.serve`'s in the same round.
 *
 * Usage: deno run -A bench/http_server_bench.ts [--rounds 3] [--duration 5] [--warmup 1]
 *          [--conns 16,1] [--mode post|get] [--out FILE]
 *        deno run -A bench/http_server_bench.ts --serve own|deno (a child: prints its port)
 *
 * @module
 */

import { parseArgs } from "node:util";
import { serveHttp } from "../src/http/mod.ts";

const HERE = new URL(".", import.meta.url).pathname;
const enc = new TextEncoder();
const ANSWER = JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 10, completion_tokens: 1, total_tokens: 11 },
});

/** Runs one server until killed; prints `port N` once it listens. */
function serve(kind: string): void {
  const body = enc.encode(ANSWER);
  const max = 1 << 20;
  if (kind === "own") {
    serveHttp({
      hostname: "127.0.0.1",
      port: 0,
      onListen: (a) => console.log(`port ${a.port}`),
      handler: async (req) => {
        if (req.hasBody) await req.readBody(max, 30_000);
        return { status: 200, headers: [["content-type", "application/json"]], body };
      },
    });
  } else {
    Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: (a) => console.log(`port ${a.port}`),
    }, async (req) => {
      if (req.body !== null) await req.bytes();
      return new Response(body, { headers: { "content-type": "application/json" } });
    });
  }
}

/** wrk's summary line (bench/overhead/post.lua's format). */
interface Wrk {
  requests: number;
  duration_us: number;
  p50_us: number;
  p99_us: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
}

const GET_LUA = `
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
`;

/** 256 chat bodies of about 6 KB, one a line. */
function bodies(): string {
  const words = ["cache", "prefix", "router", "token", "engine", "batch", "model", "worker"];
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const lines: string[] = [];
  for (let i = 0; i < 256; i++) {
    let text = "";
    while (text.length < 6000) text += words[next() % words.length] + " ";
    lines.push(JSON.stringify({
      model: "m",
      messages: [{ role: "system", content: "You are terse." }, { role: "user", content: text }],
    }));
  }
  return lines.join("\n") + "\n";
}

/** CPU time (user + system) of `pid` so far, µs. */
async function cpuUs(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
  return ticks * 1e6 / 100; // USER_HZ is 100 on Linux
}

async function startChild(kind: string): Promise<{ port: number; child: Deno.ChildProcess }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--serve", kind],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/port (\d+)/.test(out)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${kind} server ended before listening`);
    out += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return { port: Number(/port (\d+)/.exec(out)![1]), child };
}

async function wrk(
  port: number,
  conns: number,
  seconds: number,
  script: string,
  env: Record<string, string>,
): Promise<Wrk> {
  const out = await new Deno.Command("wrk", {
    args: [
      "-t1",
      `-c${conns}`,
      `-d${seconds}s`,
      "--latency",
      "-s",
      script,
      `http://127.0.0.1:${port}/v1/chat/completions`,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const line = text.split("\n").find((l) => l.startsWith('{"requests"'));
  if (!out.success || line === undefined) throw new Error(`wrk failed: ${text}`);
  return JSON.parse(line);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      serve: { type: "string" },
      rounds: { type: "string", default: "3" },
      duration: { type: "string", default: "5" },
      warmup: { type: "string", default: "1" },
      conns: { type: "string", default: "16,1" },
      mode: { type: "string", default: "post" },
      out: { type: "string" },
    },
  });
  if (values.serve !== undefined) return serve(values.serve);
  const rounds = Number(values.rounds);
  const duration = Number(values.duration);
  const warmup = Number(values.warmup);
  const connsList = values.conns!.split(",").map(Number);
  const tmp = await Deno.makeTempDir({ prefix: "http-bench-" });
  const bodiesFile = `${tmp}/bodies.jsonl`;
  await Deno.writeTextFile(bodiesFile, bodies());
  const getLua = `${tmp}/get.lua`;
  await Deno.writeTextFile(getLua, GET_LUA);
  const script = values.mode === "get" ? getLua : `${HERE}overhead/post.lua`;
  const env = { BENCH_BODIES: bodiesFile };
  const servers = { own: await startChild("own"), deno: await startChild("deno") };
  const rows: string[] = [];
  const ratios: string[] = [];
  try {
    for (const s of Object.values(servers)) {
      if (warmup > 0) await wrk(s.port, 16, warmup, script, env);
    }
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? ["own", "deno"] as const : ["deno", "own"] as const;
      for (const conns of connsList) {
        const got: Record<string, Wrk & { cpu: number }> = {};
        for (const kind of order) {
          const pid = servers[kind].child.pid;
          const cpu0 = await cpuUs(pid);
          const r = await wrk(servers[kind].port, conns, duration, script, env);
          const cpu = (await cpuUs(pid) - cpu0) / Math.max(1, r.requests);
          const errors = r.connect + r.read + r.write + r.status + r.timeout;
          got[kind] = { ...r, cpu };
          const rps = r.requests / (r.duration_us / 1e6);
          rows.push(
            `| ${round} | ${conns} | ${kind === "own" ? "src/http" : "Deno.serve"} | ` +
              `${Math.round(rps)} | ${r.p50_us} | ${r.p99_us} | ${cpu.toFixed(1)} | ${errors} |`,
          );
        }
        const rps = (k: string) => got[k].requests / (got[k].duration_us / 1e6);
        ratios.push(
          `round ${round}, ${conns} conn: req/s ×${(rps("own") / rps("deno")).toFixed(2)}, ` +
            `p50 ${got.own.p50_us} vs ${got.deno.p50_us} µs, ` +
            `CPU/req ${got.own.cpu.toFixed(1)} vs ${got.deno.cpu.toFixed(1)} µs`,
        );
      }
    }
  } finally {
    for (const s of Object.values(servers)) {
      s.child.kill("SIGTERM");
      await s.child.status;
    }
    await Deno.remove(tmp, { recursive: true });
  }
  const report = [
    `HTTP server bench (${values.mode}, ${duration} s per cell, ${rounds} alternating rounds, ` +
    `Deno ${Deno.version.deno}, nproc ${navigator.hardwareConcurrency})`,
    "",
    "| round | conns | server | req/s | p50 µs | p99 µs | CPU µs/req | errors |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    ...ratios.map((r) => `- ${r}`),
    "",
  ].join("\n");
  console.log(report);
  if (values.out !== undefined) await Deno.writeTextFile(values.out, report);
}

if (import.meta.main) await main();

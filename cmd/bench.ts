/**
 * Strategy sweep: for each strategy × sessions point × seed, fresh simulated workers (or the given
 * engines) and a router, a generated trace replayed through it, and a report with bootstrap CIs,
 * tables and SVG charts in `bench/results/<name>/`.
 *
 *   deno run -A cmd/bench.ts                      # the reference's study shape on simulated a100-7b
 *   deno run -A cmd/bench.ts --demo               # 2 points, 1 seed, time-scaled: about a minute
 *   deno run -A cmd/bench.ts --offline            # the offline simulator, virtual time, no HTTP
 *   deno run -A cmd/bench.ts --workers-url http://gpu1:8000,http://gpu2:8000 --model Qwen/Qwen2.5-7B-Instruct
 *   deno run -A cmd/bench.ts --replicas 3         # 1 router vs 3 replicas with and without Redis sync
 *   deno run -A cmd/bench.ts --matrix --name routing-matrix   # docs/results.md's matrix, offline
 *
 * @module
 */

import { runSweep, type SweepOptions } from "../src/bench/sweep.ts";
import { matrixSpec, matrixStudy } from "../src/bench/matrix_cli.ts";
import { configFromWorkers } from "../src/config/mod.ts";
import { buildReport, renderMarkdown, writeReport } from "../src/bench/report.ts";
import { recordsFromJsonl } from "../src/bench/replay.ts";
import { type BenchRecord, type Shape, SHAPES } from "../src/bench/types.ts";
import { runFleetDemo } from "../src/bench/fleet_demo.ts";
import { STRATEGY_NAMES } from "../src/strategies/mod.ts";
import { PROFILES } from "../src/sim/profiles.ts";
import { type ReplicaComparisonResult, runReplicaComparison } from "../src/sync/bench_replicas.ts";
import { flagHelp, type FlagTable, parseFlags } from "../src/util/cli_flags.ts";

/** bench's flags (the help lists them from here). */
export const FLAGS = {
  name: {
    type: "string",
    value: "NAME",
    shown: "sweep-<date>, demo for --demo",
    help: "results folder bench/results/NAME",
  },
  strategies: {
    type: "string",
    value: "LIST",
    shown: "roundrobin,random,leastloaded,prefixaware,costaware",
    aliases: ["strategy"],
    help: "comma-separated strategies",
  },
  sessions: {
    type: "string",
    value: "LIST",
    shown: "4,8,12,16,24; 4,16 for --demo",
    help: "concurrent sessions per point",
  },
  seeds: {
    type: "string",
    value: "LIST",
    shown: "1,2,3; 1 for --demo",
    help: "trace and routing seeds",
  },
  turns: { type: "string", value: "N", shown: "8", help: "turns per session" },
  "system-bytes": {
    type: "string",
    value: "N",
    shown: "6144",
    help: "shared system prompt size, bytes",
  },
  "max-tokens": { type: "string", value: "N", shown: "64", help: "max_tokens per request" },
  "think-ms": {
    type: "string",
    value: "MS",
    shown: "1000",
    help: "mean pause between a session's turns, 0 = closed loop (with simulated workers " +
      "multiplied by --time-scale, so a scaled run is the same experiment played faster)",
  },
  "stagger-ms": {
    type: "string",
    value: "MS",
    shown: "2000",
    help: "sessions' first turns spread over [0, MS] (scaled like --think-ms)",
  },
  shape: {
    type: "string",
    value: "S",
    shown: "multiturn",
    help: `trace shape: ${SHAPES.join("|")}`,
  },
  workers: {
    type: "string",
    value: "N",
    shown: "4; 4,8,16 with --matrix",
    help: "simulated workers (with --matrix, a list)",
  },
  profile: {
    type: "string",
    value: "P",
    shown: "a100-7b",
    help: `engine profile: ${Object.keys(PROFILES).join("|")}`,
  },
  index: {
    type: "string",
    value: "I",
    shown: "approximate",
    help: "router prefix index: approximate|precise (precise: the simulated workers publish KV " +
      "events, the router subscribes and tokenizes through their /tokenize; HTTP only)",
  },
  "capacity-blocks": {
    type: "string",
    value: "N",
    shown: "the profile's",
    help: "engine KV capacity of each simulated worker in 16-token blocks (small: eviction)",
  },
  "time-scale": {
    type: "string",
    value: "X",
    shown: "1; 0.5 for --demo",
    help: "simulated time multiplier, 0.1 = 10x faster",
  },
  "workers-url": {
    type: "string",
    value: "LIST",
    shown: "simulated workers",
    help: "real engine base URLs instead of simulated workers; their prefix caches are emptied " +
      "before every cell (vLLM POST /reset_prefix_cache, SGLang POST /flush_cache, llama-server " +
      "slot erase), else strategies are interleaved; the report says which",
  },
  model: { type: "string", value: "NAME", shown: "sim", help: "model name sent in requests" },
  offline: { type: "boolean", default: false, help: "offline simulator (virtual time, no HTTP)" },
  demo: {
    type: "boolean",
    default: false,
    help: "short sweep: 2 points (4, 16 sessions), 1 seed, time scale 0.5",
  },
  replicas: {
    type: "string",
    value: "R",
    shown: "off",
    help: "replica study instead of the strategy sweep: per sessions point × seed, the " +
      "multiturn trace through 1 router, then R routers (turn k of session i to replica " +
      "(i + k) mod R) with and without Redis sync; KV-cached share per arm in " +
      "bench/results/NAME/replicas.md. Strategy: the first of --strategies (default " +
      "prefixaware). Needs redis-server for the sync arm",
  },
  sync: {
    type: "string",
    value: "on|off|both",
    shown: "both",
    help: "which R-replica arms to run (with --replicas)",
  },
  out: { type: "string", value: "DIR", shown: "bench/results", help: "results root" },
  rerender: {
    type: "string",
    value: "DIR",
    shown: "none",
    help: "rebuild DIR's report.md, results.json and charts from its records.jsonl",
  },
  matrix: {
    type: "boolean",
    default: false,
    help: "routing-quality matrix instead of the sweep (offline, virtual time): every strategy " +
      "on --shapes × --profiles × --workers × --loops, the default held against leastloaded and " +
      "the best other, 95% CIs (bench/results/NAME/matrix.md and matrix.json; docs/results.md)",
  },
  shapes: {
    type: "string",
    value: "LIST",
    shown: "multiturn,rag,fork,agentic",
    help: "matrix trace shapes",
  },
  profiles: { type: "string", value: "LIST", shown: "a100-7b,a100-14b", help: "matrix profiles" },
  loops: {
    type: "string",
    value: "LIST",
    shown: "closed,open",
    help: "matrix loops (open = the same requests, each arriving when leastloaded issued it in " +
      "the closed loop)",
  },
  default: {
    type: "string",
    value: "S",
    shown: "router.strategy's default",
    help: "matrix: the strategy held against the others",
  },
  "sessions-per-worker": {
    type: "string",
    value: "L",
    shown: "multiturn:4,rag:8,fork:4,agentic:2",
    help: "matrix sessions per worker, N or SHAPE:N,... (with --matrix --turns defaults to 16 " +
      "and --stagger-ms to 6000)",
  },
  requests: { type: "string", value: "N", shown: "1536", help: "matrix requests per cell" },
  "first-seed": { type: "string", value: "N", shown: "1", help: "matrix first seed" },
  "answer-length": {
    type: "string",
    value: "DIST",
    shown: "geometric:200",
    aliases: ["output-tokens"],
    help: "matrix answer lengths, capped at --max-tokens (256 with --matrix)",
  },
  "kv-blocks": {
    type: "string",
    value: "N",
    shown: "the profile's",
    help: "matrix engine KV capacity, blocks",
  },
  "kv-budget": {
    type: "string",
    value: "N",
    shown: "0 = unbounded",
    help: "matrix router kv_budget per worker, chunks",
  },
  trace: {
    type: "string",
    value: "FILE",
    shown: "none",
    help: "matrix over a trace file instead of shapes (gen-traces --from-mooncake)",
  },
  "max-model-len": {
    type: "string",
    value: "N",
    shown: "the profile's",
    help: "matrix engine max model length (long imported prompts)",
  },
  "strategy-options": {
    type: "string",
    value: "JSON",
    shown: "{}",
    help: 'matrix options per strategy, e.g. {"costaware": {"tie_epsilon": 0.02}}',
  },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies FlagTable;

const HELP = `bench: strategy sweep against simulated workers or real engines

Options (defaults: the reference's cloud study on 4 simulated a100-7b workers):
${flagHelp(FLAGS)}
`;

function list(s: string | undefined, fallback: number[]): number[];
function list(s: string | undefined, fallback: string[]): string[];
function list(s: string | undefined, fallback: (number | string)[]): (number | string)[] {
  if (s === undefined) return fallback;
  const parts = s.split(",").map((x) => x.trim()).filter(Boolean);
  return typeof fallback[0] === "number" ? parts.map(Number) : parts;
}

/**
 * Rebuilds `report.md`, `results.json` and the charts of a results folder from its
 * `records.jsonl` (after a change to the report), keeping its title and notes.
 */
async function rerender(dir: string): Promise<number> {
  let records: BenchRecord[];
  let title: string | undefined;
  let notes: string[] | undefined;
  try {
    const text = await Deno.readTextFile(`${dir}/records.jsonl`);
    records = recordsFromJsonl<BenchRecord>(text);
    ({ title, notes } = JSON.parse(await Deno.readTextFile(`${dir}/results.json`)));
  } catch (err) {
    console.error(
      `error: cannot read ${dir}/records.jsonl and results.json: ${(err as Error).message}`,
    );
    return 1;
  }
  await writeReport(dir, records, { title, notes });
  console.log(`report: ${dir}/report.md rebuilt from ${records.length} records`);
  return 0;
}

/** Runs the bench CLI; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    values = parseFlags(FLAGS, args);
  } catch (err) {
    console.error(`error: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.rerender !== undefined) return await rerender(values.rerender);
  if (values.matrix) {
    // The default strategy is router.strategy's default in the config.
    const defaultStrategy = configFromWorkers(["http://127.0.0.1:1"]).router.strategy;
    const { spec, problems } = matrixSpec(values, defaultStrategy);
    if (spec === null) {
      for (const p of problems) console.error(`error: ${p}`);
      return 2;
    }
    const name = values.name ?? `matrix-${new Date().toISOString().slice(0, 10)}`;
    const dir = `${values.out ?? "bench/results"}/${name}`;
    const summary = await matrixStudy(dir, `${name}: routing-quality matrix`, spec);
    console.log("\n" + summary + `\nreport: ${dir}/matrix.md`);
    return 0;
  }
  const demo = values.demo === true;
  const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
  const opts: SweepOptions = {
    strategies: list(values.strategies, [
      "roundrobin",
      "random",
      "leastloaded",
      "prefixaware",
      "costaware",
    ]),
    sessions: list(values.sessions, demo ? [4, 16] : [4, 8, 12, 16, 24]),
    seeds: list(values.seeds, demo ? [1] : [1, 2, 3]),
    turns: num(values.turns, 8),
    systemBytes: num(values["system-bytes"], 6144),
    maxTokens: num(values["max-tokens"], 64),
    thinkMs: num(values["think-ms"], 1000),
    staggerMs: num(values["stagger-ms"], 2000),
    shape: (values.shape ?? "multiturn") as Shape,
    workers: num(values.workers, 4),
    profile: values.profile ?? "a100-7b",
    timeScale: num(values["time-scale"], demo ? 0.5 : 1),
    workerUrls: values["workers-url"] !== undefined
      ? list(values["workers-url"], [] as string[])
      : undefined,
    model: values.model,
    offline: values.offline === true,
    index: (values.index ?? "approximate") as "approximate" | "precise",
    capacityBlocks: values["capacity-blocks"] === undefined
      ? undefined
      : Number(values["capacity-blocks"]),
  };
  const problems: string[] = [];
  if (opts.strategies.length === 0) problems.push("--strategies must name at least one strategy");
  for (const [k, xs] of [["sessions", opts.sessions], ["seeds", opts.seeds]] as const) {
    const min = k === "seeds" ? 0 : 1;
    if (xs.length === 0 || !xs.every((x) => Number.isSafeInteger(x) && x >= min)) {
      problems.push(
        `--${k} must be a comma list of integers >= ${min}, got "${values[k] ?? ""}"`,
      );
    }
  }
  for (const [k, v] of [["think-ms", opts.thinkMs!], ["stagger-ms", opts.staggerMs!]] as const) {
    if (!(Number.isFinite(v) && v >= 0)) {
      problems.push(`--${k} must be a number >= 0, got "${values[k]}"`);
    }
  }
  if (!(Number.isFinite(opts.timeScale) && opts.timeScale! > 0)) {
    problems.push(`--time-scale must be a number > 0, got "${values["time-scale"]}"`);
  }
  if (opts.workerUrls !== undefined) {
    if (opts.workerUrls.length === 0) problems.push("--workers-url must list at least one URL");
    for (const u of opts.workerUrls) {
      if (!/^https?:\/\/[^/\s]+/.test(u) || !URL.canParse(u)) {
        problems.push(`--workers-url: "${u}" is not an http:// or https:// URL`);
      }
    }
  }
  for (const s of opts.strategies) {
    if (!STRATEGY_NAMES.includes(s)) {
      problems.push(`unknown strategy "${s}"; valid: ${STRATEGY_NAMES.join(", ")}`);
    }
  }
  if (!SHAPES.includes(opts.shape!)) {
    problems.push(`--shape must be one of ${SHAPES.join(", ")}, got "${opts.shape}"`);
  }
  if (!(opts.profile in PROFILES)) {
    problems.push(
      `--profile must be one of ${Object.keys(PROFILES).join(", ")}, got "${opts.profile}"`,
    );
  }
  for (
    const [k, v] of Object.entries({
      turns: opts.turns,
      "system-bytes": opts.systemBytes,
      "max-tokens": opts.maxTokens,
      workers: opts.workers,
    })
  ) {
    if (!Number.isInteger(v) || v < 1) problems.push(`--${k} must be a positive integer, got ${v}`);
  }
  if (opts.index !== "approximate" && opts.index !== "precise") {
    problems.push(`--index must be approximate or precise, got "${values.index}"`);
  } else if (opts.index === "precise" && (opts.workerUrls || opts.offline)) {
    problems.push(
      "--index precise runs simulated workers over HTTP: drop --workers-url and --offline",
    );
  }
  const cap = opts.capacityBlocks;
  if (cap !== undefined && (!Number.isInteger(cap) || cap < 1)) {
    problems.push(
      `--capacity-blocks must be a positive integer, got "${values["capacity-blocks"]}"`,
    );
  } else if (cap !== undefined && (opts.workerUrls || opts.offline)) {
    problems.push(
      "--capacity-blocks sets simulated workers over HTTP: drop --workers-url and --offline",
    );
  }
  const replicas = values.replicas === undefined ? null : Number(values.replicas);
  const syncArms = values.sync ?? "both";
  if (replicas !== null) {
    if (!Number.isInteger(replicas) || replicas < 2) {
      problems.push(`--replicas must be an integer >= 2, got "${values.replicas}"`);
    }
    if (opts.workerUrls || opts.offline) {
      problems.push("--replicas runs simulated workers: drop --workers-url and --offline");
    }
    if (opts.shape !== "multiturn") problems.push("--replicas runs the multiturn shape only");
    if (opts.index === "precise" || opts.capacityBlocks !== undefined) {
      problems.push("--replicas runs the approximate index on the profile's capacity");
    }
    if (values.strategies !== undefined && opts.strategies.length !== 1) {
      problems.push("--replicas takes one strategy");
    }
  }
  if (!["on", "off", "both"].includes(syncArms)) {
    problems.push(`--sync must be one of on, off, both, got "${syncArms}"`);
  } else if (values.sync !== undefined && replicas === null) {
    problems.push("--sync goes with --replicas");
  }
  if (problems.length > 0) {
    for (const p of problems) console.error(`error: ${p}`);
    return 2;
  }
  if (!opts.workerUrls && !opts.offline) {
    opts.thinkMs = opts.thinkMs! * opts.timeScale!;
    opts.staggerMs = opts.staggerMs! * opts.timeScale!;
  }

  const name = values.name ?? (demo ? "demo" : `sweep-${new Date().toISOString().slice(0, 10)}`);
  const dir = `${values.out ?? "bench/results"}/${name}`;
  if (replicas !== null) {
    const strategy = values.strategies === undefined ? "prefixaware" : opts.strategies[0];
    return await replicaStudy(dir, name, replicas, syncArms as "on" | "off" | "both", {
      ...opts,
      strategies: [strategy],
    }, {
      think: values["think-ms"] ?? "1000",
      stagger: values["stagger-ms"] ?? "2000",
    });
  }
  const tty = Deno.stdout.isTerminal();
  const started = performance.now();
  const mode = opts.offline
    ? "offline simulator"
    : opts.workerUrls
    ? `${opts.workerUrls.length} engines`
    : `${opts.workers} × sim ${opts.profile} (time scale ${opts.timeScale}${
      opts.capacityBlocks === undefined ? "" : `, ${opts.capacityBlocks} KV blocks each`
    }), ${opts.index} index`;
  console.log(
    `bench ${name}: ${opts.strategies.join(", ")} × sessions ${opts.sessions.join(",")} × seeds ${
      opts.seeds.join(",")
    } on ${mode}`,
  );

  const ctl = new AbortController();
  const onSignal = () => ctl.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  let records;
  const notes: string[] = [];
  try {
    records = await runSweep({
      ...opts,
      signal: ctl.signal,
      onNote: (n) => {
        notes.push(n);
        console.log(n);
      },
      onProgress: (p) => {
        const secs = ((performance.now() - started) / 1000).toFixed(0);
        const label = `[${p.cell}/${p.cells}] ${p.strategy} sessions=${p.sessions} seed=${p.seed}`;
        if (tty && p.kind === "request") {
          Deno.stdout.writeSync(
            new TextEncoder().encode(`\r${label} ${p.done}/${p.total} requests, ${secs} s `),
          );
        } else if (p.kind === "cell-done") {
          if (tty) Deno.stdout.writeSync(new TextEncoder().encode("\r\x1b[K"));
          console.log(`${label}: ${p.done} requests, ${secs} s`);
        }
      },
    });
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
  const title = `${name}: ${opts.shape} trace, ${mode}, think ${
    values["think-ms"] ?? 1000
  } ms, stagger ${values["stagger-ms"] ?? 2000} ms`;
  await writeReport(dir, records, { title, notes });
  const report = buildReport(records, { title, notes });
  console.log("\n" + renderMarkdown(report));
  if (demo) {
    // The demo's second part: one router in front of a two-model fleet.
    const fleet = await runFleetDemo();
    console.log("\n" + fleet.markdown);
    await Deno.writeTextFile(`${dir}/report.md`, `\n${fleet.markdown}\n`, { append: true });
  }
  console.log(
    `report: ${dir}/report.md (charts: ${dir}/*.svg) in ${
      ((performance.now() - started) / 1000).toFixed(0)
    } s`,
  );
  return 0;
}

/** One arm of the replica study. */
interface Arm {
  readonly label: string;
  readonly replicas: number;
  readonly sync: boolean;
}

/** Summed over seeds: Σ cached / Σ prompt tokens, same-worker follow-ups, errors. */
interface ArmCell {
  prompt: number;
  cached: number;
  follow: number;
  same: number;
  errors: number;
  requests: number;
}

/**
 * `--replicas R`: per sessions point × seed, `runReplicaComparison` for 1 router and for R
 * replicas with and/or without sync; prints and writes `replicas.md` (and `replicas.json`).
 */
async function replicaStudy(
  dir: string,
  name: string,
  replicas: number,
  syncArms: "on" | "off" | "both",
  opts: SweepOptions,
  pacing: { think: string; stagger: string },
): Promise<number> {
  const arms: Arm[] = [{ label: "1 router", replicas: 1, sync: false }];
  if (syncArms !== "off") arms.push({ label: `${replicas} replicas, sync`, replicas, sync: true });
  if (syncArms !== "on") {
    arms.push({ label: `${replicas} replicas, no sync`, replicas, sync: false });
  }
  const strategy = opts.strategies[0];
  const mode = `${opts.workers} × sim ${opts.profile} (time scale ${opts.timeScale})`;
  console.log(
    `bench ${name}: replicas ${arms.map((a) => a.label).join(" / ")} × sessions ${
      opts.sessions.join(",")
    } × seeds ${opts.seeds.join(",")}, ${strategy}, on ${mode}`,
  );
  const started = performance.now();
  const cells = new Map<string, ArmCell>();
  const runs: Omit<ReplicaComparisonResult, "records">[] = [];
  const total = opts.sessions.length * opts.seeds.length * arms.length;
  let n = 0;
  for (const sessions of opts.sessions) {
    for (const seed of opts.seeds) {
      for (const arm of arms) {
        n++;
        const r = await runReplicaComparison({
          replicas: arm.replicas,
          sync: arm.sync,
          sessions,
          seed,
          turns: opts.turns,
          workers: opts.workers,
          profile: opts.profile,
          timeScale: opts.timeScale,
          systemBytes: opts.systemBytes,
          maxTokens: opts.maxTokens,
          thinkMs: opts.thinkMs,
          staggerMs: opts.staggerMs,
          strategy,
        });
        const { records, ...summary } = r;
        runs.push(summary);
        const key = `${sessions}/${arm.label}`;
        const c = cells.get(key) ??
          { prompt: 0, cached: 0, follow: 0, same: 0, errors: 0, requests: 0 };
        c.prompt += r.promptTokens;
        c.cached += r.cachedTokens;
        const follow = records.length - sessions;
        c.follow += follow;
        c.same += Math.round(r.sameWorkerShare * follow);
        c.errors += r.errors;
        c.requests += r.requests;
        cells.set(key, c);
        const secs = ((performance.now() - started) / 1000).toFixed(0);
        console.log(
          `[${n}/${total}] ${arm.label} sessions=${sessions} seed=${seed}: cached ${
            pct(r.cachedShare)
          }, same worker ${pct(r.sameWorkerShare)}, ${r.errors} errors, ${secs} s`,
        );
      }
    }
  }

  const table = (title: string, value: (c: ArmCell) => string) =>
    [
      title,
      "",
      `| sessions | ${arms.map((a) => a.label).join(" | ")} |`,
      `| -------: | ${arms.map(() => "--:").join(" | ")} |`,
      ...opts.sessions.map((s) =>
        `| ${s} | ${arms.map((a) => value(cells.get(`${s}/${a.label}`)!)).join(" | ")} |`
      ),
    ].join("\n");
  const errors = [...cells.values()].reduce((a, c) => a + c.errors, 0);
  const requests = [...cells.values()].reduce((a, c) => a + c.requests, 0);
  const md = [
    `# ${name}: router replicas with and without Redis sync`,
    "",
    `Multiturn trace, ${opts.turns} turns per session, ${strategy}, ${mode}, think ${pacing.think} ms, ` +
    `stagger ${pacing.stagger} ms, seeds ${opts.seeds.join(", ")} (summed). Turn k of session i ` +
    `goes to replica (i + k) mod R.`,
    "",
    table(
      "KV-cached share (Σ cached ÷ Σ prompt tokens, engine-reported):",
      (c) => pct(c.prompt > 0 ? c.cached / c.prompt : 0),
    ),
    "",
    table(
      "Follow-up turns that reached the worker of the session's previous turn:",
      (c) => pct(c.follow > 0 ? c.same / c.follow : 0),
    ),
    "",
    `${requests} requests, ${errors} errors.`,
    "",
  ].join("\n");
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/replicas.md`, md);
  await Deno.writeTextFile(`${dir}/replicas.json`, JSON.stringify(runs, null, 2) + "\n");
  console.log("\n" + md);
  console.log(
    `report: ${dir}/replicas.md in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  return 0;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(2)}%`;
}

if (import.meta.main) Deno.exit(await main(Deno.args));

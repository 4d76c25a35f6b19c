/**
 * The demo's second part: a two-model fleet behind one router. Three sim workers, two serving
 * `llama-8b` (one with a LoRA adapter `sql-lora`) and one serving `qwen-1.5b`, their models learned
 * from their `/v1/models`; a few requests per model (and an alias, and a model nobody serves) show
 * where each went. Returns the lines it printed as a markdown section for the demo report.
 *
 * @module
 */

import { configFromWorkers } from "../config/mod.ts";
import { silentLogger, startRouter } from "../router/mod.ts";
import { type SimWorker, startSimWorker } from "../sim/server.ts";

/** One model's row: where its requests went. */
export interface FleetRow {
  readonly model: string;
  readonly status: number[];
  readonly workers: string[];
}

/**
 * The fleet's three sim workers (see the module comment), at `timeScale`: `w1` and `w2` serve
 * `llama-8b` (`w1` also the adapter `sql-lora`), `w3` serves `qwen-1.5b`. The caller shuts them
 * down.
 */
export async function startFleetWorkers(timeScale: number): Promise<SimWorker[]> {
  const opts = { profile: "a100-7b", timeScale } as const;
  return [
    await startSimWorker({
      ...opts,
      id: "w1",
      models: ["llama-8b"],
      loras: [{ name: "sql-lora" }],
    }),
    await startSimWorker({ ...opts, id: "w2", models: ["llama-8b"] }),
    await startSimWorker({ ...opts, id: "w3", profile: "m1-1.5b", models: ["qwen-1.5b"] }),
  ];
}

/** Runs the fleet demo; `requests` per model. */
export async function runFleetDemo(requests = 6): Promise<{ rows: FleetRow[]; markdown: string }> {
  const sims = await startFleetWorkers(0.05);
  const running = await startRouter(
    configFromWorkers(sims.map((w) => w.url), {
      server: { addr: "127.0.0.1:0" },
      health: { intervalMs: 60_000 },
      router: { seed: 1, modelAliases: { "gpt-4o-mini": "qwen-1.5b" } },
    }),
    { logger: silentLogger },
  );
  const rows: FleetRow[] = [];
  try {
    await running.router.refreshModels();
    for (const model of ["llama-8b", "sql-lora", "qwen-1.5b", "gpt-4o-mini", "no-such-model"]) {
      const status = new Set<number>();
      const workers = new Set<string>();
      for (let i = 0; i < requests; i++) {
        const res = await fetch(`${running.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model,
            messages: [{ role: "user", content: `question ${i} for ${model}` }],
            max_tokens: 4,
          }),
        });
        status.add(res.status);
        workers.add(res.headers.get("x-router-backend") ?? "none");
        await res.body?.cancel();
      }
      rows.push({ model, status: [...status].sort(), workers: [...workers].sort() });
    }
  } finally {
    await running.shutdown();
    for (const s of sims) await s.shutdown();
  }
  const lines = [
    "## A two-model fleet",
    "",
    "w1 and w2 serve `llama-8b` (w1 also the LoRA adapter `sql-lora`), w3 serves `qwen-1.5b`; the " +
    "router learned this from their `/v1/models`. `gpt-4o-mini` is an alias of `qwen-1.5b`.",
    "",
    "| model asked | status | workers that answered |",
    "| --- | --- | --- |",
    ...rows.map((r) => `| ${r.model} | ${r.status.join(", ")} | ${r.workers.join(", ")} |`),
  ];
  return { rows, markdown: lines.join("\n") };
}

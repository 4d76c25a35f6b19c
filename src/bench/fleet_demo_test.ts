import assert from "node:assert/strict";
import { runFleetDemo } from "./fleet_demo.ts";

Deno.test("fleet demo: each model's requests reach only its workers; an unknown model is a 404", async () => {
  const { rows, markdown } = await runFleetDemo(4);
  const by = Object.fromEntries(rows.map((r) => [r.model, r]));
  // Either llama-8b worker may take them (the strategy decides); never w3.
  assert.ok(by["llama-8b"].workers.length > 0);
  for (const w of by["llama-8b"].workers) assert.ok(["w1", "w2"].includes(w), w);
  assert.deepEqual(by["sql-lora"].workers, ["w1"]);
  assert.deepEqual(by["qwen-1.5b"].workers, ["w3"]);
  assert.deepEqual(by["gpt-4o-mini"].workers, ["w3"]);
  assert.deepEqual(by["no-such-model"].status, [404]);
  assert.match(markdown, /\| sql-lora \| 200 \| w1 \|/);
});

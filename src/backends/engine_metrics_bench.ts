/**
 * Cost of reading an engine's `/metrics`: a vLLM-like page of ~1 MiB (gauges, counters and many
 * histograms over 2 data-parallel engines), parsed from text and streamed in 16 KiB pieces.
 * Run: deno bench -A src/backends/engine_metrics_bench.ts
 *
 * @module
 */

import { parseEngineMetrics, readCapped } from "./engine_metrics.ts";

function page(targetBytes: number): string {
  const lines: string[] = [];
  const m = "meta-llama/Llama-3.1-8B-Instruct";
  for (const e of [0, 1]) {
    const l = `engine="${e}",model_name="${m}"`;
    lines.push(`vllm:num_requests_running{${l}} 12`, `vllm:num_requests_waiting{${l}} 3`);
    lines.push(`vllm:kv_cache_usage_perc{${l}} 0.41`, `vllm:num_preemptions_total{${l}} 2`);
  }
  let size = lines.join("\n").length;
  for (let h = 0; size < targetBytes; h++) {
    const name = `vllm:histogram_${h}_seconds`;
    lines.push(`# HELP ${name} A histogram.`, `# TYPE ${name} histogram`);
    for (const e of [0, 1]) {
      for (let b = 0; b < 30; b++) {
        const line = `${name}_bucket{engine="${e}",le="${b * 0.25}",model_name="${m}"} ${b * 17}`;
        lines.push(line);
        size += line.length + 1;
      }
    }
  }
  return lines.join("\n") + "\n";
}

const TEXT = page(1 << 20);
const BYTES = new TextEncoder().encode(TEXT);

Deno.bench("parseEngineMetrics, 1 MiB vLLM-like page", () => {
  parseEngineMetrics(TEXT);
});

Deno.bench("readCapped, 1 MiB streamed in 16 KiB pieces", async () => {
  let off = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (off >= BYTES.length) ctl.close();
      else ctl.enqueue(BYTES.subarray(off, off += 16384));
    },
  });
  await readCapped(stream, 4 << 20);
});

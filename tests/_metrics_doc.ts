/**
 * Test support: the metric families docs/metrics.md lists (its "Families" table), for the doc test
 * and the dashboard and alert rules test.
 *
 * @module
 */

import assert from "node:assert/strict";

/** A row of the doc's family table. */
export interface DocFamily {
  readonly type: string;
  readonly labels: string[];
  /** Marked † (needs `/proc/self`) or § (precise mode only): may be absent from a registry. */
  readonly optional: boolean;
  /** Marked § : registered only with `router.index: precise`. */
  readonly precise: boolean;
  /** Marked ¶ : registered only once flow control is on (`flow:`). */
  readonly flow: boolean;
}

/** The rows of the "Families" table of docs/metrics.md. */
export async function documentedFamilies(): Promise<Map<string, DocFamily>> {
  const text = await Deno.readTextFile(new URL("../docs/metrics.md", import.meta.url));
  const section = text.slice(
    text.indexOf("## Families"),
    text.indexOf("\n## ", text.indexOf("## Families") + 1),
  );
  const out = new Map<string, DocFamily>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const name = /^`([a-z_:][a-z0-9_:]*)`$/.exec(cells[1] ?? "")?.[1];
    if (name === undefined) continue;
    assert.ok(!out.has(name), `${name} documented twice`);
    const labels = cells[3] === "(none)"
      ? []
      : [...cells[3].matchAll(/`([a-z_][a-z0-9_]*)`/g)].map((m) => m[1]);
    out.set(name, {
      type: cells[2].replace(/[†‡§¶]/g, "").trim(),
      labels,
      optional: /[†§¶]/.test(cells[2]),
      precise: cells[2].includes("§"),
      flow: cells[2].includes("¶"),
    });
  }
  return out;
}

/**
 * The command line of the overload experiment (`cmd/overload.ts`, `deno task overload`): flags
 * from one table (`src/util/cli_flags.ts`, so `--help` lists each with its default), checked,
 * then `runOverload` (`overload.ts`) and its table or JSON.
 *
 * @module
 */

import { PROFILE_NAMES } from "../sim/profiles.ts";
import { flagHelp, type FlagTable, parseFlags } from "../util/cli_flags.ts";
import {
  formatOverload,
  MODES,
  type OverloadMode,
  overloadQueue,
  runOverload,
  SCENARIOS,
} from "./overload.ts";

/** The overload experiment's flags (the help lists them from here). */
export const FLAGS = {
  workers: { type: "string", value: "N", shown: "4", help: "engines" },
  profile: {
    type: "string",
    value: "NAME",
    shown: "a100-7b",
    help: `engine profile: ${PROFILE_NAMES.join(", ")}`,
  },
  "duration-ms": { type: "string", value: "N", shown: "60000", help: "arrival window, ms" },
  scenario: {
    type: "string",
    value: "NAME",
    shown: "flood",
    help: `${Object.keys(SCENARIOS).join(", ")}: flood is 2.6x capacity in all; priority 2x, ` +
      "the interactive class alone at 0.8x",
  },
  overload: {
    type: "string",
    value: "X",
    shown: "1",
    help: "multiplies every stream's share of capacity",
  },
  "max-inflight": {
    type: "string",
    value: "N",
    shown: "16",
    help: "per-worker cap of the reject and queue modes",
  },
  "max-wait": {
    type: "string",
    value: "C=D,...",
    shown: "interactive=1s,batch=10s",
    help: "router queue max wait by class",
  },
  modes: { type: "string", value: "A,B,...", shown: "all", help: MODES.join(", ") },
  seed: { type: "string", value: "N", shown: "1", help: "arrival seed" },
  json: { type: "boolean", default: false, help: "print the result as JSON" },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies FlagTable;

const USAGE = `Usage: overload [options]

Open-loop overload in virtual time on simulated engines: no router queue vs caps with 503 vs caps
with the router queue (priority, DRR fairness, max wait). See src/flow/overload.ts.

Options:
${flagHelp(FLAGS)}`;

/** CLI entry: parses `args`, runs, prints; returns the exit code. */
export function main(args: readonly string[]): number {
  let values;
  try {
    values = parseFlags(FLAGS, [...args]);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const num = (name: string, v: string | undefined, ok: (n: number) => boolean) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === "" || !ok(n)) throw new RangeError(`--${name} got "${v}"`);
    return n;
  };
  try {
    const scenario = values.scenario ?? "flood";
    if (!Object.hasOwn(SCENARIOS, scenario)) {
      throw new RangeError(
        `--scenario takes ${Object.keys(SCENARIOS).join(", ")}, got "${scenario}"`,
      );
    }
    const result = runOverload({
      streams: SCENARIOS[scenario],
      workers: num("workers", values.workers, (n) => Number.isInteger(n) && n >= 1),
      profile: values.profile,
      durationMs: num("duration-ms", values["duration-ms"], (n) => n > 0 && n <= 3_600_000),
      overload: num("overload", values.overload, (n) => n > 0 && n <= 100),
      maxInflight: num(
        "max-inflight",
        values["max-inflight"],
        (n) => Number.isInteger(n) && n >= 1,
      ),
      seed: num("seed", values.seed, Number.isInteger),
      queue: values["max-wait"] === undefined
        ? undefined
        : overloadQueue(pairs(values["max-wait"])),
      modes: values.modes === undefined ? undefined : modesOf(values.modes),
    });
    console.log(values.json ? JSON.stringify(result, null, 2) : formatOverload(result));
    return 0;
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    return 2;
  }
}

function pairs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(",")) {
    const [k, v] = part.split("=");
    if (!k || !v) throw new RangeError(`--max-wait takes class=duration pairs, got "${text}"`);
    out[k.trim()] = v.trim();
  }
  return out;
}

function modesOf(text: string): OverloadMode[] {
  return text.split(",").map((m) => {
    if (!MODES.includes(m as OverloadMode)) {
      throw new RangeError(`--modes takes ${MODES.join(", ")}, got "${m}"`);
    }
    return m as OverloadMode;
  });
}

if (import.meta.main) Deno.exit(main(Deno.args));

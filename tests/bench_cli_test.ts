/**
 * `cmd/bench.ts` refuses bad flags before it starts anything: each bad value is a one-line error
 * naming the flag, exit code 2, never an uncaught exception or a run on a silently changed value.
 */

import assert from "node:assert/strict";
import { main } from "../cmd/bench.ts";

/** Runs the CLI with `args`, returning its exit code and what it wrote to stderr. */
async function run(args: string[]): Promise<{ code: number; errors: string[] }> {
  const errors: string[] = [];
  const original = console.error;
  console.error = (...parts: unknown[]) => errors.push(parts.join(" "));
  try {
    return { code: await main(args), errors };
  } finally {
    console.error = original;
  }
}

Deno.test("bench CLI: every bad flag value is a one-line error and exit code 2", async () => {
  const cases: [string[], string][] = [
    [["--sessions", "0"], `--sessions must be a comma list of integers >= 1, got "0"`],
    [["--sessions", "abc"], `--sessions must be a comma list of integers >= 1, got "abc"`],
    [["--sessions", ","], `--sessions must be a comma list of integers >= 1, got ","`],
    [["--seeds", "abc"], `--seeds must be a comma list of integers >= 0, got "abc"`],
    [["--strategies", ""], "--strategies must name at least one strategy"],
    [["--time-scale", "0"], `--time-scale must be a number > 0, got "0"`],
    [["--time-scale=-1"], `--time-scale must be a number > 0, got "-1"`],
    [["--think-ms", "abc"], `--think-ms must be a number >= 0, got "abc"`],
    [["--stagger-ms=-5"], `--stagger-ms must be a number >= 0, got "-5"`],
    [
      ["--workers-url", "localhost:8000"],
      `--workers-url: "localhost:8000" is not an http:// or https:// URL`,
    ],
    [["--workers-url", ""], "--workers-url must list at least one URL"],
  ];
  for (const [args, want] of cases) {
    const { code, errors } = await run(args);
    assert.equal(code, 2, args.join(" "));
    assert.deepEqual(errors, [`error: ${want}`], args.join(" "));
  }
});

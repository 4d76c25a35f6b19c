/**
 * Every command's `--help` lists every flag it accepts (and each older name), string flags with
 * their default; the flags come from the command's table only; one name for one thing across
 * commands, older names kept as aliases.
 */

import assert from "node:assert/strict";
import type { FlagTable } from "../src/util/cli_flags.ts";

const COMMANDS = ["router", "sim-worker", "bench", "replay", "gen-traces", "simulate"];
const ROOT = new URL("..", import.meta.url);

/** Names that mean the same thing: the first is the flag, the others may only be its aliases. */
const SYNONYMS = [
  ["strategies", "strategy"],
  ["answer-length", "output-tokens"],
  ["time-scale", "timescale", "time_scale"],
];

async function helpOf(cmd: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `cmd/${cmd}.ts`, "--help"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, `${cmd} --help: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/** The help lines of flag `name`: its own line up to the next flag's. */
function blockOf(help: string, name: string): string | null {
  const lines = help.split("\n");
  const start = lines.findIndex((l) => new RegExp(`^\\s+(-\\w, )?--${name}(\\s|$)`).test(l));
  if (start === -1) return null;
  let end = start + 1;
  while (end < lines.length && /^ {10,}\S/.test(lines[end])) end++; // wrapped description
  return lines.slice(start, end).join("\n");
}

for (const cmd of COMMANDS) {
  Deno.test(`${cmd} --help lists every flag it accepts, with defaults`, async () => {
    const { FLAGS } = await import(`../cmd/${cmd}.ts`) as { FLAGS: FlagTable };
    const source = await Deno.readTextFile(new URL(`cmd/${cmd}.ts`, ROOT));
    assert.ok(!/\bparseArgs\(/.test(source), "flags come from FLAGS through parseFlags only");
    assert.match(source, /parseFlags\(FLAGS, /);
    const help = await helpOf(cmd);
    for (const [name, spec] of Object.entries(FLAGS)) {
      const block = blockOf(help, name);
      assert.ok(block !== null, `--${name} has a line of its own`);
      const text = block.replace(/^\s+(-\w, )?--\S+( \S+)?/, "").trim();
      assert.ok(text.length > 5, `--${name} is described`);
      if (spec.type === "string") {
        assert.match(block.replace(/\s+/g, " "), /\((default: [^)]+|required)\)/, `--${name}`);
      }
      for (const alias of spec.aliases ?? []) {
        assert.match(block, new RegExp(`--${alias}\\b`), `--${name} names its alias --${alias}`);
      }
      if (spec.short !== undefined) assert.match(block, new RegExp(`-${spec.short}, --${name}`));
    }
  });
}

Deno.test("one flag name for one thing: older names are only aliases", async () => {
  const tables = await Promise.all(
    COMMANDS.map(async (c) => [c, (await import(`../cmd/${c}.ts`)).FLAGS as FlagTable] as const),
  );
  for (const [cmd, flags] of tables) {
    for (const [canonical, ...old] of SYNONYMS) {
      for (const o of old) {
        assert.ok(!Object.hasOwn(flags, o), `${cmd}: --${o} must be an alias of --${canonical}`);
      }
    }
  }
  // Flags two commands share mean the same kind of value.
  const placeholder = new Map<string, Set<string>>();
  for (const [, flags] of tables) {
    for (const [name, spec] of Object.entries(flags)) {
      if (!placeholder.has(name)) placeholder.set(name, new Set());
      placeholder.get(name)!.add(spec.type);
    }
  }
  for (const [name, types] of placeholder) assert.equal(types.size, 1, `--${name} type`);
});

Deno.test("an old flag name still works, and giving both names is refused", async () => {
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cmd/gen-traces.ts", ...args],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: out.code,
      out: new TextDecoder().decode(out.stdout),
      err: new TextDecoder().decode(out.stderr),
    };
  };
  const base = ["--sessions", "1", "--turns", "2"];
  const old = await run([...base, "--output-tokens", "fixed:7"]);
  assert.equal(old.code, 0, old.err);
  assert.match(old.out, /"output_tokens":7/);
  const both = await run([...base, "--output-tokens", "fixed:7", "--answer-length", "fixed:7"]);
  assert.equal(both.code, 2);
  assert.match(both.err, /not both/);
  const unknown = await run(["--no-such-flag"]);
  assert.equal(unknown.code, 2);
});

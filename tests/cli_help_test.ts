/**
 * Every command's `--help` lists every flag it accepts (and each older name), string flags with
 * their default; the flags come from the command's table only; one name for one thing across
 * commands, older names kept as aliases.
 */

import assert from "node:assert/strict";
import type { FlagTable } from "../src/util/cli_flags.ts";

const COMMANDS = ["router", "sim-worker", "bench", "replay", "gen-traces", "simulate"];
/**
 * Scripts run the same way whose flag table may live in another file (`source`): cmd/overload.ts
 * re-exports src/flow/overload_cli.ts's; the bench scripts hold their own.
 */
const SCRIPTS = [
  { file: "cmd/overload.ts", source: "src/flow/overload_cli.ts" },
  { file: "bench/overload_http.ts", source: "bench/overload_http.ts" },
  { file: "bench/precise_compare.ts", source: "bench/precise_compare.ts" },
  { file: "bench/engine_signals.ts", source: "bench/engine_signals.ts" },
];
const ROOT = new URL("..", import.meta.url);

/** Names that mean the same thing: the first is the flag, the others may only be its aliases. */
const SYNONYMS = [
  ["strategies", "strategy"],
  ["answer-length", "output-tokens"],
  ["time-scale", "timescale", "time_scale"],
];

async function helpOf(file: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", file, "--help"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, `${file} --help: ${new TextDecoder().decode(out.stderr)}`);
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

/** `file --help` lists every flag of `source`'s table, which alone parses the flags. */
async function checkHelp(file: string, source: string): Promise<void> {
  const { FLAGS } = await import(`../${file}`) as { FLAGS: FlagTable };
  const text = await Deno.readTextFile(new URL(source, ROOT));
  assert.ok(!/\bparseArgs\(/.test(text), "flags come from FLAGS through parseFlags only");
  assert.match(text, /parseFlags\(FLAGS, /);
  const help = await helpOf(file);
  for (const [name, spec] of Object.entries(FLAGS)) {
    const block = blockOf(help, name);
    assert.ok(block !== null, `--${name} has a line of its own`);
    const described = block.replace(/^\s+(-\w, )?--\S+( \S+)?/, "").trim();
    assert.ok(described.length > 5, `--${name} is described`);
    if (spec.type === "string") {
      assert.match(block.replace(/\s+/g, " "), /\((default: [^)]+|required)\)/, `--${name}`);
    }
    for (const alias of spec.aliases ?? []) {
      assert.match(block, new RegExp(`--${alias}\\b`), `--${name} names its alias --${alias}`);
    }
    if (spec.short !== undefined) assert.match(block, new RegExp(`-${spec.short}, --${name}`));
  }
}

for (const cmd of COMMANDS) {
  Deno.test(`${cmd} --help lists every flag it accepts, with defaults`, async () => {
    await checkHelp(`cmd/${cmd}.ts`, `cmd/${cmd}.ts`);
  });
}

for (const { file, source } of SCRIPTS) {
  Deno.test(`${file} --help lists every flag it accepts, with defaults, and exits 0`, async () => {
    await checkHelp(file, source);
  });
}

Deno.test("one flag name for one thing: older names are only aliases", async () => {
  const files = [...COMMANDS.map((c) => `cmd/${c}.ts`), ...SCRIPTS.map((x) => x.file)];
  const tables = await Promise.all(
    files.map(async (f) => [f, (await import(`../${f}`)).FLAGS as FlagTable] as const),
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

import assert from "node:assert/strict";
import { flagChoice, flagHelp, type FlagTable, parseFlags } from "./cli_flags.ts";

const FLAGS = {
  strategies: {
    type: "string",
    value: "LIST",
    default: "a,b",
    aliases: ["strategy"],
    help: "strategies to compare",
  },
  port: { type: "string", short: "p", value: "N", shown: "8000", help: "port" },
  trace: { type: "string", value: "FILE", shown: "required", help: "the trace" },
  json: { type: "boolean", default: false, help: "print JSON" },
  long: {
    type: "string",
    value: "X",
    default: "1",
    help: "a description long enough that it must wrap onto a second line under the description " +
      "column of the help text",
  },
} as const satisfies FlagTable;

Deno.test("parseFlags: defaults, aliases, short forms, and two names of one flag refused", () => {
  assert.deepEqual(parseFlags(FLAGS, []), {
    strategies: "a,b",
    port: undefined,
    trace: undefined,
    json: false,
    long: "1",
  });
  assert.equal(
    parseFlags(FLAGS, ["--strategy", "x"]).strategies,
    "x",
    "an old name wins over the default",
  );
  assert.equal(parseFlags(FLAGS, ["--strategies", "y"]).strategies, "y");
  assert.equal(parseFlags(FLAGS, ["-p", "9"]).port, "9");
  assert.equal(parseFlags(FLAGS, ["--json"]).json, true);
  assert.throws(() => parseFlags(FLAGS, ["--strategy", "x", "--strategies", "y"]), /not both/);
  assert.throws(() => parseFlags(FLAGS, ["--nope"]), TypeError);
  assert.throws(() => parseFlags(FLAGS, ["stray"]), TypeError);
});

Deno.test("flagHelp: one entry per flag with its default, aliases, and lines within 100 columns", () => {
  const help = flagHelp(FLAGS);
  assert.match(
    help,
    /^ {6}--strategies LIST {5}strategies to compare \(also --strategy\) \(default: a,b\)$/m,
  );
  assert.match(help, /^ {2}-p, --port N {14}port \(default: 8000\)$/m);
  assert.match(help, /--trace FILE +the trace \(required\)$/m);
  assert.match(help, /--json +print JSON$/m, "a switch shows no default");
  for (const line of help.split("\n")) assert.ok(line.length <= 100, line);
  assert.match(help, /\n {28}\S/, "a long description wraps under its column");
});

Deno.test("flagChoice: a listed word or nothing passes, another word names the choices", () => {
  assert.equal(flagChoice("index", "precise", ["approximate", "precise"]), "precise");
  assert.equal(flagChoice("index", undefined, ["approximate", "precise"]), undefined);
  assert.throws(
    () => flagChoice("prefix-sharing", "v2", ["v0", "v1"]),
    { message: '--prefix-sharing must be v0 or v1, got "v2"' },
  );
});

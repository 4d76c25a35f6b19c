/**
 * Command-line flags from one table per command: the table gives `node:util` `parseArgs` its
 * options and the `--help` text its lines, so a flag cannot be accepted without being listed with
 * its default and description (`tests/cli_help_test.ts` checks every command).
 *
 * A flag may have older names (`aliases`): they are accepted for the same value, listed in the
 * help, and giving two names of one flag is an error (a repeatable flag collects the values of
 * all its names instead). Defaults are applied after aliases are
 * merged, so a flag given under its old name wins over the default.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** One flag of a command. */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  /** One-letter form (`-h`). */
  readonly short?: string;
  /** The value's placeholder in the help (`N`, `FILE`); string flags only. */
  readonly value?: string;
  /** Value when the flag is not given. */
  readonly default?: string | boolean;
  /**
   * The default as the help shows it, when `default` does not say it (worked out later, depends
   * on other flags, or `required`).
   */
  readonly shown?: string;
  /** What the flag does; may span lines (`\n`). */
  readonly help: string;
  /** Older names of the same flag, still accepted. */
  readonly aliases?: readonly string[];
  /** The flag may be given several times (string flags): its value is the list. */
  readonly multiple?: boolean;
}

/** A command's flags by their name (without `--`). */
export type FlagTable = Readonly<Record<string, FlagSpec>>;

/** The parsed value of one flag. */
type ValueOf<S extends FlagSpec> =
  | (S["type"] extends "boolean" ? boolean
    : S extends { readonly multiple: true } ? string[]
    : string)
  | (S extends { readonly default: string | boolean } ? never : undefined);

/** Parsed values of a table's flags. */
export type FlagValues<T extends FlagTable> = { -readonly [K in keyof T]: ValueOf<T[K]> };

/**
 * Parses `args` against `table` (strict: an unknown flag or a missing value throws a TypeError
 * with parseArgs' message; two names of one flag throw too).
 */
export function parseFlags<const T extends FlagTable>(
  table: T,
  args: string[],
): FlagValues<T> {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const [name, spec] of Object.entries(table)) {
    const multiple = spec.multiple === true ? { multiple: true } : {};
    options[name] = spec.short === undefined
      ? { type: spec.type, ...multiple }
      : { type: spec.type, short: spec.short, ...multiple };
    for (const alias of spec.aliases ?? []) options[alias] = { type: spec.type, ...multiple };
  }
  const { values } = parseArgs({ args, options, strict: true, allowPositionals: false });
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) {
    const given = [name, ...(spec.aliases ?? [])].filter((n) => values[n] !== undefined);
    if (spec.multiple === true) {
      // A repeatable flag's values under all its names, in that order.
      out[name] = given.length === 0 ? spec.default : given.flatMap((n) => values[n] as string[]);
      continue;
    }
    if (given.length > 1) {
      throw new TypeError(`give --${given[0]} or --${given[1]}, not both: they are one flag`);
    }
    out[name] = given.length === 1 ? values[given[0]] : spec.default;
  }
  return out as FlagValues<T>;
}

/**
 * Flag `name`'s value checked against the words it may take: the value (undefined when not
 * given), or an Error naming them (`--x must be a or b, got "c"`).
 */
export function flagChoice<const C extends readonly string[]>(
  name: string,
  value: string | undefined,
  choices: C,
): C[number] | undefined {
  if (value === undefined || choices.includes(value)) return value;
  throw new Error(`--${name} must be ${choices.join(" or ")}, got "${value}"`);
}

/**
 * The default of `spec` as the help shows it, or null when it has none to show (a switch that is
 * off unless given).
 */
export function shownDefault(spec: FlagSpec): string | null {
  if (spec.shown !== undefined) return spec.shown;
  if (spec.default === undefined || spec.default === false) return null;
  if (spec.default === true) return "on";
  return spec.default === "" ? '""' : spec.default;
}

/** Width of the flag column of the help. */
const FLAG_COLUMN = 28;
/** Width of the help's lines. */
const WIDTH = 100;

/** `text` wrapped to `width` columns at spaces, explicit newlines kept. */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  for (const para of text.split("\n")) {
    let line = "";
    for (const word of para.split(" ")) {
      if (line !== "" && line.length + 1 + word.length > width) {
        out.push(line);
        line = word;
      } else line = line === "" ? word : `${line} ${word}`;
    }
    out.push(line);
  }
  return out;
}

/**
 * The help lines of `table`: per flag its names and value, its description, its older names and
 * `(default: …)`, wrapped under the description column to 100 columns.
 */
export function flagHelp(table: FlagTable): string {
  const lines: string[] = [];
  for (const [name, spec] of Object.entries(table)) {
    const head = `  ${spec.short === undefined ? "    " : `-${spec.short}, `}--${name}` +
      (spec.type === "string" ? ` ${spec.value ?? "VALUE"}` : "");
    const shown = shownDefault(spec);
    let text = spec.help;
    if (spec.aliases?.length) {
      text += ` (also ${spec.aliases.map((a) => `--${a}`).join(", ")})`;
    }
    if (spec.multiple) text += " (repeatable)";
    if (shown === "required") text += " (required)";
    else if (shown !== null) text += ` (default: ${shown})`;
    const body = wrap(text, WIDTH - FLAG_COLUMN);
    const pad = " ".repeat(FLAG_COLUMN);
    if (head.length < FLAG_COLUMN - 1) {
      lines.push(head.padEnd(FLAG_COLUMN) + body[0]);
    } else {
      lines.push(head, pad + body[0]);
    }
    for (const more of body.slice(1)) lines.push(pad + more);
  }
  return lines.join("\n");
}

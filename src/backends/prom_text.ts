/**
 * A lenient reader of the Prometheus text exposition format (version 0.0.4, and the parts of
 * OpenMetrics 1.0 a scraper meets: `# EOF`, exemplars after `#`), for reading a few gauges off an
 * engine's `/metrics`. It is not a validator: a line it cannot read is reported as malformed and
 * skipped, never thrown, so one odd line from a hostile or newer engine costs one value, not the
 * scrape.
 *
 * A sample line is `name{label="value",…} value [timestamp]`: the name is
 * `[a-zA-Z_:][a-zA-Z0-9_:]*`, or (Prometheus 3 UTF-8 names) a quoted string inside the braces
 * (`{"my.name",label="v"}`); label values escape `\\`, `\"` and `\n`; a trailing comma before `}`
 * is allowed; the value is a float as Go's `ParseFloat` reads it (`NaN`, `+Inf`, `-Inf`, `1e+06`);
 * the optional timestamp is an integer in ms and is read past, not used (the scraper stamps its own
 * time). Spaces and tabs separate the parts. `# HELP name …` and `# TYPE name …` name a family;
 * any other `#` line is a comment.
 *
 * Cost: `lineName` scans only up to the end of the name; `parseSample` is one pass over the line,
 * allocating the label pairs only.
 *
 * @module
 */

/** One sample line, read. */
export interface PromSample {
  readonly name: string;
  /** Label pairs in line order (names are unique on a valid line; later ones win here). */
  readonly labels: ReadonlyMap<string, string>;
  /** The value; NaN and ±Infinity are kept as such for the caller to judge. */
  readonly value: number;
}

/** What kind of line `line` is, and the metric or family name it carries (`""` when none). */
export type LineKind = "sample" | "help" | "type" | "comment" | "blank";

/** The kind of an exposition line and its name, read without parsing labels or value. */
export function lineName(line: string): { kind: LineKind; name: string } {
  let i = skipSpace(line, 0);
  if (i >= line.length) return { kind: "blank", name: "" };
  if (line.charCodeAt(i) === 0x23 /* # */) {
    i = skipSpace(line, i + 1);
    let kind: LineKind = "comment";
    if (line.startsWith("HELP", i)) kind = "help";
    else if (line.startsWith("TYPE", i)) kind = "type";
    if (kind === "comment") return { kind, name: "" };
    const j = i + 4;
    if (j < line.length && !isSpace(line.charCodeAt(j))) return { kind: "comment", name: "" };
    const start = skipSpace(line, j);
    let end = start;
    while (end < line.length && !isSpace(line.charCodeAt(end))) end++;
    return { kind, name: line.slice(start, end) };
  }
  if (line.charCodeAt(i) === 0x7b /* { */) {
    // UTF-8 name inside the braces: the first item, a quoted string not followed by `=`.
    const q = readQuoted(line, skipSpace(line, i + 1));
    if (q === undefined) return { kind: "sample", name: "" };
    const after = skipSpace(line, q.end);
    return { kind: "sample", name: line.charCodeAt(after) === 0x3d /* = */ ? "" : q.value };
  }
  const start = i;
  while (i < line.length && isNameChar(line.charCodeAt(i))) i++;
  return { kind: "sample", name: line.slice(start, i) };
}

/** Parses a sample line; `undefined` when it is malformed (the caller counts and skips it). */
export function parseSample(line: string): PromSample | undefined {
  let i = skipSpace(line, 0);
  let name = "";
  const labels = new Map<string, string>();
  if (line.charCodeAt(i) !== 0x7b) {
    const start = i;
    if (i >= line.length || !isNameStart(line.charCodeAt(i))) return undefined;
    while (i < line.length && isNameChar(line.charCodeAt(i))) i++;
    name = line.slice(start, i);
    const j = skipSpace(line, i);
    if (line.charCodeAt(j) === 0x7b) i = j;
  }
  if (line.charCodeAt(i) === 0x7b) {
    const end = readLabels(line, i + 1, labels, name === "");
    if (end === undefined) return undefined;
    if (name === "") {
      name = labels.get(NAME_KEY) ?? "";
      labels.delete(NAME_KEY);
      if (name === "") return undefined;
    }
    i = end;
  }
  if (i < line.length && !isSpace(line.charCodeAt(i))) return undefined; // junk glued to the name
  i = skipSpace(line, i);
  let end = i;
  while (end < line.length && !isSpace(line.charCodeAt(end))) end++;
  const value = parseValue(line.slice(i, end));
  if (value === undefined) return undefined;
  i = skipSpace(line, end);
  if (i < line.length && line.charCodeAt(i) !== 0x23 /* # exemplar */) {
    let tsEnd = i;
    while (tsEnd < line.length && !isSpace(line.charCodeAt(tsEnd))) tsEnd++;
    if (!/^-?\d+(\.\d+)?$/.test(line.slice(i, tsEnd))) return undefined;
    i = skipSpace(line, tsEnd);
    if (i < line.length && line.charCodeAt(i) !== 0x23) return undefined;
  }
  return { name, labels, value };
}

/** A value as Go's `strconv.ParseFloat` reads the ones exporters write; `undefined` if not one. */
export function parseValue(s: string): number | undefined {
  if (s.length === 0) return undefined;
  switch (s.toLowerCase()) {
    case "nan":
      return NaN;
    case "+inf":
    case "inf":
      return Infinity;
    case "-inf":
      return -Infinity;
  }
  // Number() alone would take "", " ", "0x1F", "Infinity": only decimal floats pass the test.
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return undefined;
  return Number(s);
}

/** Key under which `readLabels` stores a quoted bare name (a UTF-8 metric name). */
const NAME_KEY = "\0name";

/**
 * Reads `label="value",…}` starting after the `{`; returns the index after `}`, or `undefined`.
 * With `nameAllowed`, a quoted item without `=` is the metric name (stored under `NAME_KEY`).
 */
function readLabels(
  line: string,
  i: number,
  out: Map<string, string>,
  nameAllowed: boolean,
): number | undefined {
  for (let first = true;; first = false) {
    i = skipSpace(line, i);
    if (line.charCodeAt(i) === 0x7d /* } */) return i + 1;
    let key: string;
    if (line.charCodeAt(i) === 0x22 /* " */) {
      const q = readQuoted(line, i);
      if (q === undefined) return undefined;
      key = q.value;
      i = skipSpace(line, q.end);
      if (line.charCodeAt(i) !== 0x3d) {
        if (!(first && nameAllowed)) return undefined;
        out.set(NAME_KEY, key);
        if (line.charCodeAt(i) === 0x2c /* , */) i++;
        continue;
      }
    } else {
      const start = i;
      if (i >= line.length || !isLabelStart(line.charCodeAt(i))) return undefined;
      while (i < line.length && isLabelChar(line.charCodeAt(i))) i++;
      key = line.slice(start, i);
      i = skipSpace(line, i);
      if (line.charCodeAt(i) !== 0x3d) return undefined;
    }
    i = skipSpace(line, i + 1);
    const v = readQuoted(line, i);
    if (v === undefined) return undefined;
    out.set(key, v.value);
    i = skipSpace(line, v.end);
    const c = line.charCodeAt(i);
    if (c === 0x2c) i++;
    else if (c !== 0x7d) return undefined;
  }
}

/** Reads a `"…"` string with `\\`, `\"` and `\n` escapes at `i`; `undefined` if unterminated. */
function readQuoted(line: string, i: number): { value: string; end: number } | undefined {
  if (line.charCodeAt(i) !== 0x22) return undefined;
  let out = "";
  let from = i + 1;
  for (let j = from; j < line.length; j++) {
    const c = line.charCodeAt(j);
    if (c === 0x22) return { value: out + line.slice(from, j), end: j + 1 };
    if (c === 0x5c /* \ */) {
      if (j + 1 >= line.length) return undefined;
      const e = line[j + 1];
      // Unknown escapes keep the backslash, as Prometheus's own parser does.
      out += line.slice(from, j) + (e === "n" ? "\n" : e === "\\" || e === '"' ? e : "\\" + e);
      j++;
      from = j + 1;
    }
  }
  return undefined;
}

function skipSpace(s: string, i: number): number {
  while (i < s.length && isSpace(s.charCodeAt(i))) i++;
  return i;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d; // \r: CRLF line ends
}

function isNameStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c === 0x3a;
}

function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 0x30 && c <= 0x39);
}

function isLabelStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f;
}

function isLabelChar(c: number): boolean {
  return isLabelStart(c) || (c >= 0x30 && c <= 0x39);
}

/**
 * Test support: a small PromQL parser, enough to check the expressions in `deploy/monitoring/`
 * (dashboard and alert rules). It accepts the language's expression grammar (selectors with
 * matchers, range and subquery selectors, offsets, functions, aggregations with by/without,
 * binary operators with bool/on/ignoring/group_left/group_right, numbers, strings, Grafana
 * variables such as `$__rate_interval` in ranges and `$namespace` in matcher strings) and returns
 * what the checks need: each vector selector's metric name and matcher labels, and each
 * aggregation's grouping labels with the selectors under it. It throws on anything it does not
 * understand, with the position.
 *
 * @module
 */

/** A vector selector: `name{label="v", ...}`. */
export interface Selector {
  readonly metric: string;
  readonly labels: string[];
}

/** An aggregation's `by (...)`/`without (...)` labels and the selectors it aggregates. */
export interface Grouping {
  readonly op: string;
  readonly labels: string[];
  readonly selectors: Selector[];
}

/** What {@link parsePromql} found in one expression. */
export interface Parsed {
  readonly selectors: Selector[];
  readonly groupings: Grouping[];
  readonly functions: string[];
}

const AGGREGATIONS = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
]);

const FUNCTIONS = new Set([
  "abs",
  "absent",
  "absent_over_time",
  "avg_over_time",
  "ceil",
  "changes",
  "clamp",
  "clamp_max",
  "clamp_min",
  "count_over_time",
  "day_of_month",
  "day_of_week",
  "day_of_year",
  "days_in_month",
  "delta",
  "deriv",
  "exp",
  "floor",
  "histogram_avg",
  "histogram_count",
  "histogram_fraction",
  "histogram_quantile",
  "histogram_sum",
  "holt_winters",
  "hour",
  "idelta",
  "increase",
  "irate",
  "label_join",
  "label_replace",
  "last_over_time",
  "ln",
  "log10",
  "log2",
  "max_over_time",
  "min_over_time",
  "minute",
  "month",
  "predict_linear",
  "present_over_time",
  "quantile_over_time",
  "rate",
  "resets",
  "round",
  "scalar",
  "sgn",
  "sort",
  "sort_desc",
  "sqrt",
  "stddev_over_time",
  "stdvar_over_time",
  "sum_over_time",
  "time",
  "timestamp",
  "vector",
  "year",
]);

const BINARY = new Set([
  "+",
  "-",
  "*",
  "/",
  "%",
  "^",
  "==",
  "!=",
  ">",
  "<",
  ">=",
  "<=",
  "and",
  "or",
  "unless",
  "atan2",
]);

const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
  "and",
  "or",
  "unless",
  "atan2",
]);

interface Token {
  readonly kind: "id" | "num" | "str" | "dur" | "op";
  readonly text: string;
  readonly at: number;
}

const TOKEN = new RegExp(
  [
    String.raw`(?<ws>\s+)`,
    String.raw`(?<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`)",
    // A duration before a number: 5m, 1h30m, 500ms; a Grafana interval variable.
    String.raw`(?<dur>(?:\d+(?:ms|s|m|h|d|w|y))+|\$__[a-z_]+|\$\{__[a-z_]+\})`,
    String.raw`(?<num>0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+)`,
    String.raw`(?<id>[a-zA-Z_:][a-zA-Z0-9_:]*)`,
    String.raw`(?<op>==|!=|<=|>=|=~|!~|[-+*/%^<>=,(){}\[\]:@])`,
  ].join("|"),
  "y",
);

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < src.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(src);
    if (m === null) {
      throw new SyntaxError(`unexpected character at ${at}: ${src.slice(at, at + 20)}`);
    }
    const g = m.groups!;
    if (g.ws !== undefined) continue;
    const kind = g.str !== undefined
      ? "str"
      : g.dur !== undefined
      ? "dur"
      : g.num !== undefined
      ? "num"
      : g.id !== undefined
      ? "id"
      : "op";
    out.push({ kind, text: m[0], at });
  }
  return out;
}

/** Parses one PromQL expression; throws a SyntaxError on anything it does not accept. */
export function parsePromql(src: string): Parsed {
  const toks = tokenize(src);
  let i = 0;
  const selectors: Selector[] = [];
  const groupings: Grouping[] = [];
  const functions: string[] = [];

  const peek = (): Token | undefined => toks[i];
  const fail = (what: string): never => {
    const t = toks[i];
    throw new SyntaxError(
      `${what} at ${t === undefined ? "end" : `${t.at} ("${t.text}")`}: ${src}`,
    );
  };
  const take = (text?: string): Token => {
    const t = toks[i];
    if (t === undefined || (text !== undefined && t.text !== text)) {
      fail(`expected ${text ?? "token"}`);
    }
    i++;
    return t!;
  };
  const isOp = (text: string) => peek()?.kind === "op" && peek()!.text === text;
  const isId = (text: string) => peek()?.kind === "id" && peek()!.text === text;

  const labelList = (): string[] => {
    take("(");
    const out: string[] = [];
    while (!isOp(")")) {
      const t = take();
      if (t.kind !== "id") fail("expected a label name");
      out.push(t.text);
      if (!isOp(")")) take(",");
    }
    take(")");
    return out;
  };

  const matchers = (): string[] => {
    take("{");
    const out: string[] = [];
    while (!isOp("}")) {
      const name = take();
      if (name.kind !== "id" && name.kind !== "str") fail("expected a label name");
      const op = take();
      if (!["=", "!=", "=~", "!~"].includes(op.text)) fail("expected a matcher operator");
      if (take().kind !== "str") fail("expected a quoted label value");
      out.push(name.text);
      if (!isOp("}")) take(",");
    }
    take("}");
    return out;
  };

  const duration = () => {
    const t = take();
    if (t.kind !== "dur") fail("expected a duration");
  };

  const postfix = () => {
    if (isOp("[")) {
      take("[");
      duration();
      if (isOp(":")) {
        take(":");
        if (!isOp("]")) duration();
      }
      take("]");
    }
    while (isId("offset") || isOp("@")) {
      if (take().text === "offset") {
        if (isOp("-")) take("-");
        duration();
      } else {
        const t = take();
        if (t.kind !== "num" && !(t.kind === "id" && /^(start|end)$/.test(t.text))) {
          fail("expected a timestamp after @");
        }
        if (t.kind === "id") {
          take("(");
          take(")");
        }
      }
    }
  };

  const args = (): void => {
    take("(");
    while (!isOp(")")) {
      expr();
      if (!isOp(")")) take(",");
    }
    take(")");
  };

  const primary = (): void => {
    const t = peek();
    if (t === undefined) fail("expected an expression");
    if (t!.kind === "num" || t!.kind === "str") {
      i++;
      return;
    }
    if (t!.kind === "op" && t!.text === "(") {
      take("(");
      expr();
      take(")");
      postfix();
      return;
    }
    if (t!.kind === "op" && t!.text === "{") {
      selectors.push({ metric: "", labels: matchers() });
      postfix();
      return;
    }
    if (t!.kind !== "id" || KEYWORDS.has(t!.text)) fail("expected an expression");
    i++;
    const name = t!.text;
    if (AGGREGATIONS.has(name)) {
      let labels: string[] = [];
      const grouping = () => {
        if (!isId("by") && !isId("without")) return;
        i++;
        labels = labelList();
      };
      grouping();
      const before = selectors.length;
      args();
      grouping();
      groupings.push({ op: name, labels, selectors: selectors.slice(before) });
      return;
    }
    if (isOp("(")) {
      if (!FUNCTIONS.has(name)) fail(`unknown function ${name}`);
      functions.push(name);
      args();
      postfix();
      return;
    }
    if (name === "Inf" || name === "NaN" || name === "inf" || name === "nan") return;
    selectors.push({ metric: name, labels: isOp("{") ? matchers() : [] });
    postfix();
  };

  const unary = (): void => {
    if (isOp("-") || isOp("+")) {
      i++;
      unary();
      return;
    }
    primary();
  };

  const expr = (): void => {
    unary();
    while (peek() !== undefined && BINARY.has(peek()!.text) && !isOp(")")) {
      i++;
      if (isId("bool")) i++;
      if (isId("on") || isId("ignoring")) {
        i++;
        labelList();
      }
      if (isId("group_left") || isId("group_right")) {
        i++;
        if (isOp("(")) labelList();
      }
      unary();
    }
  };

  expr();
  if (i !== toks.length) fail("unexpected token");
  return { selectors, groupings, functions };
}

/**
 * A faster way to run a parsed `@huggingface/jinja` template, with output byte-identical to
 * `Template.render`: the library's own interpreter, subclassed through its public `evaluate`, with
 * the hottest node kinds evaluated without allocations that do not change the result.
 *
 * Rule: every runtime value is of the library's own classes, every operation not listed here is
 * the library's, and each shortcut does what the library does in that case, in the same order:
 * - shared values: one runtime value per string or integer literal node, two booleans, and the
 *   integers 0-1023 of loop counters (the library's runtime values are immutable, only namespaces
 *   change and none of these is one; it never compares values by identity; a string's lazily
 *   built methods table is a memo of pure functions of the string);
 * - the request's variables converted as the library converts them (same classes, same key
 *   order), without its intermediate arrays; functions and other kinds by the library itself;
 * - truth tests (`if`, `and`, `or`) read `!!value` when the value's class keeps the base truth
 *   test, and call its own `__bool__` otherwise (lists, objects);
 * - identifiers: the scope chain walked without the library's throw-and-catch for unknown names;
 * - `a.b` on an object or a namespace: no throw-away string value for the name, and an object's
 *   methods table only built when `b` is one of its method names;
 * - `and`, `or`, `==`, `!=`, and `+`, `in`, `not in` on two strings; other operand types go to
 *   the library's own evaluation with the operands already evaluated, so nothing runs twice;
 * - `for x in ...` without an inline `if`: the library's loop (its per-item scopes only serve the
 *   inline filter), with the same `loop` object, key order, else block and break/continue;
 * - blocks (program, loop bodies, `if` branches): each statement's value as a string, none and
 *   undefined skipped, as the library joins them, with nested `if` blocks written straight in
 *   instead of through a string value each.
 * The globals (`raise_exception`, `range`, `strftime_now`, the booleans and none) are the
 * library's own functions, picked up once by rendering a probe template. At first use a self-check
 * renders a template that takes every shortcut both ways; when a probe or the check fails (another
 * library version), {@linkcode renderTemplate} is plain `Template.render`.
 *
 * Cost: about 40% less CPU than `Template.render` for Qwen3's template on a 12-message,
 * 6 KB conversation (docs/performance.md, "Tokenizer prefix cache"); a few probes once per process.
 *
 * @module
 */

import { Environment, Interpreter, Template } from "@huggingface/jinja";

// The library's AST and runtime value types are not all exported; values are read as it does.
// deno-lint-ignore no-explicit-any
type Value = any;
// deno-lint-ignore no-explicit-any
type Node = any;
// deno-lint-ignore no-explicit-any
type Class = new (...args: any[]) => any;

/** The library's classes and globals, found through its public API. */
interface Runtime {
  readonly str: Class;
  readonly int: Class;
  readonly float: Class;
  readonly bool: Class;
  readonly nul: Class;
  readonly undef: Class;
  readonly base: Class;
  readonly array: Class;
  readonly object: Class;
  readonly namespace: Class;
  readonly breakControl: Class;
  readonly continueControl: Class;
  /** Names an object value answers from its methods table (`get`, `items`, ...). */
  readonly objectMethods: ReadonlySet<string>;
  /** The truth test every value class inherits unless it has its own. */
  readonly plainBool: () => Value;
  /** The two boolean values, shared (values are immutable). */
  readonly yes: Value;
  readonly no: Value;
  /** Integer values 0 to {@linkcode SMALL_INTS} - 1, shared. */
  readonly ints: readonly Value[];
  /** The globals in the library's order: name, then a JS value or a runtime value. */
  readonly globals: readonly (readonly [string, unknown, boolean])[];
}

// A node kind of our own: an operand already evaluated, handed to the library's evaluation.
const EVALUATED = "@@EvaluatedOperand";

// Loop counters below this share their integer values.
const SMALL_INTS = 1024;

// The runtime value of each literal node (of any template), made once by the library.
const literals = new WeakMap<object, Value>();

const BUILT_IN_ERRORS: readonly unknown[] = [
  Error,
  SyntaxError,
  TypeError,
  RangeError,
  ReferenceError,
];

/** The library's own class for `{% break %}` or `{% continue %}`, never a built-in error. */
function thrownBy(type: string): Class {
  try {
    new Interpreter().evaluate({ type } as Node, new Environment());
  } catch (err) {
    if (err instanceof Error && !BUILT_IN_ERRORS.includes(err.constructor)) {
      return err.constructor as Class;
    }
  }
  throw new Error(`Probe of ${type} found no control class`);
}

function probeRuntime(): Runtime {
  const env = new Environment();
  const classOf = (v: unknown): Class => env.set(`v${env.variables.size}`, v).constructor as Class;
  let captured: unknown[] = [];
  new Template("{{ grab(raise_exception, range, strftime_now) }}").render({
    grab: (...fns: unknown[]) => {
      captured = fns;
      return "";
    },
  });
  if (captured.length !== 3 || captured.some((f) => typeof f !== "function")) {
    throw new Error("The globals probe found no functions");
  }
  const fn = classOf(() => null);
  const str = classOf("");
  const object = classOf({});
  const namespaceFn = env.variables.get("namespace") as Value;
  const breakControl = thrownBy("Break");
  const continueControl = thrownBy("Continue");
  if (breakControl === continueControl) throw new Error("Break and continue share a class");
  const int = classOf(1);
  const bool = classOf(true);
  const base = Object.getPrototypeOf(str.prototype).constructor;
  return {
    str,
    int,
    float: classOf(1.5),
    bool,
    nul: classOf(null),
    undef: classOf(undefined),
    base,
    array: classOf([]),
    object,
    namespace: namespaceFn.value([], env).constructor,
    breakControl,
    continueControl,
    objectMethods: new Set(new object(new Map()).builtins.keys()),
    plainBool: base.prototype.__bool__,
    yes: new bool(true),
    no: new bool(false),
    ints: Array.from({ length: SMALL_INTS }, (_, i) => new int(i)),
    globals: [
      ["false", false, false],
      ["true", true, false],
      ["none", null, false],
      ["raise_exception", new fn(captured[0]), true],
      ["range", new fn(captured[1]), true],
      ["strftime_now", new fn(captured[2]), true],
      ["True", true, false],
      ["False", false, false],
      ["None", null, false],
    ],
  };
}

/** Checks the probed runtime against plain rendering on a template that uses every shortcut. */
const SELF_CHECK = `{%- set ns = namespace(n=0) -%}
{%- for m in ms -%}{%- if m.k == 'a' and not loop.last or m.k != 'b' -%}{{ loop.index0 ~ m.k + '|' }}
{%- set ns.n = ns.n + 1 -%}{%- elif 'x' in m.k -%}{% continue %}{%- else -%}{% break %}{%- endif -%}
{%- else -%}none{%- endfor -%}{%- if ms -%}L{%- endif -%}{{ ns.n }}{{ m is defined }}{{ o.get('k') }}{{ o.get('z', ms | length) }}{{ range(2) }}`;

let runtime: Runtime | null | undefined;

function outcome(render: () => string): string {
  try {
    return `ok ${render()}`;
  } catch (err) {
    return `error ${err instanceof Error ? err.message : String(err)}`;
  }
}

function theRuntime(): Runtime | null {
  if (runtime !== undefined) return runtime;
  try {
    runtime = probeRuntime();
    const check = new Template(SELF_CHECK);
    const rt = runtime;
    for (const keys of [["a", "c", "xb", "b", "a"], [], ["b"], ["x"]]) {
      const vars = { ms: keys.map((k) => ({ k })), o: { k: 1.5 } };
      const fast = outcome(() => renderWith(rt, check, vars));
      if (fast !== outcome(() => check.render(vars))) throw new Error("Self-check mismatch");
    }
  } catch {
    runtime = null;
  }
  return runtime;
}

/** The library's interpreter with the shortcuts of this module's rule. */
class FastInterpreter extends Interpreter {
  readonly #rt: Runtime;

  constructor(rt: Runtime, env: Environment) {
    super(env);
    this.#rt = rt;
  }

  override evaluate(node: Node, env: Environment): Value {
    if (node === undefined) return super.evaluate(node, env);
    switch (node.type) {
      case EVALUATED:
        return node.value;
      case "StringLiteral":
      case "IntegerLiteral": {
        let v = literals.get(node);
        if (v === undefined) {
          v = super.evaluate(node, env);
          literals.set(node, v);
        }
        return v;
      }
      case "Identifier":
        return this.#lookup(node.value, env);
      case "MemberExpression":
        if (!node.computed && node.property.type === "Identifier") {
          return this.#attribute(node, env);
        }
        break;
      case "BinaryExpression":
        return this.#binary(node, env);
      case "If":
      case "Program":
        return new this.#rt.str(this.#text([node], env));
      case "For":
        if (node.loopvar.type === "Identifier" && node.iterable.type !== "SelectExpression") {
          return this.#for(node, env);
        }
        break;
    }
    return super.evaluate(node, env);
  }

  /** `v.__bool__().value` without the throw-away value when the class keeps the common test. */
  #truthy(v: Value): boolean {
    return v.__bool__ === this.#rt.plainBool ? !!v.value : v.__bool__().value;
  }

  #bool(b: boolean): Value {
    return b ? this.#rt.yes : this.#rt.no;
  }

  #int(n: number): Value {
    return n >= 0 && n < SMALL_INTS ? this.#rt.ints[n] : new this.#rt.int(n);
  }

  /**
   * A block's output as the library makes it (each statement's value as a string, none and
   * undefined skipped), with nested `if` blocks and programs written straight into it.
   */
  #text(body: Node[], env: Environment): string {
    let out = "";
    for (const node of body) {
      if (node.type === "If") {
        const test = this.evaluate(node.test, env);
        out += this.#text(this.#truthy(test) ? node.body : node.alternate, env);
      } else if (node.type === "Program") {
        out += this.#text(node.body, env);
      } else {
        const v = this.evaluate(node, env);
        if (v.type !== "NullValue" && v.type !== "UndefinedValue") out += v.toString();
      }
    }
    return out;
  }

  #lookup(name: string, env: Environment): Value {
    for (let e: Environment | undefined = env; e !== undefined; e = e.parent) {
      if (e.variables.has(name)) return e.variables.get(name) ?? new this.#rt.undef();
    }
    return new this.#rt.undef();
  }

  #attribute(node: Node, env: Environment): Value {
    const rt = this.#rt;
    const object = this.evaluate(node.object, env);
    const isObject = object instanceof rt.object;
    if (!isObject && !(object instanceof rt.namespace)) {
      return super.evaluate({ ...node, object: { type: EVALUATED, value: object } }, env);
    }
    const name: string = node.property.value;
    let value = object.value.get(name);
    if ((value === undefined || value === null) && isObject && rt.objectMethods.has(name)) {
      value = object.builtins.get(name);
    }
    return value instanceof rt.base ? value : new rt.undef();
  }

  #binary(node: Node, env: Environment): Value {
    const rt = this.#rt;
    const op: string = node.operator.value;
    const left = this.evaluate(node.left, env);
    if (op === "and") return this.#truthy(left) ? this.evaluate(node.right, env) : left;
    if (op === "or") return this.#truthy(left) ? left : this.evaluate(node.right, env);
    const right = this.evaluate(node.right, env);
    if (op === "==") return this.#bool(left.value == right.value);
    if (op === "!=") return this.#bool(left.value != right.value);
    if (left instanceof rt.str && right instanceof rt.str) {
      if (op === "+") return new rt.str(left.value + right.value);
      if (op === "in") return this.#bool(right.value.includes(left.value));
      if (op === "not in") return this.#bool(!right.value.includes(left.value));
    }
    return super.evaluate({
      ...node,
      left: { type: EVALUATED, value: left },
      right: { type: EVALUATED, value: right },
    }, env);
  }

  #for(node: Node, env: Environment): Value {
    const rt = this.#rt;
    const scope = new Environment(env);
    let iterable = this.evaluate(node.iterable, scope);
    if (!(iterable instanceof rt.array || iterable instanceof rt.object)) {
      throw new Error(`Expected iterable or object type in for loop: got ${iterable.type}`);
    }
    if (iterable instanceof rt.object) iterable = iterable.keys();
    const items: Value[] = iterable.value;
    const n = items.length;
    const name: string = node.loopvar.value;
    let result = "";
    let noIteration = true;
    for (let i = 0; i < n; i++) {
      const loop = new Map<string, Value>();
      loop.set("index", this.#int(i + 1));
      loop.set("index0", this.#int(i));
      loop.set("revindex", this.#int(n - i));
      loop.set("revindex0", this.#int(n - i - 1));
      loop.set("first", this.#bool(i === 0));
      loop.set("last", this.#bool(i === n - 1));
      loop.set("length", this.#int(n));
      loop.set("previtem", i > 0 ? items[i - 1] : new rt.undef());
      loop.set("nextitem", i < n - 1 ? items[i + 1] : new rt.undef());
      scope.setVariable("loop", new rt.object(loop));
      scope.setVariable(name, items[i]);
      try {
        result += this.#text(node.body, scope);
      } catch (err) {
        if (err instanceof rt.continueControl) continue;
        if (err instanceof rt.breakControl) break;
        throw err;
      }
      noIteration = false;
    }
    if (noIteration) result += this.#text(node.defaultBlock, scope);
    return new rt.str(result);
  }
}

/**
 * A JS value as the library's runtime value, as its own conversion makes it (numbers, strings,
 * booleans, undefined, null, arrays, plain objects by `Object.entries` order), without the
 * intermediate arrays; anything else (functions, symbols, bigints) goes to the library's.
 */
function toRuntime(rt: Runtime, v: unknown): Value {
  switch (typeof v) {
    case "string":
      return new rt.str(v);
    case "number":
      return Number.isInteger(v) ? new rt.int(v) : new rt.float(v);
    case "boolean":
      return new rt.bool(v);
    case "undefined":
      return new rt.undef();
    case "object": {
      if (v === null) return new rt.nul();
      if (Array.isArray(v)) return new rt.array(v.map((x) => toRuntime(rt, x)));
      const map = new Map<string, Value>();
      const obj = v as Record<string, unknown>;
      for (const key of Object.keys(obj)) map.set(key, toRuntime(rt, obj[key]));
      return new rt.object(map);
    }
  }
  return new Environment().set("value", v);
}

function renderWith(rt: Runtime, template: Template, vars: Record<string, unknown>): string {
  const env = new Environment();
  for (const [name, value, isRuntime] of rt.globals) {
    if (isRuntime) env.setVariable(name, value as Value);
    else env.set(name, value);
  }
  for (const key of Object.keys(vars)) {
    const value = toRuntime(rt, vars[key]);
    // A name taken by a global: the library's own error.
    if (env.variables.has(key)) env.set(key, vars[key]);
    else env.setVariable(key, value);
  }
  return (new FastInterpreter(rt, env).run(template.parsed) as Value).value;
}

/**
 * `template.render(vars)`, the same string or the same error, with less CPU.
 * @throws Error whatever the template's rendering throws
 */
export function renderTemplate(template: Template, vars: Record<string, unknown>): string {
  const rt = theRuntime();
  return rt === null ? template.render(vars) : renderWith(rt, template, vars);
}

/** Whether the shortcuts are in use (false: the library's version did not pass the probes). */
export function fastRenderAvailable(): boolean {
  return theRuntime() !== null;
}

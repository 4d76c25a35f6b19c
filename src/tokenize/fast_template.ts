/**
 * A faster way to run a parsed `@huggingface/jinja` template, with output byte-identical to
 * `Template.render`: the library's own interpreter, subclassed through its public `evaluate`, with
 * the hottest node kinds evaluated without allocations that do not change the result.
 *
 * Rule: every runtime value is of the library's own classes, every operation not listed here is
 * the library's, and each shortcut does what the library does in that case, in the same order:
 * - string and integer literals: one runtime value per template node, reused (the library's
 *   runtime values are immutable, only namespaces change and a literal never is one; a string's
 *   lazily built methods table is a memo of pure functions of the string);
 * - identifiers: the scope chain walked without the library's throw-and-catch for unknown names;
 * - `a.b` on an object or a namespace: no throw-away string value for the name, and an object's
 *   methods table only built when `b` is one of its method names;
 * - `and`, `or`, `==`, `!=`, and `+`, `in`, `not in` on two strings; other operand types go to
 *   the library's own evaluation with the operands already evaluated, so nothing runs twice;
 * - `for x in ...` without an inline `if`: the library's loop (its per-item scopes only serve the
 *   inline filter), with the same `loop` object, key order, else block and break/continue.
 * The globals (`raise_exception`, `range`, `strftime_now`, the booleans and none) are the
 * library's own functions, picked up once by rendering a probe template. When a probe does not
 * find what it expects (another library version), {@linkcode renderTemplate} is `Template.render`.
 *
 * Cost: about a quarter less CPU than `Template.render` for Qwen3's template on a 12-message,
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
  readonly bool: Class;
  readonly undef: Class;
  readonly base: Class;
  readonly array: Class;
  readonly object: Class;
  readonly namespace: Class;
  readonly breakControl: Class;
  readonly continueControl: Class;
  /** Names an object value answers from its methods table (`get`, `items`, ...). */
  readonly objectMethods: ReadonlySet<string>;
  /** The globals in the library's order: name, then a JS value or a runtime value. */
  readonly globals: readonly (readonly [string, unknown, boolean])[];
}

// A node kind of our own: an operand already evaluated, handed to the library's evaluation.
const EVALUATED = "@@EvaluatedOperand";

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
  return {
    str,
    int: classOf(1),
    bool: classOf(true),
    undef: classOf(undefined),
    base: Object.getPrototypeOf(str.prototype).constructor,
    array: classOf([]),
    object,
    namespace: namespaceFn.value([], env).constructor,
    breakControl,
    continueControl,
    objectMethods: new Set(new object(new Map()).builtins.keys()),
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
{%- else -%}none{%- endfor -%}{{ ns.n }}{{ m is defined }}{{ ms[0].get('k') }}{{ range(2) }}`;

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
      const vars = { ms: keys.map((k) => ({ k })) };
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
      case "For":
        if (node.loopvar.type === "Identifier" && node.iterable.type !== "SelectExpression") {
          return this.#for(node, env);
        }
        break;
    }
    return super.evaluate(node, env);
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
    if (op === "and") return left.__bool__().value ? this.evaluate(node.right, env) : left;
    if (op === "or") return left.__bool__().value ? left : this.evaluate(node.right, env);
    const right = this.evaluate(node.right, env);
    if (op === "==") return new rt.bool(left.value == right.value);
    if (op === "!=") return new rt.bool(left.value != right.value);
    if (left instanceof rt.str && right instanceof rt.str) {
      if (op === "+") return new rt.str(left.value + right.value);
      if (op === "in") return new rt.bool(right.value.includes(left.value));
      if (op === "not in") return new rt.bool(!right.value.includes(left.value));
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
    // evaluateBlock is the library's (private in its types): the same block semantics.
    const block = (body: Node[]): string => (this as Value).evaluateBlock(body, scope).value;
    let result = "";
    let noIteration = true;
    for (let i = 0; i < n; i++) {
      const loop = new Map<string, Value>();
      loop.set("index", new rt.int(i + 1));
      loop.set("index0", new rt.int(i));
      loop.set("revindex", new rt.int(n - i));
      loop.set("revindex0", new rt.int(n - i - 1));
      loop.set("first", new rt.bool(i === 0));
      loop.set("last", new rt.bool(i === n - 1));
      loop.set("length", new rt.int(n));
      loop.set("previtem", i > 0 ? items[i - 1] : new rt.undef());
      loop.set("nextitem", i < n - 1 ? items[i + 1] : new rt.undef());
      scope.setVariable("loop", new rt.object(loop));
      scope.setVariable(name, items[i]);
      try {
        result += block(node.body);
      } catch (err) {
        if (err instanceof rt.continueControl) continue;
        if (err instanceof rt.breakControl) break;
        throw err;
      }
      noIteration = false;
    }
    if (noIteration) result += block(node.defaultBlock);
    return new rt.str(result);
  }
}

function renderWith(rt: Runtime, template: Template, vars: Record<string, unknown>): string {
  const env = new Environment();
  for (const [name, value, isRuntime] of rt.globals) {
    if (isRuntime) env.setVariable(name, value as Value);
    else env.set(name, value);
  }
  for (const key of Object.keys(vars)) env.set(key, vars[key]);
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

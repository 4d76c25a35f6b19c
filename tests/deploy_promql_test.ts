/**
 * The monitoring files in deploy/monitoring/: every PromQL expression of the Grafana dashboard and
 * the alert rules parses, and names only metrics the router exports (docs/metrics.md, which
 * tests/metrics_doc_test.ts holds equal to the registry) with labels they have; the plain rules
 * file and the PrometheusRule hold the same rules; the ServiceMonitor scrapes the Service's
 * metrics port with the router's own labels kept.
 */

import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { type DocFamily, documentedFamilies } from "./_metrics_doc.ts";
import { parsePromql } from "./_promql.ts";

const DIR = new URL("../deploy/monitoring/", import.meta.url);

/** Labels Prometheus adds to every scraped series (kubernetes service discovery). */
const TARGET_LABELS = new Set(["namespace", "pod", "service", "job", "instance", "container"]);

/** The family a series name belongs to, with its labels (`le` for a histogram's buckets). */
function familyOf(
  families: ReadonlyMap<string, DocFamily>,
  name: string,
): { family: string; labels: Set<string> } | null {
  const f = families.get(name);
  if (f !== undefined) return { family: name, labels: new Set(f.labels) };
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const h = m === null ? undefined : families.get(m[1]);
  if (m === null || h === undefined || h.type !== "histogram") return null;
  const labels = new Set(h.labels);
  if (m[2] === "bucket") labels.add("le");
  return { family: m[1], labels };
}

/** Problems of one expression: unknown metrics, labels the metrics do not have. */
function problemsOf(families: ReadonlyMap<string, DocFamily>, expr: string): string[] {
  const parsed = parsePromql(expr);
  const out: string[] = [];
  const known = (label: string, labels: Set<string>) =>
    labels.has(label) || TARGET_LABELS.has(label);
  const labelsOf = new Map<string, Set<string>>();
  for (const s of parsed.selectors) {
    const f = familyOf(families, s.metric);
    if (f === null) {
      out.push(`unknown metric ${s.metric || "(no name)"}`);
      continue;
    }
    labelsOf.set(s.metric, f.labels);
    for (const l of s.labels) if (!known(l, f.labels)) out.push(`${s.metric} has no label ${l}`);
  }
  for (const g of parsed.groupings) {
    const under = new Set<string>();
    for (const s of g.selectors) for (const l of labelsOf.get(s.metric) ?? []) under.add(l);
    for (const l of g.labels) {
      if (!known(l, under)) out.push(`${g.op} by ${l}: no metric under it has that label`);
    }
  }
  return out;
}

/** Every PromQL expression of the dashboard, and the metrics its `label_values` queries name. */
async function dashboardExprs(): Promise<{ exprs: string[]; labelValues: string[] }> {
  const dash = JSON.parse(await Deno.readTextFile(new URL("grafana-dashboard.json", DIR)));
  const exprs: string[] = [];
  const walk = (panels: { targets?: { expr?: string }[]; panels?: unknown[] }[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr !== undefined) exprs.push(t.expr);
      if (p.panels) walk(p.panels as typeof panels);
    }
  };
  walk(dash.panels);
  const labelValues: string[] = [];
  for (const v of dash.templating.list) {
    if (v.type !== "query") continue;
    const q = typeof v.query === "string" ? v.query : v.query.query;
    const m = /^label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)$/.exec(q);
    assert.ok(m !== null, `templating query ${q}`);
    labelValues.push(m[1]);
  }
  return { exprs, labelValues };
}

interface RuleGroup {
  name: string;
  rules: { alert?: string; record?: string; expr: string; for?: string }[];
}

async function ruleGroups(file: string): Promise<RuleGroup[]> {
  const doc = parseYaml(await Deno.readTextFile(new URL(file, DIR)));
  return file === "prometheusrule.yaml" ? doc.spec.groups : doc.groups;
}

Deno.test("dashboard and alert rules: every expression parses and names only exported metrics", async () => {
  const families = await documentedFamilies();
  const { exprs, labelValues } = await dashboardExprs();
  const rules = (await ruleGroups("prometheus-rules.yaml")).flatMap((g) => g.rules);
  assert.ok(exprs.length >= 20, `dashboard expressions: ${exprs.length}`);
  assert.ok(rules.length >= 5, `rules: ${rules.length}`);
  const problems: string[] = [];
  for (const e of [...exprs, ...rules.map((r) => r.expr)]) {
    try {
      for (const p of problemsOf(families, e)) problems.push(`${p}: ${e}`);
    } catch (err) {
      problems.push(`${(err as Error).message}`);
    }
  }
  for (const m of labelValues) {
    if (familyOf(families, m) === null) problems.push(`templating: unknown metric ${m}`);
  }
  assert.deepEqual(problems, []);
  // What the issue asks the dashboard and the alerts to show.
  const all = exprs.join("\n");
  for (
    const m of [
      "router_requests_total",
      "router_time_to_first_token_seconds_bucket",
      "router_upstream_cached_tokens_total",
      "router_upstream_prompt_tokens_total",
      "router_prefix_prediction_error_tokens_bucket",
      "router_inflight",
      "router_breaker_state",
      "router_retries_total",
      "router_prefix_tree_chunks",
    ]
  ) assert.ok(all.includes(m), `dashboard shows ${m}`);
  const alerts = rules.map((r) => r.alert);
  for (
    const a of [
      "LlmRouterAllWorkersDown",
      "LlmRouterBreakerOpen",
      "LlmRouterErrorRate",
      "LlmRouterTtftHigh",
      "LlmRouterPredictionErrorHigh",
    ]
  ) assert.ok(alerts.includes(a), `alert ${a}`);
});

Deno.test("the plain rules file and the PrometheusRule hold the same rules", async () => {
  assert.deepEqual(
    await ruleGroups("prometheusrule.yaml"),
    await ruleGroups("prometheus-rules.yaml"),
  );
  const pr = parseYaml(await Deno.readTextFile(new URL("prometheusrule.yaml", DIR)));
  assert.equal(pr.kind, "PrometheusRule");
  assert.equal(pr.apiVersion, "monitoring.coreos.com/v1");
});

Deno.test("the ServiceMonitor scrapes the Service's metrics port and keeps the router's labels", async () => {
  const sm = parseYaml(await Deno.readTextFile(new URL("servicemonitor.yaml", DIR)));
  const svc = parseYaml(await Deno.readTextFile(new URL("../service.yaml", DIR)));
  assert.equal(sm.kind, "ServiceMonitor");
  assert.deepEqual(sm.spec.selector.matchLabels, svc.metadata.labels);
  const port = sm.spec.endpoints[0];
  assert.ok(svc.spec.ports.some((p: { name: string }) => p.name === port.port));
  assert.equal(port.path, "/metrics");
  assert.equal(port.honorLabels, true, "else `endpoint` becomes `exported_endpoint`");
  const k = parseYaml(await Deno.readTextFile(new URL("kustomization.yaml", DIR)));
  for (const r of k.resources) await Deno.stat(new URL(r, DIR));
});

Deno.test("the checker catches what it is for: bad syntax, unknown metrics and labels", async () => {
  const families = await documentedFamilies();
  assert.throws(() => parsePromql("sum(rate(router_requests_total[5m])"), SyntaxError);
  assert.throws(() => parsePromql("frobnicate(router_inflight)"), /unknown function/);
  assert.throws(() => parsePromql('router_inflight{backend="w1"'), SyntaxError);
  assert.throws(() => parsePromql("router_inflight router_inflight"), SyntaxError);
  assert.deepEqual(problemsOf(families, "rate(router_request_total[5m])"), [
    "unknown metric router_request_total",
  ]);
  assert.deepEqual(problemsOf(families, 'router_inflight{model="m"}'), [
    "router_inflight has no label model",
  ]);
  assert.deepEqual(problemsOf(families, "sum by (le) (rate(router_inflight_bucket[5m]))"), [
    "unknown metric router_inflight_bucket",
    "sum by le: no metric under it has that label",
  ]);
  assert.deepEqual(
    problemsOf(families, "sum by (model) (rate(router_time_to_first_byte_seconds_count[5m]))"),
    ["sum by model: no metric under it has that label"],
  );
  assert.deepEqual(
    problemsOf(
      families,
      'histogram_quantile(0.9, sum by (le, model) (rate(router_time_to_first_token_seconds_bucket{namespace=~"$ns"}[$__rate_interval]))) > bool 2 or on (model) vector(1) offset 5m',
    ),
    [],
  );
});

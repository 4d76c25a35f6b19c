import assert from "node:assert/strict";
import { configFromWorkers } from "../config/mod.ts";
import {
  createDiscovery,
  DISCOVERY_STATIC,
  resolveDiscoveryConfig,
  withDiscoveredWorkers,
} from "./config.ts";

Deno.test("resolveDiscoveryConfig: absent is static", () => {
  assert.deepEqual(resolveDiscoveryConfig(undefined), { value: DISCOVERY_STATIC, errors: [] });
});

Deno.test("resolveDiscoveryConfig: dns and kubernetes sections", () => {
  assert.deepEqual(
    resolveDiscoveryConfig({
      mode: "dns",
      interval: "30s",
      dns: { name: "_http._tcp.vllm", type: "SRV" },
      worker: { kv_budget: 4096 },
    }),
    {
      value: {
        mode: "dns",
        intervalMs: 30_000,
        dns: { name: "_http._tcp.vllm", type: "SRV", port: null, scheme: "http" },
        kubernetes: null,
        workerRaw: { kv_budget: 4096 },
      },
      errors: [],
    },
  );
  const k = resolveDiscoveryConfig({
    mode: "kubernetes",
    kubernetes: { label_selector: "app=vllm", port: 8000 },
  });
  assert.deepEqual(k.errors, []);
  assert.deepEqual(k.value.kubernetes, {
    namespace: null,
    labelSelector: "app=vllm",
    port: 8000,
    scheme: "http",
  });
});

Deno.test("resolveDiscoveryConfig: every problem with its path", () => {
  assert.deepEqual(
    resolveDiscoveryConfig({ mode: "dns", interval: 0, dns: { type: "MX", scheme: "ftp" } }).errors,
    [
      'discovery.interval must be a positive duration such as "10s", got 0',
      "discovery.dns.name must be a DNS name, got undefined",
      'discovery.dns.type must be one of A, AAAA, SRV, got "MX"',
      "discovery.dns.port is required for MX records",
      'discovery.dns.scheme must be http or https, got "ftp"',
    ],
  );
  assert.deepEqual(resolveDiscoveryConfig({ interval: "1000h" }).errors, [
    'discovery.interval must be at most 2147483647 ms (about 24.8 days, the longest timer), got "1000h"',
  ]);
  assert.deepEqual(
    resolveDiscoveryConfig({
      mode: "kubernetes",
      dns: { name: "x" },
      kubernetes: { namespace: "Bad_NS", port: 70000, extra: 1 },
    }).errors,
    [
      'discovery.dns is set but discovery.mode is "kubernetes"',
      "unknown key discovery.kubernetes.extra",
      'discovery.kubernetes.namespace must be a namespace name or null, got "Bad_NS"',
      'discovery.kubernetes.label_selector is required, such as "app=vllm", got undefined',
      "discovery.kubernetes.port must be a port 1..65535, got 70000",
    ],
  );
  assert.deepEqual(resolveDiscoveryConfig({ mode: "consul" }).errors, [
    'discovery.mode must be one of static, dns, kubernetes, got "consul"',
  ]);
});

Deno.test("createDiscovery builds the mode's discovery; withDiscoveredWorkers replaces workers", async () => {
  const base = configFromWorkers(["http://127.0.0.1:1"]);
  const d = createDiscovery(DISCOVERY_STATIC, { staticWorkers: base.workers });
  assert.equal(d.kind, "static");
  let got: readonly { id: string }[] = [];
  await d.start((ws) => got = ws);
  await d.stop();
  assert.deepEqual(got.map((w) => w.id), ["w1"]);
  const dns = createDiscovery(
    resolveDiscoveryConfig({ mode: "dns", dns: { name: "x", port: 80 } }).value,
    { staticWorkers: [] },
  );
  assert.equal(dns.kind, "dns");

  const { id: _id, url: _url, ...template } = base.workers[0];
  const next = withDiscoveredWorkers(base, [{ id: "vllm-0", url: "http://10.0.0.1:8000" }], {
    ...template,
    kvBudget: 1234,
  });
  assert.equal(next.router, base.router);
  assert.deepEqual(next.workers.map((w) => [w.id, w.url, w.kvBudget, w.timeoutMs]), [
    ["vllm-0", "http://10.0.0.1:8000", 1234, base.workers[0].timeoutMs],
  ]);
});

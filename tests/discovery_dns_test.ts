/**
 * DnsDiscovery: record → worker mapping (A, AAAA, SRV) and the re-resolve loop, with an injected
 * resolver function in place of `Deno.resolveDns`; plus StaticDiscovery and WorkerList.
 */

import assert from "node:assert/strict";
import {
  DnsDiscovery,
  type DnsRecordType,
  type SrvRecord,
  workersFromRecords,
} from "../src/discovery/dns_discovery.ts";
import { StaticDiscovery } from "../src/discovery/static_discovery.ts";
import type { DiscoveredWorker } from "../src/discovery/types.ts";
import { WorkerList } from "../src/discovery/worker_list.ts";
import { until } from "../src/sync/testing.ts";

const srv = (target: string, port: number, priority = 10, weight = 50): SrvRecord => ({
  target,
  port,
  priority,
  weight,
});

Deno.test("workersFromRecords: A, AAAA and SRV records to workers", () => {
  assert.deepEqual(workersFromRecords("A", ["10.0.0.7", "10.0.0.8"], { port: 8000 }), [
    { id: "10.0.0.7-8000", url: "http://10.0.0.7:8000" },
    { id: "10.0.0.8-8000", url: "http://10.0.0.8:8000" },
  ]);
  assert.deepEqual(workersFromRecords("AAAA", ["fd00::1"], { port: 8000, scheme: "https" }), [
    { id: "fd00__1-8000", url: "https://[fd00::1]:8000" },
  ]);
  assert.throws(() => workersFromRecords("A", ["10.0.0.7"], {}), /port is required/);
  assert.deepEqual(
    workersFromRecords("SRV", [
      srv("vllm-0.vllm.llm.svc.cluster.local.", 8000),
      srv("vllm-1.vllm.llm.svc.cluster.local.", 8001),
      srv("backup.example.", 8000, 20), // higher priority value: a backup, left out
      srv(".", 0), // "no service here"
    ], {}),
    [
      {
        id: "vllm-0.vllm.llm.svc.cluster.local-8000",
        url: "http://vllm-0.vllm.llm.svc.cluster.local:8000",
      },
      {
        id: "vllm-1.vllm.llm.svc.cluster.local-8001",
        url: "http://vllm-1.vllm.llm.svc.cluster.local:8001",
      },
    ],
  );
  // A configured port overrides the records'.
  assert.deepEqual(workersFromRecords("SRV", [srv("a.example.", 1234)], { port: 9000 }), [
    { id: "a.example-9000", url: "http://a.example:9000" },
  ]);
  assert.deepEqual(workersFromRecords("SRV", [srv(".", 0)], {}), []);
});

Deno.test("WorkerList reports sorted, de-duplicated lists, and only changes", () => {
  const list = new WorkerList();
  const seen: string[][] = [];
  list.listen((ws) => seen.push(ws.map((w) => `${w.id}=${w.url}`)));
  assert.equal(list.update([{ id: "b", url: "http://b:1" }, { id: "a", url: "http://a:1" }]), true);
  assert.equal(
    list.update([{ id: "a", url: "http://a:1" }, { id: "b", url: "http://b:1" }]),
    false,
  );
  assert.equal(
    list.update([{ id: "a", url: "http://a:2" }, { id: "a", url: "http://a:3" }]),
    true,
  );
  assert.deepEqual(seen, [["a=http://a:1", "b=http://b:1"], ["a=http://a:2"]]);
});

Deno.test("StaticDiscovery reports the configured list once", async () => {
  const d = new StaticDiscovery([{ id: "w2", url: "http://h2:8000" }, {
    id: "w1",
    url: "http://h1:8000",
  }]);
  const seen: (readonly DiscoveredWorker[])[] = [];
  await d.start((ws) => seen.push(ws));
  await d.stop();
  assert.deepEqual(seen.map((ws) => ws.map((w) => w.id)), [["w1", "w2"]]);
});

Deno.test("DnsDiscovery re-resolves on its interval; no records three times empties, other failures keep", async () => {
  type Answer = readonly string[] | Error;
  const notFound = () => new Deno.errors.NotFound("no records found");
  const answers: Answer[] = [
    ["10.0.0.1", "10.0.0.2"],
    ["10.0.0.2", "10.0.0.1"], // same set, other order: no change reported
    ["10.0.0.2", "10.0.0.3"],
    new Error("timeout"),
    // Deno reports a SERVFAIL or REFUSED as NotFound too: one or two in a row keep the list...
    notFound(),
    notFound(),
    ["10.0.0.2", "10.0.0.3"],
    // ...three in a row (a headless Service with no ready pod) empty it.
    notFound(),
    notFound(),
    notFound(),
    ["10.0.0.4"],
  ];
  const asked: [string, DnsRecordType][] = [];
  const seen: string[][] = [];
  const warnings: string[] = [];
  const d = new DnsDiscovery({
    name: "vllm.llm.svc.cluster.local",
    type: "A",
    port: 8000,
    intervalMs: 5,
    resolver: (name, type) => {
      asked.push([name, type]);
      const a = answers[Math.min(asked.length - 1, answers.length - 1)];
      return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
    },
    logger: { debug() {}, info() {}, warn: (m) => void warnings.push(m), error() {} },
  });
  try {
    await d.start((ws) => seen.push(ws.map((w) => w.id)));
    assert.deepEqual(seen, [["10.0.0.1-8000", "10.0.0.2-8000"]], "first look done by start()");
    await until("all answers used", () => asked.length >= answers.length + 1);
  } finally {
    await d.stop();
  }
  const n = asked.length;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(asked.length, n, "no lookup after stop");
  assert.deepEqual(asked[0], ["vllm.llm.svc.cluster.local", "A"]);
  assert.deepEqual(seen, [
    ["10.0.0.1-8000", "10.0.0.2-8000"],
    ["10.0.0.2-8000", "10.0.0.3-8000"],
    [],
    ["10.0.0.4-8000"],
  ]);
  assert.deepEqual(warnings, [
    "dns discovery lookup failed; keeping the last worker list",
    "dns discovery found no records; keeping the last worker list",
    "dns discovery found no records; keeping the last worker list",
  ]);
});

Deno.test("DnsDiscovery bounds a lookup that hangs and keeps the last list", async () => {
  let calls = 0;
  const seen: string[][] = [];
  const d = new DnsDiscovery({
    name: "_http._tcp.vllm",
    type: "SRV",
    intervalMs: 5,
    timeoutMs: 20,
    resolver: (_name, _type, signal) => {
      calls++;
      if (calls === 1) return Promise.resolve([srv("a.", 8000)]);
      // Hangs until the discovery's timeout aborts it.
      return new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason))
      );
    },
  });
  try {
    await d.start((ws) => seen.push(ws.map((w) => w.url)));
    await until("a few timed-out lookups", () => calls >= 3);
    assert.deepEqual(d.current().map((w) => w.url), ["http://a:8000"]);
  } finally {
    await d.stop();
  }
  assert.deepEqual(seen, [["http://a:8000"]]);
});

/**
 * KubernetesDiscovery against a fake API server of the real API's shape (in-process HTTP on
 * 127.0.0.1): the pod list call, and watches as a chunked stream of JSON watch events, one a line.
 * The client library (`@kubernetes/client-node`) is the real one; nothing of it is mocked.
 */

import assert from "node:assert/strict";
import { KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { KubernetesDiscovery, podIsReady } from "../src/discovery/kubernetes_discovery.ts";
import type { DiscoveredWorker } from "../src/discovery/types.ts";
import { until } from "../src/sync/testing.ts";

const NS = "llm";
const SELECTOR = "app=vllm,tier=gpu";
const TOKEN = "test-token";

function pod(name: string, o: { ip?: string; ready?: boolean; deleting?: boolean } = {}): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: NS,
      labels: { app: "vllm", tier: "gpu" },
      ...(o.deleting ? { deletionTimestamp: new Date("2025-01-01T00:00:00Z") } : {}),
    },
    status: {
      phase: "Running",
      ...(o.ip ? { podIP: o.ip } : {}),
      conditions: [
        { type: "PodScheduled", status: "True" },
        { type: "Ready", status: o.ready === false ? "False" : "True" },
      ],
    },
  };
}

interface WatchRequest {
  resourceVersion: string | null;
  labelSelector: string | null;
  bookmarks: string | null;
}

/** A fake API server holding pods, with one open watch at a time that the test feeds. */
async function fakeApiServer() {
  const pods = new Map<string, V1Pod>();
  let rv = 100;
  let listCalls = 0;
  let failLists = 0;
  let refuseWatches = 0;
  const watches: WatchRequest[] = [];
  const auth: string[] = [];
  let feed: ReadableStreamDefaultController<Uint8Array> | null = null;
  const enc = new TextEncoder();
  const withRv = (p: V1Pod): V1Pod => ({
    ...p,
    metadata: { ...p.metadata, resourceVersion: String(++rv) },
  });

  const ready = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: (a) => ready.resolve(a.port),
  }, (req) => {
    const url = new URL(req.url);
    auth.push(req.headers.get("authorization") ?? "");
    if (url.pathname !== `/api/v1/namespaces/${NS}/pods` || req.method !== "GET") {
      return Response.json({ kind: "Status", code: 404 }, { status: 404 });
    }
    if (url.searchParams.get("watch") === "true") {
      watches.push({
        resourceVersion: url.searchParams.get("resourceVersion"),
        labelSelector: url.searchParams.get("labelSelector"),
        bookmarks: url.searchParams.get("allowWatchBookmarks"),
      });
      if (refuseWatches > 0) {
        return Response.json({ kind: "Status", code: refuseWatches, reason: "Forbidden" }, {
          status: refuseWatches,
        });
      }
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          feed = c;
        },
        cancel() {
          feed = null;
        },
      });
      return new Response(body, { headers: { "content-type": "application/json" } });
    }
    listCalls++;
    if (failLists > 0) {
      failLists--;
      return Response.json({ kind: "Status", code: 500, message: "etcd is sad" }, {
        status: 500,
      });
    }
    assert.equal(url.searchParams.get("labelSelector"), SELECTOR);
    return Response.json({
      apiVersion: "v1",
      kind: "PodList",
      metadata: { resourceVersion: String(rv) },
      items: [...pods.values()],
    });
  });
  const port = await ready.promise;

  return {
    url: `http://127.0.0.1:${port}`,
    pods,
    watches,
    auth,
    get listCalls() {
      return listCalls;
    },
    failNextLists(n: number) {
      failLists = n;
    },
    /** Answers every watch with this status (403: RBAC without `watch`); 0: serve them. */
    refuseWatchesWith(status: number) {
      refuseWatches = status;
    },
    get watching() {
      return feed !== null;
    },
    /** Changes the pod set and sends the watch event. */
    event(type: "ADDED" | "MODIFIED" | "DELETED", p: V1Pod) {
      const stamped = withRv(p);
      if (type === "DELETED") pods.delete(p.metadata!.name!);
      else pods.set(p.metadata!.name!, stamped);
      feed!.enqueue(enc.encode(JSON.stringify({ type, object: stamped }) + "\n"));
    },
    /** The last resourceVersion handed out. */
    get rv() {
      return String(rv);
    },
    /** Sends a BOOKMARK at a new resourceVersion. */
    bookmark() {
      this.raw({
        type: "BOOKMARK",
        object: { kind: "Pod", metadata: { resourceVersion: String(++rv) } },
      });
    },
    /** Sends a raw event line (ERROR). */
    raw(line: unknown) {
      feed!.enqueue(enc.encode(JSON.stringify(line) + "\n"));
    },
    /** Ends the open watch as the API server does after its timeout. */
    endWatch() {
      const f = feed;
      feed = null;
      f?.close();
    },
    async close() {
      this.endWatch();
      await server.shutdown();
    },
  };
}

function kubeConfigFor(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fake", server, skipTLSVerify: true }],
    users: [{ name: "router", token: TOKEN }],
    contexts: [{ name: "fake", cluster: "fake", user: "router", namespace: NS }],
    currentContext: "fake",
  });
  return kc;
}

const ids = (ws: readonly DiscoveredWorker[]) => ws.map((w) => `${w.id}=${w.url}`);

Deno.test("podIsReady: Ready condition true, podIP set, not terminating", () => {
  assert.equal(podIsReady(pod("a", { ip: "10.0.0.1" })), true);
  assert.equal(podIsReady(pod("a", { ip: "10.0.0.1", ready: false })), false);
  assert.equal(podIsReady(pod("a")), false);
  assert.equal(podIsReady(pod("a", { ip: "10.0.0.1", deleting: true })), false);
  assert.equal(podIsReady({ metadata: { name: "a" }, status: { podIP: "10.0.0.1" } }), false);
});

Deno.test("KubernetesDiscovery: list, then watch events, rewatch, 410 relist, stop", async () => {
  const api = await fakeApiServer();
  api.pods.set("vllm-0", pod("vllm-0", { ip: "10.1.0.10" }));
  api.pods.set("vllm-1", pod("vllm-1", { ip: "10.1.0.11", ready: false }));
  api.pods.set("vllm-2", pod("vllm-2")); // scheduled, no IP yet
  const seen: string[][] = [];
  const d = new KubernetesDiscovery({
    namespace: NS,
    labelSelector: SELECTOR,
    port: 8000,
    kubeConfig: kubeConfigFor(api.url),
    backoffMs: 20,
  });
  try {
    await d.start((ws) => seen.push(ids(ws)));
    assert.deepEqual(seen, [["vllm-0=http://10.1.0.10:8000"]]);
    await until("watch open", () => api.watching);
    assert.deepEqual(api.watches[0], {
      resourceVersion: "100",
      labelSelector: SELECTOR,
      bookmarks: "true",
    });
    assert.ok(api.auth.every((a) => a === `Bearer ${TOKEN}`), "service account token sent");

    // vllm-1 becomes ready; vllm-2 gets an IP and is ready; vllm-0 starts terminating.
    api.event("MODIFIED", pod("vllm-1", { ip: "10.1.0.11" }));
    await until("vllm-1 ready", () => seen.length === 2);
    assert.deepEqual(seen[1], ["vllm-0=http://10.1.0.10:8000", "vllm-1=http://10.1.0.11:8000"]);
    api.event("MODIFIED", pod("vllm-2", { ip: "10.1.0.12" }));
    api.event("MODIFIED", pod("vllm-0", { ip: "10.1.0.10", deleting: true }));
    await until("vllm-0 leaves", () => seen.length === 4);
    assert.deepEqual(seen[3], ["vllm-1=http://10.1.0.11:8000", "vllm-2=http://10.1.0.12:8000"]);
    // An event that changes nothing visible is not reported; a bookmark neither.
    api.event("ADDED", pod("vllm-9", { ip: "10.1.0.19", ready: false }));
    api.event("DELETED", pod("vllm-0", { ip: "10.1.0.10", deleting: true }));
    api.bookmark();
    const lastRv = api.rv;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(seen.length, 4);

    // The server ends the watch: the discovery reopens it from the last resourceVersion.
    api.endWatch();
    await until("rewatch", () => api.watches.length === 2 && api.watching);
    assert.equal(api.watches[1].resourceVersion, lastRv);
    assert.equal(api.listCalls, 1);

    // 410 Gone: list again (the list now is the truth: vllm-9 became ready meanwhile).
    api.pods.set("vllm-9", pod("vllm-9", { ip: "10.1.0.19" }));
    api.raw({ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired" } });
    api.endWatch();
    await until("relist", () => api.listCalls === 2 && seen.length === 5);
    assert.deepEqual(seen[4], [
      "vllm-1=http://10.1.0.11:8000",
      "vllm-2=http://10.1.0.12:8000",
      "vllm-9=http://10.1.0.19:8000",
    ]);
    await until("watch open again", () => api.watching);
  } finally {
    await d.stop();
    await api.close();
  }
  assert.equal(api.watching, false, "stop closed the watch");
});

Deno.test("KubernetesDiscovery: lists that work with watches that fail still back off, one warning", async () => {
  const api = await fakeApiServer();
  api.pods.set("vllm-0", pod("vllm-0", { ip: "10.1.0.10" }));
  api.refuseWatchesWith(403);
  const warnings: string[] = [];
  const infos: string[] = [];
  const d = new KubernetesDiscovery({
    namespace: NS,
    labelSelector: SELECTOR,
    port: 8000,
    kubeConfig: kubeConfigFor(api.url),
    backoffMs: 20,
    maxBackoffMs: 2000,
    logger: {
      debug() {},
      info: (m) => void infos.push(m),
      warn: (m) => void warnings.push(m),
      error() {},
    },
  });
  try {
    await d.start(() => {});
    await new Promise((r) => setTimeout(r, 700));
  } finally {
    await d.stop();
    await api.close();
  }
  // Doubling from 20 ms: 20 + 40 + 80 + 160 + 320 = 620 ms, so about six tries; without the
  // doubling (20 ms each, plus the requests) it was dozens.
  assert.ok(api.watches.length <= 8, `${api.watches.length} watches in 700 ms`);
  assert.equal(warnings.length, 1, "one warning for the run of failures");
  assert.deepEqual(infos.filter((m) => m.includes("recovered")), [], "a list alone is no recovery");
});

Deno.test("KubernetesDiscovery: a failing API server is retried with backoff", async () => {
  const api = await fakeApiServer();
  api.pods.set("vllm-0", pod("vllm-0", { ip: "10.1.0.10" }));
  api.failNextLists(2);
  const seen: string[][] = [];
  const warnings: string[] = [];
  const d = new KubernetesDiscovery({
    namespace: NS,
    labelSelector: SELECTOR,
    port: 8443,
    scheme: "https",
    kubeConfig: kubeConfigFor(api.url),
    backoffMs: 10,
    logger: { debug() {}, info() {}, warn: (m) => void warnings.push(m), error() {} },
  });
  try {
    await d.start((ws) => seen.push(ids(ws)));
    assert.deepEqual(seen, [], "the first look failed: nothing reported yet");
    await until("recovered", () => seen.length === 1);
    assert.deepEqual(seen[0], ["vllm-0=https://10.1.0.10:8443"]);
    assert.equal(api.listCalls, 3);
    assert.equal(warnings.length, 1, "one warning per run of failures");
  } finally {
    await d.stop();
    await api.close();
  }
});

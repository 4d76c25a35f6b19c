/**
 * KubernetesDiscovery: workers are the ready pods matching a label selector in one namespace,
 * followed with the API server's list + watch (`@kubernetes/client-node`).
 *
 * Rule:
 * - A pod is a worker when it has a `podIP`, its `Ready` condition is `True` and it is not being
 *   deleted (`deletionTimestamp` unset), the same test the endpoints controller applies. id = pod
 *   name (unique in a namespace), url = `scheme://podIP:port`. A StatefulSet pod that comes back
 *   under the same name with a new IP keeps its id but changes URL, so a reload drops its tree
 *   (the new engine's cache is empty).
 * - Loop: `GET /api/v1/namespaces/NS/pods?labelSelector=…` (list, remember `resourceVersion`), then
 *   `…&watch=true&resourceVersion=RV&allowWatchBookmarks=true` and apply ADDED / MODIFIED /
 *   DELETED events as they stream. When the watch ends normally (the API server closes watches
 *   after a few minutes) it is reopened from the last resourceVersion; on `410 Gone` (an ERROR
 *   event or status) the loop lists again. Any other failure waits with exponential backoff
 *   (`backoffMs` doubling to `maxBackoffMs`) and lists again; the last worker list is kept
 *   meanwhile.
 * - The list is reported after every list and every event that changes it (see `WorkerList`).
 *
 * RBAC: the service account needs `get`, `list` and `watch` on `pods` in the namespace
 * (`deploy/rbac.yaml`).
 *
 * @module
 */

import { CoreV1Api, KubeConfig, type V1Pod, Watch } from "@kubernetes/client-node";
import { sleep } from "../util/sleep.ts";
import type { DiscoveredWorker, Discovery, DiscoveryLogger, WorkersListener } from "./types.ts";
import { quietLogger } from "./types.ts";
import { isPort, WorkerList, workerUrl } from "./worker_list.ts";
import { errorMessage } from "../util/errors.ts";

/** Options of {@linkcode KubernetesDiscovery}. */
export interface KubernetesDiscoveryOptions {
  /** Namespace of the worker pods. */
  readonly namespace: string;
  /** e.g. `app=vllm,model=llama-3-8b`. */
  readonly labelSelector: string;
  /** Port the engine listens on in the pod. */
  readonly port: number;
  /** Default `http`. */
  readonly scheme?: "http" | "https";
  /**
   * Where the API server is and how to authenticate. Default: `loadFromDefault()`, which uses the
   * pod's service account when running in a cluster, else `$KUBECONFIG` / `~/.kube/config`.
   */
  readonly kubeConfig?: KubeConfig;
  /** First retry delay after a failure, ms (default 1000); doubles up to `maxBackoffMs`. */
  readonly backoffMs?: number;
  /** Default 30000. */
  readonly maxBackoffMs?: number;
  readonly logger?: DiscoveryLogger;
}

/** Whether `pod` should receive traffic: see the module rules. */
export function podIsReady(pod: V1Pod): boolean {
  if (!pod.status?.podIP || pod.metadata?.deletionTimestamp) return false;
  return pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** The worker for a ready pod, or null. */
export function workerFromPod(
  pod: V1Pod,
  port: number,
  scheme: "http" | "https" = "http",
): DiscoveredWorker | null {
  const name = pod.metadata?.name;
  if (!name || !podIsReady(pod)) return null;
  return { id: name, url: workerUrl(scheme, pod.status!.podIP!, port) };
}

/** Ends the current watch: "gone" means list again. */
type WatchEnd = { gone: boolean; error: unknown };

/** Ready pods of a label selector, followed by list + watch. */
export class KubernetesDiscovery implements Discovery {
  readonly kind = "kubernetes";
  readonly #o: KubernetesDiscoveryOptions;
  readonly #kc: KubeConfig;
  readonly #log: DiscoveryLogger;
  readonly #list = new WorkerList();
  readonly #pods = new Map<string, V1Pod>();
  #loop: Promise<void> | null = null;
  #stopped = false;
  /** Aborts the open watch. */
  #watchCtrl: AbortController | null = null;
  /** Ends the current wait (list, watch or backoff) early: stop. */
  #wake: (() => void) | null = null;

  constructor(options: KubernetesDiscoveryOptions) {
    if (options.namespace === "") throw new RangeError("kubernetes namespace must not be empty");
    if (!isPort(options.port)) {
      throw new RangeError(`kubernetes worker port must be 1..65535, got ${options.port}`);
    }
    this.#o = options;
    this.#log = options.logger ?? quietLogger;
    if (options.kubeConfig) this.#kc = options.kubeConfig;
    else {
      this.#kc = new KubeConfig();
      this.#kc.loadFromDefault();
    }
  }

  /** Resolves after the first list (successful or not). */
  start(onChange: WorkersListener): Promise<void> {
    if (this.#loop || this.#stopped) return Promise.resolve();
    this.#list.listen(onChange);
    const first = Promise.withResolvers<void>();
    this.#loop = this.#run(first.resolve);
    return first.promise;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#list.listen(null);
    this.#watchCtrl?.abort();
    this.#wake?.();
    await this.#loop;
  }

  current(): readonly DiscoveredWorker[] {
    return this.#list.current();
  }

  async #run(firstDone: () => void): Promise<void> {
    const { namespace, labelSelector } = this.#o;
    const core = this.#kc.makeApiClient(CoreV1Api);
    const base = this.#o.backoffMs ?? 1000;
    const max = this.#o.maxBackoffMs ?? 30_000;
    let backoff = base;
    let failing = false;
    while (!this.#stopped) {
      try {
        const list = await this.#unlessStopped(
          core.listNamespacedPod({ namespace, labelSelector }),
        );
        if (list === null) break;
        this.#pods.clear();
        for (const pod of list.items) {
          if (pod.metadata?.name) this.#pods.set(pod.metadata.name, pod);
        }
        this.#report();
        firstDone();
        let rv = list.metadata?.resourceVersion ?? "";
        // Watch until the API server says the resourceVersion is gone, or something fails.
        while (!this.#stopped) {
          const opened = performance.now();
          const end = await this.#watch(rv, (next) => rv = next);
          const lasted = performance.now() - opened;
          // Healthy again only once a watch ended cleanly or stayed open a while: a list that
          // works with a watch that fails at once (RBAC without `watch`) must keep backing off.
          if (!this.#stopped && (end.error === null || lasted >= max)) {
            if (failing) this.#log.info("kubernetes discovery recovered", { namespace });
            failing = false;
            backoff = base;
          }
          if (this.#stopped || end.gone) break;
          if (end.error !== null) throw end.error;
          // A server that closes watches at once must not make this a busy loop.
          if (lasted < base) await this.#pause(base);
        }
      } catch (err) {
        if (this.#stopped) break;
        (failing ? this.#log.debug : this.#log.warn).call(
          this.#log,
          "kubernetes discovery failed; keeping the last worker list",
          { namespace, label_selector: labelSelector, error: errorMessage(err), retry_ms: backoff },
        );
        failing = true;
        firstDone();
        await this.#pause(backoff);
        backoff = Math.min(backoff * 2, max);
      }
    }
    firstDone();
  }

  /** One watch from `rv`; resolves when it ends. */
  #watch(rv: string, setRv: (rv: string) => void): Promise<WatchEnd> {
    const { namespace, labelSelector } = this.#o;
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`;
    let gone = false;
    return new Promise<WatchEnd>((resolve) => {
      // stop() ends the wait itself: an aborted watch does not always report back.
      this.#wake = () => resolve({ gone: false, error: null });
      const onEvent = (type: string, obj: unknown) => {
        if (type === "ERROR") {
          // A Status object; 410: the resourceVersion is too old, list again.
          if ((obj as { code?: number })?.code === 410) gone = true;
          return;
        }
        const pod = obj as V1Pod;
        const next = pod?.metadata?.resourceVersion;
        if (next) setRv(next);
        if (type === "BOOKMARK" || !pod?.metadata?.name) return;
        if (type === "DELETED") this.#pods.delete(pod.metadata.name);
        else if (type === "ADDED" || type === "MODIFIED") this.#pods.set(pod.metadata.name, pod);
        else return;
        this.#report();
      };
      const onDone = (err: unknown) => {
        this.#watchCtrl = null;
        const status = (err as { statusCode?: number } | null)?.statusCode;
        if (status === 410) gone = true;
        resolve({ gone, error: gone || this.#stopped ? null : (err ?? null) });
      };
      new Watch(this.#kc).watch(
        path,
        { labelSelector, resourceVersion: rv || undefined, allowWatchBookmarks: true },
        onEvent,
        onDone,
      ).then((ctrl) => {
        this.#watchCtrl = ctrl;
        if (this.#stopped) ctrl.abort();
      }, (err) => resolve({ gone: false, error: err }));
    }).finally(() => this.#wake = null);
  }

  #report(): void {
    const scheme = this.#o.scheme ?? "http";
    const workers: DiscoveredWorker[] = [];
    for (const pod of this.#pods.values()) {
      const w = workerFromPod(pod, this.#o.port, scheme);
      if (w) workers.push(w);
    }
    if (this.#list.update(workers)) {
      this.#log.info("kubernetes discovery workers changed", {
        namespace: this.#o.namespace,
        workers: workers.map((w) => w.id).sort(),
      });
    }
  }

  /** `p`'s value, or null as soon as `stop()` is called. */
  #unlessStopped<T>(p: Promise<T>): Promise<T | null> {
    return new Promise<T | null>((resolve, reject) => {
      this.#wake = () => resolve(null);
      p.then(resolve, reject);
    }).finally(() => this.#wake = null);
  }

  #pause(ms: number): Promise<void> {
    const pause = sleep(ms);
    this.#wake = pause.wake;
    return pause.promise.finally(() => this.#wake = null);
  }
}

/**
 * Worker discovery: a static list, DNS (A/AAAA/SRV re-resolved on an interval) or Kubernetes
 * (ready pods of a label selector, list + watch). Each reports the whole list on change; the list
 * goes through the same path as a config reload.
 *
 * ```ts
 * import { createDiscovery, withDiscoveredWorkers } from "./mod.ts";
 * const discovery = createDiscovery(config.discovery, { staticWorkers: config.workers });
 * await discovery.start((workers) =>
 *   router.reload(withDiscoveredWorkers(router.config, workers, template))
 * );
 * ```
 *
 * @module
 */

export type { DiscoveredWorker, Discovery, DiscoveryLogger, WorkersListener } from "./types.ts";
export { StaticDiscovery } from "./static_discovery.ts";
export {
  DnsDiscovery,
  type DnsDiscoveryOptions,
  type DnsRecordType,
  type DnsResolver,
  type SrvRecord,
  workersFromRecords,
} from "./dns_discovery.ts";
export {
  KubernetesDiscovery,
  type KubernetesDiscoveryOptions,
  podIsReady,
  workerFromPod,
} from "./kubernetes_discovery.ts";
export { workerIdFrom, WorkerList, workerUrl } from "./worker_list.ts";
export {
  createDiscovery,
  type CreateDiscoveryOptions,
  DISCOVERY_MODES,
  DISCOVERY_STATIC,
  type DiscoveryConfig,
  type DiscoveryMode,
  resolveDiscoveryConfig,
  SERVICE_ACCOUNT_NAMESPACE_FILE,
  withDiscoveredWorkers,
  type WorkerTemplate,
} from "./config.ts";

/**
 * The factory from the resolved `discovery:` section to a {@linkcode Discovery}; the section itself
 * (types, defaults, checks) and {@linkcode withDiscoveredWorkers} are in `section.ts` and
 * re-exported here.
 *
 * @module
 */

import { DnsDiscovery } from "./dns_discovery.ts";
import { KubernetesDiscovery } from "./kubernetes_discovery.ts";
import type { DiscoveryConfig } from "./section.ts";
import { StaticDiscovery } from "./static_discovery.ts";
import type { DiscoveredWorker, Discovery, DiscoveryLogger } from "./types.ts";

export {
  DISCOVERY_MODES,
  DISCOVERY_STATIC,
  type DiscoveryConfig,
  type DiscoveryMode,
  resolveDiscoveryConfig,
  withDiscoveredWorkers,
  type WorkerTemplate,
} from "./section.ts";

/** Where the pod's own namespace is written in a Kubernetes pod. */
export const SERVICE_ACCOUNT_NAMESPACE_FILE =
  "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/** Options of {@linkcode createDiscovery} besides the config. */
export interface CreateDiscoveryOptions {
  /** The config's `workers` (static mode). */
  readonly staticWorkers: readonly DiscoveredWorker[];
  readonly logger?: DiscoveryLogger;
}

/** The discovery for `config` (not started). */
export function createDiscovery(
  config: DiscoveryConfig,
  opts: CreateDiscoveryOptions,
): Discovery {
  switch (config.mode) {
    case "static":
      return new StaticDiscovery(opts.staticWorkers);
    case "dns":
      return new DnsDiscovery({
        ...config.dns!,
        intervalMs: config.intervalMs,
        logger: opts.logger,
      });
    case "kubernetes": {
      const k = config.kubernetes!;
      return new KubernetesDiscovery({
        namespace: k.namespace ?? ownNamespace(),
        labelSelector: k.labelSelector,
        port: k.port,
        scheme: k.scheme,
        logger: opts.logger,
      });
    }
  }
}

/** The router pod's namespace, or `default` outside a cluster. */
function ownNamespace(): string {
  try {
    return Deno.readTextFileSync(SERVICE_ACCOUNT_NAMESPACE_FILE).trim() || "default";
  } catch {
    return "default";
  }
}

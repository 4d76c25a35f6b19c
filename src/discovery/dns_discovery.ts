/**
 * DnsDiscovery: workers from DNS records, re-resolved every `intervalMs`.
 *
 * Rule:
 * - `A` / `AAAA`: each address is a worker at the configured `port`; id `<address>-<port>` (`:` of
 *   IPv6 as `_`). A Kubernetes headless Service name gives one address per ready pod.
 * - `SRV`: each record of the lowest priority value is a worker at its target and port (RFC 2782:
 *   higher values are backups); weights are ignored (the router balances by load); a target of
 *   `.` means "no service" and is skipped. The configured `port`, when set, overrides the record's.
 *   id `<target>-<port>`; the URL keeps the name, so TLS certificates for it keep working.
 * - "No records" (`Deno.errors.NotFound`) empties the list only when {@link EMPTY_AFTER} lookups in
 *   a row say so: a headless Service with no ready pod answers that way, but Deno reports SERVFAIL
 *   and REFUSED from a flaky resolver as the same `NotFound`, and one of those must not empty the
 *   pool. Until then the last list stays (logged once). Any other failure (a timeout) keeps the
 *   last list too, logged once per run of failures.
 * - Each lookup is bounded by `timeoutMs` (default: the smaller of the interval and 5 s). The next
 *   lookup is scheduled after the previous one ended, so lookups never overlap.
 *
 * @module
 */

import type { DiscoveredWorker, Discovery, DiscoveryLogger, WorkersListener } from "./types.ts";
import { quietLogger } from "./types.ts";
import { isPort, workerIdFrom, WorkerList, workerUrl } from "./worker_list.ts";
import { errorMessage } from "../util/errors.ts";

/** Lookups in a row that must find no records before the worker list is emptied. */
export const EMPTY_AFTER = 3;

/** Record types DnsDiscovery reads. */
export type DnsRecordType = "A" | "AAAA" | "SRV";

/** An SRV record as `Deno.resolveDns` returns it. */
export interface SrvRecord {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}

/** Resolves `name`: addresses for A/AAAA, records for SRV. `Deno.resolveDns` by default. */
export type DnsResolver = (
  name: string,
  type: DnsRecordType,
  signal: AbortSignal,
) => Promise<readonly string[] | readonly SrvRecord[]>;

/** Options of {@linkcode DnsDiscovery}. */
export interface DnsDiscoveryOptions {
  /** Name to resolve, e.g. `vllm.llm.svc.cluster.local` or `_http._tcp.vllm.llm.svc.cluster.local`. */
  readonly name: string;
  readonly type: DnsRecordType;
  /** Worker port: required for A/AAAA; for SRV it overrides the records' ports. */
  readonly port?: number | null;
  /** Default `http`. */
  readonly scheme?: "http" | "https";
  /** Re-resolve period, ms. */
  readonly intervalMs: number;
  /** Time one lookup may take, ms. */
  readonly timeoutMs?: number;
  readonly resolver?: DnsResolver;
  readonly logger?: DiscoveryLogger;
}

const denoResolver: DnsResolver = (name, type, signal) =>
  type === "SRV"
    ? Deno.resolveDns(name, "SRV", { signal })
    : Deno.resolveDns(name, type, { signal });

/** Workers for `type` records; see the module rules. */
export function workersFromRecords(
  type: DnsRecordType,
  records: readonly string[] | readonly SrvRecord[],
  opts: { port?: number | null; scheme?: "http" | "https" },
): DiscoveredWorker[] {
  const scheme = opts.scheme ?? "http";
  if (type !== "SRV") {
    const port = opts.port;
    if (!isPort(port)) throw new RangeError(`a port is required for ${type} records, got ${port}`);
    return (records as readonly string[]).map((addr) => ({
      id: workerIdFrom(`${addr}-${port}`),
      url: workerUrl(scheme, addr, port),
    }));
  }
  const srv = (records as readonly SrvRecord[]).filter((r) =>
    r.target !== "." && r.target !== "" && (isPort(opts.port) || isPort(r.port))
  );
  if (srv.length === 0) return [];
  const best = Math.min(...srv.map((r) => r.priority));
  return srv.filter((r) => r.priority === best).map((r) => {
    const port = isPort(opts.port) ? opts.port : r.port;
    const host = r.target.endsWith(".") ? r.target.slice(0, -1) : r.target;
    return { id: workerIdFrom(`${host}-${port}`), url: workerUrl(scheme, host, port) };
  });
}

/** Workers from DNS, re-resolved on an interval. */
export class DnsDiscovery implements Discovery {
  readonly kind = "dns";
  readonly #o: DnsDiscoveryOptions;
  readonly #resolve: DnsResolver;
  readonly #log: DiscoveryLogger;
  readonly #list = new WorkerList();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inflight: AbortController | null = null;
  #running: Promise<void> | null = null;
  #started = false;
  #stopped = false;
  #failing = false;
  /** Lookups in a row that found no records. */
  #empty = 0;

  constructor(options: DnsDiscoveryOptions) {
    if (options.name === "") throw new RangeError("dns name must not be empty");
    if (!(options.intervalMs > 0)) {
      throw new RangeError(`dns interval must be > 0 ms, got ${options.intervalMs}`);
    }
    if (options.type !== "SRV" && !isPort(options.port)) {
      throw new RangeError(`a port is required for ${options.type} records, got ${options.port}`);
    }
    this.#o = options;
    this.#resolve = options.resolver ?? denoResolver;
    this.#log = options.logger ?? quietLogger;
  }

  async start(onChange: WorkersListener): Promise<void> {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#list.listen(onChange);
    await this.#tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#list.listen(null);
    clearTimeout(this.#timer);
    this.#inflight?.abort();
    await this.#running;
  }

  current(): readonly DiscoveredWorker[] {
    return this.#list.current();
  }

  /** One lookup, then the next one is scheduled. */
  #tick(): Promise<void> {
    this.#timer = undefined;
    this.#running = this.#lookup().finally(() => {
      this.#running = null;
      if (!this.#stopped) this.#timer = setTimeout(() => void this.#tick(), this.#o.intervalMs);
    });
    return this.#running;
  }

  async #lookup(): Promise<void> {
    const ctrl = new AbortController();
    this.#inflight = ctrl;
    const timeoutMs = this.#o.timeoutMs ?? Math.min(this.#o.intervalMs, 5000);
    const timer = setTimeout(
      () => ctrl.abort(new Error(`timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const { name, type } = this.#o;
    try {
      let workers: DiscoveredWorker[];
      try {
        workers = workersFromRecords(type, await this.#resolve(name, type, ctrl.signal), this.#o);
        this.#empty = 0;
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
        workers = [];
        this.#empty++;
      }
      if (this.#stopped) return;
      if (workers.length === 0 && this.#empty > 0 && this.#empty < EMPTY_AFTER) {
        if (this.#empty === 1 && this.#list.current().length > 0) {
          this.#log.warn("dns discovery found no records; keeping the last worker list", {
            name,
            type,
            workers: this.#list.current().length,
            empties_after: EMPTY_AFTER,
          });
        }
        return;
      }
      if (this.#failing) this.#log.info("dns discovery resolves again", { name, type });
      this.#failing = false;
      if (this.#list.update(workers)) {
        this.#log.info("dns discovery workers changed", {
          name,
          type,
          workers: workers.map((w) => w.id),
        });
      }
    } catch (err) {
      if (this.#stopped) return;
      const error = ctrl.signal.aborted ? String(ctrl.signal.reason) : errorMessage(err);
      (this.#failing ? this.#log.debug : this.#log.warn).call(
        this.#log,
        "dns discovery lookup failed; keeping the last worker list",
        { name, type, error, workers: this.#list.current().length },
      );
      this.#failing = true;
    } finally {
      clearTimeout(timer);
      this.#inflight = null;
    }
  }
}

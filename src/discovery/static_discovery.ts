/**
 * StaticDiscovery: today's behaviour, the worker list of the config file, reported once.
 *
 * It exists so that the router wires every mode the same way (`discovery.start(onChange)`); a new
 * static list arrives through a config reload, not through this class.
 *
 * @module
 */

import type { DiscoveredWorker, Discovery, WorkersListener } from "./types.ts";
import { WorkerList } from "./worker_list.ts";

/** A fixed worker list. */
export class StaticDiscovery implements Discovery {
  readonly kind = "static";
  readonly #workers: readonly DiscoveredWorker[];
  readonly #list = new WorkerList();

  constructor(workers: readonly DiscoveredWorker[]) {
    this.#workers = workers;
  }

  start(onChange: WorkersListener): Promise<void> {
    this.#list.listen(onChange);
    this.#list.update(this.#workers);
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.#list.listen(null);
    return Promise.resolve();
  }

  current(): readonly DiscoveredWorker[] {
    return this.#list.current();
  }
}

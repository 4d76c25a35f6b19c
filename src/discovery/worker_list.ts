/**
 * WorkerList: the de-duplicating, sorting and change-detecting step every discovery shares, plus
 * the id and URL rules for discovered hosts.
 *
 * Rule: a list is normalized (sorted by id; a second entry with an id already seen is dropped) and
 * reported only when it differs from the last one reported, compared by (id, url) pairs.
 *
 * @module
 */

import type { DiscoveredWorker, WorkersListener } from "./types.ts";

/** Keeps the last reported list and reports a new one only when it changed. */
export class WorkerList {
  #last: readonly DiscoveredWorker[] = [];
  #key: string | null = null;
  #listener: WorkersListener | null = null;

  /** Sets where changes go (null: nowhere, after stop). */
  listen(fn: WorkersListener | null): void {
    this.#listener = fn;
  }

  /** The last list reported. */
  current(): readonly DiscoveredWorker[] {
    return this.#last;
  }

  /** Normalizes `workers`; reports them when they differ from the last list. Returns whether. */
  update(workers: Iterable<DiscoveredWorker>): boolean {
    const byId = new Map<string, DiscoveredWorker>();
    for (const w of workers) if (!byId.has(w.id)) byId.set(w.id, { id: w.id, url: w.url });
    const list = [...byId.values()].sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    const key = JSON.stringify(list.map((w) => [w.id, w.url]));
    if (key === this.#key) return false;
    this.#key = key;
    this.#last = Object.freeze(list);
    this.#listener?.(this.#last);
    return true;
  }
}

/** A worker id from free text: characters outside `[A-Za-z0-9._-]` become `_`. */
export function workerIdFrom(text: string): string {
  const id = text.replace(/[^A-Za-z0-9._-]/g, "_");
  return id === "" ? "_" : id;
}

/** `scheme://host:port`, with IPv6 literals bracketed and a DNS name's trailing dot dropped. */
export function workerUrl(scheme: "http" | "https", host: string, port: number): string {
  const h = host.endsWith(".") ? host.slice(0, -1) : host;
  return `${scheme}://${h.includes(":") ? `[${h}]` : h}:${port}`;
}

/** Whether `port` is a TCP port number (1..65535). */
export function isPort(port: unknown): port is number {
  return Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535;
}

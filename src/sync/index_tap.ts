/**
 * Tapping a prefix index: its `insert` and `truncate` are wrapped on the instance so that each
 * call, after the original ran, is also handed to an observer (the sync publishes it). One tap per
 * index at a time: tapping again for the same owner and worker is a no-op, for another one it
 * replaces the first; `untap` restores whatever own properties the index had.
 *
 * @module
 */

import type { ChunkHashes, PrefixIndex } from "../prefix/types.ts";

/** What the observer of a tapped index is told. */
export interface IndexObserver {
  insert(hashes: ChunkHashes): void;
  truncate(hashes: ChunkHashes, keepChunks: number): void;
}

/** Which owner tapped an index, and the own properties the tap replaced (restored by `untap`). */
const TAPS = new WeakMap<PrefixIndex, {
  owner: object;
  worker: string;
  own: { insert?: PropertyDescriptor; truncate?: PropertyDescriptor };
}>();

/**
 * Wraps `index` so that its inserts and truncates also reach `observer` (see the module comment).
 * The wrapper calls the original first, so the local index never waits on the observer.
 */
export function tapIndex(
  index: PrefixIndex,
  owner: object,
  worker: string,
  observer: IndexObserver,
): void {
  const tapped = TAPS.get(index);
  if (tapped?.owner === owner && tapped.worker === worker) return;
  if (tapped) untap(index);
  const insert = index.insert;
  const truncate = index.truncate;
  const own = {
    insert: Object.getOwnPropertyDescriptor(index, "insert"),
    truncate: Object.getOwnPropertyDescriptor(index, "truncate"),
  };
  Object.defineProperty(index, "insert", {
    value: (hashes: ChunkHashes): void => {
      insert.call(index, hashes);
      observer.insert(hashes);
    },
    configurable: true,
    writable: true,
  });
  if (truncate) {
    Object.defineProperty(index, "truncate", {
      value: (hashes: ChunkHashes, keepChunks: number): void => {
        truncate.call(index, hashes, keepChunks);
        observer.truncate(hashes, keepChunks);
      },
      configurable: true,
      writable: true,
    });
  }
  TAPS.set(index, { owner, worker, own });
}

/** Removes a tap from `index`, restoring what was there before. */
export function untap(index: PrefixIndex): void {
  const t = TAPS.get(index);
  if (!t) return;
  TAPS.delete(index);
  for (const key of ["insert", "truncate"] as const) {
    const d = t.own[key];
    if (d) Object.defineProperty(index, key, d);
    else delete (index as unknown as Record<string, unknown>)[key];
  }
}

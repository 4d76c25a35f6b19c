/**
 * Wire form of a routing record: the flat field list of one Redis stream entry.
 *
 * Fields (short names: every request writes one entry):
 * - `r` replica id, `w` worker id, `t` publisher wall time (ms since the epoch, decimal)
 * - `i` the publishing process's incarnation (random per start); absent from older routers
 * - `h` the chunk-hash chain: the `Uint32Array` `[hi0, lo0, hi1, lo1, …]` as little-endian bytes in
 *   base64 (8 bytes per chunk, so about a third of the prompt's size for 32-byte chunks)
 * - `c` chunk size the hashes were made with (replicas with another chunk size ignore the record)
 * - `s` hash scheme the hashes were made with; absent means 1 (replicas with another scheme ignore
 *   the record)
 * - `o` absent for an insert, `t` for a truncate, then `k` = chunks kept
 *
 * Little-endian is written explicitly, so replicas on machines of different byte order agree.
 *
 * @module
 */

import type { ChunkHashes } from "../prefix/types.ts";
import type { SyncRecord } from "./types.ts";

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The hash chain as base64 of its little-endian bytes. */
export function encodeHashes(hashes: ChunkHashes): string {
  const n = hashes.length & ~1;
  if (LITTLE_ENDIAN) return new Uint8Array(hashes.buffer, hashes.byteOffset, n * 4).toBase64();
  const bytes = new Uint8Array(n * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < n; i++) view.setUint32(4 * i, hashes[i], true);
  return bytes.toBase64();
}

/**
 * The hash chain from `encodeHashes` text.
 * @throws {RangeError} when the text is not base64 of a whole number of chunks (8 bytes each)
 */
export function decodeHashes(text: string): ChunkHashes {
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.fromBase64(text);
  } catch {
    throw new RangeError(`hash chain is not base64, got ${JSON.stringify(text.slice(0, 40))}`);
  }
  if (bytes.length % 8 !== 0) {
    throw new RangeError(`hash chain must be a multiple of 8 bytes, got ${bytes.length}`);
  }
  if (LITTLE_ENDIAN) return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  const out = new Uint32Array(bytes.length / 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint32(4 * i, true);
  return out;
}

/** The stream entry's fields, in XADD order (`field, value, field, value, …`). */
export function recordFields(r: SyncRecord): string[] {
  const f = ["r", r.replica, "w", r.worker, "h", encodeHashes(r.hashes), "t", String(r.time)];
  if (r.incarnation !== "") f.push("i", r.incarnation);
  if (r.chunkSize > 0) f.push("c", String(r.chunkSize));
  f.push("s", String(r.hashScheme));
  if (r.op === "truncate") f.push("o", "t", "k", String(r.keepChunks));
  return f;
}

/**
 * A record from a stream entry's flat field list (as XREAD returns it).
 * @throws {RangeError} naming the first field that is missing or malformed
 */
export function parseRecord(fields: readonly string[]): SyncRecord {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i], fields[i + 1]);
  const need = (k: string) => {
    const v = m.get(k);
    if (v === undefined) throw new RangeError(`record has no field ${k}`);
    return v;
  };
  const int = (k: string, v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(`record field ${k} must be a non-negative integer, got ${v}`);
    }
    return n;
  };
  const op = m.get("o") === "t" ? "truncate" : "insert";
  return {
    replica: need("r"),
    incarnation: m.get("i") ?? "",
    worker: need("w"),
    op,
    hashes: decodeHashes(need("h")),
    keepChunks: op === "truncate" ? int("k", need("k")) : 0,
    chunkSize: m.has("c") ? int("c", m.get("c")!) : 0,
    hashScheme: m.has("s") ? int("s", m.get("s")!) : 1,
    time: int("t", need("t")),
  };
}

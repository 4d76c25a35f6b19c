/**
 * One replay request to an engine's replay ROUTER over a DEALER connection.
 *
 * Rules (vLLM's replay protocol, KV-EVENTS.md): send `[empty, start_seq (8-byte big-endian)]`
 * (the empty delimiter frame is what vLLM's ROUTER expects after the identity it prepends); read
 * `[empty, seq, payload]` replies until `seq` is -1 (eight 0xFF bytes). Replies without the empty
 * frame (`[seq, payload]`) are accepted too. The whole exchange is bounded by `timeoutMs`, by
 * `maxBatches` and by `maxBytes`; going past any of them, a malformed reply, or the connection
 * failing ends the replay as failed. A fresh connection is used for each request and always
 * closed, so a replay never leaves a socket or timer behind.
 *
 * @module
 */

import { connectZmtp } from "./client.ts";
import type { ZmtpConnection } from "./connection.ts";
import type { FrameLimits } from "./zmtp.ts";

/** One replayed batch. */
export interface ReplayedBatch {
  readonly seq: number;
  readonly payload: Uint8Array;
}

/** What a replay got. */
export type ReplayResult =
  | { readonly ok: true; readonly batches: readonly ReplayedBatch[] }
  | { readonly ok: false; readonly reason: string };

/** Bounds of one replay. */
export interface ReplayOptions {
  /** Whole exchange, connect included; default 5000 ms. */
  readonly timeoutMs?: number;
  /** Default 100 000. */
  readonly maxBatches?: number;
  /** Sum of payloads; default 64 MiB. */
  readonly maxBytes?: number;
  readonly limits?: FrameLimits;
  /** Ends the replay early (as failed), closing its socket; for an owner's stop. */
  readonly signal?: AbortSignal;
}

const EMPTY = new Uint8Array(0);

/** Reads an 8-byte big-endian sequence: -1 for the end marker, null when not a safe integer. */
export function readSeq(b: Uint8Array): number | null {
  if (b.length !== 8) return null;
  const v = new DataView(b.buffer, b.byteOffset, 8).getBigInt64(0);
  if (v === -1n) return -1;
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return Number(v);
}

/** Encodes a sequence number as 8 bytes big-endian. */
export function seqBytes(seq: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(seq));
  return b;
}

/** Asks `endpoint` for every kept batch with seq ≥ `start`; never throws. */
export async function requestReplay(
  endpoint: string,
  start: number,
  options: ReplayOptions = {},
): Promise<ReplayResult> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const maxBatches = options.maxBatches ?? 100_000;
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  const batches: ReplayedBatch[] = [];
  let bytes = 0;
  const done = Promise.withResolvers<string | null>();
  const timer = setTimeout(() => done.resolve(`replay timed out after ${timeoutMs} ms`), timeoutMs);
  let conn: ZmtpConnection | null = null;
  const onAbort = () => done.resolve("replay aborted");
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const onMessage = (frames: Uint8Array[]): void => {
    const f = frames.length === 3 && frames[0].length === 0 ? frames.slice(1) : frames;
    const seq = f.length === 2 ? readSeq(f[0]) : null;
    if (seq === null) return done.resolve("malformed replay reply");
    if (seq === -1) return done.resolve(null);
    bytes += f[1].length;
    if (batches.length >= maxBatches || bytes > maxBytes) return done.resolve("replay too large");
    batches.push({ seq, payload: f[1] });
  };
  try {
    const opening = connectZmtp(
      endpoint,
      {
        socketType: "DEALER",
        limits: options.limits,
        connectTimeoutMs: timeoutMs,
        handshakeTimeoutMs: timeoutMs,
      },
      { message: onMessage, closed: (why) => done.resolve(`replay connection closed: ${why}`) },
    );
    const opened = await Promise.race([opening, done.promise.then(() => null)]);
    if (opened === null) {
      await opening.then((c) => (c.close(), c.finished()), () => {});
      return { ok: false, reason: (await done.promise) ?? "replay ended" };
    }
    conn = opened;
    conn.send([EMPTY, seqBytes(start)]);
    const failure = await done.promise;
    return failure === null ? { ok: true, batches } : { ok: false, reason: failure };
  } catch (e) {
    return { ok: false, reason: `replay failed: ${e instanceof Error ? e.message : String(e)}` };
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    conn?.close("replay done");
    await conn?.finished();
  }
}

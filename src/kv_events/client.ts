/**
 * Connecting ZMTP sockets: open a TCP connection to `tcp://host:port` within a time limit and run
 * the ZMTP handshake. A SUB then sends its subscriptions as ZMTP 3.0 subscription messages (a
 * first byte of 1, then the topic prefix), which libzmq accepts from 3.0 and 3.1 peers alike;
 * a DEALER sends and receives multipart messages as they are.
 *
 * @module
 */

import { ZmtpConnection, type ZmtpHandlers, type ZmtpOptions } from "./connection.ts";
import { parseEndpoint } from "./endpoint.ts";
import { subscriptionBody } from "./zmtp.ts";

/** Settings of an outgoing connection. */
export interface ConnectOptions extends ZmtpOptions {
  /** TCP connect limit, ms (default 5000); the handshake has its own. */
  readonly connectTimeoutMs?: number;
  /** Aborts the connect or the handshake (the socket is closed, the call throws). */
  readonly signal?: AbortSignal;
}

/**
 * Connects to `endpoint` and completes the handshake; throws (a `RangeError` for a bad endpoint,
 * else a connection or handshake error) with the socket closed.
 */
export async function connectZmtp(
  endpoint: string,
  options: ConnectOptions,
  handlers: ZmtpHandlers = {},
): Promise<ZmtpConnection> {
  const { hostname, port } = parseEndpoint(endpoint);
  const outer = options.signal;
  if (outer?.aborted) throw new Error(`connect to ${endpoint} aborted`);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), options.connectTimeoutMs ?? 5000);
  const onAbort = () => abort.abort();
  outer?.addEventListener("abort", onAbort, { once: true });
  let tcp: Deno.TcpConn;
  try {
    tcp = await Deno.connect({ hostname, port, signal: abort.signal });
  } catch (e) {
    if (outer?.aborted) throw new Error(`connect to ${endpoint} aborted`);
    if (abort.signal.aborted) throw new Error(`connect to ${endpoint} timed out`);
    throw e;
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onAbort);
  }
  try {
    tcp.setNoDelay(true);
  } catch { /* not fatal */ }
  const conn = new ZmtpConnection(tcp, options, handlers);
  const onAbortHandshake = () => conn.close("aborted");
  outer?.addEventListener("abort", onAbortHandshake, { once: true });
  try {
    await conn.start();
  } catch (e) {
    await conn.finished();
    throw e;
  } finally {
    outer?.removeEventListener("abort", onAbortHandshake);
  }
  return conn;
}

/** Subscribes a connected SUB to messages whose first frame starts with `topic`. */
export function subscribe(conn: ZmtpConnection, topic: Uint8Array | string): boolean {
  const t = typeof topic === "string" ? new TextEncoder().encode(topic) : topic;
  return conn.send([subscriptionBody(t, true)]);
}

/** Whether `frame` starts with `prefix`. */
export function hasPrefix(frame: Uint8Array, prefix: Uint8Array): boolean {
  if (frame.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (frame[i] !== prefix[i]) return false;
  return true;
}

/**
 * Bound ZMTP sockets, for the simulated engine (and tests): a PUB that accepts many subscribers
 * and a ROUTER that serves replay requests, both on `tcp://*:port` or `tcp://host:port`.
 *
 * Rules:
 * - Accepting: at most `maxPeers` connections (default 256; extra ones are closed at once); each
 *   must finish the handshake within the connection's `handshakeTimeoutMs`, so idle or garbage
 *   connections cost nothing for long.
 * - PUB: a peer's subscriptions arrive as ZMTP 3.0 messages (first byte 1 = subscribe,
 *   0 = cancel, then the prefix) or as 3.1 SUBSCRIBE/CANCEL commands; at most
 *   `maxSubscriptions` (default 64) per peer. `publish` encodes the message once and queues it
 *   for every peer whose prefix matches the first frame; a peer at its high-water mark loses the
 *   message (counted in `dropped`), as libzmq's PUB drops: publishing never waits and memory per
 *   slow peer stays under `sendHwmBytes`.
 * - ROUTER: each peer is known by its READY `Identity` when that is non-empty and unused, else by
 *   a generated 5-byte one (0, then a counter), as libzmq does. Received messages are handed over
 *   with the identity in front; `send(identity, frames)` routes to that peer or returns false.
 * - `stop()` closes the listener and every peer and waits for the accept loop to end.
 *
 * @module
 */

import { ZmtpConnection, type ZmtpOptions } from "./connection.ts";
import { hasPrefix } from "./client.ts";
import { parseEndpoint } from "./endpoint.ts";
import { encodeMessage, type SocketType } from "./zmtp.ts";

/** Settings of a bound socket; connection settings apply to every peer. */
export interface ServerOptions extends Omit<ZmtpOptions, "socketType" | "asServer"> {
  /** `tcp://*:port`, `tcp://host:port`; port 0 takes any free port. */
  readonly endpoint: string;
  /** Connections held at most; default 256. */
  readonly maxPeers?: number;
}

interface PeerHooks {
  ready(conn: ZmtpConnection): boolean;
  message(conn: ZmtpConnection, frames: Uint8Array[]): void;
  command(conn: ZmtpConnection, name: string, data: Uint8Array): void;
  closed(conn: ZmtpConnection): void;
}

/** A listener whose accepted connections speak ZMTP as `socketType`. */
class ZmtpListener {
  readonly #type: SocketType;
  readonly #opts: ServerOptions;
  readonly #hooks: PeerHooks;
  #listener: Deno.TcpListener | null = null;
  #loop: Promise<void> | null = null;
  readonly peers = new Set<ZmtpConnection>();
  /** Connections whose socket loops may still run (closed ones until they finish). */
  readonly #live = new Set<ZmtpConnection>();
  /** Connections refused because `maxPeers` were open. */
  refused = 0;
  /** Connections whose handshake failed. */
  failedHandshakes = 0;

  constructor(type: SocketType, opts: ServerOptions, hooks: PeerHooks) {
    this.#type = type;
    this.#opts = opts;
    this.#hooks = hooks;
  }

  /** Binds and starts accepting; returns the bound port. */
  start(): number {
    if (this.#listener !== null) return this.#listener.addr.port;
    const { hostname, port } = parseEndpoint(this.#opts.endpoint, true);
    this.#listener = Deno.listen({ hostname, port });
    this.#loop = this.#accept(this.#listener);
    return this.#listener.addr.port;
  }

  async #accept(listener: Deno.TcpListener): Promise<void> {
    try {
      for await (const tcp of listener) this.#admit(tcp);
    } catch { /* listener closed */ }
  }

  #admit(tcp: Deno.TcpConn): void {
    if (this.peers.size >= (this.#opts.maxPeers ?? 256)) {
      this.refused++;
      try {
        tcp.close();
      } catch { /* gone */ }
      return;
    }
    try {
      tcp.setNoDelay(true);
    } catch { /* not fatal */ }
    const conn: ZmtpConnection = new ZmtpConnection(
      tcp,
      { ...this.#opts, socketType: this.#type, asServer: true },
      {
        ready: () => {
          if (!this.#hooks.ready(conn)) conn.close("refused by the socket");
        },
        message: (frames) => this.#hooks.message(conn, frames),
        command: (name, data) => this.#hooks.command(conn, name, data),
        closed: () => {
          this.peers.delete(conn);
          this.#hooks.closed(conn);
        },
      },
    );
    this.peers.add(conn);
    this.#live.add(conn);
    conn.finished().then(() => this.#live.delete(conn));
    conn.start().catch(() => this.failedHandshakes++);
  }

  /** Stops accepting and closes every peer. */
  async stop(): Promise<void> {
    const l = this.#listener;
    this.#listener = null;
    if (l !== null) {
      try {
        l.close();
      } catch { /* closed */ }
    }
    const live = [...this.#live];
    for (const p of live) p.close("socket stopped");
    await Promise.all([this.#loop, ...live.map((p) => p.finished())]);
    this.#loop = null;
  }
}

/** A bound PUB socket; see the module comment. */
export class PubServer {
  readonly #listener: ZmtpListener;
  readonly #subs = new Map<ZmtpConnection, Uint8Array[]>();
  readonly #maxSubs: number;
  /** Messages published. */
  published = 0;
  /** Peer deliveries dropped at a high-water mark. */
  dropped = 0;

  constructor(options: ServerOptions & { readonly maxSubscriptions?: number }) {
    this.#maxSubs = options.maxSubscriptions ?? 64;
    this.#listener = new ZmtpListener("PUB", options, {
      ready: (conn) => {
        if (!this.#subs.has(conn)) this.#subs.set(conn, []);
        return true;
      },
      message: (conn, frames) => {
        const f = frames[0];
        if (frames.length === 1 && f.length > 0 && (f[0] === 0 || f[0] === 1)) {
          this.#subscription(conn, f.subarray(1), f[0] === 1);
        }
      },
      command: (conn, name, data) => {
        if (name === "SUBSCRIBE") this.#subscription(conn, data, true);
        else if (name === "CANCEL") this.#subscription(conn, data, false);
      },
      closed: (conn) => this.#subs.delete(conn),
    });
  }

  /** Binds; returns the port. */
  start(): number {
    return this.#listener.start();
  }

  /** Closes the socket and its peers. */
  stop(): Promise<void> {
    return this.#listener.stop();
  }

  /** Connected subscribers (handshake done). */
  get subscribers(): number {
    return this.#subs.size;
  }

  /** Subscriptions over all peers (a subscriber's arrive just after its handshake). */
  get subscriptions(): number {
    let n = 0;
    for (const list of this.#subs.values()) n += list.length;
    return n;
  }

  /** Bytes queued for all peers together. */
  get queuedBytes(): number {
    let n = 0;
    for (const p of this.#listener.peers) n += p.queuedBytes;
    return n;
  }

  /** Open connections, including those still in their handshake. */
  get connections(): ReadonlySet<ZmtpConnection> {
    return this.#listener.peers;
  }

  /** Publishes to every matching subscriber; returns how many got it queued. */
  publish(frames: readonly Uint8Array[]): number {
    this.published++;
    if (frames.length === 0) return 0;
    let bytes: Uint8Array | null = null;
    let delivered = 0;
    for (const [conn, prefixes] of this.#subs) {
      if (!prefixes.some((p) => hasPrefix(frames[0], p))) continue;
      bytes ??= encodeMessage(frames);
      if (conn.sendEncoded(bytes)) delivered++;
      else this.dropped++;
    }
    return delivered;
  }

  #subscription(conn: ZmtpConnection, topic: Uint8Array, on: boolean): void {
    const list = this.#subs.get(conn);
    if (list === undefined) return;
    const at = list.findIndex((p) => p.length === topic.length && hasPrefix(p, topic));
    if (on && at < 0 && list.length < this.#maxSubs) list.push(topic.slice());
    else if (!on && at >= 0) list.splice(at, 1);
  }
}

/** A bound ROUTER socket; see the module comment. */
export class RouterServer {
  readonly #listener: ZmtpListener;
  readonly #byId = new Map<string, ZmtpConnection>();
  readonly #ids = new Map<ZmtpConnection, Uint8Array>();
  #next = 1;

  constructor(
    options: ServerOptions,
    onMessage: (identity: Uint8Array, frames: Uint8Array[]) => void,
  ) {
    this.#listener = new ZmtpListener("ROUTER", options, {
      ready: (conn) => {
        let id = conn.peer?.identity ?? new Uint8Array(0);
        if (id.length === 0 || id[0] === 0 || this.#byId.has(idKey(id))) id = this.#generate();
        this.#byId.set(idKey(id), conn);
        this.#ids.set(conn, id);
        return true;
      },
      message: (conn, frames) => {
        const id = this.#ids.get(conn);
        if (id !== undefined) onMessage(id, frames);
      },
      command: () => {},
      closed: (conn) => {
        const id = this.#ids.get(conn);
        if (id === undefined) return;
        this.#ids.delete(conn);
        this.#byId.delete(idKey(id));
      },
    });
  }

  #generate(): Uint8Array {
    const id = new Uint8Array(5);
    new DataView(id.buffer).setUint32(1, this.#next++ >>> 0);
    return id;
  }

  /** Binds; returns the port. */
  start(): number {
    return this.#listener.start();
  }

  /** Closes the socket and its peers. */
  stop(): Promise<void> {
    return this.#listener.stop();
  }

  /** The connection of a peer, for back-pressure (`whenDrained`); undefined when gone. */
  peer(identity: Uint8Array): ZmtpConnection | undefined {
    return this.#byId.get(idKey(identity));
  }

  /** Sends `frames` to the peer `identity`; false when unknown, closed or at its HWM. */
  send(identity: Uint8Array, frames: readonly Uint8Array[]): boolean {
    return this.peer(identity)?.send(frames) ?? false;
  }
}

function idKey(id: Uint8Array): string {
  let s = "";
  for (const b of id) s += b.toString(16).padStart(2, "0");
  return s;
}

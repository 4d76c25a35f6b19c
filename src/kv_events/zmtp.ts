/**
 * ZMTP 3.0/3.1 wire format (ZeroMQ RFC 23 and 37), the subset the router needs to talk to engines'
 * ZMQ sockets without a native addon: the 64-byte greeting, the NULL mechanism's READY command
 * with metadata, frames, and the 3.1 commands PING, PONG, SUBSCRIBE and CANCEL. Pure functions
 * and one push parser; the socket layer is `connection.ts`.
 *
 * Rules:
 * - Greeting: `FF 00×7 01 7F`, version 3.1, mechanism `NULL` zero-padded to 20 bytes, as-server
 *   byte, 31 zero bytes of filler. A peer whose signature is wrong is refused after its first 10
 *   bytes (so an HTTP client or a port scanner is dropped at once); one whose major version is
 *   below 3 or whose mechanism is not NULL is refused after 64.
 * - Frame: a flags byte (bit 0 MORE, bit 1 LONG, bit 2 COMMAND; other bits must be 0), then the
 *   body size as one byte (short) or 8 bytes big-endian (long), then the body. A command never
 *   has MORE and never sits inside a multipart message.
 * - Command body: name length (1 byte), name, data. READY's data is metadata: name length
 *   (1 byte), name (case-insensitive), value length (4 bytes big-endian), value.
 * - PING data: TTL in tenths of a second (2 bytes), then a context of at most 16 bytes that PONG
 *   echoes.
 *
 * Limits: the parser checks a frame's declared size against `maxFrameBytes` (commands against
 * `maxCommandBytes`) and the message's running total against `maxMessageBytes` and
 * `maxFrames` BEFORE it allocates, so a hostile peer can make it hold at most one message of
 * `maxMessageBytes` (plus the frames' headers) per connection. Any violation is a protocol
 * error: the caller closes the connection.
 *
 * Cost: one copy of each body out of the read buffer (the read buffer is reused); headers are
 * parsed byte by byte only when they straddle two reads.
 *
 * @module
 */

/** Flag bits of a frame's first byte. */
export const FLAG_MORE = 0x01;
export const FLAG_LONG = 0x02;
export const FLAG_COMMAND = 0x04;

/** Bytes in a ZMTP 3 greeting. */
export const GREETING_BYTES = 64;

/** Socket types this module speaks with, and those each accepts as a peer (RFC 23 §3). */
export type SocketType = "PUB" | "SUB" | "XPUB" | "XSUB" | "DEALER" | "ROUTER" | "REQ" | "REP";

const PEERS: Readonly<Record<SocketType, readonly string[]>> = {
  PUB: ["SUB", "XSUB"],
  XPUB: ["SUB", "XSUB"],
  SUB: ["PUB", "XPUB"],
  XSUB: ["PUB", "XPUB"],
  DEALER: ["ROUTER", "DEALER", "REP"],
  ROUTER: ["DEALER", "REQ", "ROUTER"],
  REQ: ["ROUTER", "REP"],
  REP: ["REQ", "DEALER"],
};

/** Whether a socket of type `ours` may talk to a peer that says it is `theirs`. */
export function compatible(ours: SocketType, theirs: string): boolean {
  return PEERS[ours].includes(theirs.toUpperCase());
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Our greeting: ZMTP 3.1, NULL mechanism. */
export function greeting(asServer: boolean): Uint8Array {
  const g = new Uint8Array(GREETING_BYTES);
  g[0] = 0xff;
  g[8] = 0x01; // ZMTP 1.0 read this as a length; libzmq sends 1 too
  g[9] = 0x7f;
  g[10] = 3;
  g[11] = 1;
  g.set(encoder.encode("NULL"), 12);
  g[32] = asServer ? 1 : 0;
  return g;
}

/** What a peer's greeting says. */
export interface PeerGreeting {
  readonly major: number;
  readonly minor: number;
  readonly mechanism: string;
  readonly asServer: boolean;
}

/** Checks the first 10 bytes (the signature); returns an error message or null. */
export function checkSignature(b: Uint8Array): string | null {
  return b[0] === 0xff && b[9] === 0x7f ? null : "bad ZMTP signature";
}

/** Parses a 64-byte greeting; returns the greeting or an error message. */
export function parseGreeting(b: Uint8Array): PeerGreeting | string {
  const sig = checkSignature(b);
  if (sig !== null) return sig;
  const major = b[10];
  const minor = b[11];
  if (major < 3) return `ZMTP version ${major}.${minor} is not supported`;
  let end = 12;
  while (end < 32 && b[end] !== 0) end++;
  const mechanism = decoder.decode(b.subarray(12, end));
  if (mechanism !== "NULL") return `ZMTP mechanism ${JSON.stringify(mechanism)} is not supported`;
  return { major, minor, mechanism, asServer: b[32] === 1 };
}

/** Header bytes for a frame of `size` bytes. */
function headerBytes(size: number): number {
  return size > 255 ? 9 : 2;
}

/** Writes a frame header at `off`; returns the offset after it. */
function writeHeader(out: Uint8Array, off: number, flags: number, size: number): number {
  if (size > 255) {
    out[off] = flags | FLAG_LONG;
    const view = new DataView(out.buffer, out.byteOffset + off + 1, 8);
    view.setUint32(0, Math.floor(size / 0x100000000));
    view.setUint32(4, size >>> 0);
    return off + 9;
  }
  out[off] = flags;
  out[off + 1] = size;
  return off + 2;
}

/** Encodes a multipart message (MORE on every frame but the last) as one buffer. */
export function encodeMessage(frames: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const f of frames) total += headerBytes(f.length) + f.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    off = writeHeader(out, off, i < frames.length - 1 ? FLAG_MORE : 0, f.length);
    out.set(f, off);
    off += f.length;
  }
  return out;
}

/** Encodes a command frame: name length, name, data. */
export function encodeCommand(name: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const n = encoder.encode(name);
  const size = 1 + n.length + data.length;
  const out = new Uint8Array(headerBytes(size) + size);
  let off = writeHeader(out, 0, FLAG_COMMAND, size);
  out[off++] = n.length;
  out.set(n, off);
  out.set(data, off + n.length);
  return out;
}

/** Encodes READY with metadata properties (`Socket-Type`, `Identity`, ...). */
export function encodeReady(props: Readonly<Record<string, Uint8Array | string>>): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const [name, raw] of Object.entries(props)) {
    const n = encoder.encode(name);
    const v = typeof raw === "string" ? encoder.encode(raw) : raw;
    const p = new Uint8Array(1 + n.length + 4 + v.length);
    p[0] = n.length;
    p.set(n, 1);
    new DataView(p.buffer).setUint32(1 + n.length, v.length);
    p.set(v, 5 + n.length);
    parts.push(p);
    total += p.length;
  }
  const data = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.length;
  }
  return encodeCommand("READY", data);
}

/** A command frame's body split into its name and data. */
export interface Command {
  readonly name: string;
  readonly data: Uint8Array;
}

/** Splits a command body; null when the name length runs past the body. */
export function parseCommand(body: Uint8Array): Command | null {
  if (body.length < 1 || 1 + body[0] > body.length) return null;
  return {
    name: decoder.decode(body.subarray(1, 1 + body[0])),
    data: body.subarray(1 + body[0]),
  };
}

/** Parses READY metadata (names lower-cased); null when a property runs past the data. */
export function parseMetadata(data: Uint8Array): Map<string, Uint8Array> | null {
  const props = new Map<string, Uint8Array>();
  const view = new DataView(data.buffer, data.byteOffset, data.length);
  let off = 0;
  while (off < data.length) {
    const nameLen = data[off];
    if (nameLen === 0 || off + 1 + nameLen + 4 > data.length) return null;
    const name = decoder.decode(data.subarray(off + 1, off + 1 + nameLen)).toLowerCase();
    off += 1 + nameLen;
    const valueLen = view.getUint32(off);
    off += 4;
    if (valueLen > data.length - off) return null;
    props.set(name, data.subarray(off, off + valueLen));
    off += valueLen;
  }
  return props;
}

/** PING with a TTL (ms, rounded up to tenths of a second, capped) and a context of ≤ 16 bytes. */
export function encodePing(ttlMs: number, context: Uint8Array = new Uint8Array(0)): Uint8Array {
  const data = new Uint8Array(2 + Math.min(context.length, 16));
  new DataView(data.buffer).setUint16(0, Math.min(0xffff, Math.max(0, Math.ceil(ttlMs / 100))));
  data.set(context.subarray(0, 16), 2);
  return encodeCommand("PING", data);
}

/** PONG echoing a PING's context; null when the PING data is too short. */
export function pongFor(pingData: Uint8Array): Uint8Array | null {
  if (pingData.length < 2) return null;
  return encodeCommand("PONG", pingData.subarray(2, 18));
}

/** The ZMTP 3.0 subscription message body: 1 (subscribe) or 0 (cancel), then the topic prefix. */
export function subscriptionBody(topic: Uint8Array, subscribe = true): Uint8Array {
  const b = new Uint8Array(1 + topic.length);
  b[0] = subscribe ? 1 : 0;
  b.set(topic, 1);
  return b;
}

/** Bounds enforced while parsing. */
export interface FrameLimits {
  /** Largest message frame body, bytes. */
  readonly maxFrameBytes: number;
  /** Largest multipart message (sum of bodies), bytes. */
  readonly maxMessageBytes: number;
  /** Most frames in one message. */
  readonly maxFrames: number;
  /** Largest command body, bytes. */
  readonly maxCommandBytes: number;
}

/** Defaults: an engine batch is at most a few MiB (a 100 k-token prefill is ~500 KB). */
export const DEFAULT_LIMITS: FrameLimits = {
  maxFrameBytes: 16 * 1024 * 1024,
  maxMessageBytes: 16 * 1024 * 1024,
  maxFrames: 16,
  maxCommandBytes: 64 * 1024,
};

/** Where the parser hands what it read. */
export interface FrameSink {
  /** The peer's 64-byte greeting; return an error message to stop. */
  greeting(g: Uint8Array): string | null;
  /** One command body; return an error message to stop. */
  command(body: Uint8Array): string | null;
  /** One complete multipart message; return an error message to stop. */
  message(frames: Uint8Array[]): string | null;
}

const EMPTY = new Uint8Array(0);
const S_GREETING = 0;
const S_FLAGS = 1;
const S_SIZE = 2;
const S_BODY = 3;

/**
 * Incremental parser: feed it whatever the socket read; it calls the sink for the greeting, each
 * command and each complete message, and returns an error message at the first violation (after
 * which it must not be fed again).
 */
export class FrameParser {
  readonly #limits: FrameLimits;
  #state = S_GREETING;
  #head = new Uint8Array(GREETING_BYTES);
  #headLen = 0;
  #flags = 0;
  #sizeBytes = 0;
  #body: Uint8Array = EMPTY;
  #bodyLen = 0;
  #frames: Uint8Array[] = [];
  #messageBytes = 0;

  constructor(limits: FrameLimits = DEFAULT_LIMITS) {
    this.#limits = limits;
  }

  /** Bytes of the current message held so far (bounded by `maxMessageBytes`). */
  get buffered(): number {
    return this.#messageBytes + this.#body.length;
  }

  /** Parses `chunk` (not kept: bodies are copied); returns an error message or null. */
  push(chunk: Uint8Array, sink: FrameSink): string | null {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.#state) {
        case S_GREETING: {
          const take = Math.min(GREETING_BYTES - this.#headLen, n - i);
          this.#head.set(chunk.subarray(i, i + take), this.#headLen);
          const before = this.#headLen;
          this.#headLen += take;
          i += take;
          if (before < 10 && this.#headLen >= 10) {
            const err = checkSignature(this.#head);
            if (err !== null) return err;
          }
          if (this.#headLen === GREETING_BYTES) {
            const err = sink.greeting(this.#head.slice());
            if (err !== null) return err;
            this.#state = S_FLAGS;
            this.#headLen = 0;
          }
          break;
        }
        case S_FLAGS: {
          const flags = chunk[i++];
          if ((flags & 0xf8) !== 0) return `reserved frame flag bits set: 0x${flags.toString(16)}`;
          if ((flags & FLAG_COMMAND) !== 0) {
            if ((flags & FLAG_MORE) !== 0) return "command frame with MORE set";
            if (this.#frames.length > 0) return "command inside a multipart message";
          }
          this.#flags = flags;
          this.#sizeBytes = (flags & FLAG_LONG) !== 0 ? 8 : 1;
          this.#headLen = 0;
          this.#state = S_SIZE;
          break;
        }
        case S_SIZE: {
          while (i < n && this.#headLen < this.#sizeBytes) this.#head[this.#headLen++] = chunk[i++];
          if (this.#headLen < this.#sizeBytes) break;
          const err = this.#beginBody();
          if (err !== null) return err;
          if (this.#bodyLen === this.#body.length) {
            const end = this.#endFrame(sink);
            if (end !== null) return end;
          }
          break;
        }
        case S_BODY: {
          const take = Math.min(this.#body.length - this.#bodyLen, n - i);
          this.#body.set(chunk.subarray(i, i + take), this.#bodyLen);
          this.#bodyLen += take;
          i += take;
          if (this.#bodyLen === this.#body.length) {
            const end = this.#endFrame(sink);
            if (end !== null) return end;
          }
          break;
        }
      }
    }
    return null;
  }

  #beginBody(): string | null {
    let size: number;
    if (this.#sizeBytes === 1) {
      size = this.#head[0];
    } else {
      const view = new DataView(this.#head.buffer, 0, 8);
      const hi = view.getUint32(0);
      if (hi !== 0) return "frame larger than 4 GiB";
      size = view.getUint32(4);
    }
    const lim = this.#limits;
    if ((this.#flags & FLAG_COMMAND) !== 0) {
      if (size > lim.maxCommandBytes) return `command of ${size} bytes over ${lim.maxCommandBytes}`;
    } else {
      if (size > lim.maxFrameBytes) return `frame of ${size} bytes over ${lim.maxFrameBytes}`;
      if (this.#messageBytes + size > lim.maxMessageBytes) {
        return `message over ${lim.maxMessageBytes} bytes`;
      }
      if (this.#frames.length + 1 > lim.maxFrames) return `message over ${lim.maxFrames} frames`;
    }
    this.#body = new Uint8Array(size);
    this.#bodyLen = 0;
    this.#state = S_BODY;
    return null;
  }

  #endFrame(sink: FrameSink): string | null {
    const body = this.#body;
    this.#body = EMPTY;
    this.#bodyLen = 0;
    this.#state = S_FLAGS;
    if ((this.#flags & FLAG_COMMAND) !== 0) return sink.command(body);
    this.#frames.push(body);
    this.#messageBytes += body.length;
    if ((this.#flags & FLAG_MORE) !== 0) return null;
    const frames = this.#frames;
    this.#frames = [];
    this.#messageBytes = 0;
    return sink.message(frames);
  }
}

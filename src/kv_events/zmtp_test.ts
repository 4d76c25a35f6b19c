import assert from "node:assert/strict";
import {
  compatible,
  DEFAULT_LIMITS,
  encodeCommand,
  encodeMessage,
  encodePing,
  encodeReady,
  FLAG_COMMAND,
  FLAG_LONG,
  FLAG_MORE,
  type FrameLimits,
  FrameParser,
  greeting,
  parseCommand,
  parseGreeting,
  parseMetadata,
  pongFor,
  subscriptionBody,
} from "./zmtp.ts";
import { formatEndpoint, parseEndpoint } from "./endpoint.ts";
import { concatBytes } from "../util/bytes.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Seen {
  greetings: Uint8Array[];
  commands: Uint8Array[];
  messages: Uint8Array[][];
}

function sink(seen: Seen) {
  return {
    greeting: (g: Uint8Array) => (seen.greetings.push(g), null),
    command: (b: Uint8Array) => (seen.commands.push(b), null),
    message: (f: Uint8Array[]) => (seen.messages.push(f), null),
  };
}

/** `concatBytes` over its arguments. */
const concat = (...parts: Uint8Array[]) => concatBytes(parts);

Deno.test("greeting: ZMTP 3.1 NULL round-trips through parseGreeting", () => {
  const g = greeting(true);
  assert.equal(g.length, 64);
  assert.deepEqual([g[0], g[9], g[10], g[11]], [0xff, 0x7f, 3, 1]);
  assert.deepEqual(parseGreeting(g), { major: 3, minor: 1, mechanism: "NULL", asServer: true });
});

Deno.test("greeting: version 2, CURVE and a bad signature are refused", () => {
  const v2 = greeting(false);
  v2[10] = 2;
  assert.match(parseGreeting(v2) as string, /version 2/);
  const curve = greeting(false);
  curve.set(enc.encode("CURVE"), 12);
  assert.match(parseGreeting(curve) as string, /CURVE/);
  const bad = greeting(false);
  bad[9] = 0;
  assert.match(parseGreeting(bad) as string, /signature/);
});

Deno.test("parser: a bad signature is refused after 10 bytes, before a full greeting", () => {
  const p = new FrameParser();
  const seen: Seen = { greetings: [], commands: [], messages: [] };
  const http = enc.encode("GET / HTTP/1.1\r\n");
  assert.match(p.push(http.subarray(0, 10), sink(seen)) ?? "", /signature/);
  assert.equal(seen.greetings.length, 0);
});

Deno.test("parser: greeting, command and messages fed one byte at a time", () => {
  const bytes = concat(
    greeting(false),
    encodeReady({ "Socket-Type": "PUB" }),
    encodeMessage([enc.encode("topic"), new Uint8Array(8), new Uint8Array(300).fill(7)]),
    encodeMessage([new Uint8Array(0)]),
  );
  const p = new FrameParser();
  const seen: Seen = { greetings: [], commands: [], messages: [] };
  for (let i = 0; i < bytes.length; i++) {
    assert.equal(p.push(bytes.subarray(i, i + 1), sink(seen)), null);
  }
  assert.equal(seen.greetings.length, 1);
  assert.equal(seen.commands.length, 1);
  const cmd = parseCommand(seen.commands[0])!;
  assert.equal(cmd.name, "READY");
  assert.equal(dec.decode(parseMetadata(cmd.data)!.get("socket-type")), "PUB");
  assert.equal(seen.messages.length, 2);
  assert.deepEqual(seen.messages[0].map((f) => f.length), [5, 8, 300]);
  assert.equal(seen.messages[0][2][299], 7);
  assert.deepEqual(seen.messages[1].map((f) => f.length), [0]);
});

Deno.test("encodeMessage: short and long frames carry the right flags and sizes", () => {
  const m = encodeMessage([new Uint8Array(3), new Uint8Array(256)]);
  assert.equal(m[0], FLAG_MORE);
  assert.equal(m[1], 3);
  assert.equal(m[5], FLAG_LONG);
  assert.deepEqual([...m.subarray(6, 14)], [0, 0, 0, 0, 0, 0, 1, 0]);
  assert.equal(m.length, 2 + 3 + 9 + 256);
  assert.equal(encodeCommand("PING")[0], FLAG_COMMAND);
});

function afterHandshake(limits: FrameLimits = DEFAULT_LIMITS) {
  const p = new FrameParser(limits);
  const seen: Seen = { greetings: [], commands: [], messages: [] };
  assert.equal(p.push(greeting(false), sink(seen)), null);
  return { p, seen, s: sink(seen) };
}

Deno.test("parser: a declared size over the limit is refused before any allocation", () => {
  const { p, s } = afterHandshake();
  // Long frame claiming 2^40 bytes, then nothing: refused from the header alone.
  const head = Uint8Array.of(FLAG_LONG, 0, 0, 1, 0, 0, 0, 0, 0);
  assert.match(p.push(head, s) ?? "", /larger than 4 GiB/);
  const b = afterHandshake();
  assert.match(b.p.push(Uint8Array.of(FLAG_LONG, 0, 0, 0, 0, 0x40, 0, 0, 0), b.s) ?? "", /over/);
  assert.equal(b.p.buffered, 0);
});

Deno.test("parser: message byte and frame-count limits hold across frames", () => {
  const limits = { maxFrameBytes: 100, maxMessageBytes: 150, maxFrames: 3, maxCommandBytes: 10 };
  const a = afterHandshake(limits);
  const big = encodeMessage([new Uint8Array(100), new Uint8Array(100)]);
  assert.match(a.p.push(big, a.s) ?? "", /message over 150 bytes/);
  const b = afterHandshake(limits);
  const many = encodeMessage([
    new Uint8Array(1),
    new Uint8Array(1),
    new Uint8Array(1),
    new Uint8Array(1),
  ]);
  assert.match(b.p.push(many, b.s) ?? "", /over 3 frames/);
  const c = afterHandshake(limits);
  assert.match(c.p.push(encodeCommand("SUBSCRIBE", new Uint8Array(20)), c.s) ?? "", /command of/);
});

Deno.test("parser: reserved flags, a command with MORE and a command inside a message are errors", () => {
  const a = afterHandshake();
  assert.match(a.p.push(Uint8Array.of(0x10, 0), a.s) ?? "", /reserved/);
  const b = afterHandshake();
  assert.match(b.p.push(Uint8Array.of(FLAG_COMMAND | FLAG_MORE, 0), b.s) ?? "", /MORE/);
  const c = afterHandshake();
  const inside = concat(Uint8Array.of(FLAG_MORE, 1, 9), encodeCommand("PING", new Uint8Array(2)));
  assert.match(c.p.push(inside, c.s) ?? "", /inside a multipart/);
});

Deno.test("metadata: truncated properties are refused, names are case-insensitive", () => {
  const cmd = parseCommand(
    encodeReady({ "Socket-Type": "DEALER", Identity: Uint8Array.of(1, 2) }).subarray(2),
  )!;
  const meta = parseMetadata(cmd.data)!;
  assert.deepEqual([...meta.get("identity")!], [1, 2]);
  assert.equal(parseMetadata(cmd.data.subarray(0, cmd.data.length - 1)), null);
  assert.equal(parseCommand(Uint8Array.of(9, 65)), null);
});

Deno.test("PING carries a TTL in tenths of a second and PONG echoes its context", () => {
  const ping = parseCommand(encodePing(2500, Uint8Array.of(1, 2, 3)).subarray(2))!;
  assert.equal(ping.name, "PING");
  assert.equal(new DataView(ping.data.buffer, ping.data.byteOffset).getUint16(0), 25);
  const pong = parseCommand(pongFor(ping.data)!.subarray(2))!;
  assert.equal(pong.name, "PONG");
  assert.deepEqual([...pong.data], [1, 2, 3]);
  assert.equal(pongFor(Uint8Array.of(1)), null);
});

Deno.test("subscription message: 1 then the topic (ZMTP 3.0 form)", () => {
  assert.deepEqual([...subscriptionBody(enc.encode("kv"))], [1, 107, 118]);
  assert.deepEqual([...subscriptionBody(new Uint8Array(0), false)], [0]);
});

Deno.test("socket types: PUB-SUB and DEALER-ROUTER pair, others do not", () => {
  assert.ok(compatible("SUB", "PUB"));
  assert.ok(compatible("SUB", "xpub"));
  assert.ok(compatible("DEALER", "ROUTER"));
  assert.ok(compatible("ROUTER", "DEALER"));
  assert.ok(!compatible("SUB", "SUB"));
  assert.ok(!compatible("PUB", "DEALER"));
});

Deno.test("endpoints: connect and bind forms, with the value in errors", () => {
  assert.deepEqual(parseEndpoint("tcp://engine-1:5557"), {
    hostname: "engine-1",
    port: 5557,
    wildcard: false,
  });
  assert.deepEqual(parseEndpoint("tcp://[::1]:5558"), {
    hostname: "::1",
    port: 5558,
    wildcard: false,
  });
  assert.deepEqual(parseEndpoint("tcp://*:0", true), {
    hostname: "0.0.0.0",
    port: 0,
    wildcard: true,
  });
  assert.throws(() => parseEndpoint("tcp://*:5557"), /can only be bound.*"tcp:\/\/\*:5557"/);
  assert.throws(() => parseEndpoint("ipc:///tmp/x"), /must be tcp:\/\/host:port/);
  assert.throws(() => parseEndpoint("tcp://h:0"), /invalid port/);
  assert.throws(() => parseEndpoint("tcp://h:70000", true), /invalid port/);
  assert.throws(() => parseEndpoint("tcp://a b:1"), /invalid host/);
  assert.equal(formatEndpoint("::1", 5), "tcp://[::1]:5");
});

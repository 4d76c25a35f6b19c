/**
 * Interop with real libzmq (Debian's python3-zmq, libzmq 4.3.x) and python3-msgpack:
 * - a Python stand-in for vLLM's publisher (PUB + replay ROUTER, same framing and replay loop,
 *   msgpack batches shaped as vLLM's msgspec writes them) feeding our subscriber and index;
 * - our publisher (the simulated engine's) read by a Python SUB and DEALER.
 * Skipped when python3 cannot import zmq and msgpack.
 */

import assert from "node:assert/strict";
import { KvEventSubscriber } from "../src/kv_events/subscriber.ts";
import { KvEventPublisher } from "../src/kv_events/publisher.ts";
import { BlockIndex } from "../src/precise/block_index.ts";
import { blockHashes } from "../src/precise/block_hash.ts";
import { ManualClock } from "../src/util/clock.ts";

const PY = "/usr/bin/python3";

function hasPyZmq(): boolean {
  try {
    return new Deno.Command(PY, {
      args: ["-c", "import zmq, msgpack"],
      stdout: "null",
      stderr: "null",
    })
      .outputSync().success;
  } catch {
    return false;
  }
}

const ignore = !hasPyZmq();
const BS = 4;

/** vLLM's publisher loop in miniature; commands on stdin, one JSON line each, "ok <seq>" back. */
const VLLM_LIKE = String.raw`
import json, sys, time, zmq, msgpack
ctx = zmq.Context()
pub = ctx.socket(zmq.PUB)
router = ctx.socket(zmq.ROUTER)
pport = pub.bind_to_random_port("tcp://127.0.0.1")
rport = router.bind_to_random_port("tcp://127.0.0.1")
print(json.dumps({"pub": pport, "replay": rport}), flush=True)
END = (-1).to_bytes(8, "big", signed=True)
buf, seq = [], 0
poller = zmq.Poller()
poller.register(router, zmq.POLLIN)
poller.register(sys.stdin.fileno(), zmq.POLLIN)
def event(e, form):
    kind = e["type"]
    if kind == "BlockStored":
        fields = [("block_hashes", e["hashes"]), ("parent_block_hash", e.get("parent")),
                  ("token_ids", e["tokens"]), ("block_size", e["size"]), ("lora_id", None),
                  ("medium", e.get("medium", "GPU")), ("lora_name", e.get("lora"))]
    elif kind == "BlockRemoved":
        fields = [("block_hashes", e["hashes"]), ("medium", e.get("medium", "GPU"))]
    else:
        fields = []
    if form == "map":
        return dict([("type", kind)] + fields)
    return [kind] + [v for _, v in fields]
while True:
    for sock, _ in poller.poll(100):
        if sock is router:
            frame = router.recv_multipart()
            if len(frame) != 3:
                continue
            client, _, start = frame
            start = int.from_bytes(start, "big")
            for s, payload in buf:
                if s >= start:
                    router.send_multipart((client, b"", s.to_bytes(8, "big"), payload))
            router.send_multipart((client, b"", END, b""))
        else:
            line = sys.stdin.readline()
            if not line:
                sys.exit(0)
            cmd = json.loads(line)
            batch = [time.time(), [event(e, cmd["form"]) for e in cmd["events"]], 0]
            payload = msgpack.packb(batch, use_bin_type=True)
            buf.append((seq, payload))
            if not cmd.get("lose"):
                pub.send_multipart((b"kv-events", seq.to_bytes(8, "big"), payload))
            print("ok", seq, flush=True)
            seq += 1
`;

class Lines {
  #reader: ReadableStreamDefaultReader<string>;
  #buf = "";
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }
  async next(): Promise<string> {
    while (!this.#buf.includes("\n")) {
      const { value, done } = await this.#reader.read();
      if (done) throw new Error(`python ended; read so far: ${JSON.stringify(this.#buf)}`);
      this.#buf += value;
    }
    const at = this.#buf.indexOf("\n");
    const line = this.#buf.slice(0, at);
    this.#buf = this.#buf.slice(at + 1);
    return line;
  }
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** Hashes above 2^53 (u64) and, for the map stream, negative i64 like SGLang's. */
function chain(seed: bigint, blocks: number, negative = false) {
  const tokens = Array.from({ length: blocks * BS }, (_, i) => Number(seed) * 10_000 + i);
  const hash = (b: number) =>
    negative ? -(seed * 1000n + BigInt(b) + 2n ** 62n) : 2n ** 63n + seed * 1000n + BigInt(b);
  const event = (b: number) => ({
    type: "BlockStored",
    hashes: [hash(b)],
    parent: b === 0 ? null : hash(b - 1),
    tokens: tokens.slice(b * BS, (b + 1) * BS),
    size: BS,
  });
  return { tokens, hash, event };
}

/** JSON with bigints written as plain integers (Python's json reads them exactly). */
function json(v: unknown): string {
  return JSON.stringify(v, (_k, x) => typeof x === "bigint" ? `@@${x}@@` : x).replace(
    /"@@(-?\d+)@@"/g,
    "$1",
  );
}

Deno.test({
  name:
    "interop: libzmq PUB + ROUTER (vLLM's framing) feed our subscriber: both encodings, gap replay, heartbeats",
  ignore,
  async fn() {
    const py = new Deno.Command(PY, {
      args: ["-c", VLLM_LIKE],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    })
      .spawn();
    const out = new Lines(py.stdout);
    const stdin = py.stdin.getWriter();
    const send = async (cmd: unknown) => {
      await stdin.write(new TextEncoder().encode(json(cmd) + "\n"));
      return Number((await out.next()).split(" ")[1]);
    };
    const index = new BlockIndex({ clock: new ManualClock(0) });
    let sub: KvEventSubscriber | null = null;
    try {
      const ports = JSON.parse(await out.next());
      sub = new KvEventSubscriber({
        endpoint: `tcp://127.0.0.1:${ports.pub}`,
        replayEndpoint: `tcp://127.0.0.1:${ports.replay}`,
        topic: "kv-events",
        sink: index.sink("w"),
        heartbeatIntervalMs: 100,
        heartbeatTimeoutMs: 400,
        reconnectBaseMs: 20,
        tailCheckMs: 0,
      });
      sub.start();
      await waitFor(() => sub!.state === "connected", "the connection");
      await delay(200); // the subscription reaches libzmq; anything earlier is replayed anyway
      const a = chain(1n, 6);
      await send({ form: "array", events: [a.event(0), a.event(1)] });
      await send({ form: "array", events: [a.event(2), a.event(3)] });
      await waitFor(
        () => index.match("w", blockHashes(a.tokens, BS)) === 4,
        "4 blocks of the array stream",
      );

      const b = chain(2n, 3, true);
      await send({ form: "map", events: [b.event(0), b.event(1), b.event(2)] });
      await waitFor(
        () => index.match("w", blockHashes(b.tokens, BS)) === 3,
        "3 blocks of the map stream",
      );

      await send({ form: "array", events: [a.event(4)], lose: true });
      await send({ form: "map", events: [a.event(5)] });
      await waitFor(() => index.match("w", blockHashes(a.tokens, BS)) === 6, "the gap replayed");
      assert.equal(sub.counters.gaps, 1);
      assert.equal(sub.counters.clears, 0);

      await send({ form: "map", events: [{ type: "BlockRemoved", hashes: [b.hash(1)] }] });
      await waitFor(() => index.match("w", blockHashes(b.tokens, BS)) === 1, "the removal");

      await delay(1000); // idle: libzmq must answer our PINGs, or the heartbeat would cut it
      assert.equal(sub.counters.reconnects, 0);
      assert.equal(sub.counters.malformed, 0);
      assert.equal(sub.decodeStats.malformedEvents, 0);
    } finally {
      await sub?.stop();
      await stdin.close().catch(() => {});
      await out.cancel();
      await py.status;
    }
  },
});

/** A libzmq SUB and DEALER reading our publisher; prints one JSON summary. */
const READER = String.raw`
import json, sys, time, zmq, msgpack
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"kv")
sub.connect("tcp://127.0.0.1:%s" % sys.argv[1])
time.sleep(0.5)
print("ready", flush=True)
got = []
while len(got) < 3 and sub.poll(5000):
    topic, seq, payload = sub.recv_multipart()
    ts, events = msgpack.unpackb(payload)[:2]
    got.append({"topic": topic.decode(), "seq": int.from_bytes(seq, "big"), "ts_is_float": isinstance(ts, float),
                "type": events[0][0] if isinstance(events[0], list) else events[0]["type"],
                "hash": str((events[0][1] if isinstance(events[0], list) else events[0]["block_hashes"])[0])})
dealer = ctx.socket(zmq.DEALER)
dealer.connect("tcp://127.0.0.1:%s" % sys.argv[2])
dealer.send_multipart([b"", (1).to_bytes(8, "big")])
replayed = []
while dealer.poll(5000):
    _, seq, payload = dealer.recv_multipart()
    n = int.from_bytes(seq, "big", signed=True)
    if n == -1:
        break
    replayed.append(n)
print(json.dumps({"got": got, "replayed": replayed}), flush=True)
`;

Deno.test({
  name: "interop: our publisher is read by a libzmq SUB and replays to a libzmq DEALER",
  ignore,
  async fn() {
    const pub = new KvEventPublisher({
      endpoint: "tcp://127.0.0.1:0",
      replayEndpoint: "tcp://127.0.0.1:0",
      topic: "kv-events",
      encoding: { events: "array" },
    });
    const { port, replayPort } = pub.start();
    const py = new Deno.Command(PY, {
      args: ["-c", READER, String(port), String(replayPort)],
      stdout: "piped",
      stderr: "inherit",
    })
      .spawn();
    const out = new Lines(py.stdout);
    try {
      assert.equal(await out.next(), "ready");
      const big = 2n ** 64n - 5n;
      for (let i = 0; i < 3; i++) {
        pub.publish([{
          type: "BlockStored",
          blockHashes: [big - BigInt(i)],
          parentBlockHash: null,
          tokenIds: [1, 2, 3, 4],
          blockSize: 4,
          medium: "GPU",
        }]);
      }
      const summary = JSON.parse(await out.next());
      assert.deepEqual(summary.got.map((g: { seq: number }) => g.seq), [0, 1, 2]);
      assert.equal(summary.got[0].topic, "kv-events");
      assert.equal(summary.got[0].type, "BlockStored");
      assert.equal(summary.got[0].ts_is_float, true);
      assert.equal(summary.got[2].hash, String(big - 2n));
      assert.deepEqual(summary.replayed, [1, 2]);
    } finally {
      await out.cancel();
      await py.status;
      await pub.stop();
    }
  },
});

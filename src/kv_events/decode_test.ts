import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { KvEventDecoder } from "./decode.ts";
import { encodeBatch, type EncodeOptions, type WireEvent } from "./encode.ts";
import type { BlockRemoved, BlockStored } from "./types.ts";

const BIG = 2n ** 63n + 12345n; // above 2^53: a float would lose the low bits
const pairs = (h: Uint32Array) => [...h];

const events: WireEvent[] = [
  {
    type: "BlockStored",
    blockHashes: [BIG, 7n],
    parentBlockHash: 2n ** 53n + 1n,
    tokenIds: [1, 2, 3, 4],
    blockSize: 2,
    medium: "GPU",
    loraName: "ad",
    extraKeys: [["ad", "salt-1"], ["ad"]],
  },
  { type: "BlockRemoved", blockHashes: [7n], medium: "CPU" },
  { type: "AllBlocksCleared" },
];

const layouts: EncodeOptions[] = [
  { events: "array", batch: "array" },
  { events: "map", batch: "array" },
  { events: "array", batch: "map" },
  { events: "map", batch: "map" },
];

for (const layout of layouts) {
  Deno.test(`decode: ${layout.events} events in a ${layout.batch} batch`, () => {
    const d = new KvEventDecoder();
    const batch = d.decode(encodeBatch(1700000000.25, events, layout, 3))!;
    assert.equal(batch.ts, 1700000000.25);
    assert.equal(batch.dataParallelRank, 3);
    assert.equal(batch.events.length, 3);
    const stored = batch.events[0] as BlockStored;
    assert.deepEqual(pairs(stored.blockHashes), [0x80000000, 12345, 0, 7]);
    assert.deepEqual(pairs(stored.parentBlockHash!), [0x200000, 1]);
    assert.deepEqual(stored.tokenIds, [1, 2, 3, 4]);
    assert.equal(stored.blockSize, 2);
    assert.equal(stored.medium, "GPU");
    assert.equal(stored.loraName, "ad");
    assert.deepEqual(stored.extraKeys, [
      [{ kind: "lora", name: "ad" }, { kind: "cache_salt", salt: "salt-1" }],
      [{ kind: "lora", name: "ad" }],
    ]);
    const removed = batch.events[1] as BlockRemoved;
    assert.deepEqual(pairs(removed.blockHashes), [0, 7]);
    assert.equal(removed.medium, "CPU");
    assert.deepEqual(batch.events[2], { type: "AllBlocksCleared", medium: null });
    assert.deepEqual(d.stats, {
      batches: 1,
      events: 3,
      malformedBatches: 0,
      malformedEvents: 0,
      unknownEvents: 0,
      unknownFields: 0,
    });
  });
}

Deno.test("decode: i64 (SGLang, negative) and bytes hashes normalise to the same key as u64", () => {
  const d = new KvEventDecoder();
  const u = d.decode(
    encodeBatch(1, [{ type: "BlockRemoved", blockHashes: [2n ** 64n - 2n, BIG] }]),
  )!;
  const i = d.decode(
    encodeBatch(1, [{ type: "BlockRemoved", blockHashes: [-2n, BIG] }], { hashes: "i64" }),
  )!;
  const b = d.decode(
    encodeBatch(1, [{ type: "BlockRemoved", blockHashes: [-2n, BIG] }], { hashes: "bytes" }),
  )!;
  const key = pairs((u.events[0] as BlockRemoved).blockHashes);
  assert.deepEqual(key, [0xffffffff, 0xfffffffe, 0x80000000, 12345]);
  assert.deepEqual(pairs((i.events[0] as BlockRemoved).blockHashes), key);
  assert.deepEqual(pairs((b.events[0] as BlockRemoved).blockHashes), key);
  // A small negative int (msgpack int8) and a 32-byte digest (its low 64 bits).
  const digest = new Uint8Array(32).fill(0xab);
  digest.set([0, 0, 0, 1, 0, 0, 0, 2], 24);
  const raw = d.decode(encode([0, [["BlockRemoved", [-1, digest], null]]]))!;
  assert.deepEqual(pairs((raw.events[0] as BlockRemoved).blockHashes), [
    0xffffffff,
    0xffffffff,
    1,
    2,
  ]);
});

Deno.test("decode: unknown fields and event types are counted and skipped, never thrown", () => {
  const d = new KvEventDecoder();
  const payload = encode({
    ts: 5,
    events: [
      // SGLang-style map with extra keys.
      {
        type: "BlockStored",
        block_hashes: [1],
        parent_block_hash: null,
        token_ids: [9],
        block_size: 1,
        medium: "GPU",
        metadata: { a: 1 },
        session_id: "s",
      },
      [
        "BlockStored",
        [2],
        null,
        [8],
        1,
        null,
        "GPU",
        null,
        null,
        0,
        "full_attention",
        null,
        "future",
      ],
      ["SomethingNew", 1, 2],
      { type: "AlsoNew" },
    ],
    data_parallel_rank: null,
    extra: true,
  });
  const batch = d.decode(payload)!;
  assert.equal(batch.events.length, 2);
  assert.equal(d.stats.unknownEvents, 2);
  assert.equal(d.stats.unknownFields, 4); // metadata, session_id, "future", extra
  assert.equal(d.stats.malformedEvents, 0);
});

Deno.test("decode: a malformed event is dropped, the rest of its batch applies", () => {
  const d = new KvEventDecoder();
  const batch = d.decode(encode([1.5, [
    ["BlockStored", [1, 2], null, [1, 2, 3], 2, null, "GPU"], // 3 tokens for 2 blocks of 2
    ["BlockStored", [1], null, [1.5], 1], // fractional token
    ["BlockStored", ["x"], null, [], 1], // string hash
    ["BlockRemoved", [1.5]], // float hash
    ["BlockRemoved", [3], 7], // medium not a string
    42,
    ["BlockRemoved", [4], "GPU"],
  ]]))!;
  assert.equal(batch.events.length, 1);
  assert.equal(d.stats.malformedEvents, 6);
});

Deno.test("decode: payloads that are not batches return null and are counted", () => {
  const d = new KvEventDecoder();
  const bad = [
    new Uint8Array([0xc1]), // never-used msgpack byte
    encode("just a string"),
    encode([1]), // no events
    encode(["ts", []]),
    encode({ events: [] }),
    encode([1, [], "rank"]),
    new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]), // array32 of 4 G entries, no data
    Uint8Array.of(...encode([1, []]), 0), // trailing byte
  ];
  for (const p of bad) assert.equal(d.decode(p), null);
  assert.equal(d.stats.malformedBatches, bad.length);
  assert.equal(d.stats.batches, 0);
});

Deno.test("decode: vLLM typed extra keys (maps) and TierBlocksCleared", () => {
  const d = new KvEventDecoder();
  const batch = d.decode(encode([1, [
    {
      type: "BlockStored",
      block_hashes: [1, 2],
      parent_block_hash: null,
      token_ids: [1, 2],
      block_size: 1,
      lora_id: null,
      medium: "GPU",
      lora_name: null,
      event_version: 1,
      extra_keys: [
        [{ type: "lora", name: "l1" }, { type: "cache_salt", salt: "s" }],
        [{ type: "mm", modality: "image", hash: "abc", block_offset: 5 }, {
          type: "prompt_embeds",
          hash: Uint8Array.of(1, 255),
        }],
      ],
      locality: "REMOTE",
    },
    { type: "TierBlocksCleared", medium: "CPU" },
  ]]))!;
  const stored = batch.events[0] as BlockStored;
  assert.deepEqual(stored.extraKeys, [
    [{ kind: "lora", name: "l1" }, { kind: "cache_salt", salt: "s" }],
    [{ kind: "mm", hash: "abc", offset: 5 }, { kind: "prompt_embeds", hash: '"01ff"' }],
  ]);
  assert.equal(stored.locality, "REMOTE");
  assert.deepEqual(batch.events[1], { type: "AllBlocksCleared", medium: "CPU" });
  assert.equal(d.stats.unknownFields, 0);
});

Deno.test("decode: legacy extra keys with only lora_id take the first string as the LoRA", () => {
  const d = new KvEventDecoder();
  const batch = d.decode(
    encode([1, [["BlockStored", [1], null, [1], 1, 4, "GPU", null, [["adapter", "salt", [
      "img",
      3,
    ]]]]]]),
  )!;
  assert.deepEqual((batch.events[0] as BlockStored).extraKeys, [[
    { kind: "lora", name: "adapter" },
    { kind: "cache_salt", salt: "salt" },
    { kind: "mm", hash: "img", offset: 3 },
  ]]);
});

Deno.test("encode: ts is a float64 even when whole, trailing defaults are omitted", () => {
  const p = encodeBatch(2, [{ type: "BlockRemoved", blockHashes: [1n] }]);
  // fixarray(2), float64 2.0, fixarray(1) of fixarray(3): tag, [1], nil (medium has no default)
  assert.deepEqual([...p.subarray(0, 2)], [0x92, 0xcb]);
  assert.equal(new DataView(p.buffer, p.byteOffset + 2, 8).getFloat64(0), 2);
  assert.deepEqual([...p.subarray(10, 12)], [0x91, 0x93]);
  const stored = encodeBatch(0, [{
    type: "BlockStored",
    blockHashes: [1n],
    parentBlockHash: null,
    tokenIds: [5],
    blockSize: 1,
  }]);
  const decoded = new KvEventDecoder().decode(stored)!;
  assert.equal((decoded.events[0] as BlockStored).groupIdx, null);
  // 8 fields, none of the defaulted ones: ["BlockStored", hashes, parent, tokens, size, lora_id, medium, lora_name]
  assert.equal(stored[11], 0x98);
});

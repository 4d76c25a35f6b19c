/**
 * The batch exporter under fake timers: batches by size and by interval, the queue cap, retry
 * after `Retry-After` or back-off, the export time-out, and shutdown.
 */

import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import { BatchExporter, type ExporterOptions, parseRetryAfter, rejectedOf } from "./exporter.ts";
import { exportHead, type SpanRecord } from "./otlp_json.ts";
import { RecordingTransport, spansOf } from "./testing.ts";

function span(i: number): SpanRecord {
  return {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: (i + 1).toString(16).padStart(16, "0"),
    parentSpanId: null,
    parentRemote: false,
    traceState: null,
    name: `s${i}`,
    kind: 2,
    flags: 1,
    startMs: 1,
    endMs: 2,
    attrs: [],
    statusCode: 0,
    statusMessage: "",
  };
}

function setup(o: Partial<ExporterOptions> = {}) {
  const clock = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout"] });
  const rec = new RecordingTransport();
  const exporter = new BatchExporter({
    maxBatchSize: 3,
    maxQueueSize: 10,
    flushIntervalMs: 5000,
    exportTimeoutMs: 1000,
    maxRetries: 2,
    transport: rec.send,
    head: exportHead({ "service.name": "t" }, "t", "0"),
    random: () => 0,
    ...o,
  });
  const sizes = () => rec.bodies.map((b) => spansOf(b).length);
  return { clock, rec, exporter, sizes };
}

const FAIL_503 = { ok: false, retryable: true, retryAfterMs: null, rejected: 0 };

Deno.test("exporter: a full batch goes on the next turn, never inside add", async () => {
  const { clock, exporter, sizes } = setup();
  try {
    for (let i = 0; i < 3; i++) exporter.add(span(i));
    assert.deepEqual(sizes(), [], "add does not export");
    await clock.tickAsync(0);
    assert.deepEqual(sizes(), [3]);
    for (let i = 0; i < 7; i++) exporter.add(span(i));
    await clock.tickAsync(0);
    assert.deepEqual(sizes(), [3, 3, 3], "full batches only; one span waits for the interval");
    assert.equal(exporter.queued, 1);
    await clock.tickAsync(5000);
    assert.deepEqual(sizes(), [3, 3, 3, 1]);
    assert.equal(exporter.counters.exported, 10);
  } finally {
    await exporter.shutdown(100);
    clock.uninstall();
  }
});

Deno.test("exporter: a partial batch goes after the flush interval, and no timer runs idle", async () => {
  const { clock, exporter, sizes } = setup();
  try {
    assert.equal(clock.countTimers(), 0);
    exporter.add(span(0));
    await clock.tickAsync(2000);
    exporter.add(span(1));
    await clock.tickAsync(2999);
    assert.deepEqual(sizes(), [], "the interval counts from the first span");
    await clock.tickAsync(1);
    assert.deepEqual(sizes(), [2]);
    await clock.tickAsync(0);
    assert.equal(clock.countTimers(), 0, "nothing queued: no timer");
  } finally {
    await exporter.shutdown(100);
    clock.uninstall();
  }
});

Deno.test("exporter: the queue stops at its cap while the collector hangs; drops counted", async () => {
  const { clock, rec, exporter } = setup({ exportTimeoutMs: 60_000 });
  let release = () => {};
  rec.answer = () =>
    new Promise((resolve) => {
      release = () => resolve({ ok: true, retryable: false, retryAfterMs: null, rejected: 0 });
    });
  try {
    for (let i = 0; i < 3; i++) exporter.add(span(i));
    await clock.tickAsync(0); // one batch in flight, hanging
    for (let i = 0; i < 100; i++) exporter.add(span(i));
    assert.equal(exporter.queued, 10);
    assert.equal(exporter.counters.droppedQueueFull, 90);
    release();
    await clock.tickAsync(0);
    await clock.tickAsync(0);
    assert.equal(rec.bodies.length, 2, "the next batch goes once the first is answered");
  } finally {
    release();
    const done = exporter.shutdown(100);
    for (let i = 0; i < 10; i++) {
      release();
      await clock.tickAsync(10);
    }
    await done;
    clock.uninstall();
  }
});

Deno.test("exporter: Retry-After is honoured before the batch is sent again", async () => {
  const { clock, rec, exporter } = setup();
  let n = 0;
  rec.answer = () =>
    n++ === 0
      ? { ...FAIL_503, retryAfterMs: 2000 }
      : { ok: true, retryable: false, retryAfterMs: null, rejected: 0 };
  try {
    for (let i = 0; i < 3; i++) exporter.add(span(i));
    await clock.tickAsync(0);
    assert.equal(rec.bodies.length, 1);
    await clock.tickAsync(1999);
    assert.equal(rec.bodies.length, 1);
    await clock.tickAsync(1);
    assert.equal(rec.bodies.length, 2);
    assert.equal(rec.bodies[0], rec.bodies[1], "the same batch");
    assert.equal(exporter.counters.exported, 3);
    assert.equal(exporter.counters.failedRequests, 1);
  } finally {
    await exporter.shutdown(100);
    clock.uninstall();
  }
});

Deno.test("exporter: back-off doubles without Retry-After; a batch is dropped after its retries", async () => {
  const { clock, rec, exporter } = setup({ maxRetries: 2 });
  rec.answer = () => FAIL_503;
  try {
    for (let i = 0; i < 3; i++) exporter.add(span(i));
    await clock.tickAsync(0);
    assert.equal(rec.bodies.length, 1);
    await clock.tickAsync(499); // random 0: half of 1 s
    assert.equal(rec.bodies.length, 1);
    await clock.tickAsync(1);
    assert.equal(rec.bodies.length, 2);
    await clock.tickAsync(999); // half of 2 s
    assert.equal(rec.bodies.length, 2);
    await clock.tickAsync(1);
    assert.equal(rec.bodies.length, 3);
    await clock.tickAsync(60_000);
    assert.equal(rec.bodies.length, 3, "2 retries, then dropped");
    assert.equal(exporter.counters.droppedExportFailed, 3);
    assert.equal(exporter.counters.failedRequests, 3);
  } finally {
    await exporter.shutdown(100);
    clock.uninstall();
  }
});

Deno.test("exporter: a failure that is not retryable drops the batch at once", async () => {
  const { clock, rec, exporter } = setup();
  rec.answer = () => ({ ok: false, retryable: false, retryAfterMs: null, rejected: 0 });
  try {
    for (let i = 0; i < 3; i++) exporter.add(span(i));
    await clock.tickAsync(10_000);
    assert.equal(rec.bodies.length, 1);
    assert.equal(exporter.counters.droppedExportFailed, 3);
  } finally {
    await exporter.shutdown(100);
    clock.uninstall();
  }
});

Deno.test("exporter: a request past the export timeout is aborted and retried", async () => {
  const { clock, rec, exporter } = setup({ exportTimeoutMs: 1000, maxRetries: 1 });
  const aborted: boolean[] = [];
  let n = 0;
  const send = rec.send;
  try {
    const ex = new BatchExporter({
      maxBatchSize: 1,
      maxQueueSize: 10,
      flushIntervalMs: 5000,
      exportTimeoutMs: 1000,
      maxRetries: 1,
      head: exportHead({}, "t", "0"),
      random: () => 0,
      transport: (body, signal) => {
        if (n++ > 0) return send(body, signal);
        return new Promise((_, reject) => {
          signal.addEventListener("abort", () => {
            aborted.push(true);
            reject(signal.reason);
          });
        });
      },
    });
    ex.add(span(0));
    await clock.tickAsync(0);
    await clock.tickAsync(999);
    assert.deepEqual(aborted, []);
    await clock.tickAsync(1);
    assert.deepEqual(aborted, [true]);
    await clock.tickAsync(500);
    assert.equal(ex.counters.exported, 1);
    await ex.shutdown(100);
  } finally {
    await exporter.shutdown(100);
    clock.uninstall();
  }
});

Deno.test("exporter: shutdown cuts a retry wait short, exports the queue, then drops", async () => {
  const { clock, rec, exporter } = setup();
  let n = 0;
  rec.answer = () =>
    n++ === 0
      ? { ...FAIL_503, retryAfterMs: 30_000 }
      : { ok: true, retryable: false, retryAfterMs: null, rejected: 0 };
  try {
    for (let i = 0; i < 4; i++) exporter.add(span(i));
    await clock.tickAsync(0); // first batch failed, waiting 30 s
    const done = exporter.shutdown(5000);
    await clock.tickAsync(0);
    await done;
    assert.equal(rec.bodies.length, 3, "the retry at once, then the last span");
    assert.equal(exporter.counters.exported, 4);
    exporter.add(span(9));
    assert.equal(exporter.counters.droppedQueueFull, 1, "after shutdown spans are dropped");
    assert.equal(clock.countTimers(), 0);
  } finally {
    clock.uninstall();
  }
});

Deno.test("exporter: a partial success counts the rejected spans", async () => {
  const { clock, rec, exporter } = setup();
  rec.answer = () => ({ ok: true, retryable: false, retryAfterMs: null, rejected: 2 });
  try {
    for (let i = 0; i < 3; i++) exporter.add(span(i));
    await clock.tickAsync(0);
    assert.equal(exporter.counters.exported, 1);
    assert.equal(exporter.counters.rejected, 2);
  } finally {
    await exporter.shutdown(100);
    clock.uninstall();
  }
});

Deno.test("parseRetryAfter: seconds or an HTTP date", () => {
  const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
  assert.equal(parseRetryAfter("120", now), 120_000);
  assert.equal(parseRetryAfter(" 0 ", now), 0);
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now), 30_000);
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), null);
  assert.equal(parseRetryAfter("-5", now), null);
  assert.equal(parseRetryAfter("Wednesday, 21-Oct-15 07:28:10 GMT", now), 10_000);
  assert.equal(parseRetryAfter("Wed Oct 21 07:28:20 2015", now), 20_000);
  assert.equal(parseRetryAfter(null, now), null);
});

Deno.test("rejectedOf: OTLP partial success, anything else 0", () => {
  assert.equal(rejectedOf('{"partialSuccess":{"rejectedSpans":"7"}}'), 7);
  assert.equal(rejectedOf('{"partialSuccess":{"rejectedSpans":3}}'), 3);
  assert.equal(rejectedOf("{}"), 0);
  assert.equal(rejectedOf(""), 0);
  assert.equal(rejectedOf("not json"), 0);
  assert.equal(rejectedOf('{"partialSuccess":{"rejectedSpans":-1}}'), 0);
});

Deno.test("exporter: a large batch is encoded in slices, other timers running between", async () => {
  const rec = new RecordingTransport();
  const exporter = new BatchExporter({
    maxBatchSize: 150,
    maxQueueSize: 1000,
    flushIntervalMs: 60_000,
    exportTimeoutMs: 1000,
    maxRetries: 0,
    transport: rec.send,
    head: exportHead({}, "t", "0"),
  });
  for (let i = 0; i < 150; i++) exporter.add(span(i)); // the export starts on the next turn
  let sentBeforeOtherTimer: number | null = null;
  setTimeout(() => (sentBeforeOtherTimer = rec.bodies.length), 0);
  const until = Date.now() + 10_000;
  while (rec.bodies.length === 0 && Date.now() < until) await new Promise((f) => setTimeout(f, 5));
  await exporter.shutdown(5000);
  assert.equal(sentBeforeOtherTimer, 0, "a timer due meanwhile ran before the body was complete");
  assert.equal(rec.bodies.length, 1);
  assert.deepEqual(
    spansOf(rec.bodies[0]).map((s) => s.name),
    Array.from({ length: 150 }, (_, i) => `s${i}`),
  );
});

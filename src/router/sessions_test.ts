import assert from "node:assert/strict";
import { MAX_ID_CHARS, sessionKey, SessionPins } from "./sessions.ts";

Deno.test("case 4: long session ids are kept as a 17-character hash, pinned exactly as their text", () => {
  const long = "s".repeat(16 * 1024);
  assert.equal(sessionKey(long).length, 17);
  assert.equal(sessionKey("short-id"), "short-id");
  assert.equal(
    sessionKey("x".repeat(MAX_ID_CHARS)).length,
    MAX_ID_CHARS,
    "up to the limit as given",
  );
  assert.notEqual(
    sessionKey(long),
    sessionKey(long.slice(0, -1) + "t"),
    "differs anywhere → differs",
  );
  const pins = new SessionPins<number>(3);
  pins.set(long, 1);
  assert.equal(pins.get(long), 1);
  assert.equal(pins.get(long + "x"), undefined);
  for (let i = 0; i < 5; i++) pins.set(`${i}${long}`, i);
  assert.equal(pins.size, 3, "at most max pins; the least recently used go first");
  assert.equal(pins.get(long), undefined);
  assert.equal(pins.get(`4${long}`), 4);
});

import assert from "node:assert/strict";
import { multipartBoundary, multipartField } from "./multipart.ts";

const enc = new TextEncoder();

function form(boundary: string, parts: [string, string, string?][]): Uint8Array {
  let s = "";
  for (const [name, value, file] of parts) {
    s += `--${boundary}\r\nContent-Disposition: form-data; name="${name}"` +
      (file ? `; filename="${file}"\r\nContent-Type: audio/wav` : "") + `\r\n\r\n${value}\r\n`;
  }
  return enc.encode(`${s}--${boundary}--\r\n`);
}

Deno.test("multipartBoundary reads quoted and plain boundaries of form-data only", () => {
  assert.equal(multipartBoundary("multipart/form-data; boundary=abc123"), "abc123");
  assert.equal(multipartBoundary('multipart/form-data; charset=utf-8; boundary="a b"'), "a b");
  assert.equal(multipartBoundary("application/json"), null);
  assert.equal(multipartBoundary("multipart/form-data"), null);
  assert.equal(multipartBoundary(null), null);
});

Deno.test("multipartField finds a field after a file part, and nothing that is not there", () => {
  const b = "----x7";
  const body = form(b, [["file", "RIFF\r\n--not-it\r\n", "a.wav"], ["model", "whisper-large"], [
    "language",
    "en",
  ]]);
  assert.equal(multipartField(body, b, "model"), "whisper-large");
  assert.equal(multipartField(body, b, "language"), "en");
  assert.equal(multipartField(body, b, "prompt"), null);
  assert.equal(multipartField(body, b, "model", 3), null, "longer than maxBytes");
  assert.equal(multipartField(enc.encode("--x\r\nbroken"), "x", "model"), null);
  assert.equal(multipartField(enc.encode(""), "x", "model"), null);
});

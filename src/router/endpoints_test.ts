import assert from "node:assert/strict";
import { ADMIN_ENDPOINTS, endpointFor, ENDPOINTS, passthroughEndpoint } from "./endpoints.ts";

Deno.test("endpointFor: exact rows, /v1/models/{id}, passthrough paths on the main table only", () => {
  const extra = new Map([["/v1/load_lora_adapter", passthroughEndpoint("/v1/load_lora_adapter")]]);
  assert.equal(endpointFor(ENDPOINTS, "/v1/chat/completions", extra)?.name, "/v1/chat/completions");
  assert.equal(endpointFor(ENDPOINTS, "/v1/models/a/b%2Fc")?.name, "/v1/models/{id}");
  assert.equal(endpointFor(ENDPOINTS, "/v1/models/"), undefined, "an empty id is no model");
  assert.equal(endpointFor(ENDPOINTS, "/v1/load_lora_adapter", extra)?.serve, "proxy");
  assert.equal(endpointFor(ENDPOINTS, "/v1/load_lora_adapter"), undefined, "not configured");
  assert.equal(endpointFor(ADMIN_ENDPOINTS, "/v1/load_lora_adapter", extra), undefined);
  assert.equal(endpointFor(ADMIN_ENDPOINTS, "/v1/models/x"), undefined);
  assert.equal(endpointFor(ENDPOINTS, "/toString"), undefined, "no prototype keys");
  assert.equal(endpointFor(ENDPOINTS, "/v1/chat/completions/"), undefined, "exact paths");
});

Deno.test("every proxied row names its route, methods and retry rule; passthrough takes any model", () => {
  for (const [path, e] of Object.entries(ENDPOINTS)) {
    assert.ok(e.methods.length > 0, path);
    assert.ok(e.name.startsWith("/"), path);
    if (e.serve === "proxy") {
      assert.ok(["before-first-byte", "connect-only"].includes(e.retry), path);
      assert.notEqual(e.anyModel, true, `${path}: a fixed endpoint resolves its model`);
    }
  }
  const p = passthroughEndpoint("/x");
  assert.deepEqual([p.retry, p.body, p.kind, p.anyModel], ["connect-only", "raw", "none", true]);
});

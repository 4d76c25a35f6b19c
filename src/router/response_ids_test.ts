import assert from "node:assert/strict";
import { MAX_IDS, responseIdIn, ResponseIdScan, ResponseOwners } from "./response_ids.ts";

const enc = new TextEncoder();

Deno.test("responseIdIn finds the id of a Response object and of a response.created event", () => {
  assert.equal(responseIdIn('{"id":"resp_abc","object":"response","output":[]}'), "resp_abc");
  const event = 'event: response.created\ndata: {"response":{"id":"resp_1","created_at":1},' +
    '"sequence_number":0,"type":"response.created"}\n\n';
  assert.equal(responseIdIn(event), "resp_1");
  assert.equal(responseIdIn('{"object":"response"}'), null);
});

Deno.test("ResponseIdScan finds an id split across chunks, and stops after SCAN_BYTES", () => {
  const scan = new ResponseIdScan();
  assert.equal(scan.push(enc.encode('data: {"response":{"i')), null);
  assert.equal(scan.push(enc.encode('d":"resp_split","x":1}}')), "resp_split");
  assert.equal(scan.push(enc.encode('{"id":"later"}')), null, "only the first id counts");
  const late = new ResponseIdScan();
  assert.equal(late.push(new Uint8Array(5000).fill(0x20)), null);
  assert.equal(late.push(enc.encode('{"id":"too_late"}')), null);
});

Deno.test("ResponseOwners is bounded and forgets the least recently used first", () => {
  const owners = new ResponseOwners<number>();
  for (let i = 0; i < MAX_IDS + 10; i++) owners.set(`r${i}`, i);
  assert.equal(owners.size, MAX_IDS);
  assert.equal(owners.get("r0"), undefined);
  assert.equal(owners.get(`r${MAX_IDS + 9}`), MAX_IDS + 9);
  owners.set("x".repeat(200), 1);
  assert.equal(owners.get("x".repeat(200)), undefined, "overlong ids are not kept");
  owners.retain((v) => v % 2 === 0);
  assert.equal(owners.get(`r${MAX_IDS + 9}`), undefined);
});

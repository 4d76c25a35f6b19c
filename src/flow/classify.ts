/**
 * Who a request is, for flow control: its priority class and its tenant key.
 *
 * Class. The value of `flow.queue.class_header` (or, when the header is absent, of the body's
 * top-level `flow.queue.class_field`) names the class: a class's name or one of its `values`,
 * compared trimmed and case-insensitively; a number counts as its decimal text (`priority: 1`).
 * No value (absent, null, empty) means `default_class`. Anything else is refused (400, the
 * message lists the valid values): silently demoting a typo to the default would hide it.
 *
 * Tenant. The owner passes a string (API key fingerprint, or a configured header's value).
 * {@linkcode tenantKey} bounds it before it becomes a map key: ids longer than
 * {@link MAX_TENANT_ID} characters are replaced by `#` and their FNV-1a 64 hash, so a header of
 * 60 KB does not become 60 KB of memory per tenant; an empty id is `anonymous`.
 *
 * Cost: one trim, one lower-casing and one map lookup per request (the map is built once per
 * config object).
 *
 * @module
 */

import { fnv1a64Hex } from "../prefix/chunker.ts";
import type { FlowQueueConfig } from "./types.ts";

/** Longest tenant id kept as it is. */
export const MAX_TENANT_ID = 128;

/** The class a request's value names, or why it names none. */
export type ClassResult =
  | { readonly ok: true; readonly className: string }
  | { readonly ok: false; readonly message: string };

const indexes = new WeakMap<FlowQueueConfig, Map<string, string>>();

function indexOf(config: FlowQueueConfig): Map<string, string> {
  let m = indexes.get(config);
  if (m === undefined) {
    m = new Map();
    for (const c of config.classes) {
      m.set(c.name.toLowerCase(), c.name);
      for (const v of c.values) m.set(v.trim().toLowerCase(), c.name);
    }
    indexes.set(config, m);
  }
  return m;
}

/** The class named by `value` (a header's text, or a body field's parsed value). */
export function classOf(value: unknown, config: FlowQueueConfig): ClassResult {
  if (value === undefined || value === null) return { ok: true, className: config.defaultClass };
  let text: string;
  if (typeof value === "string") text = value;
  else if (typeof value === "number" && Number.isFinite(value)) text = String(value);
  else {
    return {
      ok: false,
      message: `Priority class must be a string or a number, got ${typeof value}`,
    };
  }
  const key = text.trim().toLowerCase();
  if (key === "") return { ok: true, className: config.defaultClass };
  const name = indexOf(config).get(key);
  if (name !== undefined) return { ok: true, className: name };
  const valid = [...indexOf(config).keys()].join(", ");
  const shown = key.length > 40 ? `${JSON.stringify(key.slice(0, 40))}...` : JSON.stringify(key);
  return { ok: false, message: `Unknown priority class ${shown}, valid values: ${valid}` };
}

/** `raw` as a bounded tenant key (see the module comment). */
export function tenantKey(raw: string): string {
  if (raw === "") return "anonymous";
  return raw.length <= MAX_TENANT_ID ? raw : `#${fnv1a64Hex(raw)}`;
}

/**
 * The checks of config values: each turns a raw value (YAML, an environment variable, or a
 * `configFromWorkers` override) into its resolved form, or says what was expected. Each also
 * describes what it accepts as JSON Schema, so `config/router.schema.json` is generated from the
 * very checks the loader runs.
 *
 * Rules: a check never throws and never replaces a bad value with a default; durations resolve to
 * milliseconds, sizes to bytes; a check whose message would quote a secret says so
 * (`Expected.reveal`), and the loader then leaves the value out.
 *
 * @module
 */

import { isScalar, parseDocument } from "yaml";
import { MAX_DURATION_MS, MAX_DURATION_TEXT, parseByteSize, parseDuration } from "./duration.ts";
import { byteSizeSchema, durationSchema, type JsonSchema, orNull } from "./json_schema.ts";
import { didYouMean } from "./suggest.ts";
import { parseEndpoint } from "../kv_events/endpoint.ts";
import type { ParseOptions } from "./types.ts";
import { clip, show as showValue } from "./validate.ts";

/**
 * What a value should have been; `reveal: false` keeps the value out of the message (secrets);
 * `hint` follows the value (`, did you mean info?`).
 */
export class Expected {
  constructor(readonly text: string, readonly reveal = true, readonly hint = "") {}
}

/** A check: the resolved value, or what was expected; `schema` is what it accepts. */
export interface Check {
  (value: unknown, opts: ParseOptions): unknown;
  /** The values accepted, as JSON Schema (`opts.strategies` narrows `router.strategy`). */
  readonly schema: (opts: ParseOptions) => JsonSchema;
}

/** A duration already in milliseconds (from `configFromWorkers`), so it is not read as seconds. */
export class Millis {
  constructor(readonly ms: number) {}
}

function check(
  schema: JsonSchema | ((opts: ParseOptions) => JsonSchema),
  fn: (value: unknown, opts: ParseOptions) => unknown,
): Check {
  return Object.assign(fn, { schema: typeof schema === "function" ? schema : () => schema });
}

export const int = (min: number): Check =>
  check(
    { type: "integer", minimum: min },
    (v) =>
      Number.isSafeInteger(v) && (v as number) >= min
        ? v
        : new Expected(`must be an integer >= ${min}`),
  );

export const duration = (positive: boolean): Check => {
  const want = new Expected(
    `must be a ${positive ? "positive " : ""}duration such as "150ms", "1.5s" or "1h30m", ` +
      `or a number of seconds`,
  );
  return check(durationSchema(positive), (v) => {
    let ms: number;
    if (v instanceof Millis) {
      ms = Number.isFinite(v.ms) && v.ms >= 0 ? v.ms : -1;
    } else if (typeof v === "string" || typeof v === "number") {
      try {
        ms = parseDuration(v);
      } catch {
        return want;
      }
    } else {
      return want;
    }
    if (ms > MAX_DURATION_MS) return new Expected(`must be ${MAX_DURATION_TEXT}`);
    return ms < 0 || (positive && ms === 0) ? want : ms;
  });
};

export const byteSize = (min: number): Check =>
  check(byteSizeSchema(min), (v) => {
    const want = new Expected(
      `must be a size of at least ${min} byte(s) such as ` +
        `1048576, "512KiB" or "8MiB"`,
    );
    if (typeof v !== "string" && typeof v !== "number") return want;
    try {
      const bytes = parseByteSize(v);
      return bytes >= min ? bytes : want;
    } catch {
      return want;
    }
  });

/** One of `values`; a near miss names the closest (`"inf"`: `did you mean info?`). */
export const oneOf = (values: readonly string[]): Check =>
  check({ type: "string", enum: values }, (v) => {
    if (typeof v === "string" && values.includes(v)) return v;
    const hint = typeof v === "string" ? didYouMean(v, values) : "";
    // The hint follows the value: `must be one of a, b, got "x", did you mean a?`.
    return new Expected(`must be one of ${values.join(", ")}`, true, hint);
  });

export const bool: Check = check(
  { type: "boolean" },
  (v) => typeof v === "boolean" ? v : new Expected("must be true or false"),
);

export const nullable = (inner: Check, suffix = " or null"): Check =>
  check((opts) => orNull(inner.schema(opts)), (v, opts) => {
    if (v === null) return null;
    const r = inner(v, opts);
    return r instanceof Expected ? new Expected(r.text + suffix, r.reveal, r.hint) : r;
  });

const LISTEN_ADDR = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/;

/**
 * Splits a Go-style listen address. An empty host means all interfaces: `":8080"` →
 * `{ hostname: "0.0.0.0", port: 8080 }`. IPv6 hosts are bracketed (`"[::1]:8080"`). Port 0 asks
 * the OS for a free port.
 *
 * @throws {RangeError} when `addr` is not `host:port` with a port in 0..65535.
 */
export function parseListenAddr(addr: string): { hostname: string; port: number } {
  const m = LISTEN_ADDR.exec(addr);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) {
    throw new RangeError(`invalid listen address ${JSON.stringify(addr)}, want "host:port"`);
  }
  return { hostname: m[1] ?? (m[2] || "0.0.0.0"), port };
}

export const listenAddr: Check = check(
  { type: "string", pattern: LISTEN_ADDR.source },
  (v) => {
    const want = new Expected(`must be "host:port" such as ":8080" or "127.0.0.1:8080"`);
    if (typeof v !== "string") return want;
    try {
      parseListenAddr(v);
      return v;
    } catch {
      return want;
    }
  },
);

/** A registered strategy name (with `opts.strategies`), else any non-empty string. */
export const strategy: Check = check(
  (opts) =>
    opts.strategies === undefined
      ? { type: "string", minLength: 1 }
      : { type: "string", enum: opts.strategies },
  (v, opts) => {
    if (opts.strategies !== undefined) return oneOf(opts.strategies)(v, opts);
    return typeof v === "string" && v !== "" ? v : new Expected("must be a non-empty string");
  },
);

export const healthPath: Check = check(
  { type: "string", pattern: String.raw`^/\S*$` },
  (v) =>
    typeof v === "string" && /^\/\S*$/.test(v)
      ? v
      : new Expected(`must be a path starting with "/"`),
);

export const workerId: Check = check(
  { type: "string", pattern: "^[A-Za-z0-9._-]+$" },
  (v) =>
    typeof v === "string" && /^[A-Za-z0-9._-]+$/.test(v)
      ? v
      : new Expected("must match [A-Za-z0-9._-]+"),
);

export const workerUrl: Check = check(
  { type: "string", pattern: "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+(/[^?#]*)?$" },
  (v) => {
    const want = new Expected("must be an http(s) URL");
    if (typeof v !== "string") return want;
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      return want;
    }
    if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
      return want;
    }
    // The URL would end up in error messages and logs; credentials belong in api_key.
    if (url.username !== "" || url.password !== "") {
      return new Expected("must not embed credentials (use api_key)", false);
    }
    if (url.search !== "" || url.hash !== "" || v.includes("?") || v.includes("#")) {
      return new Expected("must be an http(s) URL without query or fragment");
    }
    const path = url.pathname.replace(/\/+$/, "");
    // The router appends /v1/...; a base ending in /v1 would request /v1/v1/chat/completions.
    if (/\/v1$/.test(path)) return new Expected("must be the server's base URL, without /v1");
    return url.origin + path;
  },
);

export const apiKey: Check = check(
  { type: "string", minLength: 1 },
  (v) => typeof v === "string" && v !== "" ? v : new Expected("must be a non-empty string", false),
);

export const seed: Check = check(
  { type: "integer" },
  (v) => Number.isSafeInteger(v) ? v : new Expected("must be an integer"),
);

/** Router API keys: printable ASCII without spaces, so they fit `Authorization: Bearer <key>`. */
export const ROUTER_KEY_RE = /^[\x21-\x7e]+$/;

/** What `ROUTER_AUTH_API_KEYS` gives when it holds no key: refused, not an empty list. */
const NO_ENV_KEYS = Symbol("no keys");

export const apiKeyList: Check = check(
  { type: "array", items: { type: "string", pattern: "^[!-~]+$" } },
  (v) => {
    if (v === NO_ENV_KEYS) {
      // A secret that failed to mount often arrives as an empty variable: it must not open the
      // router.
      return new Expected(
        "must hold at least one key when set (unset it to use the config's)",
        false,
      );
    }
    const want = new Expected(
      "must be a list of keys of printable ASCII characters without spaces",
      false,
    );
    if (!Array.isArray(v)) return want;
    for (const k of v) if (typeof k !== "string" || !ROUTER_KEY_RE.test(k)) return want;
    return [...new Set(v as string[])];
  },
);

export const strategyOptions: Check = check(
  { type: "object", additionalProperties: { type: "number" } },
  (v) => {
    const want = new Expected("must be a mapping of option names to numbers");
    if (!isMapping(v)) return want;
    for (const x of Object.values(v)) {
      if (typeof x !== "number" || !Number.isFinite(x)) return want;
    }
    return { ...v };
  },
);

/** A model name as engines serve it: non-empty printable text of at most 512 characters. */
// deno-lint-ignore no-control-regex -- control characters are what the check refuses
const MODEL_RE = /^[^\x00-\x1f\x7f]{1,512}$/;

/** `workers[].models`: a non-empty list of served model names, or null (learned from the worker). */
export const modelList: Check = check(
  orNull({ type: "array", minItems: 1, items: { type: "string", minLength: 1, maxLength: 512 } }),
  (v) => {
    if (v === null) return null;
    const want = new Expected("must be a non-empty list of model names, or null");
    if (!Array.isArray(v) || v.length === 0) return want;
    for (const m of v) if (typeof m !== "string" || !MODEL_RE.test(m)) return want;
    return [...new Set(v as string[])];
  },
);

/** `router.model_aliases`: public model name → served name. */
export const modelAliases: Check = check(
  { type: "object", additionalProperties: { type: "string", minLength: 1, maxLength: 512 } },
  (v) => {
    const want = new Expected("must be a mapping of public model names to served model names");
    if (!isMapping(v)) return want;
    for (const [k, x] of Object.entries(v)) {
      if (!MODEL_RE.test(k) || typeof x !== "string" || !MODEL_RE.test(x)) return want;
    }
    return { ...v };
  },
);

/**
 * A KV-event endpoint to connect to: `tcp://host:port`, where the host may be `{host}` (the
 * worker URL's host, for discovered workers), or null (none).
 */
export const kvEndpoint: Check = check(
  orNull({ type: "string", pattern: "^tcp://" }),
  (v) => {
    if (v === null) return null;
    const want = new Expected(`must be "tcp://host:port" (the host may be {host}), or null`);
    if (typeof v !== "string") return want;
    try {
      parseEndpoint(v.replace("{host}", "placeholder"));
    } catch {
      return want;
    }
    return v;
  },
);

/** A ZMQ topic prefix: any string of at most 256 characters ("" = every topic). */
export const topic: Check = check(
  { type: "string", maxLength: 256 },
  (v) => typeof v === "string" && v.length <= 256 ? v : new Expected("must be a topic string"),
);

/** A mapping of names to strings (collector headers, resource attributes). */
export const stringMap: Check = check(
  { type: "object", additionalProperties: { type: "string" } },
  (v) => {
    const want = new Expected("must be a mapping of names to strings");
    if (!isMapping(v)) return want;
    for (const [k, x] of Object.entries(v)) {
      if (k === "" || typeof x !== "string" || /[\r\n]/.test(k + x)) return want;
    }
    return { ...v };
  },
);

/** A non-empty string of printable characters. */
export const nonEmpty: Check = check(
  { type: "string", minLength: 1 },
  (v) =>
    typeof v === "string" && v.trim() !== "" && !/[\r\n]/.test(v)
      ? v
      : new Expected("must be a non-empty string"),
);

/** A share from 0 to 1. */
export const ratio: Check = check(
  { type: "number", minimum: 0, maximum: 1 },
  (v) =>
    typeof v === "number" && v >= 0 && v <= 1 ? v : new Expected("must be a number from 0 to 1"),
);

/** An http(s) base URL, or "" (off). */
export const optionalUrl: Check = check(
  { type: "string", pattern: "^(|https?://.+)$" },
  (v) => {
    if (v === "") return "";
    if (typeof v === "string" && /^https?:\/\/[^\s]+$/.test(v)) {
      try {
        new URL(v);
        return v.replace(/\/+$/, "");
      } catch { /* below */ }
    }
    return new Expected(`must be an http(s) URL, or "" (off)`);
  },
);

/** A URL path such as `/v1/foo`: starts with `/`, no query, no spaces or control characters. */
const PATH_RE = /^\/[\x21-\x7e]*$/;

/** `router.passthrough_paths`: extra paths proxied to the model's least-loaded worker. */
export const pathList: Check = check(
  { type: "array", items: { type: "string", pattern: "^/[!-~]*$" } },
  (v) => {
    const want = new Expected(`must be a list of URL paths such as "/v1/foo" (no query)`);
    if (!Array.isArray(v)) return want;
    for (const p of v) {
      if (typeof p !== "string" || !PATH_RE.test(p) || p.includes("?")) return want;
    }
    return [...new Set(v as string[])];
  },
);

const TOKEN = "^[!#$%&'*+\\-.^_`|~0-9A-Za-z]*$";
const TOKEN_RE = new RegExp(TOKEN);

/** An HTTP header name (RFC 9110 token), kept in lower case; `""` turns the feature off. */
export const headerName: Check = check(
  { type: "string", pattern: TOKEN },
  (v) =>
    typeof v === "string" && TOKEN_RE.test(v)
      ? v.toLowerCase()
      : new Expected(`must be an HTTP header name such as "x-session-id", or "" (off)`),
);

/**
 * Extra request headers (the trace collector's): names are HTTP header names, values have no
 * CR, LF or NUL, so a header `fetch` would refuse is a config error, not a throw at start-up.
 */
export const headerMap: Check = check(
  { type: "object", additionalProperties: { type: "string" } },
  (v) => {
    const want = new Expected("must be a mapping of HTTP header names to values");
    if (!isMapping(v)) return want;
    for (const [k, x] of Object.entries(v)) {
      if (k === "" || !TOKEN_RE.test(k) || typeof x !== "string" || /[\r\n\0]/.test(x)) return want;
    }
    return { ...v };
  },
);

export const filePath: Check = check(
  { type: "string", pattern: String.raw`\S` },
  (v) => typeof v === "string" && v.trim() !== "" ? v : new Expected("must be a file path"),
);

// ---------------------------------------------------------------------------------------------
// Readers of environment values: text in, a raw value for the key's check out.

/** A comma-separated environment value as a list; blanks around and between items are dropped. */
export function commaList(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** `ROUTER_AUTH_API_KEYS`: a comma list; with no key at all, refused (see `apiKeyList`). */
export function envKeys(text: string): unknown {
  const keys = commaList(text);
  return keys.length > 0 ? keys : NO_ENV_KEYS;
}

/** An environment value holding a YAML flow mapping (`{a: 1}`); anything else stays text. */
export function flowMapping(text: string): unknown {
  const doc = parseDocument(text);
  return doc.errors.length === 0 ? doc.toJS() : text;
}

/**
 * Reads an environment value as a YAML scalar (`8` → 8, `true` → true, `null` → null, `"x"` → x).
 * Text that YAML would read as something else (a list, a mapping, a comment) stays a string.
 */
export function envScalar(text: string): unknown {
  const doc = parseDocument(text);
  return doc.errors.length === 0 && isScalar(doc.contents) ? doc.contents.value : text;
}

// ---------------------------------------------------------------------------------------------
// Shared helpers.

/** A plain mapping (what YAML makes of `{...}`), not an array, null or class instance. */
export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) &&
    Object.getPrototypeOf(v) === Object.prototype;
}

/** A value as it appears in messages: strings quoted, structures as short JSON. */
export function show(v: unknown): string {
  if (v instanceof Millis) return String(v.ms);
  if (v === null || typeof v !== "object") return showValue(v);
  // Unlike the sections' form, a structure JSON cannot write (a cycle) is shown by its tag.
  let json: string;
  try {
    json = JSON.stringify(v);
  } catch {
    json = Object.prototype.toString.call(v);
  }
  return clip(json);
}

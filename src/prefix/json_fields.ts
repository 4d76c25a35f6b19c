/**
 * Small readers shared by the routing-text builders and the tokenizers' request fields: a value's
 * type name for messages, the plain-object test, and the 400 naming a field.
 *
 * @module
 */

import { RouterError } from "../util/errors.ts";

/** Type name for messages: `null`, `array`, or `typeof`. */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

/** A plain object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The 400 for field `param`. */
export function bad(param: string | null, message: string): RouterError {
  return new RouterError("bad_request", message, param);
}

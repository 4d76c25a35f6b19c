/**
 * JSON Schema (draft 2020-12) pieces of the config: the type, and the shapes of values that more
 * than one place accepts (durations, byte sizes, nullable values). The field tables
 * (`fields.ts`) and the `sync:` and `discovery:` sections describe their keys with these, and
 * `schema.ts` assembles `config/router.schema.json` from them.
 *
 * The schema is for editors and linters: it accepts a superset of what the loader does where a
 * rule is not a JSON Schema (a duration's 24.8-day cap in string form, unique worker ids, a
 * positive duration written `"0s"`). The loader stays the judge.
 *
 * @module
 */

import { DURATION_PATTERN, MAX_DURATION_MS, SIZE_PATTERN } from "./duration.ts";

/** A JSON Schema object. */
export type JsonSchema = { readonly [keyword: string]: unknown };

/** A duration: a Go-style string, or a number of seconds (`positive`: above 0). */
export function durationSchema(positive = false): JsonSchema {
  return {
    anyOf: [
      { type: "string", pattern: DURATION_PATTERN },
      {
        type: "number",
        ...(positive ? { exclusiveMinimum: 0 } : { minimum: 0 }),
        maximum: MAX_DURATION_MS / 1000,
      },
    ],
  };
}

/** A byte size: a whole number of bytes (at least `min`), or a string with a unit. */
export function byteSizeSchema(min: number): JsonSchema {
  return {
    anyOf: [
      { type: "integer", minimum: min },
      { type: "string", pattern: SIZE_PATTERN },
    ],
  };
}

/** `schema` or null. A plain `type` (and `enum`) takes `null` in; anything else goes in `anyOf`. */
export function orNull(schema: JsonSchema): JsonSchema {
  const { type, enum: values, anyOf } = schema;
  if (anyOf !== undefined) return { ...schema, anyOf: [...(anyOf as JsonSchema[]), NULL] };
  if (typeof type === "string") {
    const out: Record<string, unknown> = { ...schema, type: [type, "null"] };
    if (Array.isArray(values)) out.enum = [...values, null];
    return out;
  }
  return { anyOf: [schema, NULL] };
}

const NULL: JsonSchema = { type: "null" };

/** A mapping with exactly the keys of `properties`; `nullable`: an empty section (`metrics:`). */
export function objectSchema(
  properties: Readonly<Record<string, JsonSchema>>,
  extra: JsonSchema = {},
  nullable = true,
): JsonSchema {
  return {
    type: nullable ? ["object", "null"] : "object",
    additionalProperties: false,
    properties,
    ...extra,
  };
}

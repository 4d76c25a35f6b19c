/**
 * Small checks shared by the config loader and the sections it delegates to (`sync:`,
 * `discovery:`). Messages follow the loader's form: `<path> <what is wrong>, got <value>`.
 *
 * Unknown keys are reported with the closest known key at the same level, when one is close
 * (`unknown key router.stratgy, did you mean strategy?`; rule in `suggest.ts`).
 *
 * This module imports only `suggest.ts` (which imports nothing), so a section module can use it
 * without loading anything heavy.
 *
 * @module
 */

import { didYouMean } from "./suggest.ts";

/** `v` as a mapping, or null after recording `<path> must be a mapping, got <v>`. */
export function mapping(
  v: unknown,
  path: string,
  errors: string[],
): Record<string, unknown> | null {
  if (typeof v === "object" && v !== null && !Array.isArray(v)) {
    return v as Record<string, unknown>;
  }
  errors.push(`${path} must be a mapping, got ${show(v)}`);
  return null;
}

/**
 * Records `unknown key <path>.<k>` for each key of `m` not in `known`, in `m`'s key order, with
 * `, did you mean <key>?` when a known key is close. `path` `""` is the document's top level.
 */
export function unknownKeys(
  m: Record<string, unknown>,
  known: readonly string[],
  path: string,
  errors: string[],
): void {
  for (const k of Object.keys(m)) {
    if (known.includes(k)) continue;
    errors.push(`unknown key ${path === "" ? k : `${path}.${k}`}${didYouMean(k, known)}`);
  }
}

/** A value as messages show it: strings quoted, structures as short JSON. */
export function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (v === null || typeof v !== "object") return String(v);
  return clip(JSON.stringify(v) ?? String(v));
}

/** `text` cut to at most 60 characters (57 and `...`), as messages show structures. */
export function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
